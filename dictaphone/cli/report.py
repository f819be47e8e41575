"""The end of a recording in the terminal: the summary line and the exit status, the
transcript's tail and where it was saved, the clip metadata, the hooks a stop dropped."""

from __future__ import annotations

import dataclasses
import os
import sys

from ..containers.formats import Format
from ..errors import BrokenPipeOutputError
from .options import RecordOptions
from .stderr import say_safely, warn


def report_dropped_hooks(hooks, session, event_log) -> None:
    """One line (and a ``hooksdropped`` event) for the hooks a stop kept from running."""
    n = hooks.dropped_total
    by = ", ".join(f"{name}: {k}" for name, k in hooks.dropped.items())
    why = session.signal_name or session.stop_reason or "a stop signal"
    warn(f"stopped by {why}: {n} queued hook{'s' if n != 1 else ''} did not run ({by})")
    if event_log is not None:
        event_log.note("hooksdropped", count=n, hooks=dict(hooks.dropped), reason=why)


#: a transcript this short (utterances, characters) is printed after the stop
SHOW_UTTERANCES, SHOW_CHARACTERS = 6, 600


#: the longest a stop waits for the transcript's tail (the backlog is bounded; a second
#: Ctrl-C skips the wait)
TAIL_TIMEOUT = 120.0


def finish_transcript(live, rec, opts: RecordOptions, session) -> str | None:
    """After the stop: recognise what is still queued (a progress line on a terminal; a
    second Ctrl-C gives it up), then save the transcript beside the recording. Returns the
    line that says where it went (None: nothing to say)."""
    import time

    live.finish()
    tty = not opts.quiet and sys.stderr.isatty()
    signals = session.signals
    deadline = time.monotonic() + TAIL_TIMEOUT
    shown = gave_up = False
    while not live.wait(0.1):
        if session.signals > signals or time.monotonic() > deadline:
            live.abandon()
            gave_up = True
            break
        if tty:
            print(f"\r\033[Ktranscribing the last {live.pending_seconds:.1f} s of speech… "
                  f"(Ctrl-C skips)", end="", file=sys.stderr, flush=True)
            shown = True
    if shown:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    live.wait(5.0)  # the utterance being recognised when it was given up
    complete = not gave_up and not live.error and not live.missed_seconds
    if live.error is not None:
        warn(f"transcription failed: {live.error}; the recording is complete")
    elif live.missed_seconds:
        warn(f"{live.missed_seconds:.1f} s of audio could not be transcribed in time")
    elif gave_up:
        warn("the transcript's last utterances were left out" +
             ("" if session.signals > signals else f" (still busy after {TAIL_TIMEOUT:g} s)"))
    if not complete and rec.paths:
        warn(f"the transcript is incomplete and was not saved; 'dictaphone transcribe "
             f"{rec.paths[0]}' makes it from the recording")
    t = live.transcript
    if complete and getattr(session, "labeller", None) is not None and not t.empty:
        t = label_speakers(session.labeller, t, rec, tty)
    saved = save_transcript(t, rec) if complete else []
    if saved and not opts.quiet:
        n = len(t.text.split())
        where = saved[0] if len(saved) == 1 else f"{len(saved)} files"
        if n == 0:  # as `dictaphone transcribe` says it: silence is not "0 words in 0 segments"
            return f"Transcript: no speech, saved as {where}"
        who = (f", {len(t.speakers)} speaker{'s' if len(t.speakers) != 1 else ''}"
               if t.labelled else "")
        line = (f"Transcript: {n} word{'s' if n != 1 else ''} in {len(t.segments)} "
                f"segment{'s' if len(t.segments) != 1 else ''}{who}, saved as {where}")
        # A dictated note is short: its words right here, no other command needed.
        texts = [text for _, text in getattr(live, "utterances", [])] or [s.text for s in t.segments]
        if len(texts) <= SHOW_UTTERANCES and sum(len(x) for x in texts) <= SHOW_CHARACTERS:
            line += "".join(f"\n  {x}" for x in texts)
        return line
    return None


def label_speakers(labeller, transcript, rec, tty: bool):
    """The transcript labelled with speakers from the recorded files (read back whole, at
    the stop); unlabelled, with a warning, when they cannot be read."""
    import numpy as np

    from ..speech.transcribe import read_audio

    if tty:
        print("\r\033[Klabelling speakers…", end="", file=sys.stderr, flush=True)
    try:
        paths = [p for p in rec.paths if os.path.exists(p)]
        audio = np.concatenate([read_audio(p) for p in paths]) if paths else None
        if audio is None:
            return transcript
        return labeller.label(transcript, audio)
    except Exception as e:  # the transcript is still worth saving without labels
        warn(f"speaker labels failed ({e}); the transcript is saved without them")
        return transcript
    finally:
        if tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def save_transcript(transcript, rec) -> list[str]:
    """Save the transcript beside each file of the recording. Split pieces get the words
    said in them, in their own time: an utterance that goes on over a cut is cut with it
    (a word belongs to the piece that holds its middle). Nothing for stdout or memory."""
    import dataclasses

    from ..library import transcript as tmod
    from ..library.edit import cut_transcript

    paths = [p for p in rec.paths if os.path.exists(p)]
    if not paths:
        return []
    bounds, t0 = [], 0.0
    for p in paths:
        n = _file_frames(p, rec.samplerate) if len(paths) > 1 else rec.frames
        bounds.append((p, t0, t0 + n / rec.samplerate))
        t0 += n / rec.samplerate
    saved = []
    for i, (path, a, b) in enumerate(bounds):
        if len(bounds) == 1:
            piece = dataclasses.replace(transcript, segments=[_clamped(s, a, b) for s in transcript.segments])
        else:
            # half open, so that a word on a cut goes to one piece only
            piece = cut_transcript(transcript, a, b if i == len(bounds) - 1 else b - 1e-6, 0.0)
        piece.duration = round(b - a, 3)
        try:
            saved.append(tmod.save(path, piece))
        except OSError as e:
            warn(f"cannot save the transcript of {path}: {e.strerror or e}")
    return saved


def _clamped(segment, a: float, b: float):
    import dataclasses

    def c(x):
        return round(min(b, max(a, x)), 3)

    return dataclasses.replace(segment, start=c(segment.start), end=c(segment.end),
                               words=[dataclasses.replace(w, start=c(w.start), end=c(w.end))
                                      for w in segment.words])


def report(rec, opts: RecordOptions, fmt: Format, label: str) -> int:
    """The summary line (or the error line) of a finished recording; the exit status."""
    from .text import channels_name, clock, human_size

    error = rec.error
    broken_pipe = isinstance(error, BrokenPipeOutputError)
    to_stdout = opts.output == "-"
    if to_stdout:
        try:
            sys.stdout.flush()
        except OSError:
            broken_pipe = True
        if broken_pipe:
            # Python would print "Exception ignored ... BrokenPipeError" at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
    what = (f"{clock(rec.duration)} ({rec.frames} frames), {human_size(rec.bytes_written)}, "
            f"{fmt.name} {rec.samplerate} Hz {channels_name(rec.channels)}, "
            f"{rec.dropped_frames} dropped frames")
    gaps = getattr(rec, "gaps", [])
    missing = ""
    if gaps:  # audio is missing where the device was lost: say so, as for dropped frames
        missing = (f"{len(gaps)} gap{'s' if len(gaps) > 1 else ''} where the device was lost "
                   f"({sum(g['duration'] for g in gaps):.1f} s of audio missing)")
        what += f", {missing}"
    if error is not None and not broken_pipe:
        if rec.frames:
            say_safely(f"dictaphone: error: {error}; kept {what} in {label}")
        else:
            say_safely(f"dictaphone: error: {error}")
        return 1
    if len(rec.paths) > 1:
        label = f"{rec.paths[0]} … {os.path.basename(rec.paths[-1])} ({len(rec.paths)} files)"
    if not opts.quiet:
        verb = "Streamed to" if to_stdout else "Saved"
        tail = " (the reader closed the pipe)" if broken_pipe else ""
        say_safely(f"{verb} {label}: {what}{tail}")
    elif rec.dropped_frames:
        warn(f"{rec.dropped_frames} frames were dropped")
    if opts.quiet and missing:
        warn(missing)
    return 0


def save_clip_metadata(rec, fmt: Format, created: str) -> None:
    """Write the sidecar of each file that went into the clip library (its markers
    included: they move from the recorder's markers sidecar into the clip's metadata)."""
    from ..library.clips import is_clip_path, write_metadata
    from ..containers.markers import remove_sidecar

    split = int(round(rec.split * rec.samplerate)) if rec.split else None
    for i, path in enumerate(rec.paths):
        if not is_clip_path(path) or not os.path.exists(path):
            continue
        if len(rec.paths) == 1:
            frames = rec.frames
        elif split is not None and not rec.split_on_mark:
            frames = min(split, rec.frames - i * split)
        elif path in rec.piece_frames:  # pieces cut on silence or at markers
            frames = rec.piece_frames[path]
        else:
            frames = _file_frames(path, rec.samplerate)
        try:
            write_metadata(path, created=created, duration=frames / rec.samplerate,
                           format=fmt.name, samplerate=rec.samplerate, channels=rec.channels,
                           device=rec.source.name, dropped_frames=rec.dropped_frames,
                           gaps=rec.gaps_in(path), markers=[m.to_json() for m in rec.markers_in(path)])
        except OSError as e:
            warn(f"cannot write the metadata of {path}: {e.strerror}")
        else:
            remove_sidecar(path)


def _file_frames(path: str, samplerate: int) -> int:
    try:
        import soundfile as sf

        return sf.info(path).frames
    except Exception:
        return 0
