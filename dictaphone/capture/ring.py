"""A fixed-size ring of audio frames between one producer and one consumer.

The producer is the audio callback (or a file reader thread); the consumer is the
recorder's writer thread. Memory is allocated once, in the constructor.

Thread safety: one producer and one consumer only. Each side copies its frames first and
then advances its own counter (``_written`` or ``_read``); under the GIL an attribute
store is atomic, so the other side never sees frames that are not there yet. The
non-blocking :meth:`write` never takes a lock, so the audio callback cannot block on it.
The blocking variant (for file sources, which must not drop) waits on a condition that
the consumer signals after it frees space.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    def __init__(self, capacity: int, channels: int, dtype: str | np.dtype = "float32"):
        if capacity < 1 or channels < 1:
            raise ValueError("capacity and channels must be positive")
        self.capacity = int(capacity)
        self.channels = int(channels)
        self.dtype = np.dtype(dtype)
        self._buf = np.zeros((self.capacity, self.channels), dtype=self.dtype)
        self._written = 0  # total frames ever written (producer's counter)
        self._read = 0  # total frames ever read (consumer's counter)
        self._space = threading.Condition()
        self._waiting = False  # a blocking writer waits for space (see write_all)
        self._closed = False

    @property
    def nbytes(self) -> int:
        """The size of the preallocated storage: the ring's whole memory."""
        return self._buf.nbytes

    def __len__(self) -> int:
        """Frames waiting to be read."""
        return self._written - self._read

    @property
    def free(self) -> int:
        return self.capacity - len(self)

    def write(self, frames: np.ndarray) -> int:
        """Copy as many frames as fit; return how many. Never blocks, never allocates."""
        n = min(len(frames), self.capacity - (self._written - self._read))
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = frames[:first]
        if first < n:
            self._buf[: n - first] = frames[first:n]
        self._written += n
        return n

    def write_all(self, frames: np.ndarray, timeout: float | None = None) -> bool:
        """Write every frame, waiting for space. False when the ring was closed first."""
        done = 0
        while done < len(frames):
            if self._closed:
                return False
            done += self.write(frames[done:])
            if done < len(frames):
                with self._space:
                    self._waiting = True
                    if self.free == 0 and not self._closed:
                        self._space.wait(timeout if timeout is not None else 0.1)
                    self._waiting = False
        return True

    def read_into(self, out: np.ndarray, max_frames: int | None = None) -> int:
        """Move up to ``len(out)`` (or ``max_frames``) frames into ``out``; return how many."""
        limit = len(out) if max_frames is None else min(len(out), max_frames)
        n = min(limit, self._written - self._read)
        if n <= 0:
            return 0
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        self._read += n
        if self._waiting:  # (set before the writer checks for space: no lost wake-up)
            with self._space:
                self._space.notify_all()
        return n

    def read(self, max_frames: int | None = None) -> np.ndarray:
        """Return up to ``max_frames`` waiting frames as a new array (allocates; for tests)."""
        n = len(self) if max_frames is None else min(max_frames, len(self))
        out = np.empty((n, self.channels), dtype=self.dtype)
        return out[: self.read_into(out)]

    def close(self) -> None:
        """Wake and release any blocked writer; later blocking writes return False."""
        self._closed = True
        with self._space:
            self._space.notify_all()
