"""The audio devices: listing them, finding one by index or name, and saying what they take."""

from __future__ import annotations

from ..errors import DeviceError, DeviceNotFoundError
from .portaudio import import_sounddevice, portaudio_words


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
