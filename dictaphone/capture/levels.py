"""Signal levels: peak and RMS of blocks of samples, in linear full-scale units and dBFS."""

from __future__ import annotations

import collections
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


def sum_of_squares(x: np.ndarray) -> float:
    """The sum of the squares of a 1-D array.

    Not ``np.dot(x, x)``: that goes to BLAS, and OpenBLAS hands large arrays to its
    worker threads, which then spin for a while after each call. On a recorder that
    measured a few blocks a second that spin cost five times the whole recording (1.1 %
    of a core against 0.25 %). einsum's own loop stays on the calling thread."""
    return float(np.einsum("i,i->", x, x))


def block_levels(block: np.ndarray) -> tuple[float, float]:
    """(peak, rms) of a block, as fractions of full scale. An empty block is silence."""
    if block.size == 0:
        return 0.0, 0.0
    scale = full_scale(block.dtype)
    x = block.astype(np.float64, copy=False).ravel()
    peak = max(float(x.max()), -float(x.min())) / scale
    rms = math.sqrt(sum_of_squares(x) / x.size) / scale
    return peak, rms


class LevelMeter:
    """The latest level of a stream, written by the audio thread, read by anyone.

    ``update`` runs for every block on the capture thread, where every bit of work costs
    (a thread that just woke up runs its first instructions slowly: bench/RESULTS.md).
    Blocks the caller hands over (``owned``: fresh arrays, as a paced microphone reads
    them) are only queued; whoever reads the level (a meter a few times a second, a
    ``status`` request) measures the queued blocks on its own thread, so a recording
    nobody watches pays almost nothing. The queue is folded on the audio thread only
    when nobody has read it for FOLD_AFTER blocks, which keeps its memory bounded and
    the clipping count exact. Blocks the caller reuses (a PortAudio callback's buffer, a
    file reader's) are measured at once, in a scratch buffer allocated up front.

    Readers get a consistent-enough snapshot: each value is one attribute store, and a
    meter refreshing a few times a second does not need more.
    """

    #: A sample at or above this fraction of full scale counts as clipping.
    CLIP = 0.999
    #: queued blocks that the audio thread measures itself when nobody reads the level
    FOLD_AFTER = 32

    def __init__(self, max_block: int = 8192, channels: int = 1):
        self._scratch = np.zeros(max_block * channels, dtype=np.float32)
        self._queue: collections.deque = collections.deque()
        self._peak = 0.0
        self._rms = 0.0
        self._clipped = 0
        self.blocks = 0  #: how many blocks were measured

    def update(self, block: np.ndarray, owned: bool = False) -> None:
        """Measure one block (``owned``: a fresh array the caller will not reuse)."""
        if block.size == 0:
            return
        self.blocks += 1
        if owned:
            self._queue.append(block)
            if len(self._queue) >= self.FOLD_AFTER:
                self._fold()
            return
        self._measure(block)

    def _measure(self, block: np.ndarray) -> None:
        """Measure a block the caller will reuse, in the scratch buffer (no allocation)."""
        n = block.size
        if n > self._scratch.size:
            self._scratch = np.zeros(n, dtype=np.float32)
        x = self._scratch[:n]
        np.multiply(block.reshape(-1), 1.0 / full_scale(block.dtype), out=x, casting="unsafe")
        self._record(max(float(x.max()), -float(x.min())), math.sqrt(sum_of_squares(x) / n))

    def _record(self, peak: float, rms: float) -> None:
        self._rms = rms
        self._peak = peak
        if peak >= self.CLIP:
            self._clipped += 1

    def _fold(self) -> None:
        """Measure the queued blocks (each exactly once, whichever thread takes it)."""
        queue = self._queue
        while True:
            try:
                block = queue.popleft()
            except IndexError:
                return
            self._record(*block_levels(block))

    @property
    def peak(self) -> float:
        """The peak of the last block, as a fraction of full scale."""
        self._fold()
        return self._peak

    @property
    def rms(self) -> float:
        """The RMS of the last block, as a fraction of full scale."""
        self._fold()
        return self._rms

    @property
    def clipped(self) -> int:
        """How many blocks clipped, since the start."""
        self._fold()
        return self._clipped

    @property
    def peak_dbfs(self) -> float:
        return to_dbfs(self.peak)

    @property
    def rms_dbfs(self) -> float:
        return to_dbfs(self.rms)
