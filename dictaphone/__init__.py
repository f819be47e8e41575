"""dictaphone: a real-audio dictaphone for the terminal and for Python scripts.

The Python API behaves like the browser's MediaRecorder::

    from dictaphone import MediaRecorder, Microphone
    rec = MediaRecorder(Microphone(), "audio/ogg; codecs=vorbis", output="memo.ogg")
    rec.onstop = lambda e: print("saved", e.path)
    rec.start()
    ...
    rec.stop()

Names are loaded on first use, so ``import dictaphone`` (and ``dictaphone --help``) does
not pay for numpy, sounddevice and soundfile until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "MediaRecorder": "recorder",
    "Microphone": "sources",
    "FileSource": "sources",
    "Source": "sources",
    "Blob": "events",
    "Event": "events",
    "BlobEvent": "events",
    "ErrorEvent": "events",
    "StopEvent": "events",
    "MarkEvent": "events",
    "Marker": "markers",
    "DeviceEvent": "events",
    "is_type_supported": "formats",
    "FORMATS": "formats",
    "DictaphoneError": "errors",
    "InvalidStateError": "errors",
    "NotSupportedError": "errors",
    "InvalidArgumentError": "errors",
    "DeviceError": "errors",
    "DeviceNotFoundError": "errors",
    "DeviceLostError": "errors",
    "SourceError": "errors",
    "OutputError": "errors",
    "WriteError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dictaphone' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
