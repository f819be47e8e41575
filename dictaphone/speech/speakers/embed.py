"""Voice embeddings: Resemblyzer's GE2E voice encoder run in numpy.

A backend is anything with ``name`` (which voice prints it makes: prints of different
backends are not comparable), ``window`` (the seconds of audio one embedding sees best) and
``embed(chunks)``: 16 kHz mono float32 chunks of up to ``window`` seconds in, one
L2-normalised row each out. :class:`GE2E` is the one dictaphone ships; another (an ONNX
model fetched on first use, say) only needs those three.

GE2E, as Resemblyzer computes it: a power (not log) mel spectrogram of 40 bands (25 ms
windows, 10 ms hop, Slaney mel scale), 160 frames (1.6 s) a window, through three LSTM
layers of 256; the last layer's final state, projected to 256, through a ReLU and
normalised. A chunk shorter than a window is repeated to fill it (the network was trained
on 1.6 s partials). Loudness is brought up to -30 dBFS RMS first, as Resemblyzer does.
"""

from __future__ import annotations

import contextlib
import ctypes
import os

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
FRAMES = 160  # 1.6 s a window
TARGET_DBFS = -30.0
BATCH = 32  # windows a pass: about 1 MB a window of LSTM state and inputs


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    log = f >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0),
                    f / (200.0 / 3))


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filters() -> np.ndarray:
    """librosa's default mel filter bank (Slaney scale and area normalisation), 40 x 201."""
    fft_f = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filters()
_HANN = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def mel_spectrogram(audio: np.ndarray) -> np.ndarray:
    """(frames, 40) power mel spectrogram of 16 kHz audio (frames centred, reflect-padded)."""
    x = np.asarray(audio, dtype=np.float32)
    if len(x) <= N_FFT // 2:
        x = np.pad(x, (0, N_FFT // 2 + 1 - len(x)))
    x = np.pad(x, N_FFT // 2, mode="reflect")
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    spec = np.abs(np.fft.rfft(frames * _HANN, axis=1)).astype(np.float32) ** 2
    return spec @ _FILTERS.T


def _louder(audio: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms <= 1e-6:
        return audio
    gain = 10 ** (TARGET_DBFS / 20) / rms
    return audio * np.float32(gain) if gain > 1 else audio


_BLAS = None


def _blas_threads():
    """(get, set) of the OpenBLAS that numpy uses, or None when it cannot be found."""
    global _BLAS
    if _BLAS is None:
        _BLAS = False
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                libs = {line.split()[-1] for line in f if "openblas" in line.lower() and ".so" in line}
        except OSError:
            libs = set()
        for lib in sorted(libs):
            try:
                handle = ctypes.CDLL(lib)
            except OSError:
                continue
            for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "")):
                get = getattr(handle, f"{prefix}get_num_threads{suffix}", None)
                put = getattr(handle, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    put.argtypes = [ctypes.c_int]
                    _BLAS = (get, put)
                    return _BLAS
    return _BLAS or None


@contextlib.contextmanager
def one_blas_thread():
    """The LSTM's many small products on one BLAS thread: on two busy cores OpenBLAS's
    second thread made them 8 times slower (19 s against 2.2 s for 64 windows, load 18),
    and one thread leaves the other core to capture and recognition."""
    blas = _blas_threads() if os.name == "posix" else None
    if blas is None:
        yield
        return
    get, put = blas
    before = int(get())
    put(1)
    try:
        yield
    finally:
        put(before)


class GE2E:
    """Resemblyzer's GE2E voice encoder (weights from :mod:`.model`), in numpy."""

    name = "resemblyzer-ge2e"
    window = FRAMES * HOP / SAMPLE_RATE  # 1.6 s
    dim = 256

    def __init__(self, source: str | None = None):
        from .model import SpeakerModelError, load_state

        state, self.source = load_state(source)
        try:
            self._layers = []
            for n in range(3):
                # The i, f and o gates are sigmoids: sigmoid(x) = (tanh(x / 2) + 1) / 2, so
                # their rows are halved once here and one tanh serves all four gates.
                scale = np.full(1024, 0.5, dtype=np.float32)
                scale[512:768] = 1.0
                w_ih = np.asarray(state[f"lstm.weight_ih_l{n}"], np.float32) * scale[:, None]
                w_hh = np.asarray(state[f"lstm.weight_hh_l{n}"], np.float32) * scale[:, None]
                bias = (np.asarray(state[f"lstm.bias_ih_l{n}"], np.float32) +
                        np.asarray(state[f"lstm.bias_hh_l{n}"], np.float32)) * scale
                if w_ih.shape != (1024, 40 if n == 0 else 256) or w_hh.shape != (1024, 256):
                    raise ValueError(f"layer {n} has the wrong shape")
                self._layers.append((np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias))
            self._proj = np.ascontiguousarray(np.asarray(state["linear.weight"], np.float32).T)
            self._proj_bias = np.asarray(state["linear.bias"], np.float32)
            if self._proj.shape != (256, 256):
                raise ValueError("the projection has the wrong shape")
            if not all(np.isfinite(w).all() for layer in self._layers for w in layer):
                raise ValueError("the weights are not finite numbers")
        except (KeyError, ValueError) as e:
            raise SpeakerModelError(f"the voice encoder's weights {self.source} are not "
                                    f"Resemblyzer's GE2E model ({e})") from None

    def mels(self, chunk: np.ndarray) -> np.ndarray:
        """The (160, 40) input of one chunk (repeated to fill a window when shorter)."""
        x = _louder(np.asarray(chunk, dtype=np.float32))
        need = FRAMES * HOP
        if 0 < len(x) < need:
            x = np.tile(x, int(np.ceil(need / len(x))))[:need]
        m = mel_spectrogram(x[:need])
        if len(m) < FRAMES:
            m = np.pad(m, ((0, FRAMES - len(m)), (0, 0)))
        return m[:FRAMES]

    def embed(self, chunks) -> np.ndarray:
        """One L2-normalised 256-d row for each 16 kHz chunk."""
        chunks = list(chunks)
        out = np.zeros((len(chunks), self.dim), dtype=np.float32)
        with one_blas_thread():
            for a in range(0, len(chunks), BATCH):
                mels = np.stack([self.mels(c) for c in chunks[a:a + BATCH]])
                out[a:a + len(mels)] = self.forward(mels)
        return out

    def forward(self, mels: np.ndarray) -> np.ndarray:
        x = np.asarray(mels, dtype=np.float32)
        batch, steps, _ = x.shape
        h = np.zeros((batch, 256), dtype=np.float32)
        for n, (w_ih, w_hh, bias) in enumerate(self._layers):
            gates_in = (x.reshape(batch * steps, -1) @ w_ih + bias).reshape(batch, steps, 1024)
            h = np.zeros((batch, 256), dtype=np.float32)
            c = np.zeros((batch, 256), dtype=np.float32)
            last = n == len(self._layers) - 1
            seq = None if last else np.empty((batch, steps, 256), dtype=np.float32)
            g = np.empty((batch, 1024), dtype=np.float32)
            for t in range(steps):
                np.matmul(h, w_hh, out=g)
                g += gates_in[:, t]
                np.tanh(g, out=g)
                i, f, cand, o = g[:, :256], g[:, 256:512], g[:, 512:768], g[:, 768:]
                c = (f * 0.5 + 0.5) * c + (i * 0.5 + 0.5) * cand
                h = (o * 0.5 + 0.5) * np.tanh(c)
                if seq is not None:
                    seq[:, t] = h
            if seq is not None:
                x = seq
        e = np.maximum(h @ self._proj + self._proj_bias, 0.0)
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.maximum(norm, 1e-9)
