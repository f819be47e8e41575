"""Signal levels: peak and RMS of blocks of samples, in linear full-scale units and dBFS."""

from __future__ import annotations

import math

import numpy as np

SILENCE_DBFS = -120.0  #: what dBFS reports for digital silence (instead of -inf)


def full_scale(dtype: np.dtype | str) -> float:
    """The value that is 0 dBFS for samples of this dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return 1.0
    return float(-np.iinfo(dtype).min)


def to_dbfs(value: float) -> float:
    """Linear full-scale amplitude (1.0 = full scale) to dBFS, floored at SILENCE_DBFS."""
    if value <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 20.0 * math.log10(value))


def block_levels(block: np.ndarray) -> tuple[float, float]:
    """(peak, rms) of a block, as fractions of full scale. An empty block is silence."""
    if block.size == 0:
        return 0.0, 0.0
    scale = full_scale(block.dtype)
    x = block.astype(np.float64, copy=False).ravel()
    peak = max(float(x.max()), -float(x.min())) / scale
    rms = math.sqrt(float(np.dot(x, x)) / x.size) / scale
    return peak, rms


class LevelMeter:
    """The latest level of a stream, written by the audio thread, read by anyone.

    ``update`` uses a scratch buffer allocated once, so the audio callback does no large
    allocation. Readers get a consistent-enough snapshot: each value is one attribute
    store, and a meter refreshing a few times a second does not need more.
    """

    #: A sample at or above this fraction of full scale counts as clipping.
    CLIP = 0.999

    def __init__(self, max_block: int = 8192, channels: int = 1):
        self._scratch = np.zeros(max_block * channels, dtype=np.float32)
        self.peak = 0.0
        self.rms = 0.0
        self.clipped = 0  #: blocks that clipped, since the start
        self.blocks = 0  #: how many blocks were measured

    def update(self, block: np.ndarray) -> None:
        n = block.size
        if n == 0:
            return
        if n > self._scratch.size:
            self._scratch = np.zeros(n, dtype=np.float32)
        x = self._scratch[:n]
        np.multiply(block.reshape(-1), 1.0 / full_scale(block.dtype), out=x, casting="unsafe")
        peak = max(float(x.max()), -float(x.min()))
        self.rms = math.sqrt(float(np.dot(x, x)) / n)
        self.peak = peak
        if peak >= self.CLIP:
            self.clipped += 1
        self.blocks += 1

    @property
    def peak_dbfs(self) -> float:
        return to_dbfs(self.peak)

    @property
    def rms_dbfs(self) -> float:
        return to_dbfs(self.rms)
