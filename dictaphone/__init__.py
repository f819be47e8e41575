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
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_EXPORTS = {
    "MediaRecorder": "recording.recorder",
    "Microphone": "capture.sources",
    "FileSource": "capture.sources",
    "Source": "capture.sources",
    "Blob": "events",
    "Event": "events",
    "BlobEvent": "events",
    "ErrorEvent": "events",
    "StopEvent": "events",
    "MarkEvent": "events",
    "Marker": "containers.markers",
    "DeviceEvent": "events",
    "is_type_supported": "containers.formats",
    "FORMATS": "containers.formats",
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


# Modules that lived at the top of the package before it was grouped into rooms (issue #21).
# Their old import paths keep working: `import dictaphone.recorder` gives the very module
# object `dictaphone.recording.recorder` (not a copy), so attributes set on one are set on both.
_MOVED = {
    "ring": "capture.ring", "levels": "capture.levels", "sources": "capture.sources",
    "player": "capture.player",
    "formats": "containers.formats", "encoders": "containers.encoders",
    "vorbis": "containers.vorbis", "recover": "containers.recover",
    "sfmessages": "containers.sfmessages", "markers": "containers.markers",
    "recorder": "recording.recorder", "vad": "recording.vad",
    "clips": "library.clips", "transcript": "library.transcript", "waveform": "library.waveform",
    "transcribe": "speech.transcribe", "live": "speech.live", "silero": "speech.silero",
    "hooks": "control.hooks",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `dictaphone.<old name>` and hands back the module where it lives now."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix == __name__ and name in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{_MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module):
        pass  # already executed under its new name


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())  # before path finders: no stale file can shadow it
