"""Recordings from elsewhere: ``dictaphone import FILE...`` makes each file a clip.

A file a browser plays (WAV PCM, FLAC, Ogg Vorbis/Opus, MP3, M4A/AAC, WebM Opus/Vorbis,
raw AAC) is kept byte for byte (an MP4 or WebM that also holds video has its audio
packets copied out, unchanged, into an audio-only file). Anything else that can be
decoded (ALAC, AIFF, WMA, AMR, ...) is converted: to FLAC when its codec is lossless, to
Ogg Vorbis when it is lossy; the result says which and why.

Every file is decoded to its end before it becomes a clip, so a damaged file is found
and refused, and the clip's duration is exact. The clip's date is the one the file
carries (an M4A's ``creation_time``, as phones write it), else the file's creation time
where the system keeps one, else its modification time. Nothing half-made: the clip
appears whole (audio and metadata) or not at all; a conversion is written to a hidden
temporary file first.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import stat

from ..errors import DictaphoneError, InvalidArgumentError, SourceError
from . import clips as library

#: (libsndfile format, subtype) a browser plays, and the extension kept for it
_SF_KEPT = {("WAV", "PCM_16"): ".wav", ("WAV", "PCM_24"): ".wav", ("WAV", "PCM_32"): ".wav",
            ("WAV", "FLOAT"): ".wav", ("WAV", "PCM_U8"): ".wav", ("FLAC", None): ".flac",
            ("OGG", "VORBIS"): ".ogg", ("OGG", "OPUS"): ".opus", ("MP3", None): ".mp3"}
#: (PyAV container label, codec) kept, and the extension
_AV_KEPT = {("m4a", "aac"): ".m4a", ("mp4", "aac"): ".m4a", ("aac", "aac"): ".aac",
            ("webm", "opus"): ".webm", ("webm", "vorbis"): ".webm"}
_LOSSLESS_CODECS = ("pcm_", "alac", "flac", "wavpack", "tta", "ape", "mlp", "truehd", "als")
_BLOCK = 1 << 16


@dataclasses.dataclass
class Imported:
    source: str
    clip: library.Clip
    kept: bool  #: the original audio bytes kept (else converted)
    how: str  #: "kept (m4a, AAC)" or "converted to flac (browsers cannot play ALAC)"
    moved: bool = False


def _check_source(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as e:
        raise SourceError(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path}: is a directory (give the audio files in it)")
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{path}: not a regular file (a pipe or a device); save it to a file first")
    if st.st_size == 0:
        raise SourceError(f"{path}: is empty (0 bytes)")
    if library.is_clip_path(path):
        raise SourceError(f"{path}: is in the library already")
    return st


def _date(path: str, st: os.stat_result, reader) -> str:
    """The clip's date: the container's creation_time, else the file's birth time, else
    its modification time; ISO 8601 in local time with its offset."""
    tag = None
    container = getattr(reader, "_container", None)
    if container is not None:
        tags = dict(container.metadata)
        for s in container.streams:
            tags = {**dict(s.metadata), **tags}
        tag = tags.get("creation_time") or tags.get("date")
    if tag:
        try:
            when = datetime.datetime.fromisoformat(tag.strip().replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            if when.year > 1970:
                return when.astimezone().isoformat(timespec="seconds")
        except ValueError:
            pass
    seconds = getattr(st, "st_birthtime", None) or st.st_mtime
    return datetime.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def _name_for(path: str, name: str | None) -> str:
    if name is not None:
        library.check_name(name)
        if library.find(name, missing_ok=True) is not None:
            raise library.ClipExistsError(f"a clip named {name!r} exists already")
        return name
    return library.unique_name(_base_name(path))


def _base_name(path: str) -> str:
    base = os.path.splitext(os.path.basename(path))[0].strip()
    try:
        library.check_name(base)
    except InvalidArgumentError:
        base = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return base


def _plan(reader, path: str) -> tuple[str | None, str]:
    """(the extension the original is kept under, or None: convert; in words)."""
    from ..containers.decode import is_pyav_reader

    if is_pyav_reader(reader):
        codec = reader.codec
        video = any(s.type != "audio" for s in reader._container.streams)
        ext = _AV_KEPT.get((reader.format, codec))
        if ext is not None and len(reader._container.streams.audio) == 1:
            what = f"{reader.format}, {codec.upper() if codec == 'aac' else codec.capitalize()}"
            return ext, (f"audio copied out of its video ({what})" if video else f"kept ({what})")
        return None, f"browsers cannot play {codec} in {reader.format}"
    fmt, subtype = reader.format, reader.subtype
    ext = _SF_KEPT.get((fmt, subtype)) or _SF_KEPT.get((fmt, None))
    if ext is not None:
        return ext, f"kept ({ext[1:]}{', ' + subtype if fmt == 'WAV' else ''})"
    return None, f"browsers cannot play {fmt} {subtype}"


def _lossless(reader) -> bool:
    from ..containers.decode import is_pyav_reader

    if is_pyav_reader(reader):
        return reader.codec.startswith(_LOSSLESS_CODECS)
    return reader.subtype.startswith(("PCM", "FLOAT", "DOUBLE", "ALAC", "ULAW", "ALAW")) \
        or reader.format in ("FLAC",)


def _count_frames(reader, path: str) -> int:
    n = 0
    try:
        for block in reader.blocks(_BLOCK, dtype="float32", always_2d=True):
            n += len(block)
    except DictaphoneError:
        raise
    except Exception as e:
        raise SourceError(f"{path}: the audio is damaged after {n / reader.samplerate:.1f} s ({e})") from None
    if n == 0:
        raise SourceError(f"{path}: holds no audio (0 frames)")
    return n


def _remux(reader, tmp: str) -> None:
    """The audio packets of an MP4/WebM with video, unchanged, in an audio-only file."""
    import av

    src = av.open(reader.path, mode="r", metadata_errors="ignore")
    try:
        fmt = "ipod" if tmp.endswith(".m4a.tmp") else "webm"
        with av.open(tmp, mode="w", format=fmt) as out:
            ins = src.streams.audio[0]
            outs = out.add_stream_from_template(ins)
            for packet in src.demux(ins):
                if packet.dts is None:
                    continue
                packet.stream = outs
                out.mux(packet)
    finally:
        src.close()


def _convert(reader, path: str, tmp: str, lossless: bool, markers) -> tuple[str, int]:
    """Decode ``reader`` into ``tmp``: FLAC (lossless sources) or Ogg Vorbis. Returns the
    format's name and the frames written."""
    from ..containers.encoders import make_encoder
    from ..containers.formats import FORMATS

    fmt = FORMATS["flac" if lossless else "ogg"]
    rate, channels = reader.samplerate, reader.channels
    if rate > fmt.max_rate or channels > fmt.max_channels:
        fmt = FORMATS["wav"]
    subtype = None
    if fmt.name == "flac":
        deep = str(reader.subtype).upper()
        subtype = "PCM_16" if any(k in deep for k in ("16", "U8", "S8", "ULAW", "ALAW")) else "PCM_24"
    enc = make_encoder(tmp, fmt, rate, channels, subtype, force=True)
    for m in markers:
        enc.add_marker(int(round(m.time * rate)), m.number, m.label)
    from .edit import between_blocks

    n = 0
    try:
        with between_blocks() as signals:
            for block in reader.blocks(_BLOCK, dtype=enc.dtype, always_2d=True):
                enc.write(block)
                n += len(block)
                signals.check()
            enc.close()
    except BaseException:
        enc.close()
        raise
    if n == 0:
        raise SourceError(f"{path}: holds no audio (0 frames)")
    return fmt.name, n


def import_file(path: str, name: str | None = None, move: bool = False) -> Imported:
    """Make the audio file ``path`` a clip (see the module's docstring). SourceError (in
    words) for a file that is not audio, is damaged, or cannot be decoded here."""
    from ..containers import markers as markers_mod
    from ..containers.decode import open_audio

    path = os.fspath(path)
    st = _check_source(path)
    target_name = _name_for(path, name)
    reader = open_audio(path)
    tmp = None
    try:
        keep_ext, how = _plan(reader, path)
        created = _date(path, st, reader)
        try:
            markers = markers_mod.read_file_markers(path)
        except DictaphoneError:
            markers = []
        samplerate, channels = reader.samplerate, reader.channels
        if keep_ext is not None:
            frames = _count_frames(reader, path)
            source, ext, fmt_name = path, keep_ext, None
            if how.startswith("audio copied"):
                tmp = library.temp_audio_path(keep_ext)
                _remux(reader, tmp)
                source = tmp
        else:
            tmp = library.temp_audio_path(".flac" if _lossless(reader) else ".ogg")
            fmt_name, frames = _convert(reader, path, tmp, _lossless(reader), markers)
            ext = {"flac": ".flac", "ogg": ".ogg", "wav": ".wav"}[fmt_name]
            how = f"converted to {fmt_name} ({how})"
            source = tmp
    except BaseException:
        reader.close()
        if tmp is not None:
            _unlink(tmp)
        raise
    reader.close()
    meta = dict(created=created, duration=frames / samplerate, samplerate=samplerate,
                channels=channels, markers=[m.to_json() for m in markers], imported=os.path.abspath(path))
    try:
        if name is None:  # the first free name when the clip is made (another may have been quicker)
            clip = library.add_unique(source, _base_name(path), ext, move=source is tmp or move, **meta)
        else:
            clip = library.add(source, target_name, ext, move=source is tmp or move, **meta)
    finally:
        if tmp is not None:
            _unlink(tmp)
    moved = False
    if move:
        if os.path.exists(path) and not os.path.samefile(path, clip.path):
            try:
                os.unlink(path)
                moved = True
            except OSError:
                moved = False
        else:
            moved = not os.path.exists(path)
    return Imported(source=path, clip=clip, kept=keep_ext is not None, how=how, moved=moved)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
