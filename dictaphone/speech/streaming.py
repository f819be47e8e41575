"""Streaming recognition: words while they are spoken, settled by agreement, and final
text recognised with the speech that came before it.

Three pieces, used by the live transcriber (live.py) and testable alone:

- :class:`LocalAgreement`: LocalAgreement-2 (as ufal/whisper_streaming does it) over
  successive hypotheses of one utterance, each the recognition of the utterance *so far*:
  a word becomes *committed* when two consecutive hypotheses agree on the prefix that
  holds it. Committed words never change; the rest of the latest hypothesis is
  *tentative*.
- :class:`Context`: the audio of the last utterances (Silero-gated speech only, with its
  padding), trimmed to whole utterances, that is put before an utterance when it is
  recognised.
- :func:`recognise`: recognise an utterance with that context in front of it, and keep
  only the words that lie in the utterance itself, in the utterance's own time.

Why context, and why audio rather than text (measured on 84 s of espeak-ng speech, 18
sentences of 1-7 s in 6 voices, tiny.en int8, one CTranslate2 thread; scratch study in
the commit that added this module): each utterance recognised alone has a word error rate
of 0.161, the whole file through `dictaphone transcribe` 0.080. The previous text as a
prompt made it worse (0.40: tiny.en repeats and loops on espeak's prompts); forcing it
as a decoder prefix broke recognition entirely. Audio of the previous utterances in front
of the new one closes the gap: 5 s of it 0.101, 10 s 0.095, 20 s 0.090, 25 s 0.065, as
much as fits into 29 s with the utterance 0.070 (so :data:`WINDOW`: 28 s). Whisper's
encoder always runs on a 30 s window, so the context costs only the decoder's extra
tokens (0.41 s of CPU an utterance alone, 0.8 s with 25 s of context). Greedy search
instead of beam 5 saves little (the encoder dominates) and costs words (0.101 against
0.070 with the full window), so final text keeps beam 5, and partial hypotheses, which
are only shown, use greedy search on the utterance alone (0.4 s of CPU). Half a second
of silence padded after an utterance changed nothing worth its cost.
"""

from __future__ import annotations

import collections
import dataclasses
import re

import numpy as np

SAMPLE_RATE = 16000

#: seconds of context + utterance handed to the model at once: Whisper hears 30 s
#: windows, and audio longer than one window would be cut in two without context
WINDOW = 28.0


def _norm(word: str) -> str:
    """A word as it is compared: lower case, no punctuation (``Bread.`` is ``bread``)."""
    return re.sub(r"[^\w']+", "", word.lower())


class LocalAgreement:
    """LocalAgreement-2 over successive hypotheses of one utterance.

    ``update(words)`` takes the whole latest hypothesis (its words, as recognised) and
    returns ``(committed, tentative)``: the committed words (a prefix that only grows)
    and the latest hypothesis' words after it. A word is committed when it lies in the
    common prefix of two consecutive hypotheses (compared without case and
    punctuation), and the hypothesis still agrees with what was committed before; the
    committed form of a word is fixed when it is committed.
    """

    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] | None = None

    def update(self, words: list[str]) -> tuple[list[str], list[str]]:
        words = [w for w in words if _norm(w)]
        k = len(self.committed)
        agrees = [_norm(w) for w in words[:k]] == [_norm(w) for w in self.committed]
        previous, self._previous = self._previous, words
        if previous is not None and agrees:
            n = 0
            for a, b in zip(previous, words):
                if _norm(a) != _norm(b):
                    break
                n += 1
            if n > k:
                self.committed = self.committed + words[k:n]
        # The hypothesis' words after the committed ones (by position when it no longer
        # agrees with them: committed words stay as they were shown).
        return list(self.committed), words[len(self.committed):]


@dataclasses.dataclass
class _Piece:
    audio: np.ndarray  #: 16 kHz float32
    seconds: float


class Context:
    """The last utterances' audio (16 kHz), at most ``seconds`` of it, whole utterances."""

    def __init__(self, seconds: float = WINDOW):
        self.seconds = float(seconds)
        self._pieces: collections.deque[_Piece] = collections.deque()

    def add(self, audio: np.ndarray) -> None:
        if self.seconds <= 0 or len(audio) == 0:
            return
        self._pieces.append(_Piece(np.asarray(audio, dtype=np.float32), len(audio) / SAMPLE_RATE))
        while sum(p.seconds for p in self._pieces) > self.seconds:
            self._pieces.popleft()

    def clear(self) -> None:
        self._pieces.clear()

    def before(self, seconds: float) -> np.ndarray:
        """The newest whole utterances that fit in ``seconds``, oldest first (trimmed at an
        utterance's start: a context that begins mid-word would be misheard)."""
        kept, used = [], 0.0
        for p in reversed(self._pieces):
            if used + p.seconds > min(seconds, self.seconds):
                break
            kept.append(p.audio)
            used += p.seconds
        if not kept:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(kept[::-1])


def recognise(engine, audio: np.ndarray, context: np.ndarray | None = None, *,
              beam_size: int | None = None, word_times: bool = True):
    """The segments of ``audio`` (16 kHz float32), recognised with ``context`` in front
    of it; times in seconds of ``audio``. Only words whose middle lies in ``audio`` are
    kept (a context word that Whisper's times push over the boundary belongs to the
    context). ``engine``: a :class:`dictaphone.speech.transcribe.Transcriber` (or
    anything with ``transcribe(audio, samplerate)``, which then hears ``audio`` alone)."""
    from ..library.transcript import Segment

    decode = getattr(engine, "recognise_16k", None)
    if decode is None:
        result = engine.transcribe(audio, SAMPLE_RATE)
        return [s for s in result.segments if s.text.strip()], getattr(result, "language", None)
    context = context if context is not None and len(context) else np.zeros(0, np.float32)
    offset = len(context) / SAMPLE_RATE
    full = np.concatenate([context, audio]) if len(context) else audio
    result = decode(full, beam_size=beam_size, word_timestamps=word_times or bool(len(context)))
    out = []
    for s in result.segments:
        if not len(context):
            out.append(s)
            continue
        words = [w for w in s.words if (w.start + w.end) / 2 >= offset]
        if not words:
            continue
        words = [dataclasses.replace(w, start=round(max(0.0, w.start - offset), 3),
                                     end=round(max(0.0, w.end - offset), 3)) for w in words]
        out.append(Segment(words[0].start, words[-1].end, " ".join(w.word for w in words), words))
    return [s for s in out if s.text.strip()], result.language
