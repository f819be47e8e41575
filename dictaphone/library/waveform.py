"""A file's waveform summary for drawing: per-column peaks and RMS, levels, silences.

Reads the file in blocks, so memory does not grow with its length.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import SourceError
from ..containers.sfmessages import explain
from ..capture.levels import to_dbfs


@dataclasses.dataclass
class Waveform:
    path: str
    samplerate: int
    channels: int
    frames: int
    peaks: np.ndarray  #: per column, max |sample| (0..1)
    rms: np.ndarray  #: per column
    peak: float  #: whole file, 0..1
    rms_total: float
    silences: list[tuple[float, float]]  #: (start, end) seconds of silent stretches

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0

    @property
    def peak_dbfs(self) -> float:
        return to_dbfs(self.peak)

    @property
    def rms_dbfs(self) -> float:
        return to_dbfs(self.rms_total)

    def to_json(self, digits: int = 3) -> dict:
        """The summary as plain JSON types (for the web page's canvas, or scripts)."""
        return {"duration": round(self.duration, 6), "samplerate": self.samplerate,
                "channels": self.channels, "frames": self.frames,
                "peaks": [round(float(v), digits) for v in self.peaks],
                "rms": [round(float(v), digits) for v in self.rms],
                "peak_dbfs": _finite(self.peak_dbfs), "rms_dbfs": _finite(self.rms_dbfs),
                "silences": [[round(a, 3), round(b, 3)] for a, b in self.silences]}


def _finite(x: float) -> float | None:
    return round(x, 1) if math.isfinite(x) else None  # JSON has no -inf (digital silence)


def analyse(path: str, columns: int, silence_dbfs: float = -50.0,
            min_silence: float = 0.5, block: int = 65536) -> Waveform:
    """Summarise ``path`` into ``columns`` columns; stretches below ``silence_dbfs``
    (RMS over 50 ms windows) lasting at least ``min_silence`` seconds are silences."""
    import soundfile as sf

    from ..containers.decode import open_audio

    f = open_audio(path)  # libsndfile, else PyAV (M4A, WebM); SourceError in words
    try:
        with f:
            return _analyse(f, path, columns, silence_dbfs, min_silence, block)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:  # damaged past its header
        raise SourceError(f"{path}: read failed: {e}") from None


def _analyse(f, path, columns, silence_dbfs, min_silence, block) -> Waveform:
    rate, channels = f.samplerate, f.channels
    total = f.frames if 0 <= f.frames < 2**62 else None
    if total is None:  # a streamed file with no length in its header: count first
        total = sum(len(b) for b in f.blocks(block, dtype="float32"))
        f.seek(0)
    columns = max(1, columns)
    per_col = max(1, math.ceil(total / columns)) if total else 1
    ncols = max(1, math.ceil(total / per_col)) if total else 0
    peaks = np.zeros(ncols)
    sumsq = np.zeros(ncols)
    counts = np.zeros(ncols)
    window = max(1, int(rate * 0.05))
    threshold = 10 ** (silence_dbfs / 20)
    silences: list[tuple[float, float]] = []
    quiet_since = None
    pos = 0
    carry = np.zeros(0, dtype=np.float64)
    peak = 0.0
    energy = 0.0
    for data in f.blocks(block, dtype="float32", always_2d=True):
        mono = np.abs(data).max(axis=1).astype(np.float64)
        sq = (data.astype(np.float64) ** 2).mean(axis=1)
        n = len(mono)
        cols = (np.arange(pos, pos + n) // per_col).clip(0, max(0, ncols - 1))
        np.maximum.at(peaks, cols, mono)
        np.add.at(sumsq, cols, sq)
        np.add.at(counts, cols, 1)
        peak = max(peak, float(mono.max()) if n else 0.0)
        energy += float(sq.sum())
        # silence detection on 50 ms windows of RMS
        buf = np.concatenate([carry, sq])
        whole = len(buf) // window * window
        win_rms = np.sqrt(buf[:whole].reshape(-1, window).mean(axis=1)) if whole else []
        start_frame = pos - len(carry)
        for k, r in enumerate(win_rms):
            t = (start_frame + k * window) / rate
            if r < threshold:
                if quiet_since is None:
                    quiet_since = t
            elif quiet_since is not None:
                if t - quiet_since >= min_silence:
                    silences.append((quiet_since, t))
                quiet_since = None
        carry = buf[whole:]
        pos += n
    end = pos / rate
    if quiet_since is not None and end - quiet_since >= min_silence:
        silences.append((quiet_since, end))
    rms = np.sqrt(sumsq / np.maximum(counts, 1))
    return Waveform(path, rate, channels, pos, peaks, rms, peak,
                    math.sqrt(energy / pos) if pos else 0.0, silences)
