"""Sources of audio frames: the microphone (sounddevice) and audio files.

A source delivers frames to a *capture* object (the recorder's, see recorder.py) with
three methods: ``push(frames, owned=False)`` from a real-time thread (must not block;
drops and counts what does not fit; ``owned`` says the array is fresh and will not be
reused by the source), ``push_all(frames)`` from a thread that may wait (file sources never
drop), and ``end(error=None)`` when it has no more frames. ``overflow(frames)`` reports
input the audio system dropped before it reached us.

This is the only module that touches sounddevice input. sounddevice and soundfile are
imported when a source is made, not when dictaphone is imported.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import time
from typing import Protocol

import numpy as np

from ..errors import (DeviceError, DeviceLostError, DeviceNotFoundError, DictaphoneError,
                     InvalidArgumentError, NotSupportedError, PortAudioMissingError, SourceError)
from ..containers.formats import MAX_CHANNELS, _is_int, check_rate_and_channels
from ..containers.sfmessages import explain, raw_text
from ..args import seconds


class Capture(Protocol):
    def push(self, frames: np.ndarray, owned: bool = False) -> None: ...
    def push_all(self, frames: np.ndarray) -> bool: ...
    def overflow(self, frames: int) -> None: ...
    def end(self, error: BaseException | None = None) -> None: ...


def import_sounddevice():
    """sounddevice, or PortAudioMissingError with the fix when PortAudio is not installed."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise PortAudioMissingError(
            "the PortAudio library was not found (on Debian/Ubuntu: sudo apt-get install "
            "libportaudio2; run 'dictaphone doctor' for other systems)"
        ) from e
    return sounddevice


# ------------------------------------------------------------------ PortAudio in words
# Every PortAudio failure a user can meet is said here, in words: no message shows
# PortAudio's own text ("Unanticipated host error [PaErrorCode -9999]").

#: PortAudio's error codes (portaudio.h) that can reach a recording or a playback
_PA_WORDS = {
    -10000: "the audio library is not initialised",
    -9999: "the audio system reported a failure",  # paUnanticipatedHostError; see below
    -9998: "it does not take that many channels",
    -9997: "it does not take that sample rate",
    -9996: "the device does not exist (any more)",
    -9994: "it does not take that sample format",
    -9993: "the device cannot be opened (is its audio server running?)",
    -9992: "out of memory",
    -9987: "the audio system did not answer in time",
    -9986: "the audio library failed internally",
    -9985: "the device is busy or unavailable",
    -9983: "the stream was stopped",
    -9981: "input was lost (the buffer overflowed)",
}

#: what an errno from the host API (ALSA, CoreAudio...) means for an input device
_HOST_ERRNO_WORDS = {
    5: "the device or its audio server went away",  # EIO
    19: "the device was unplugged",  # ENODEV
    16: "the device is busy (another program may be using it)",  # EBUSY
    2: "the device does not exist (any more)",  # ENOENT
    32: "the device stopped delivering audio",  # EPIPE
    77: "the device is in a bad state",  # EBADFD
}


def portaudio_words(e: BaseException) -> str:
    """What a PortAudio error (sounddevice.PortAudioError) means, in words."""
    args = getattr(e, "args", ())
    code = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    if code == -9999 and len(args) > 2 and isinstance(args[2], tuple) and len(args[2]) > 1:
        host_errno = args[2][1]
        if isinstance(host_errno, int) and abs(host_errno) in _HOST_ERRNO_WORDS:
            return _HOST_ERRNO_WORDS[abs(host_errno)]
    if code in _PA_WORDS:
        return _PA_WORDS[code]
    text = str(args[0]) if args else ""
    if text.startswith("Error querying device") or "No input device" in text:
        return "the device does not exist (any more)"
    if code is None and isinstance(e, ValueError) and text:
        return text  # sounddevice's own argument checks are in words already
    return "the audio system failed"


#: device names that are a sound server's entry point, not a piece of hardware: when
#: one of them goes away, it is the server that stopped
_SERVER_DEVICE_NAMES = ("default", "sysdefault", "pulse", "pipewire", "jack")


def is_server_device(name: str, hostapi: str = "") -> bool:
    """Whether an input is reached through an audio server (PulseAudio, PipeWire, JACK)
    rather than directly: its loss means the server stopped, not that it was unplugged."""
    low = name.strip().lower()
    return (low in _SERVER_DEVICE_NAMES or low.startswith(("pulse", "pipewire"))
            or "jack" in hostapi.lower())


#: the rates asked of a device to say which ones it takes
STANDARD_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
                  176400, 192000, 352800, 384000, 705600, 768000)


def rates_in_words(rates: list[int]) -> str:
    """[8000, ..., 384000] -> "8000 to 384000 Hz"; a few -> "44100 or 48000 Hz"."""
    if not rates:
        return "none of the usual rates"
    if len(rates) == 1:
        return f"only {rates[0]} Hz"
    if len(rates) <= 4:
        return ", ".join(str(r) for r in rates[:-1]) + f" or {rates[-1]} Hz"
    return f"{rates[0]} to {rates[-1]} Hz"


def list_devices() -> list[dict]:
    """Every device: index, name, host API, channels, default rate, default flags."""
    sd = import_sounddevice()
    hostapis = sd.query_hostapis()
    default_in, default_out = sd.default.device
    return [{
        "index": d["index"], "name": d["name"], "hostapi": hostapis[d["hostapi"]]["name"],
        "inputs": d["max_input_channels"], "outputs": d["max_output_channels"],
        "default_samplerate": d["default_samplerate"],
        "default_input": d["index"] == default_in, "default_output": d["index"] == default_out,
    } for d in sd.query_devices()]


def find_device(device: int | str | None, kind: str = "input") -> dict:
    """Resolve an index, an exact name or a unique part of a name to a device dict.
    ``kind`` is "input" or "output"; None means the default device of that kind."""
    sd = import_sounddevice()
    key = f"max_{kind}_channels"
    if isinstance(device, bool):  # (True is an int, but no device's index)
        raise DeviceNotFoundError(f"a device must be an index or part of a name, not {device!r}")
    try:
        if not any(d[key] > 0 for d in sd.query_devices()):
            # Nothing to choose from (no sound server, no card, a container): not a wrong
            # argument, and 'dictaphone devices' would list nothing; doctor says why.
            raise DeviceError(f"no {kind} devices found; 'dictaphone doctor' tells why")
        if device is None:
            index = sd.default.device[0 if kind == "input" else 1]
            if index is None or index < 0:
                raise DeviceNotFoundError(f"there is no default {kind} device; choose one with -D "
                                          f"('dictaphone devices' lists them)")
            return sd.query_devices(index)
        # (ASCII digits only: str.isdigit() takes "²", which int() refuses with a traceback)
        if isinstance(device, int) or (isinstance(device, str) and device.strip().isascii()
                                       and device.strip().isdigit()):
            index = int(device)
            try:
                info = sd.query_devices(index)
            except (ValueError, sd.PortAudioError):
                raise DeviceNotFoundError(f"there is no audio device {index}") from None
            if info[key] < 1:
                raise DeviceNotFoundError(f"device {index} ({info['name']}) has no {kind}s")
            return info
        devices = [d for d in sd.query_devices() if d[key] > 0]
    except sd.PortAudioError as e:
        raise DeviceError(f"the audio devices cannot be listed: {portaudio_words(e)}") from e
    if not isinstance(device, str) or not device.strip():
        raise DeviceNotFoundError(f"a device must be an index or part of a name, not {device!r} "
                                  f"('dictaphone devices' lists them)")
    wanted = device.strip().lower()
    exact = [d for d in devices if d["name"].lower() == wanted]
    matches = exact or [d for d in devices if wanted in d["name"].lower()]
    if not matches:
        raise DeviceNotFoundError(f"no {kind} device matches {device!r} ('dictaphone devices' lists them)")
    if len(matches) > 1:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
        raise DeviceNotFoundError(f"{device!r} matches several {kind} devices ({names}); give its index")
    return matches[0]


def find_input_device(device: int | str | None) -> dict:
    return find_device(device, "input")


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
        elif cause is not None and portaudio_words(cause) == _HOST_ERRNO_WORDS[19]:
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


class FileSource(Source):
    """An audio file as the microphone, like a stream taken from a media element.

    ``realtime=False`` delivers as fast as the recorder writes (never dropping);
    ``realtime=True`` paces the frames at the file's rate, as a device would.
    ``channels`` None keeps the file's; 1 from several mixes down, N from 1 copies.
    """

    #: blocks read at once: large when as fast as possible (fewer trips through Python,
    #: 1.5 times faster on a 10-minute file), small when paced like a device
    BLOCK_SECONDS = 0.5
    REALTIME_BLOCK_SECONDS = 0.05

    def __init__(self, path: str | os.PathLike, realtime: bool = False,
                 channels: int | None = None):
        import soundfile as sf

        self.path = os.fspath(path)
        self.realtime = realtime
        self.name = "stdin" if self.path == "-" else os.path.basename(self.path)
        self._stopping = threading.Event()
        self._stream: _ForwardStream | None = None
        self._stream_file = None
        if self.path == "-" or _is_fifo(self.path):
            self._open_stream()
            f = self._stream_file
            self.samplerate = int(f.samplerate)
            self.file_channels = int(f.channels)
            self.frames = -1  # unknown until the stream ends
            self.file_format = f.format
            self.file_subtype = f.subtype
        else:
            if not os.path.exists(self.path):
                raise SourceError(f"{self.path}: no such file")
            if os.path.isdir(self.path):
                raise SourceError(f"{self.path}: is a directory")
            mode = os.stat(self.path).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                raise SourceError(f"{self.path}: is a device, not an audio file")
            from ..containers.decode import open_audio

            with open_audio(self.path) as f:  # libsndfile, else PyAV (M4A, WebM, MP4)
                self.samplerate = int(f.samplerate)
                self.file_channels = int(f.channels)
                self.frames = int(f.frames)
                self.file_format = f.format
                self.file_subtype = f.subtype
        if channels is not None and not _is_int(channels):
            raise InvalidArgumentError(f"channel count {channels!r} is not a whole number")
        self.channels = self.file_channels if channels is None else int(channels)
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channel count {self.channels} is out of range (1 to {MAX_CHANNELS})")
        if self.channels != self.file_channels and self.file_channels != 1 and self.channels != 1:
            raise NotSupportedError(
                f"{self.path} has {self.file_channels} channels; it can be recorded as 1 "
                f"or {self.file_channels}, not {self.channels}")
        self._file = None
        self._thread: threading.Thread | None = None

    @property
    def label(self) -> str:
        return "stdin" if self.path == "-" else self.path

    def _open_stream(self) -> None:
        """A pipe or FIFO (or stdin for "-"): read it once, front to back. libsndfile
        wants to seek; a _ForwardStream lets it seek inside the header it has read. WAV
        and FLAC are read that way; formats whose reader must seek to the end first
        (Ogg, MP3) are refused, and said so."""
        import soundfile as sf

        label = self.label
        if self.path == "-":
            if os.isatty(0):
                raise SourceError("--input - reads audio from stdin, which is a terminal; "
                                  "pipe a WAV or FLAC stream into it")
            fd = os.dup(0)
        else:
            # O_NONBLOCK: opening a FIFO that has no writer yet would block, deaf to Ctrl-C;
            # the wait for the writer's first bytes happens in select(), which a stop ends.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            stream = _ForwardStream(fd, self._stopping)
            head = stream.peek(12)
            stream.check_stop()
            kind = _sniff(head)
            if kind not in ("WAV", "FLAC"):
                what = {None: "neither WAV nor FLAC" if head else "empty (the writer sent nothing)",
                        }.get(kind, f"{kind}, which libsndfile can only read from a file it can seek in")
                raise SourceError(f"{label}: a stream is read as WAV or FLAC, and this one is {what}; "
                                  f"save it to a file first (or have the writer send WAV or FLAC)")
            try:
                self._stream_file = sf.SoundFile(stream)
            except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
                stream.check_stop()
                raise SourceError(f"{label}: {explain(e)}") from None
            stream.check_stop()
        except BaseException:
            os.close(fd)
            raise
        self._stream = stream

    def open(self, capture: Capture, dtype: str) -> None:
        import soundfile as sf

        self._capture = capture
        self._dtype = dtype
        self._stopping.clear()
        if self._stream is not None:
            if self._stream_file is None:
                raise SourceError(f"{self.label}: a stream can be recorded only once")
            self._file, self._stream_file = self._stream_file, None
        else:
            from ..containers.decode import open_audio

            self._file = open_audio(self.path)
        # A stream comes in small blocks too: a stop while its writer is silent keeps
        # everything but the last 50 ms block at most.
        live = self.realtime or self._stream is not None
        seconds = self.REALTIME_BLOCK_SECONDS if live else self.BLOCK_SECONDS
        block = max(1, int(self.samplerate * seconds))
        self._buf = np.zeros((block, self.file_channels), dtype=dtype)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dictaphone-file", daemon=True)
        self._thread.start()

    def _convert(self, block: np.ndarray) -> np.ndarray:
        if self.channels == self.file_channels:
            return block
        if self.channels == 1:  # mix down
            mixed = block.mean(axis=1, keepdims=True)
            if block.dtype.kind != "f":
                mixed = np.round(mixed)
            return mixed.astype(block.dtype)
        return np.repeat(block, self.channels, axis=1)

    def _run(self) -> None:
        capture, f = self._capture, self._file
        error = None
        t0 = time.monotonic()
        delivered = 0
        try:
            while not self._stopping.is_set():
                n = f.read(out=self._buf, dtype=self._dtype, always_2d=True).shape[0]
                if n == 0:
                    break
                if self.realtime:
                    delay = t0 + delivered / self.samplerate - time.monotonic()
                    if delay > 0 and self._stopping.wait(delay):
                        break
                if not capture.push_all(self._convert(self._buf[:n])):
                    break
                delivered += n
                if n < len(self._buf):
                    break
        except Exception as e:  # a truncated or corrupt file: report it, keep what we read
            error = SourceError(f"{self.path}: read failed after {delivered} frames: {_sf_reason(e)}")
        capture.end(error)

    def stop(self) -> None:
        self._stopping.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()

    def close(self) -> None:
        self.stop()
        f, self._file = self._file, None
        if f is not None:
            f.close()
        stream = self._stream
        if stream is not None and self._stream_file is None:  # (kept open until recorded)
            stream.close_fd()


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _sniff(head: bytes) -> str | None:
    """The container a stream's first bytes announce."""
    if head[:4] in (b"RIFF", b"RF64", b"RIFX") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[:4] == b"FORM":
        return "AIFF"
    return None


class _ForwardStream(io.RawIOBase):
    """A pipe as libsndfile's virtual file: read front to back, with seeks back into the
    last LOOKBACK bytes (libsndfile re-reads headers) and an unknown length (the end of a
    stream is known only when it comes). Reads wait in select(), so a stop ends a wait
    for a writer that sends nothing."""

    LOOKBACK = 1 << 20
    UNKNOWN_END = 1 << 62
    #: a read this far beyond the data is a look for chunks after the audio (WAV) or a
    #: search for the end: answered with nothing rather than by reading the whole stream
    AHEAD = 1 << 16
    POLL = 0.25

    def __init__(self, fd: int, stopping: threading.Event):
        super().__init__()
        self.fd = fd
        self.stopping = stopping
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.pos = 0
        self.eof = False
        self.stop_signal: int | None = None  # a stop signal ended a wait (main thread)

    def check_stop(self) -> None:
        if self.stop_signal is not None:
            from ..stopsignals import StopRequested

            raise StopRequested(self.stop_signal)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _wait_readable(self) -> bool:
        import select

        from ..stopsignals import pending

        while not self.stopping.is_set():
            if threading.current_thread() is threading.main_thread() and pending() is not None:
                # (no exception here: this runs inside libsndfile's callback; the caller
                # raises StopRequested once libsndfile has returned)
                self.stop_signal = pending()
                return False
            readable, _, _ = select.select([self.fd], [], [], self.POLL)
            if readable:
                return True
        return False

    def _fill(self, upto: int) -> None:
        while self.base + len(self.buf) < upto and not self.eof:
            if not self._wait_readable():
                self.eof = True  # stopped: what came is all there is
                break
            try:
                data = os.read(self.fd, max(65536, min(upto - self.base - len(self.buf), 1 << 20)))
            except BlockingIOError:
                continue
            if not data:
                self.eof = True
                break
            self.buf += data
        drop = self.pos - self.base - self.LOOKBACK
        if drop > 0:  # forget what lies far behind the reader
            del self.buf[:drop]
            self.base += drop

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self.buf[:n])

    def readinto(self, b) -> int:
        n = len(b)
        if self.pos > self.base + len(self.buf) + self.AHEAD:
            return 0
        self._fill(self.pos + n)
        i = self.pos - self.base
        if i < 0:
            raise OSError("a stream cannot go back that far")
        data = self.buf[i:i + n]
        b[:len(data)] = data
        self.pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            self.pos = (self.base + len(self.buf) if self.eof else self.UNKNOWN_END) + offset
        elif whence == io.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close_fd(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


def _sf_reason(e: BaseException) -> str:
    return raw_text(e)
