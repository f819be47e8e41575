"""Each word gets the speaker of its time; segments are split where the speaker changes."""

from __future__ import annotations

import dataclasses

from ...library.transcript import Segment, Transcript, Word

#: A word in no turn (Whisper heard it where Silero did not) takes the nearest turn's
#: speaker when that turn is this close (s); otherwise its neighbours'.
NEAR = 1.0


def _speaker_at(turns, start: float, end: float) -> int | None:
    """The speaker whose turns overlap [start, end] most (or the nearest turn's)."""
    best, best_overlap = None, 0.0
    near, near_gap = None, NEAR
    mid = (start + end) / 2
    for t in turns:
        overlap = min(end, t.end) - max(start, t.start)
        if overlap > best_overlap:
            best, best_overlap = t.speaker, overlap
        gap = max(t.start - mid, mid - t.end, 0.0)
        if gap < near_gap:
            near, near_gap = t.speaker, gap
    return best if best is not None else near


def assign(transcript: Transcript, diarization, names: list[str]) -> Transcript:
    """A copy of ``transcript`` labelled by ``diarization`` (its speaker ``k`` called
    ``names[k]``). With no speech found (silence, noise) nothing is labelled."""
    out = dataclasses.replace(transcript, segments=[])
    turns = diarization.turns
    if not turns:
        out.segments = [dataclasses.replace(s, words=[dataclasses.replace(w, speaker=None) for w in s.words],
                                            speaker=None) for s in transcript.segments]
        return out
    for seg in transcript.segments:
        if not seg.words:
            k = _speaker_at(turns, seg.start, seg.end)
            out.segments.append(dataclasses.replace(seg, speaker=None if k is None else names[k]))
            continue
        ks = [_speaker_at(turns, w.start, w.end) for w in seg.words]
        _fill(ks)
        if all(k is None for k in ks):
            k0 = _speaker_at(turns, seg.start, seg.end)
            ks = [k0] * len(ks)
        words = [dataclasses.replace(w, speaker=None if k is None else names[k])
                 for w, k in zip(seg.words, ks)]
        runs: list[list[Word]] = []
        for w in words:
            if runs and runs[-1][-1].speaker == w.speaker:
                runs[-1].append(w)
            else:
                runs.append([w])
        if len(runs) == 1:
            out.segments.append(dataclasses.replace(seg, words=words, speaker=words[0].speaker))
            continue
        for run in runs:
            out.segments.append(Segment(start=run[0].start, end=run[-1].end,
                                        text=" ".join(w.word for w in run), words=run,
                                        speaker=run[0].speaker))
    return out


def _fill(ks: list) -> None:
    """Words without a speaker take the one before them (or, at the start, after them)."""
    last = None
    for i, k in enumerate(ks):
        if k is None:
            ks[i] = last
        else:
            last = k
    nxt = None
    for i in range(len(ks) - 1, -1, -1):
        if ks[i] is None:
            ks[i] = nxt
        else:
            nxt = ks[i]
