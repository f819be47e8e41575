"""Trim and export: a part of a clip as a new clip, a clip as a file of any format.

``trim`` cuts exactly to the frame: a lossless clip (WAV, FLAC, raw) is written in its own
format and sample encoding, frames read and written as integers, so every kept sample is
equal to the original's. A lossy clip is encoded again in its own codec where dictaphone
writes it (Ogg Vorbis, Opus, MP3) and as Ogg Opus (WebM) or Ogg Vorbis (M4A/AAC) where
it does not; the result says so. Markers and transcript words inside the range are kept,
their times moved by the start. The original is kept, unless ``in_place``: then it is
replaced, once the new file is complete (a failure or an interruption leaves it as it
was).

``export`` writes a clip (or a part of it) in any format dictaphone writes, chosen by the
output's extension or by name, carrying its markers (a WAV's cue chunk, chapters in
FLAC and Ogg; MP3 has no place for them) and, if asked, its transcript as SRT or WebVTT
beside it. A regular output file is written whole or not at all and never replaces an
existing one unless ``force``; an output that is not a regular file (a FIFO, a terminal,
``/dev/stdout``) is written through, never replaced.
"""

from __future__ import annotations

import dataclasses
import datetime
import os

from ..errors import DictaphoneError, InvalidArgumentError, NotSupportedError, OutputError, SourceError
from . import clips as library

_BLOCK = 1 << 16

#: the format a clip in a container dictaphone does not write is trimmed into
_LOSSY_INSTEAD = {"webm": "opus", "m4a": "ogg", "aac": "ogg"}


@dataclasses.dataclass
class Result:
    path: str  #: the file written (a clip's audio, or the export)
    format: str
    frames: int
    samplerate: int
    markers: int = 0  #: markers carried
    notes: list[str] = dataclasses.field(default_factory=list)
    clip: library.Clip | None = None
    subtitles: str | None = None

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


def _frames_of(reader, clip_duration: float | None) -> int:
    if clip_duration is not None and clip_duration > 0:
        return int(round(clip_duration * reader.samplerate))
    if 0 <= reader.frames < 2**62:
        return int(reader.frames)
    n = sum(len(b) for b in reader.blocks(_BLOCK, dtype="float32", always_2d=True))
    reader.seek(0)
    return n


def _range(start: float | None, end: float | None, total: int, rate: int) -> tuple[int, int]:
    duration = total / rate
    # checked before they become frame numbers: NaN and infinity (the Python API, the page's
    # JSON) fail every comparison here instead of int() raising ValueError/OverflowError
    if start is not None and not 0 <= start < duration:
        raise InvalidArgumentError(f"--from {start:g} s is outside the clip (0 to {duration:.3f} s)")
    if end is not None and not 0 < end <= duration + 0.5 / rate:
        raise InvalidArgumentError(f"--to {end:g} s is outside the clip (0 to {duration:.3f} s)")
    a = 0 if start is None else int(round(start * rate))
    b = total if end is None else int(round(end * rate))
    b = min(b, total)
    if b <= a:
        raise InvalidArgumentError("--to must come after --from (nothing would be left)")
    return a, b


def _target_format(source_format: str | None, reader, fmt=None):
    """The Format (and subtype) to write: ``fmt`` if given, else the source's own when
    dictaphone writes it, else the nearest one it does."""
    from ..containers.formats import FORMATS

    if fmt is not None:
        return fmt, _subtype_for(fmt, reader), None
    name = source_format or ""
    if name in FORMATS:
        return FORMATS[name], _subtype_for(FORMATS[name], reader), None
    instead = _LOSSY_INSTEAD.get(name, "flac")
    note = f"{name or 'this'} is not a format dictaphone writes: written as {instead}"
    return FORMATS[instead], _subtype_for(FORMATS[instead], reader), note


def _subtype_for(fmt, reader) -> str:
    subtype = str(getattr(reader, "subtype", "") or "").upper()
    if subtype in fmt.subtypes:
        return subtype
    if fmt.lossless and "PCM_24" in fmt.subtypes and subtype in ("PCM_32", "FLOAT", "DOUBLE", "PCM_24"):
        return "PCM_24" if "FLOAT" not in fmt.subtypes or subtype == "PCM_24" else subtype
    return fmt.default_subtype


def _encode(reader, a: int, b: int, output: str, fmt, subtype: str, markers) -> Result:
    """Frames [a, b) of ``reader`` into the file ``output`` (created, replacing an empty
    temp file of ours), with ``markers`` (times of the output)."""
    from ..containers.encoders import make_encoder

    rate = reader.samplerate
    out_rate = rate if fmt.rates is None or rate in fmt.rates else fmt.nearest_rate(rate)
    if fmt.rates is None and rate > fmt.max_rate:
        raise NotSupportedError(f"{fmt.name} takes at most {fmt.max_rate} Hz; this clip is {rate} Hz")
    if reader.channels > fmt.max_channels:
        raise NotSupportedError(f"{fmt.name} takes at most {fmt.max_channels} channels; "
                                f"this clip has {reader.channels}")
    enc = make_encoder(output, fmt, out_rate, reader.channels, subtype, force=True)
    notes = []
    for m in markers:
        enc.add_marker(int(round(m.time * out_rate)), m.number, m.label)
    resample = None
    if out_rate != rate:
        resample = _Resampler(rate, out_rate, reader.channels)
        notes.append(f"resampled from {rate} to {out_rate} Hz ({fmt.name} takes "
                     f"{', '.join(str(r) for r in fmt.rates)} Hz)")
    dtype = enc.dtype if resample is None else "float32"
    try:
        with between_blocks() as signals:
            reader.seek(a)
            left = b - a
            while left > 0:
                block = reader.read(min(_BLOCK, left), dtype=dtype, always_2d=True)
                if len(block) == 0:
                    break
                left -= len(block)
                if resample is not None:
                    block = resample(block, enc.dtype)
                enc.write(block)
                signals.check()
            if resample is not None:
                enc.write(resample(None, enc.dtype))
            enc.close()
    except BaseException:
        enc.close()
        raise
    if left > 0:
        raise SourceError(f"{reader.name if hasattr(reader, 'name') else 'the clip'}: "
                          f"ended {left / rate:.3f} s early (damaged?)")
    if markers and fmt.name in ("mp3", "raw"):
        notes.append(f"{fmt.name} has no place for markers: they are not in the file")
    return Result(path=output, format=fmt.name, frames=enc.frames, samplerate=out_rate,
                  markers=len(markers), notes=notes)


class between_blocks:
    """Ctrl-C (SIGINT) and SIGTERM held while a block is encoded and acted on between two
    blocks (``check()``): a KeyboardInterrupt inside libsndfile's write callback is printed
    by cffi and swallowed, and the encoder then fails with a misleading error, leaving the
    temporary file. Only in the main thread (elsewhere signals are not delivered anyway)."""

    def __enter__(self):
        import signal
        import threading

        self.hit = None
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self.saved[sig] = signal.signal(sig, self._hold)
                except (ValueError, OSError):
                    pass
        return self

    def _hold(self, signum, frame):
        self.hit = signum

    def check(self) -> None:
        if self.hit is not None:
            raise KeyboardInterrupt

    def __exit__(self, kind, *exc):
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        if kind is None:
            self.check()


class _Resampler:
    """float32 frames from one rate to another, in blocks (libswresample, through PyAV)."""

    def __init__(self, rate: int, out_rate: int, channels: int):
        try:
            import av
        except ImportError:
            raise NotSupportedError(f"changing the rate from {rate} to {out_rate} Hz needs "
                                    "PyAV: pip install 'dictaphone[transcribe]'") from None
        self.av, self.rate, self.channels = av, rate, channels
        layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        self.layout = layout
        self.r = av.AudioResampler(format="flt", layout=layout, rate=out_rate)

    def __call__(self, block, dtype):
        import numpy as np

        from ..containers.decode import _as_dtype

        if block is None:
            frames = self.r.resample(None)
        else:
            frame = self.av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block, dtype=np.float32).reshape(1, -1), format="flt",
                layout=self.layout)
            frame.sample_rate = self.rate
            frames = self.r.resample(frame)
        parts = [f.to_ndarray().reshape(-1, self.channels) for f in frames]
        out = np.concatenate(parts) if parts else np.zeros((0, self.channels), np.float32)
        return _as_dtype(out, dtype)


def _markers_in(markers, start: float, end: float):
    from ..containers.markers import Marker

    out = []
    for m in markers:
        if start <= m.time <= end:
            out.append(Marker(m.number, round(m.time - start, 6), m.label))
    return out


def cut_transcript(t, start: float, end: float, duration: float):
    """The words said in [start, end] (a word counts when its middle is inside), times
    moved by ``start``; segments keep their kept words (their text made of them when some
    were cut). None when ``t`` is None."""
    if t is None:
        return None
    from ..library.transcript import Segment, Transcript, Word

    segments = []
    for s in t.segments:
        if s.words:
            words = [w for w in s.words if start <= (w.start + w.end) / 2 <= end]
            if not words:
                continue
            moved = [dataclasses.replace(w, start=round(max(w.start, start) - start, 3),
                                         end=round(min(w.end, end) - start, 3)) for w in words]
            text = s.text if len(words) == len(s.words) else " ".join(w.word for w in words)
            seg = dataclasses.replace(s, start=moved[0].start, end=moved[-1].end, text=text, words=moved)
            segments.append(seg)
        elif start <= (s.start + s.end) / 2 <= end:
            segments.append(dataclasses.replace(s, start=round(max(s.start, start) - start, 3),
                                                end=round(min(s.end, end) - start, 3)))
    _ = (Segment, Word)
    return Transcript(segments=segments, model=t.model, language=t.language, duration=duration)


def _later(created: str | None, seconds: float) -> str | None:
    if not created or not seconds:
        return created
    try:
        when = datetime.datetime.fromisoformat(created)
    except ValueError:
        return created
    return (when + datetime.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def trim(name: str, start: float | None, end: float | None, new_name: str | None = None,
         in_place: bool = False) -> Result:
    """Clip ``name`` from ``start`` to ``end`` (seconds; None: its start or end) as a new
    clip ``new_name`` (default "NAME (trimmed)", made unique), or in its place."""
    from ..containers.decode import open_audio
    from ..containers.markers import Marker
    from ..library import transcript as transcripts

    if start is None and end is None:
        raise InvalidArgumentError("say what to keep: --from TIME, --to TIME, or both")
    if new_name is not None and in_place:
        raise InvalidArgumentError("give --name NEW or --in-place, not both")
    clip = library.find(name)
    library.check_present(clip)
    if new_name is not None:
        library.check_name(new_name)
        if library.find(new_name, missing_ok=True) is not None:
            raise library.ClipExistsError(f"a clip named {new_name!r} exists already")
    reader = open_audio(clip.path)
    tmp = None
    try:
        rate = reader.samplerate
        total = _frames_of(reader, clip.duration)
        a, b = _range(start, end, total, rate)
        t0, t1 = a / rate, b / rate
        fmt, subtype, note = _target_format(clip.format, reader)
        markers = _markers_in([Marker.from_json(m) for m in clip.markers], t0, t1)
        tmp = library.temp_audio_path(fmt.extension)
        result = _encode(reader, a, b, tmp, fmt, subtype, markers)
    except BaseException:
        reader.close()
        if tmp is not None:
            _unlink(tmp)
        raise
    reader.close()
    if note:
        result.notes.insert(0, note)
    saved = transcripts.load(clip.path)
    cut = cut_transcript(saved, t0, t1, result.duration)
    meta = dict(created=_later(clip.created, t0), duration=result.duration,
                samplerate=result.samplerate, channels=clip.channels or reader.channels,
                device=clip.device, markers=[m.to_json() for m in markers],
                imported=clip.imported)
    try:
        if in_place:
            result.clip = library.replace_audio(clip, tmp, fmt.extension, transcript=cut, **meta)
        else:
            if new_name:
                result.clip = library.add(tmp, new_name, fmt.extension, transcript=cut, move=True, **meta)
            else:
                result.clip = library.add_unique(tmp, f"{clip.name} (trimmed)", fmt.extension,
                                                 transcript=cut, move=True, **meta)
    finally:
        _unlink(tmp)
    result.path = result.clip.path
    return result


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def export(source: str, output: str, fmt_name: str | None = None, *, start: float | None = None,
           end: float | None = None, subtitles: str | None = None, force: bool = False) -> Result:
    """Write clip (or file) ``source`` to ``output`` (see the module's docstring).
    ``subtitles``: "srt" or "vtt", written beside ``output`` (its name, that extension)."""
    from ..atomic import is_write_through, publish
    from ..containers.decode import open_audio
    from ..containers.formats import format_by_name, format_for_path
    from ..containers.markers import load as load_markers
    from ..library import transcript as transcripts

    path = library.resolve(source)
    clip = library.clip_at(path)
    through = output == "-" or is_write_through(output)
    if fmt_name is not None:
        fmt = format_by_name(fmt_name)
    else:
        fmt = format_for_path(output) if output != "-" else None
        if fmt is None:
            raise InvalidArgumentError(
                f"cannot tell the format from {output!r}: give an extension "
                "(.wav, .flac, .ogg, .opus, .mp3, .raw) or -f FORMAT")
    if not through:
        out_dir = os.path.dirname(os.path.abspath(output))
        if not os.path.isdir(out_dir):
            raise OutputError(f"{output}: the directory does not exist")
        if os.path.lexists(output) and not force:
            raise OutputError(f"{output} exists (use --force to replace it)")
        if os.path.exists(output) and os.path.samefile(output, path):
            raise OutputError(f"{output} is the clip itself: give another file")
        if os.path.lexists(output) and library.is_clip_path(output):
            # --force over a clip's metadata, transcript or another clip's audio broke it
            raise OutputError(f"{output} is a file of the clip library: it is not replaced "
                              "(export elsewhere; trim makes a new clip)")
    sub_path = sub_text = None
    if subtitles is not None:
        if subtitles not in ("srt", "vtt"):
            raise InvalidArgumentError(f"--subtitles is srt or vtt, not {subtitles!r}")
        if through:
            raise InvalidArgumentError("--subtitles writes a file beside OUT: give OUT as a file, not a stream")
        saved = transcripts.load(path)
        if saved is None:
            raise InvalidArgumentError(f"{clip.name if clip else path} has no transcript "
                                       f"(dictaphone transcribe it first) for --subtitles")
        sub_path = os.path.splitext(output)[0] + "." + subtitles
        if os.path.lexists(sub_path) and not force:
            raise OutputError(f"{sub_path} exists (use --force to replace it)")
    reader = open_audio(path)
    tmp = None
    try:
        rate = reader.samplerate
        total = _frames_of(reader, clip.duration if clip else None)
        a, b = _range(start, end, total, rate) if (start is not None or end is not None) else (0, total)
        t0, t1 = a / rate, b / rate
        _fmt, subtype, _ = _target_format(None, reader, fmt)
        markers = _markers_in(load_markers(path), t0, t1)
        if through:
            import tempfile

            from ..atomic import mkstemp_as_open

            fd, tmp = mkstemp_as_open(tempfile.gettempdir(), ".dictaphone-export-")
        else:
            from ..atomic import mkstemp_as_open

            fd, tmp = mkstemp_as_open(out_dir, ".dictaphone-")
        os.close(fd)
        result = _encode(reader, a, b, tmp, fmt, subtype, markers)
        if sub_path is not None:
            cut = cut_transcript(saved, t0, t1, result.duration)
            sub_text = cut.to_srt() if subtitles == "srt" else cut.to_vtt()
        publish(tmp, output, overwrite=force)
    except BaseException:
        reader.close()
        _unlink(tmp)
        raise
    reader.close()
    _unlink(tmp)
    result.path = output
    if sub_path is not None:
        from ..atomic import write_text

        try:
            write_text(sub_path, sub_text, overwrite=force)
        except FileExistsError:
            raise OutputError(f"{sub_path} exists (use --force to replace it); {output} was written") from None
        result.subtitles = sub_path
    return result


__all__ = ["Result", "trim", "export", "cut_transcript", "DictaphoneError"]
