"""The microphone: an input device through sounddevice (PortAudio), paced or by callback,
and its reopening when it goes away and comes back.

This is the only module that touches sounddevice input; sounddevice is imported when a
Microphone is made, not when dictaphone is imported.
"""

from __future__ import annotations

import threading
import time

from ..args import seconds
from ..containers.formats import check_rate_and_channels
from ..errors import (DeviceError, DeviceLostError, DeviceNotFoundError, DictaphoneError,
                      InvalidArgumentError, NotSupportedError)
from .base import Capture, Source
from .devices import STANDARD_RATES, find_input_device, is_server_device, rates_in_words
from .portaudio import HOST_ERRNO_WORDS, import_sounddevice, portaudio_words


class Microphone(Source):
    """An input device, like ``getUserMedia({audio: true})``.

    ``device`` is an index, a name or part of one, or None for the default input.
    ``samplerate`` None means the device's default rate.

    ``reconnect`` (seconds, default 30; 0 or None turns it off) is how long a recording
    waits for the device to come back when it goes away (unplugged, its audio server
    restarted or frozen): the recorder keeps the file open and reopens the same device
    (found again by name; the default input if the default was asked for) as soon as it
    is back. Reopening may re-initialise PortAudio (the only way it sees a device list
    that changed), which invalidates any other PortAudio stream of this process.

    ``mode`` is how frames are taken from PortAudio:

    - ``"paced"`` (the default): a stream without a callback and a 0.5 s buffer; a
      thread wakes every ``pace`` seconds (default 0.25; 0.1 suits a live meter) and
      reads what is there. PortAudio's ALSA path then neither spins while it waits for
      the first audio (a callback stream polls one core flat out until then: up to 2 s
      on PulseAudio) nor wakes for every small period; the process wakes a few times a
      second, and each wake-up, not the work done in it, is what costs CPU
      (bench/RESULTS.md, "capture modes").
    - ``"callback"``: a PortAudio callback with ``blocksize`` frames (default 50 ms).

    Either way the audio side only copies frames into the recorder's ring, counts what
    was dropped and updates the level.
    """

    live = True

    #: seconds between two reads in paced mode (default), and the buffer PortAudio keeps
    #: (its ALSA period, what the server sends at once, is a quarter of it: 0.125 s)
    PACE = 0.25
    PACED_LATENCY = 0.5
    #: how often drain() looks for the audio still in flight
    DRAIN_POLL = 0.005
    #: how long a lost device is waited for by default (seconds): a PulseAudio or
    #: PipeWire restart takes one or two, a Bluetooth headset reconnects in a few
    RECONNECT = 30.0
    #: the most one attempt to reopen a lost device is waited for: a frozen server can
    #: make an open wait forever (the attempt is then left behind, not repeated)
    REOPEN_TIMEOUT = 3.0

    def __init__(self, device: int | str | None = None, samplerate: int | None = None,
                 channels: int = 1, *, blocksize: int | None = None,
                 latency: str | float | None = None, mode: str = "paced",
                 pace: float | None = None, reconnect: float | None = RECONNECT):
        if mode not in ("paced", "callback"):
            raise InvalidArgumentError(f"mode must be 'paced' or 'callback', not {mode!r}")
        self.mode = mode
        # above 0.3 s the 0.5 s buffer could overflow while the reader sleeps
        pace = seconds("pace", pace, minimum=0.01, maximum=0.3)
        self.pace = pace if pace is not None else self.PACE
        self.reconnect = check_reconnect(reconnect)
        self._sd = import_sounddevice()
        self._default = device is None  # reopened as "the default input", whichever it is then
        info = find_input_device(device)
        self.device = info["index"]
        self.name = info["name"]
        try:
            self.hostapi = self._sd.query_hostapis(info["hostapi"])["name"]
        except (self._sd.PortAudioError, ValueError, IndexError, KeyError):
            self.hostapi = ""
        self.default_samplerate = int(info["default_samplerate"])
        # None, not any false value, means "the device's rate": 0 is a bad rate, refused.
        rate = int(info["default_samplerate"]) if samplerate is None else samplerate
        check_rate_and_channels(rate, channels)
        self.samplerate = int(rate)
        self.channels = int(channels)
        if self.channels > info["max_input_channels"]:
            raise NotSupportedError(
                f"{self.name} has {info['max_input_channels']} input channels, not {self.channels}"
            )
        # Callback mode: blocks of 50 ms. PortAudio's ALSA path then wakes 20 times a
        # second instead of ~150 with its default block, which cuts the cost of an idle
        # recording several times (bench/RESULTS.md, "capture modes"). Larger blocks cost
        # a little less but hold more audio in flight, which a stop must wait for (see
        # drain()). Paced mode: 0, PortAudio's own period (a quarter of the latency).
        if blocksize is None:
            blocksize = max(1, self.samplerate // 20) if mode == "callback" else 0
        self.blocksize = blocksize
        if latency is None:
            latency = self.PACED_LATENCY if mode == "paced" else "high"
        self.latency = latency
        self._reader: threading.Thread | None = None
        # Held while paced mode's reader runs; released to halt it. A bare lock: its
        # timed acquire is the reader's sleep, and costs less per wake-up than an Event.
        self._halt = threading.Lock()
        self._stream = None
        self._capture: Capture | None = None
        self._lock = threading.Lock()
        self._last_adc: float | None = None
        self._stalled = False
        #: True when PortAudio did not stop in time (a frozen server): the process should
        #: exit without waiting for it (see cli/session.py)
        self.hung = False
        self._init_reconnect_state()
        self.check()

    def _init_reconnect_state(self) -> None:
        self._dtype = "float32"
        self._closed = False
        self._abandoned = None  # a stream given up as hung, closed once PortAudio lets go
        self._stuck: threading.Thread | None = None  # the thread hanging inside PortAudio
        self._attempt: threading.Thread | None = None  # the last reopen attempt

    @property
    def label(self) -> str:
        """The device as messages name it."""
        return f'input device "{self.name}"'

    def check(self, dtype: str = "float32") -> None:
        """Ask PortAudio whether the device takes this rate, channel count and dtype."""
        sd = self._sd
        try:
            sd.check_input_settings(self.device, channels=self.channels, dtype=dtype,
                                    samplerate=self.samplerate)
        except (ValueError, sd.PortAudioError) as e:
            code = e.args[1] if len(e.args) > 1 else None
            if code == -9997 or "sample rate" in str(e).lower():
                rates = self.supported_rates(dtype)
                raise NotSupportedError(
                    f"{self.name} cannot record at {self.samplerate} Hz; it takes "
                    f"{rates_in_words(rates)} (its default: -r {self.default_samplerate})"
                ) from None
            words = portaudio_words(e) if isinstance(e, sd.PortAudioError) else "the settings were refused"
            raise NotSupportedError(
                f"{self.name} cannot record {self.channels} channel(s) at {self.samplerate} Hz: {words}"
            ) from None

    def supported_rates(self, dtype: str = "float32") -> list[int]:
        """The usual rates (STANDARD_RATES) this device takes with these channels."""
        ok = []
        for rate in STANDARD_RATES:
            try:
                self._sd.check_input_settings(self.device, channels=self.channels,
                                              dtype=dtype, samplerate=rate)
                ok.append(rate)
            except (ValueError, self._sd.PortAudioError):
                pass
        return ok

    def _new_stream(self, device: int, dtype: str):
        sd = self._sd
        if self.mode == "paced":
            return sd.InputStream(
                samplerate=self.samplerate, blocksize=self.blocksize, device=device,
                channels=self.channels, dtype=dtype, latency=self.latency)
        return sd.InputStream(
            samplerate=self.samplerate, blocksize=self.blocksize, device=device,
            channels=self.channels, dtype=dtype, latency=self.latency,
            callback=self._callback, finished_callback=self._finished)

    def open(self, capture: Capture, dtype: str) -> None:
        sd = self._sd
        self._capture = capture
        self._dtype = dtype
        self._closed = False
        self._last_adc = None
        self._halt = threading.Lock()
        self._halt.acquire()
        try:
            self._stream = self._new_stream(self.device, dtype)
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(f"cannot open {self.label}: {portaudio_words(e)}") from e

    # Audio thread: copy, count, nothing else. No I/O, no locks, no waiting.
    def _callback(self, indata, frames, t, status) -> None:
        capture = self._capture
        if status.input_overflow:
            capture.overflow(self._lost_frames(t.inputBufferAdcTime, frames))
        self._last_adc = t.inputBufferAdcTime + frames / self.samplerate
        capture.push(indata)

    def _lost_frames(self, adc: float, frames: int) -> int:
        # PortAudio says that input was dropped, not how much. The gap in the ADC clock
        # tells, when the host API provides one; otherwise count one block.
        if self._last_adc and adc > self._last_adc:
            gap = int(round((adc - self._last_adc) * self.samplerate))
            if gap > 0:
                return gap
        return frames

    def _finished(self) -> None:
        # Runs when the stream ends, whether we stopped it or the device went away; the
        # capture tells the two apart (an end after stop() is expected).
        if self._capture is not None:
            self._capture.end(None)

    # Paced mode's reader thread: read what arrived, hand it over, sleep. It never waits
    # inside PortAudio: read() is asked only for frames that are already there.
    def _pace(self) -> None:
        stream, capture, sd = self._stream, self._capture, self._sd
        last = time.monotonic()
        try:
            while True:
                halting = self._halt.acquire(timeout=self.pace)
                self._read_available(stream, capture, last)
                last = time.monotonic()
                if halting:
                    return
        except sd.PortAudioError as e:
            capture.end(self.lost_error(e))

    def lost_error(self, cause: BaseException | None = None,
                   silent_for: float | None = None) -> DeviceLostError:
        """The error of this device going away, in words: a PortAudio error ``cause``, the
        stream ending (neither), or no audio for ``silent_for`` seconds (a frozen server
        or a device that stopped sending)."""
        server = is_server_device(self.name, self.hostapi)
        if silent_for is not None:
            reason = ("the audio server stopped responding" if server
                      else "the device stopped sending audio") + f" (no audio for {silent_for:g} s)"
        elif server:
            reason = "the audio server stopped"
        elif cause is not None and portaudio_words(cause) == HOST_ERRNO_WORDS[19]:
            reason = "the device was unplugged"
        else:
            reason = "the device was unplugged or stopped working"
        return DeviceLostError(self.label, reason)

    def _read_available(self, stream, capture, last: float) -> int:
        """Read and hand over what PortAudio holds (never waits); returns the frames."""
        n = stream.read_available
        if n:
            data, overflowed = stream.read(n)
            if overflowed:  # the buffer filled up: what did not fit is lost
                elapsed = time.monotonic() - last
                capture.overflow(max(1, int(round(elapsed * self.samplerate)) - n))
            capture.push(data, owned=True)
        return n

    def start(self) -> None:
        try:
            self._stream.start()
        except self._sd.PortAudioError as e:
            raise DeviceError(f"cannot start {self.label}: {portaudio_words(e)}") from e
        self._start_reader()

    def _start_reader(self) -> None:
        if self.mode == "paced":
            self._reader = threading.Thread(target=self._pace, name="dictaphone-capture",
                                            daemon=True)
            self._reader.start()

    #: how long stop() waits for PortAudio before it gives the stream up as hung
    STOP_TIMEOUT = 2.0
    #: the most drain() waits for audio in flight (seconds)
    MAX_DRAIN = 0.25

    def drain(self) -> None:
        """Take in the audio captured before this moment that is still on its way: in
        the audio server, which sends it in fragments (a quarter of the buffer: 0.125 s
        in paced mode), and in PortAudio's buffer. Without it the last syllable before a
        stop could be lost.

        Paced mode stops the reader (which reads what PortAudio holds), then looks every
        DRAIN_POLL seconds until the next fragment arrives, which holds the audio up to
        about now, and takes it: on average half a fragment's wait instead of a fixed
        sleep, and nothing said before the stop is cut. Callback mode waits for the
        stream's input latency. Either way at most MAX_DRAIN. The stream's ADC
        timestamps are not usable through ALSA's PulseAudio plugin (they equal the
        callback's time), so the cut cannot be made to the sample: a few ms after the
        stop may be kept."""
        stream = self._stream
        if stream is None or self._stalled or self.hung or not stream.active:
            return
        if self.mode != "paced":
            time.sleep(min(self.MAX_DRAIN, max(0.0, float(stream.latency))))
            return
        with self._lock:
            if not self._halt_reader():
                return
            capture, sd = self._capture, self._sd
            deadline = time.monotonic() + self.MAX_DRAIN
            last = time.monotonic()
            try:
                while time.monotonic() < deadline:
                    time.sleep(self.DRAIN_POLL)
                    if self._read_available(stream, capture, last):
                        # a fragment may reach PortAudio in more than one piece
                        time.sleep(self.DRAIN_POLL)
                        self._read_available(stream, capture, last)
                        return
                    last = time.monotonic()
            except sd.PortAudioError as e:
                capture.end(self.lost_error(e))

    def _halt_reader(self) -> bool:
        """Stop paced mode's reader after one last read; False if it hung (a frozen
        server) and the stream must be given up."""
        reader, self._reader = self._reader, None
        if reader is None:
            return True
        self._halt.release()
        reader.join(self.STOP_TIMEOUT)
        if reader.is_alive():
            self.hung = True
            self._stuck = reader
            return False
        return True

    def stop(self) -> None:
        """Stop the stream. A device whose server froze can make PortAudio's stop wait
        forever (it joins its own audio thread, which waits on the server): the stop runs
        on a helper thread, and after STOP_TIMEOUT the stream is left behind as ``hung``
        so that the recording can still be finalized."""
        with self._lock:
            stream = self._stream
            if stream is None or self.hung or stream.stopped:
                return
            if not self._halt_reader():  # paced: one last read of what arrived
                return
            self._capture = _Detached()  # late callbacks of a hung stream go nowhere
            done = threading.Event()

            def stop():
                try:
                    stream.abort() if self._stalled else stream.stop()
                except self._sd.PortAudioError:
                    pass  # the device is gone already; nothing more will arrive
                done.set()

            stopper = threading.Thread(target=stop, name="dictaphone-stream-stop", daemon=True)
            stopper.start()
            if not done.wait(self.STOP_TIMEOUT):
                self.hung = True
                self._stuck = stopper

    def mark_stalled(self) -> None:
        """The recorder saw no audio for a while: stop() aborts instead of draining."""
        self._stalled = True

    def close(self) -> None:
        with self._lock:
            self._closed = True  # a reopen attempt still under way closes what it opens
            stream, self._stream = self._stream, None
            if stream is not None and self.hung:
                self._abandoned = stream  # closed once PortAudio lets go of it (_settle)
                return
        if stream is not None:
            try:
                stream.close()
            except self._sd.PortAudioError:
                pass

    # ------------------------------------------------------------- a device that comes back

    def lost(self) -> None:
        """The device went away: stop and close its stream (without waiting for audio in
        flight; bounded by STOP_TIMEOUT when the server froze). reopen() may follow."""
        self._stalled = True
        self.stop()
        self.close()

    def reopen(self, capture: Capture) -> bool:
        """One attempt to open the lost device again and start it, delivering to
        ``capture``. True when a stream runs (its first audio may take a moment: up to
        2 s from PulseAudio); False when the device is not back yet, or PortAudio still
        hangs on a frozen server (then nothing is tried until it lets go)."""
        with self._lock:
            if self._stream is not None:
                return True
            if self._attempt is not None and self._attempt.is_alive():
                return False
            if not self._settle():
                return False
            self._closed = False
            done = threading.Event()
            attempt = threading.Thread(target=self._reopen_attempt, args=(capture, done),
                                       name="dictaphone-reopen", daemon=True)
            self._attempt = attempt
            attempt.start()
        done.wait(self.REOPEN_TIMEOUT)
        with self._lock:
            return self._stream is not None

    def _settle(self) -> bool:
        """Whether PortAudio is free to be used again after a stream was given up as
        hung; closes that stream once it is. (Called with the lock held.)"""
        if self._stuck is not None:
            if self._stuck.is_alive():
                return False
            self._stuck = None
        stream, self._abandoned = self._abandoned, None
        if stream is not None:
            try:
                stream.close()
            except self._sd.PortAudioError:
                pass
        self.hung = False
        return True

    def _find_again(self) -> dict:
        """The device as PortAudio lists it now: the default input if the default was
        asked for, else the input with the same name (its index may have changed)."""
        if self._default:
            return find_input_device(None)
        for d in self._sd.query_devices():
            if d["name"] == self.name and d["max_input_channels"] >= self.channels:
                return d
        raise DeviceNotFoundError(f"{self.label} is not there")

    def _reinit_portaudio(self) -> None:
        # PortAudio lists devices once, when it initialises: a device plugged in again, or
        # ALSA's "default" pointing at a server that came back, is seen only after this.
        sd = self._sd
        with _PORTAUDIO_LOCK:
            if sd._initialized:
                sd._terminate()
            sd._initialize()

    def _reopen_attempt(self, capture: Capture, done: threading.Event) -> None:
        sd = self._sd
        failures = (sd.PortAudioError, DictaphoneError, ValueError)
        stream = None
        try:
            try:  # the list as it is first (cheap, and leaves PortAudio alone)
                info = self._find_again()
                stream = self._new_stream(info["index"], self._dtype)
            except failures:
                self._reinit_portaudio()
                info = self._find_again()
                stream = self._new_stream(info["index"], self._dtype)
            # Started before it is published: a stream is never started after close()
            # freed it. Callback mode delivers from the start (into the recorder's
            # capture, which ignores frames once the recording ended).
            self._stalled = False
            self._last_adc = None
            self._capture = capture
            try:
                stream.start()
            except sd.PortAudioError:
                stream.close()
                return
            with self._lock:
                doomed = self._closed  # the recording ended meanwhile
                if not doomed:
                    self._stream, self.device = stream, info["index"]
                    self._halt = threading.Lock()
                    self._halt.acquire()
                    self._start_reader()  # under the lock: a stop() halts it or waits
            if doomed:
                try:
                    stream.abort()
                    stream.close()
                except sd.PortAudioError:
                    pass
        except failures:
            pass  # not back yet: the recorder tries again
        finally:
            done.set()


_PORTAUDIO_LOCK = threading.Lock()


def check_reconnect(seconds) -> float:
    """A reconnect window: seconds >= 0 (0 or None: off)."""
    if seconds is None:
        return 0.0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InvalidArgumentError(f"reconnect must be a number of seconds, not {seconds!r}")
    if not 0 <= seconds < float("inf"):
        raise InvalidArgumentError(f"reconnect must be 0 (off) or a positive number of seconds, not {seconds}")
    return float(seconds)


class _Detached:
    """Where a stopped stream's late callbacks go: nowhere."""

    def push(self, frames) -> None:
        pass

    def overflow(self, frames) -> None:
        pass

    def end(self, error=None) -> None:
        pass
