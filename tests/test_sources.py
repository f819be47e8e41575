"""The microphone's paced reader and its drain, against a scripted PortAudio stream.

The real-audio tests (test_cli_record, test_faults, test_recorder) run the same code on
PulseAudio; these pin the logic where timing on a real server cannot be controlled: what
a stop waits for and what it keeps.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dictaphone.errors import InvalidArgumentError
from dictaphone.capture.sources import Microphone

RATE = 48000


class ScriptedStream:
    """A blocking PortAudio input stream whose arrivals follow a clock: ``arrivals`` is a
    list of (seconds after start, frames); a frame is readable once its time has come."""

    def __init__(self, arrivals):
        self.t0 = time.monotonic()
        self.arrivals = list(arrivals)
        self.taken = 0
        self.active = True
        self.stopped = False
        self.latency = 0.5
        self.counter = 0  # sample values count up, so what was read can be checked

    def _arrived(self) -> int:
        now = time.monotonic() - self.t0
        return sum(n for t, n in self.arrivals if t <= now)

    @property
    def read_available(self) -> int:
        return self._arrived() - self.taken

    def read(self, n):
        assert n <= self.read_available, "a paced reader must never wait inside PortAudio"
        data = (np.arange(self.taken, self.taken + n) % 30000).astype(np.int16)[:, None]
        self.taken += n
        return data, False

    def stop(self):
        self.active, self.stopped = False, True

    abort = stop

    def close(self):
        pass


class Collect:
    def __init__(self):
        self.blocks = []
        self.lost = 0

    def push(self, frames, owned=False):
        self.blocks.append(np.array(frames))

    def overflow(self, frames):
        self.lost += frames

    def end(self, error=None):
        pass

    @property
    def frames(self):
        return sum(len(b) for b in self.blocks)


def paced_mic(stream, pace=0.25) -> tuple[Microphone, Collect]:
    """A Microphone in paced mode on a scripted stream (no PortAudio needed)."""
    import sounddevice

    mic = Microphone.__new__(Microphone)
    mic.mode, mic.pace, mic.samplerate, mic.name = "paced", pace, RATE, "scripted"
    mic._sd = sounddevice
    mic._lock = threading.Lock()
    mic._stalled = mic.hung = False
    mic._stream = stream
    mic._capture = capture = Collect()
    mic._halt = threading.Lock()
    mic._halt.acquire()
    mic._reader = threading.Thread(target=mic._pace, daemon=True)
    mic._reader.start()
    return mic, capture


def test_a_stop_waits_for_the_fragment_in_flight_and_keeps_it():
    # fragments of 0.125 s, as the server sends them with a 0.5 s buffer
    frag = RATE // 8
    stream = ScriptedStream([(0.125 * (i + 1), frag) for i in range(40)])
    mic, got = paced_mic(stream)
    time.sleep(0.56)  # asked to stop between two fragments
    arrived = stream._arrived()
    t0 = time.monotonic()
    mic.drain()
    waited = time.monotonic() - t0
    mic.stop()
    # what had arrived, and the next fragment, which holds the last words, are kept
    assert got.frames >= arrived + frag
    assert np.array_equal(np.concatenate(got.blocks)[:, 0],
                          (np.arange(got.frames) % 30000).astype(np.int16))
    assert waited < Microphone.MAX_DRAIN  # it came in time: no full wait
    assert stream.stopped and got.lost == 0


def test_a_stop_gives_up_waiting_after_max_drain_when_nothing_comes():
    stream = ScriptedStream([(0.05, 4800)])  # one block, then the server falls silent
    mic, got = paced_mic(stream, pace=0.1)
    time.sleep(0.15)
    t0 = time.monotonic()
    mic.drain()
    waited = time.monotonic() - t0
    mic.stop()
    assert got.frames == 4800
    assert Microphone.MAX_DRAIN <= waited < Microphone.MAX_DRAIN + 0.2


def test_the_reader_takes_only_what_is_there_and_loses_nothing_across_reads():
    stream = ScriptedStream([(0.01 * i, 480) for i in range(100)])  # 10 ms pieces for 1 s
    mic, got = paced_mic(stream, pace=0.1)
    time.sleep(1.1)
    mic.stop()
    assert got.frames == 100 * 480
    assert 8 <= len(got.blocks) <= 13  # about one read per pace, not one per piece


@pytest.mark.parametrize("pace", [0.0, 0.005, 0.31, 1.0])
def test_a_pace_that_could_overflow_the_buffer_or_spin_is_refused(pace):
    with pytest.raises(InvalidArgumentError, match="pace"):
        Microphone(pace=pace)
