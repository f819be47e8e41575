"""What every source of frames is (:class:`Source`), and what it delivers them to
(:class:`Capture`, the recorder's side of the audio thread).

A source delivers frames to a *capture* object with three methods: ``push(frames,
owned=False)`` from a real-time thread (must not block; drops and counts what does not
fit; ``owned`` says the array is fresh and will not be reused by the source),
``push_all(frames)`` from a thread that may wait (file sources never drop), and
``end(error=None)`` when it has no more frames. ``overflow(frames)`` reports input the
audio system dropped before it reached us.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Capture(Protocol):
    def push(self, frames: np.ndarray, owned: bool = False) -> None: ...
    def push_all(self, frames: np.ndarray) -> bool: ...
    def overflow(self, frames: int) -> None: ...
    def end(self, error: BaseException | None = None) -> None: ...


class Source:
    """What every source has: a rate, a channel count, and open/start/stop/close."""

    samplerate: int
    channels: int
    #: a short description for metadata and messages
    name: str = "source"
    #: frames are captured in real time and handed over in blocks (a device): the
    #: recorder carries its position forward between deliveries (MediaRecorder.mark)
    live: bool = False

    def open(self, capture: Capture, dtype: str) -> None:
        """Prepare to deliver frames of ``dtype`` to ``capture`` (validates; allocates)."""
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop delivering. After it returns no more frames arrive. Idempotent."""
        raise NotImplementedError

    def drain(self) -> None:
        """Before a stop the user asked for: wait for audio captured before now that is
        still on its way. Optional; the default waits for nothing."""

    def close(self) -> None:
        """Release the device or file. Idempotent."""
        raise NotImplementedError
