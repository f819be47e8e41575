"""Voice activity: start on speech, stop after silence, leave long silences out.

Two parts, so a better detector can replace the level-based one:

- a *detector* is any callable that takes one analysis window of frames (a numpy array,
  frames × channels, any dtype) and returns True for speech. ``LevelDetector`` is the
  built-in one.
- ``VoiceGate`` sits between the ring and the encoder in the recorder's writer thread:
  it cuts the frames into windows, asks the detector, and decides what is written.

LevelDetector: a window is speech when its RMS level is above both an absolute
threshold (``threshold_dbfs``, default -40 dBFS) and the noise floor plus a margin (10
dB). The noise floor is the 10th percentile of the window levels over the last 3
seconds: a steady hum sits at its own floor and never counts, while speech always has
dips between syllables that keep the floor low. The defaults come from measurements
(docs/VAD.md): espeak-ng speech at a normal level has window levels with a median of
about -26 dBFS and a 25th percentile of about -36 dBFS; room noise on laptop
microphones sits around -60 to -50 dBFS.
"""

from __future__ import annotations

import collections
import math
from typing import Callable

import numpy as np

from ..errors import InvalidArgumentError
from ..capture.levels import full_scale, sum_of_squares, to_dbfs

WINDOW_SECONDS = 0.03
DEFAULT_THRESHOLD_DBFS = -40.0
DEFAULT_MARGIN_DB = 10.0
DEFAULT_PREROLL = 0.3  #: seconds kept before the first speech (and before speech after a skip)
DEFAULT_TAIL = 0.3  #: seconds of silence kept after speech (before a stop or a skip)
HANGOVER = 0.15  #: seconds a short dip inside speech still counts as speech

Detector = Callable[[np.ndarray], bool]


class LevelDetector:
    """Speech = RMS above ``threshold_dbfs`` and above the adaptive noise floor + margin."""

    def __init__(self, threshold_dbfs: float = DEFAULT_THRESHOLD_DBFS,
                 margin_db: float = DEFAULT_MARGIN_DB, history_seconds: float = 3.0,
                 window_seconds: float = WINDOW_SECONDS):
        for name, value in (("threshold_dbfs", threshold_dbfs), ("margin_db", margin_db)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidArgumentError(f"{name} must be a finite number of dB, not {value!r}")
        self.threshold_dbfs = threshold_dbfs
        self.margin_db = margin_db
        self._levels: collections.deque = collections.deque(
            maxlen=max(2, int(round(history_seconds / window_seconds))))
        self.level_dbfs = -120.0
        self.floor_dbfs = -120.0

    def __call__(self, window: np.ndarray) -> bool:
        x = window.astype(np.float64, copy=False).ravel() / full_scale(window.dtype)
        level = to_dbfs(math.sqrt(sum_of_squares(x) / max(1, x.size)))
        self._levels.append(level)
        self.level_dbfs = level
        self.floor_dbfs = float(np.percentile(self._levels, 10))
        return level > self.threshold_dbfs and level > self.floor_dbfs + self.margin_db


WAITING, SPEECH, SILENCE, SKIPPING = "waiting", "speech", "silence", "skipping"


class VoiceGate:
    """Decides which captured frames are written, from a detector's verdicts.

    ``process(frames)`` returns a list of actions in order: ``("write", frames)``,
    ``("pause", None)`` / ``("resume", None)`` around a left-out silence,
    ``("cut", None)`` to end the current file there (split on silence), and
    ``("stop", None)`` after ``stop_on_silence`` seconds of silence. Silence is held back
    (at most the longest of the silence limits, so memory stays bounded) until it is
    known whether it is kept.
    """

    def __init__(self, samplerate: int, detector: Detector | None = None, *,
                 wait_for_sound: bool = False, stop_on_silence: float | None = None,
                 skip_silence: float | None = None, split_on_silence: bool = False,
                 preroll: float = DEFAULT_PREROLL, tail: float = DEFAULT_TAIL):
        self.rate = samplerate
        self.detector = detector or LevelDetector()
        self.window = max(1, int(round(samplerate * WINDOW_SECONDS)))
        self.wait_for_sound = wait_for_sound
        self.stop_after = _frames(stop_on_silence, samplerate)
        self.skip_after = _frames(skip_silence, samplerate)
        if split_on_silence and self.skip_after is None:
            raise InvalidArgumentError("split_on_silence needs skip_silence (the silence that separates utterances)")
        self.split_on_silence = split_on_silence
        self.preroll = _frames(preroll, samplerate) or 0
        self.tail = _frames(tail, samplerate) or 0
        self.hangover = _frames(HANGOVER, samplerate) or 0
        # one file per utterance: a file never starts with silence
        self.wait_for_sound = wait_for_sound = wait_for_sound or split_on_silence
        self.state = WAITING if wait_for_sound else SPEECH
        self.silent_frames = 0  #: frames of continuous silence so far
        self.heard = False  #: speech was detected at least once
        self._partial: np.ndarray | None = None
        self._held: list[np.ndarray] = []  # silence not yet known to be kept
        self._held_frames = 0
        self._roll: collections.deque = collections.deque()  # pre-roll while waiting/skipping
        self._roll_frames = 0
        self.stopped = False

    @property
    def pending_frames(self) -> int:
        """Frames taken in and not yet decided on, that will be written unless a silence
        they are part of turns out to be left out (a marker's place counts them)."""
        if self.state not in (SPEECH, SILENCE):
            return 0
        partial = len(self._partial) if self._partial is not None else 0
        return self._held_frames + partial

    @property
    def silent_seconds(self) -> float:
        return self.silent_frames / self.rate

    @property
    def stop_in(self) -> float | None:
        """Seconds of silence left before a stop_on_silence stop (None: no such stop)."""
        if self.stop_after is None:
            return None
        return max(0.0, (self.stop_after - self.silent_frames) / self.rate)

    def process(self, frames: np.ndarray) -> list:
        actions: list = []
        if self.stopped or len(frames) == 0:
            return actions
        if self._partial is not None and len(self._partial):
            frames = np.concatenate([self._partial, frames])
        else:
            frames = frames.copy()  # windows are held back; the caller reuses its buffer
        whole = len(frames) // self.window * self.window
        self._partial = frames[whole:].copy()
        for i in range(0, whole, self.window):
            self._window(frames[i:i + self.window], actions)
            if self.stopped:
                break
        return _merge(actions)

    def flush(self) -> list:
        """At the end of the recording: what is held back and kept."""
        actions: list = []
        if self.stopped:
            return actions
        rest = self._partial if self._partial is not None else np.zeros((0,))
        if self.state in (SPEECH, SILENCE):
            if self._held_frames:
                tail = max(0, self.tail - self.hangover)
                self._release_held(actions, limit=tail if self._limits() else None)
            if len(rest) and (self.state == SPEECH or not self._limits()):
                actions.append(("write", rest))
        self._partial = None
        return _merge(actions)

    # ------------------------------------------------------------------ internals

    def _limits(self) -> bool:
        return self.stop_after is not None or self.skip_after is not None

    def _window(self, w: np.ndarray, actions: list) -> None:
        speech = bool(self.detector(w))
        if self.state in (WAITING, SKIPPING):
            self._roll.append(w)
            self._roll_frames += len(w)
            while self._roll_frames - len(self._roll[0]) >= max(self.preroll, len(w)):
                self._roll_frames -= len(self._roll.popleft())
            if speech:
                if self.state == SKIPPING:
                    actions.append(("resume", None))
                actions.append(("write", np.concatenate(list(self._roll))))
                self._roll.clear()
                self._roll_frames = 0
                self.state = SPEECH
                self.heard = True
                self.silent_frames = 0
            return
        # SPEECH or SILENCE
        if speech:
            self.heard = True
            if self._held_frames:
                self._release_held(actions)
            actions.append(("write", w))
            self.state = SPEECH
            self.silent_frames = 0
            return
        self.silent_frames += len(w)
        if self.silent_frames <= self.hangover or not self._limits():
            if self._held_frames:
                self._release_held(actions)
            actions.append(("write", w))  # a short dip inside speech: keep it as it comes
            if self.silent_frames > self.hangover:
                self.state = SILENCE
            return
        self.state = SILENCE
        self._held.append(w)
        self._held_frames += len(w)
        # the first `hangover` frames of this silence were written already
        tail = max(0, self.tail - self.hangover)
        if self.stop_after is not None and self.silent_frames >= self.stop_after:
            self._release_held(actions, limit=tail)
            actions.append(("stop", None))
            self.stopped = True
        elif self.skip_after is not None and self.silent_frames >= self.skip_after:
            # keep the tail after the speech; the rest of the held silence is dropped,
            # except its end, which becomes the pre-roll of the next speech
            held = np.concatenate(self._held)
            self._held, self._held_frames = [], 0
            actions.append(("write", held[:tail]))
            if self.split_on_silence:
                actions.append(("cut", None))
            actions.append(("pause", None))
            self.state = SKIPPING
            rest = held[tail:]
            keep = rest[-self.preroll:] if self.preroll else rest[:0]
            self._roll = collections.deque([keep]) if len(keep) else collections.deque()
            self._roll_frames = len(keep)
        elif self.stop_after is None and self.skip_after is None:
            self._release_held(actions)

    def _release_held(self, actions: list, limit: int | None = None) -> None:
        if not self._held_frames:
            return
        held = np.concatenate(self._held)
        self._held, self._held_frames = [], 0
        actions.append(("write", held if limit is None else held[:limit]))


def _frames(seconds: float | None, rate: int) -> int | None:
    import numbers

    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) \
            or not 0 <= seconds < float("inf"):
        raise InvalidArgumentError(f"a duration must be zero or more seconds, not {seconds!r}")
    return int(round(seconds * rate))


def _merge(actions: list) -> list:
    """Join consecutive writes into one array."""
    out: list = []
    for kind, data in actions:
        if kind == "write":
            if data is None or len(data) == 0:
                continue
            if out and out[-1][0] == "write":
                out[-1] = ("write", np.concatenate([out[-1][1], data]))
                continue
        out.append((kind, data))
    return out
