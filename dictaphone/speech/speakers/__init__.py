"""Speaker labels: who said each word, without torch (numpy and onnxruntime only).

::

    from dictaphone.speech.speakers import Labeller
    labeller = Labeller()                          # the voice encoder loads on first use
    labelled = labeller.label(transcript, audio)   # audio: float32 mono 16 kHz
    labelled.speakers                              # ['Anna', 'Speaker 2']

The parts: :mod:`.model` finds and reads the voice encoder's weights (Resemblyzer's GE2E,
from its wheel, read without torch); :mod:`.embed` runs it in numpy (the backend is
replaceable: anything with ``name``, ``window`` and ``embed``); :mod:`.diarize` finds the
speech (Silero VAD), the voice changes inside it and the speakers; :mod:`.cluster` groups
the voices; :mod:`.assign` gives each word the speaker of its time and splits segments
where the speaker changes. Known voices (``dictaphone.library.voices``) are matched by
:func:`name_speakers`: a voice print within :data:`KNOWN` of a speaker's names it.
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidArgumentError
from .model import INSTALL_HINT, SpeakerModelError  # noqa: F401  (the public errors)

#: A speaker whose voice print is this alike (cosine) to a known voice is that voice.
KNOWN = 0.75
MAX_SPEAKERS = 20


def check_count(n) -> int | None:
    """``--num-speakers``: None (find it) or a whole number from 1 to MAX_SPEAKERS."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SPEAKERS:
        raise InvalidArgumentError(f"the number of speakers is a whole number from 1 to "
                                   f"{MAX_SPEAKERS}, not {n!r}")
    return int(n)


def name_speakers(prints: np.ndarray, known=(), encoder: str = "", threshold: float = KNOWN) -> list[str]:
    """A label for each speaker (in order): a known voice's name when its print is alike
    enough (each name once, the most alike pairs first), else ``Speaker N`` (N: the
    speaker's place in the order they are first heard)."""
    labels = [f"Speaker {k + 1}" for k in range(len(prints))]
    usable = [v for v in known if v.encoder == encoder and len(v.print) == prints.shape[1]]
    if not usable or not len(prints):
        return labels
    vp = np.array([v.print for v in usable], dtype=np.float64)
    vp /= np.maximum(np.linalg.norm(vp, axis=1, keepdims=True), 1e-12)
    sim = np.asarray(prints, dtype=np.float64) @ vp.T
    taken_s, taken_v = set(), set()
    for flat in np.argsort(-sim, axis=None):
        s, v = np.unravel_index(int(flat), sim.shape)
        if sim[s, v] < threshold:
            break
        if s in taken_s or v in taken_v:
            continue
        labels[s] = usable[v].name
        taken_s.add(s)
        taken_v.add(v)
    # A known voice called "Speaker 2" is not the second unknown one.
    names = {labels[s] for s in taken_s}
    return [f"{label} (unknown)" if k not in taken_s and label in names else label
            for k, label in enumerate(labels)]


class Labeller:
    """Speaker labels for transcripts, with one voice encoder loaded once (on first use)."""

    def __init__(self, encoder=None, voices=None):
        self._encoder = encoder
        self._voices = voices  # None: the known voices of the data directory, read when needed
        self._vad = None

    @property
    def encoder(self):
        if self._encoder is None:
            from .embed import GE2E

            self._encoder = GE2E()
        return self._encoder

    def load(self) -> "Labeller":
        """Load the encoder now (a missing or damaged model fails here). Returns self."""
        self.encoder  # noqa: B018
        return self

    def voices(self):
        if self._voices is None:
            from ...library import voices

            self._voices = voices.load()
        return self._voices

    def diarize(self, audio: np.ndarray, num_speakers: int | None = None):
        from ..silero import SileroVAD
        from .diarize import diarize

        if self._vad is None:
            self._vad = SileroVAD()
        return diarize(audio, self.encoder, check_count(num_speakers), vad=self._vad)

    def label(self, transcript, audio: np.ndarray, num_speakers: int | None = None):
        """``transcript`` (of ``audio``, float32 mono 16 kHz) with a speaker on every word and
        segment, segments split where the speaker changes (a new Transcript)."""
        from .assign import assign

        d = self.diarize(audio, num_speakers)
        names = name_speakers(d.prints, self.voices(), d.encoder)
        return assign(transcript, d, names)

    def voice_print(self, audio: np.ndarray, spans=None) -> tuple[np.ndarray, float]:
        """One voice print of the speech in ``audio`` (within ``spans``, (start, end)
        seconds, when given) and its seconds of speech."""
        from ..silero import SileroVAD
        from .cluster import normalise
        from .diarize import SAMPLE_RATE, _windows, speech_probabilities, stretches

        if self._vad is None:
            self._vad = SileroVAD()
        found = stretches(speech_probabilities(audio, self._vad), duration=len(audio) / SAMPLE_RATE)
        if spans is not None:
            found = [(max(a, p), min(b, q)) for a, b in found for p, q in spans
                     if min(b, q) - max(a, p) > 0.3]
        chunks, weights = [], []
        for a, b in found:
            for p, q in _windows(a, b, self.encoder.window):
                chunks.append(audio[int(p * SAMPLE_RATE):int(q * SAMPLE_RATE)])
                weights.append(q - p)
        seconds = sum(b - a for a, b in found)
        if not chunks:
            return np.zeros(0), 0.0
        emb = normalise(self.encoder.embed(chunks))
        return normalise((emb * np.array(weights)[:, None]).sum(axis=0)), seconds


class SpeakerNotFoundError(InvalidArgumentError):
    """The transcript has no speaker of that label."""


def rename_in(audio_path: str, old: str, new: str, remember: bool = False,
              labeller: "Labeller | None" = None, source: str = ""):
    """Call speaker ``old`` ``new`` in the saved transcript of ``audio_path``; with
    ``remember``, keep the voice as a known one (its print made from that speaker's
    speech). Nothing is saved unless everything worked. Returns (transcript, voice or None)."""
    from ...library import transcript as tmod
    from ...library import voices as vmod

    new = vmod.check_name(new)
    t = tmod.load(audio_path)
    if t is None:
        raise SpeakerNotFoundError(f"{source or audio_path} has no saved transcript "
                                   "(dictaphone transcribe --speakers makes one)")
    if not t.labelled:
        raise SpeakerNotFoundError(f"the transcript of {source or audio_path} has no speaker "
                                   "labels (dictaphone transcribe --speakers --redo adds them)")
    match = [s for s in t.speakers if s == old] or [s for s in t.speakers if s.casefold() == old.strip().casefold()]
    if not match:
        raise SpeakerNotFoundError(f"no speaker {old!r} in {source or audio_path} (its speakers: "
                                   f"{', '.join(t.speakers)})")
    old = match[0]
    voice = None
    if remember:
        known = vmod.find(vmod.load(), new)
        spans = [(s.start, s.end) for s in t.segments if s.speaker == old]
        if known is None:
            from ..transcribe import read_audio

            labeller = labeller or Labeller()
            vector, seconds = labeller.voice_print(read_audio(audio_path), spans)
            if seconds < MIN_PRINT:
                raise InvalidArgumentError(f"{old} speaks only {seconds:.1f} s in {source or audio_path}: "
                                           f"a voice print needs {MIN_PRINT:g} s of speech")
            voice = (vector, seconds, labeller.encoder.name)
    t.rename_speaker(old, new)
    tmod.save(audio_path, t)
    saved = None
    if voice is not None:
        saved = vmod.add(new, voice[2], voice[0], voice[1], source=source or audio_path)
    return t, saved


#: seconds of speech a voice print is made from, at least
MIN_PRINT = 2.0


def print_of(audio: np.ndarray, labeller: "Labeller | None" = None):
    """The voice print of the main voice of ``audio``: (print, seconds, encoder name,
    how many voices were heard). The one who speaks most when there are several."""
    labeller = labeller or Labeller()
    d = labeller.diarize(audio)
    if d.count == 0:
        return None, 0.0, labeller.encoder.name, 0
    secs = d.seconds()
    k = int(np.argmax(secs))
    return d.prints[k], secs[k], labeller.encoder.name, d.count
