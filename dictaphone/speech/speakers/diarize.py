"""Who spoke when: speech stretches, voice changes inside them, and speakers found.

1. Silero VAD marks the speech; it is cut into stretches at every pause of
   :data:`MIN_PAUSE` or more (a turn ends with a pause more often than not).
2. Each stretch is covered by windows of the encoder's length (1.6 s) at half that hop,
   and each window is embedded.
3. Inside a long stretch, a voice change is where the windows before and after a point are
   least alike (under :data:`CHANGE`); the cut goes where Silero hears least speech near it.
4. The pieces (stretches, or their parts) are embedded as the mean of their windows and
   clustered (:mod:`.cluster`): the number of speakers is found, unless given.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .cluster import centres, cluster, normalise

SAMPLE_RATE = 16000
VAD_WINDOW = 512  # Silero's window: 32 ms
MIN_PAUSE = 0.2  #: s of non-speech that end a stretch
MIN_SPEECH = 0.3  #: s: shorter stretches (a click, a breath) are not speech
PAD = 0.05  #: s kept around a stretch
CHANGE = 0.6  #: windows either side of a point less alike than this: a new voice
MIN_PIECE = 1.0  #: s: no piece shorter than this is cut out of a stretch
MIN_SPEAKER = 1.0  #: s: a "speaker" with less speech than this joins the nearest one


@dataclasses.dataclass
class Turn:
    """A stretch of one speaker: seconds of the audio, and the speaker's number (0, 1, ...)."""

    start: float
    end: float
    speaker: int

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclasses.dataclass
class Diarization:
    """The turns in time order, and a voice print (unit vector) for each speaker number."""

    turns: list[Turn]
    prints: np.ndarray  #: (speakers, dim)
    encoder: str = ""

    @property
    def count(self) -> int:
        return len(self.prints)

    def seconds(self) -> list[float]:
        out = [0.0] * self.count
        for t in self.turns:
            out[t.speaker] += t.duration
        return out


def speech_probabilities(audio: np.ndarray, vad=None) -> np.ndarray:
    """Silero's speech probability for every 32 ms window of 16 kHz audio."""
    if vad is None:
        from ..silero import SileroVAD

        vad = SileroVAD()
    vad.reset()
    audio = np.asarray(audio, dtype=np.float32)
    # 30 s a run: the model's state goes on from one run to the next (the same
    # probabilities), and its working memory stays small (10 minutes in one run took 200 MB).
    step = 30 * SAMPLE_RATE
    parts = [vad.probabilities(audio[a:a + step]) for a in range(0, len(audio), step)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def stretches(probs: np.ndarray, threshold: float = 0.5, neg_threshold: float = 0.35,
              duration: float | None = None) -> list[tuple[float, float]]:
    """(start, end) seconds of speech: hysteresis between the thresholds, cut at pauses of
    MIN_PAUSE, stretches shorter than MIN_SPEECH dropped, PAD added each side."""
    step = VAD_WINDOW / SAMPLE_RATE
    out, start, last, quiet = [], None, 0, 0
    pause = int(np.ceil(MIN_PAUSE / step))
    for k, p in enumerate(probs):
        if start is None:
            if p >= threshold:
                start, last, quiet = k, k + 1, 0
            continue
        if p >= threshold or (p >= neg_threshold and quiet == 0):
            last, quiet = k + 1, 0
        else:
            quiet += 1
            if quiet >= pause:
                out.append((start, last))
                start = None
    if start is not None:
        out.append((start, last))
    end = duration if duration is not None else len(probs) * step
    return [(max(0.0, a * step - PAD), min(end, b * step + PAD)) for a, b in out
            if (b - a) * step >= MIN_SPEECH]


def _windows(start: float, end: float, length: float) -> list[tuple[float, float]]:
    """Windows of ``length`` at half that hop covering [start, end] (one if it is shorter)."""
    if end - start <= length * 1.25:
        return [(start, end)]
    hop = length / 2
    n = int(np.ceil((end - start - length) / hop)) + 1
    first = [start + k * hop for k in range(n)]
    first[-1] = end - length  # the last one ends with the stretch
    return [(a, a + length) for a in first]


def _changes(emb: np.ndarray, spans: list[tuple[float, float]], probs: np.ndarray,
             length: float) -> list[float]:
    """Times inside one stretch where the voice changes."""
    out: list[float] = []
    if len(spans) < 3:
        return out
    step = VAD_WINDOW / SAMPLE_RATE
    start, end = spans[0][0], spans[-1][1]
    # Window k and window k + 2 meet (hop = half a window): compare what is before the
    # meeting point with what is after it.
    cands = []
    for k in range(len(spans) - 2):
        at = spans[k][1]
        if spans[k + 2][0] < at - 1e-6:  # the last window, moved to end with the stretch
            at = (spans[k][1] + spans[k + 2][0]) / 2
        cands.append((float(emb[k] @ emb[k + 2]), at))
    for sim, at in sorted(cands):
        if sim >= CHANGE:
            break
        # The least speech-like moment within a quarter window of the point (a breath
        # between the two voices, usually).
        a = max(0, int((at - length / 4) / step))
        b = min(len(probs), int((at + length / 4) / step) + 1)
        if b > a:
            at = (a + int(np.argmin(probs[a:b]))) * step + step / 2
        if at - start < MIN_PIECE or end - at < MIN_PIECE:
            continue
        if all(abs(at - t) >= MIN_PIECE for t in out):
            out.append(at)
    return sorted(out)


def diarize(audio: np.ndarray, encoder, num_speakers: int | None = None, vad=None,
            probs: np.ndarray | None = None) -> Diarization:
    """Who spoke when in 16 kHz mono ``audio``, with the voice ``encoder`` (embed.GE2E)."""
    audio = np.asarray(audio, dtype=np.float32)
    duration = len(audio) / SAMPLE_RATE
    if probs is None:
        probs = speech_probabilities(audio, vad)
    found = stretches(probs, duration=duration)
    if not found:
        return Diarization([], np.zeros((0, getattr(encoder, "dim", 256))), encoder.name)
    length = float(encoder.window)
    spans, owner = [], []
    for n, (a, b) in enumerate(found):
        for w in _windows(a, b, length):
            spans.append(w)
            owner.append(n)
    chunks = [audio[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)] for a, b in spans]
    emb = normalise(encoder.embed(chunks))
    owner = np.array(owner)
    centre = np.array([(a + b) / 2 for a, b in spans])

    pieces: list[tuple[float, float]] = []
    piece_emb = []
    for n, (a, b) in enumerate(found):
        rows = np.flatnonzero(owner == n)
        cuts = _changes(emb[rows], [spans[r] for r in rows], probs, length)
        bounds = [a, *cuts, b]
        for p, q in zip(bounds, bounds[1:]):
            inside = rows[(centre[rows] >= p) & (centre[rows] < q)]
            if len(inside) == 0:  # a short piece: the window nearest to its middle
                inside = rows[[int(np.argmin(np.abs(centre[rows] - (p + q) / 2)))]]
            pieces.append((p, q))
            piece_emb.append(emb[inside].mean(axis=0))
    piece_emb = normalise(np.array(piece_emb))
    weights = np.array([min(q - p, 8.0) for p, q in pieces])  # long turns do not swamp
    labels = cluster(piece_emb, weights, num_speakers)
    if num_speakers is None:
        labels = _absorb_small(piece_emb, weights, labels, pieces)
    prints = centres(piece_emb, weights, labels)
    turns = [Turn(p, q, int(g)) for (p, q), g in zip(pieces, labels)]
    # Speaker numbers in the order the speakers are first heard.
    order = {}
    for t in turns:
        order.setdefault(t.speaker, len(order))
    for t in turns:
        t.speaker = order[t.speaker]
    prints = prints[[g for g, _ in sorted(order.items(), key=lambda kv: kv[1])]]
    return Diarization(turns, prints, encoder.name)


def _absorb_small(emb, weights, labels, pieces) -> np.ndarray:
    """A group with under MIN_SPEAKER s of speech is a stray piece, not a person: it joins
    the most similar other group."""
    labels = labels.copy()
    while True:
        k = int(labels.max()) + 1
        if k < 2:
            return labels
        secs = np.array([sum(q - p for (p, q), g in zip(pieces, labels) if g == j) for j in range(k)])
        small = int(np.argmin(secs))
        if secs[small] >= MIN_SPEAKER:
            return labels
        c = centres(emb, weights, labels)
        sims = c @ c[small]
        sims[small] = -np.inf
        labels[labels == small] = int(np.argmax(sims))
        _, labels = np.unique(labels, return_inverse=True)
