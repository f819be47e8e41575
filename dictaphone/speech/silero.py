"""Silero VAD: a neural speech detector, from the ONNX model faster-whisper ships.

Whisper writes text for noise and silence ("Thank you.", "You"); recognition therefore gets
only what this detector marks as speech. The model is faster-whisper's own copy
(``faster_whisper/assets/silero_vad_v6.onnx``), run with onnxruntime (no torch), found
without importing faster-whisper itself. Both come with the ``transcribe`` extra; without
them, making a detector raises :class:`VadMissingError`.

Three pieces:

- :class:`SileroVAD`: the model on a 16 kHz stream; the speech probability of every
  512-sample (32 ms) window, the LSTM state and the 64-sample context carried from one
  call to the next. About 0.1 ms of CPU a window here.
- :class:`SileroDetector`: a ``VoiceGate`` detector (vad.py): takes the gate's 30 ms
  blocks at any rate and channel count, resamples them to 16 kHz, and answers with the
  detector's current verdict (a hysteresis between two thresholds, as Silero's own
  segmentation does).
- :class:`Segmenter`: streaming utterance segmentation for the live transcriber: feed
  it mono audio as it is recorded; it returns each utterance (its 16 kHz samples and its
  start and end in recorded seconds) once a pause has ended it.

:class:`Resampler` converts any rate to 16 kHz (a polyphase windowed-sinc filter; numpy
only, no state but the last few input samples).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os

import numpy as np

from ..errors import DictaphoneError

SAMPLE_RATE = 16000  #: the model's rate
WINDOW = 512  #: samples the model judges at once (32 ms)
CONTEXT = 64  #: samples of the previous window the model sees before each window
THRESHOLD = 0.5  #: a window is speech from this probability up...
NEG_THRESHOLD = 0.35  #: ...and speech stays speech until the probability falls below this
INSTALL_HINT = "pip install 'dictaphone[transcribe]'"


class VadMissingError(DictaphoneError):
    """The speech detector needs the ``transcribe`` extra (onnxruntime and faster-whisper)."""

    usage = True


def model_path() -> str:
    """The path of faster-whisper's Silero VAD model (without importing faster-whisper,
    which would load CTranslate2 and more)."""
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        raise VadMissingError(f"the Silero speech detector needs faster-whisper: {INSTALL_HINT}")
    for base in spec.submodule_search_locations:
        path = os.path.join(base, "assets", "silero_vad_v6.onnx")
        if os.path.exists(path):
            return path
    raise VadMissingError(f"faster-whisper's Silero VAD model (assets/silero_vad_v6.onnx) is "
                          f"missing; reinstall: {INSTALL_HINT}")


class SileroVAD:
    """Silero VAD v6 on a 16 kHz mono float stream: ``probabilities(samples)`` returns the
    speech probability of every complete 512-sample window so far (samples of an
    incomplete window wait for the next call)."""

    def __init__(self, path: str | None = None):
        try:
            import onnxruntime
        except ImportError:
            raise VadMissingError(f"the Silero speech detector needs onnxruntime: {INSTALL_HINT}") from None
        opts = onnxruntime.SessionOptions()
        # One thread, no spinning: a window costs a tenth of a millisecond, and idle
        # worker threads that spin would take CPU from capture and recognition.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_cpu_mem_arena = False
        opts.log_severity_level = 4
        try:
            self._session = onnxruntime.InferenceSession(path or model_path(),
                                                         providers=["CPUExecutionProvider"],
                                                         sess_options=opts)
        except VadMissingError:
            raise
        except Exception as e:  # onnxruntime's own errors (a corrupt file)
            raise VadMissingError(f"cannot load the Silero VAD model: {e}; reinstall: {INSTALL_HINT}") from None
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        x = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32).ravel()])
        n = len(x) // WINDOW
        self._pending = x[n * WINDOW:]
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        windows = x[:n * WINDOW].reshape(n, WINDOW)
        context = np.empty((n, CONTEXT), dtype=np.float32)
        context[0] = self._context
        context[1:] = windows[:-1, -CONTEXT:]
        self._context = windows[-1, -CONTEXT:].copy()
        # One run for many windows: the model carries its state through the batch in
        # order (checked: the same probabilities as one window a run).
        probs, self._h, self._c = self._session.run(
            None, {"input": np.concatenate([context, windows], axis=1), "h": self._h, "c": self._c})
        return np.asarray(probs, dtype=np.float32).ravel()


class Resampler:
    """Streaming conversion of mono float audio from ``rate_in`` to ``rate_out`` Hz: a
    polyphase windowed-sinc low-pass (``taps`` input samples a output sample), exact for
    rational ratios (48 kHz -> 16 kHz takes every third filtered sample; 44.1 kHz uses
    160 phases). The delay is half the filter, under a millisecond."""

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE, taps: int = 64):
        g = math.gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        self.identity = self.up == self.down == 1
        L, M = self.up, self.down
        n = taps * L
        fc = 0.5 / max(L, M) * 0.92  # cut-off in cycles a sample at the upsampled rate
        t = np.arange(n) - (n - 1) / 2
        h = 2 * fc * np.sinc(2 * fc * t) * np.kaiser(n, 8.0) * L
        # phases[p, k] = h[p + k * L]: output m uses phase (m * M) % L against the inputs
        # x[(m * M) // L - k]
        self._phases = h.reshape(taps, L).T[:, :].astype(np.float32).copy()
        self._taps = taps
        self._hist = np.zeros(taps - 1, dtype=np.float32)  # inputs before this block
        self._pos = 0  # m * M of the next output, counted from the first input sample
        self._seen = 0  # input samples so far

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).ravel()
        if self.identity:
            return x.copy()
        L, M, K = self.up, self.down, self._taps
        buf = np.concatenate([self._hist, x])
        first = self._seen - len(self._hist)  # the absolute index of buf[0]
        self._seen += len(x)
        last = self._seen - 1  # the newest input an output may use
        count = (last * L - self._pos) // M + 1 if last >= 0 and last * L >= self._pos else 0
        out = np.zeros(0, dtype=np.float32)
        if count > 0:
            pos = self._pos + np.arange(count, dtype=np.int64) * M
            base = pos // L - first
            idx = base[:, None] - np.arange(K)[None, :]
            out = np.einsum("ij,ij->i", buf[idx], self._phases[pos % L]).astype(np.float32)
            self._pos += count * M
        self._hist = buf[-(K - 1):].copy() if K > 1 else buf[:0]
        return out


def to_mono_float(frames: np.ndarray) -> np.ndarray:
    """Frames (frames x channels, any dtype) as one float32 channel in [-1, 1]."""
    from ..capture.levels import full_scale

    x = np.asarray(frames)
    if x.ndim == 2:
        x = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)
    x = x.astype(np.float32)
    if np.asarray(frames).dtype.kind != "f":
        x /= np.float32(full_scale(np.asarray(frames).dtype))
    return x


class SileroDetector:
    """A ``VoiceGate`` detector (``--vad silero``): True while Silero hears speech.

    The gate hands it 30 ms blocks; Silero judges 32 ms windows at 16 kHz, so the blocks
    are resampled and gathered, and each call answers with the verdict of the newest
    window: speech from ``threshold`` up, and speech again until the probability falls
    below ``neg_threshold`` (so a word does not flicker in and out).
    """

    def __init__(self, samplerate: int, threshold: float = THRESHOLD,
                 neg_threshold: float = NEG_THRESHOLD, vad: SileroVAD | None = None):
        self.vad = vad or SileroVAD()
        self.resample = Resampler(samplerate)
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        self.speech = False
        self.probability = 0.0

    def __call__(self, window: np.ndarray) -> bool:
        for p in self.vad.probabilities(self.resample(to_mono_float(window))):
            self.probability = float(p)
            self.speech = p >= self.threshold or (self.speech and p >= self.neg_threshold)
        return self.speech


@dataclasses.dataclass
class Utterance:
    """One stretch of speech: its 16 kHz samples, and where it lies in the recording."""

    start: float  #: seconds of recorded media
    end: float
    audio: np.ndarray  #: float32 mono at 16 kHz, from ``start`` to ``end``
    #: where its last speech window ends (seconds of recorded media): two views of one
    #: utterance with the same start and speech end hold the same speech
    speech_end: float | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


class Segmenter:
    """Cuts a stream into utterances with Silero VAD (the live transcriber's ears).

    ``feed(samples)`` takes mono float audio at ``samplerate`` as it is recorded and
    returns the utterances that ended in it. An utterance begins at the first speech
    window and ends when ``min_silence`` seconds of non-speech follow (it is then padded
    by ``pad`` seconds each side); one longer than ``max_duration`` is cut at its latest
    pause (or, without one, where it reaches the limit) so that text keeps coming while
    someone talks on. Speech shorter than ``min_speech`` (a click, a cough) is dropped.
    ``flush()`` ends the utterance in progress at the end of the recording.
    ``offset`` is the recorded time of the first sample fed.

    Memory is bounded: outside speech only the padding is kept, inside it at most
    ``max_duration`` seconds.
    """

    def __init__(self, samplerate: int, *, offset: float = 0.0, threshold: float = THRESHOLD,
                 neg_threshold: float = NEG_THRESHOLD, min_silence: float = 0.6,
                 pad: float = 0.2, min_speech: float = 0.25, max_duration: float = 20.0,
                 vad: SileroVAD | None = None):
        self.vad = vad or SileroVAD()
        self.resample = Resampler(samplerate)
        self.offset = offset
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        self.min_silence = int(min_silence * SAMPLE_RATE)
        self.pad = int(pad * SAMPLE_RATE)
        self.min_speech = int(min_speech * SAMPLE_RATE)
        self.max_samples = int(max_duration * SAMPLE_RATE)
        self._chunks: list[np.ndarray] = []  # 16 kHz audio kept, from sample _kept_from
        self._kept_from = 0
        self._total = 0  # 16 kHz samples seen
        self._windows = 0  # windows judged
        self._triggered = False
        self._start = 0  # the first speech sample of the utterance in progress
        self._silence_from = 0  # where the current non-speech began (0: in speech)
        self._last_pause = 0  # the end of the latest pause inside this utterance (for cuts)
        self._last_speech = 0  # the end of the latest speech window
        self._continued = False  # the utterance in progress follows a cut (no pre-roll)
        self.probability = 0.0

    @property
    def in_speech(self) -> bool:
        return self._triggered

    @property
    def silent_for(self) -> float:
        """Seconds of non-speech at the end of the utterance in progress (0: in speech)."""
        if not self._triggered or not self._silence_from:
            return 0.0
        return (self._windows * WINDOW - self._silence_from) / SAMPLE_RATE

    @property
    def current_seconds(self) -> float:
        """Seconds of the utterance in progress so far (0: none)."""
        return (self._total - self._start) / SAMPLE_RATE if self._triggered else 0.0

    @property
    def heard(self) -> float:
        """The recorded time heard so far (seconds)."""
        return self.offset + self._total / SAMPLE_RATE

    def current(self) -> Utterance | None:
        """The utterance in progress as heard so far (a copy of its audio, its padding
        before it included), or None outside speech. Its ``start`` and ``speech_end`` are
        those of the utterance that :meth:`feed` returns once it ends, if no more speech
        comes."""
        if not self._triggered:
            return None
        return self._utterance(self._start, self._total, self._last_speech)

    def ending(self) -> Utterance | None:
        """The utterance in progress as :meth:`feed` will return it if no more speech comes
        (the very samples: its audio up to the end of its speech and the padding after
        it), or None while in speech or before that padding has been heard."""
        if not self._triggered or not self._silence_from:
            return None
        end = self._silence_from + self.pad
        if self._total < end:
            return None
        return self._utterance(self._start, end, self._last_speech)

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        x = self.resample(samples)
        if len(x):
            self._chunks.append(x)
            self._total += len(x)
        out: list[Utterance] = []
        for p in self.vad.probabilities(x):
            self._judge(float(p), out)
        if not self._triggered:
            self._trim(self._windows * WINDOW - self.pad)
        return out

    def flush(self) -> list[Utterance]:
        out: list[Utterance] = []
        if self._triggered:
            end = self._silence_from or self._total
            self._emit(self._start, min(self._total, end + self.pad), self._last_speech, out)
            self._triggered = False
        self._chunks, self._kept_from = [], self._total
        return out

    # ------------------------------------------------------------------ internals

    def _judge(self, p: float, out: list[Utterance]) -> None:
        self.probability = p
        at = self._windows * WINDOW  # this window's first sample
        self._windows += 1
        end = at + WINDOW
        if not self._triggered:
            if p >= self.threshold:
                self._triggered = True
                self._continued = False
                self._start = at
                self._silence_from = 0
                self._last_pause = 0
                self._last_speech = end
            return
        if p >= self.threshold or (p >= self.neg_threshold and not self._silence_from):
            if self._silence_from and at - self._silence_from >= int(0.1 * SAMPLE_RATE):
                self._last_pause = self._silence_from + (at - self._silence_from) // 2
            self._silence_from = 0
            self._last_speech = end
        elif not self._silence_from:
            self._silence_from = at
        if self._silence_from and end - self._silence_from >= self.min_silence:
            self._emit(self._start, self._silence_from + self.pad, self._last_speech, out)
            self._triggered = False
            return
        if end - self._start >= self.max_samples:
            cut = self._last_pause if self._last_pause > self._start else end
            self._emit(self._start, cut, min(cut, self._last_speech), out, pad_end=False)
            self._start = cut
            self._continued = True
            self._last_pause = 0

    def _emit(self, start: int, end: int, speech_end: int, out: list[Utterance],
              pad_end: bool = True) -> None:
        if speech_end - start >= self.min_speech:
            out.append(self._utterance(start, min(self._total, end), speech_end))
        self._trim(end if pad_end else end - self.pad)

    def _utterance(self, start: int, end: int, speech_end: int) -> Utterance:
        """The utterance whose speech begins at sample ``start`` (its padding before it
        included, unless it follows a cut) and whose audio ends at ``end``: one place for
        :meth:`feed`, :meth:`current` and :meth:`ending`, so that they agree sample for sample."""
        a = max(self._kept_from, start if self._continued else start - self.pad)
        return Utterance(self.offset + a / SAMPLE_RATE, self.offset + end / SAMPLE_RATE,
                         self._slice(a, end), self.offset + speech_end / SAMPLE_RATE)

    def _slice(self, a: int, b: int) -> np.ndarray:
        buf = np.concatenate(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks = [buf]
        return buf[a - self._kept_from:b - self._kept_from].copy()

    def _trim(self, keep_from: int) -> None:
        """Forget the audio before ``keep_from`` (it is in no utterance any more)."""
        keep_from = min(keep_from, self._total)
        if keep_from <= self._kept_from or not self._chunks:
            return
        buf = np.concatenate(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks = [buf[keep_from - self._kept_from:]]
        self._kept_from = keep_from
