"""Playing faster or slower without changing the pitch: a time-stretch, in blocks.

Two ways, the same interface (``process(frames) -> frames``, ``flush() -> frames``; float32
``(n, channels)``):

- :class:`AtempoStretcher`: FFmpeg's ``atempo`` filter through PyAV (the ``transcribe``
  extra), a WSOLA of FFmpeg's own; used when PyAV is there.
- :class:`WsolaStretcher`: WSOLA (waveform-similarity overlap-add) in numpy: 32 ms Hann
  frames, half overlapping on output; each next frame is taken within ±8 ms of where the
  speed puts it, where it best continues the last one (cross-correlation), so periods line
  up and the pitch stays.

``bench/playback.py`` measures both (CPU per second of audio, the pitch of a tone and the
length after stretching).
"""

from __future__ import annotations

import numpy as np

MIN_SPEED, MAX_SPEED = 0.5, 2.0


def check_speed(speed) -> float:
    from ..errors import InvalidArgumentError

    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidArgumentError(f"the speed is {MIN_SPEED:g} to {MAX_SPEED:g} (times normal), not {speed!r}")
    return float(speed)


class WsolaStretcher:
    name = "wsola"

    def __init__(self, samplerate: int, channels: int, speed: float):
        self.speed = check_speed(speed)
        self.channels = channels
        self.L = max(64, int(0.032 * samplerate) // 2 * 2)  # frame
        self.Hs = self.L // 2  # synthesis hop
        self.delta = max(8, int(0.008 * samplerate))  # search tolerance
        self.window = np.hanning(self.L).astype(np.float32)[:, None]
        self._in = np.zeros((0, channels), np.float32)
        self._in_base = 0  # input frame index of _in[0]
        self._pos = 0.0  # nominal input position of the next frame
        self._prev = None  # input index of the last frame taken
        self._tail = np.zeros((self.Hs, channels), np.float32)  # the overlap still to add
        self._fed = 0  # input frames given
        self._made = 0  # output frames returned

    def _frame_at(self, i: int) -> np.ndarray:
        return self._in[i - self._in_base: i - self._in_base + self.L]

    def process(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, np.float32).reshape(-1, self.channels)
        self._fed += len(frames)
        out = self._run(frames)
        self._made += len(out)
        return out

    def _run(self, frames: np.ndarray) -> np.ndarray:
        self._in = np.concatenate([self._in, frames])
        out = []
        L, Hs, d = self.L, self.Hs, self.delta
        while True:
            nominal = int(self._pos)
            lo = max(0, nominal - d)
            need = lo + 2 * d + L if self._prev is None else max(lo + 2 * d + L, self._prev + Hs + L)
            if need > self._in_base + len(self._in):
                break  # not enough input yet to search around it (and to continue the last)
            if self._prev is None:
                best = nominal
            else:
                natural = self._prev + Hs  # what would continue the last frame
                ref = self._frame_at(natural).mean(axis=1)
                seg = self._in[lo - self._in_base: lo - self._in_base + L + 2 * d].mean(axis=1)
                if len(ref) < L:
                    best = nominal
                else:
                    c = np.correlate(seg, ref, mode="valid")
                    best = lo + int(np.argmax(c))
            frame = self._frame_at(best) * self.window
            out.append(self._tail + frame[:Hs])
            self._tail = frame[Hs:].copy()
            self._prev = best
            self._pos += Hs * self.speed
            # forget input no later frame can need
            keep_from = min(int(self._pos) - d, self._prev + Hs) - 1
            drop = keep_from - self._in_base
            if drop > 0:
                self._in = self._in[drop:]
                self._in_base += drop
        if not out:
            return np.zeros((0, self.channels), np.float32)
        return np.concatenate(out)

    def flush(self) -> np.ndarray:
        """The rest: as much as makes the whole output the input's length / speed."""
        out = self._run(np.zeros((self.L + 2 * self.delta, self.channels), np.float32))
        out = np.concatenate([out, self._tail])
        want = max(0, int(round(self._fed / self.speed)) - self._made)
        return out[:want]


class AtempoStretcher:
    name = "atempo"

    def __init__(self, samplerate: int, channels: int, speed: float):
        import fractions

        import av

        self.speed = check_speed(speed)
        self.av = av
        self.rate, self.channels = samplerate, channels
        self.layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        g = av.filter.Graph()
        src = g.add_abuffer(format="flt", sample_rate=samplerate, layout=self.layout,
                            time_base=fractions.Fraction(1, samplerate))
        tempo = g.add("atempo", f"{self.speed:.6f}")
        sink = g.add("abuffersink")
        src.link_to(tempo)
        tempo.link_to(sink)
        g.configure()
        self.graph = g
        self._pts = 0

    def _pull(self) -> np.ndarray:
        parts = []
        while True:
            try:
                frame = self.graph.pull()
            except (BlockingIOError, self.av.error.EOFError):
                break
            except self.av.error.FFmpegError as e:
                if getattr(e, "errno", None) == 11:  # EAGAIN
                    break
                raise
            parts.append(frame.to_ndarray().reshape(-1, self.channels))
        if not parts:
            return np.zeros((0, self.channels), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def process(self, frames: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(frames, dtype=np.float32).reshape(1, -1)
        if x.size == 0:
            return np.zeros((0, self.channels), np.float32)
        frame = self.av.AudioFrame.from_ndarray(x, format="flt", layout=self.layout)
        frame.sample_rate = self.rate
        frame.pts = self._pts
        self._pts += x.size // self.channels
        self.graph.push(frame)
        return self._pull()

    def flush(self) -> np.ndarray:
        try:
            self.graph.push(None)
        except Exception:
            pass
        return self._pull()


def make_stretcher(samplerate: int, channels: int, speed: float, prefer: str | None = None):
    """atempo when PyAV is there (``prefer="wsola"`` for the numpy one), else WSOLA."""
    if prefer != "wsola":
        try:
            return AtempoStretcher(samplerate, channels, speed)
        except ImportError:
            pass
    return WsolaStretcher(samplerate, channels, speed)
