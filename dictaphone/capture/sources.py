"""Sources of audio frames: the microphone (sounddevice) and audio files, with the
devices they are found among and PortAudio's failures in words.

This module is their one public address (``from dictaphone.capture.sources import
Microphone``); they live in:

- base.py: :class:`Source`, what every source is, and :class:`Capture`, what it feeds
- devices.py: listing and finding devices
- microphone.py: :class:`Microphone`, and its reconnection
- files.py: :class:`FileSource` (files, pipes, FIFOs)
- portaudio.py: loading PortAudio, and its errors in words
"""

from __future__ import annotations

from .base import Capture, Source
from .devices import (STANDARD_RATES, find_device, find_input_device, is_server_device,
                      list_devices, rates_in_words)
from .files import FileSource
from .microphone import Microphone, check_reconnect
from .portaudio import import_sounddevice, portaudio_words

__all__ = [
    "Capture", "Source", "Microphone", "FileSource", "check_reconnect",
    "list_devices", "find_device", "find_input_device", "is_server_device",
    "rates_in_words", "STANDARD_RATES", "import_sounddevice", "portaudio_words",
]
