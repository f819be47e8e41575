"""Audio from the ring through a voice gate (recording/vad.py), with the markers made in it."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from .placement import MarkerPlacement


class GatedInput:
    """Feeds the frames read from the ring to ``gate`` (a :class:`VoiceGate`) and yields
    its decisions for the writer to carry out, in order: ``("write", frames)``,
    ``("cut", None)``, ``("pause" | "resume", None)``, ``("stop", None)`` and
    ``("mark", marker)`` where a marker made inside those frames falls (the gate may hold
    or drop audio, so a ring position is not a file position: the writer maps the marker
    to where the audio after it goes, ``gate.pending_frames`` past what it has written).

    It is a generator so that each decision is carried out before the next marker is
    reached: the writer's count of frames written is then the one the marker needs.
    """

    def __init__(self, gate, marks: MarkerPlacement):
        self.gate = gate
        self.marks = marks
        self.read = 0  # frames read from the ring: the gate's input position

    def feed(self, frames: np.ndarray) -> Iterator[tuple[str, object]]:
        start = self.read
        self.read += len(frames)
        i = 0
        while (due := self.marks.next_unmapped(start + len(frames))) is not None:
            j = max(i, due.frame - start)
            if j > i:
                yield from self.gate.process(frames[i:j])
            i = j
            yield "mark", due
        if i < len(frames):
            yield from self.gate.process(frames[i:])

    def flush(self) -> list:
        """The gate's last decisions, once the source has ended."""
        return self.gate.flush()
