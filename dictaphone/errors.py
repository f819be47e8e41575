"""The exception tree of dictaphone.

Every error the library raises on purpose is a :class:`DictaphoneError`. The names of
the MediaRecorder ones follow the DOM exceptions the browser throws. The command line
turns these into one line on stderr and an exit code (see ``cli.py``); the library
itself never prints.
"""

from __future__ import annotations


class DictaphoneError(Exception):
    """Base class of every error dictaphone raises on purpose."""

    #: True when the cause is what the caller asked for (an argument, a path, a format),
    #: false when something failed while running (a device, a disk). The CLI maps this to
    #: exit status 2 or 1.
    usage = False


class InvalidStateError(DictaphoneError):
    """The call is not allowed in the recorder's current state (e.g. stop() while inactive)."""


class NotSupportedError(DictaphoneError):
    """A MIME type, format, rate or channel count that cannot be recorded."""

    usage = True


class InvalidArgumentError(DictaphoneError, ValueError):
    """An argument that is out of range or malformed."""

    usage = True


class DeviceNotFoundError(DictaphoneError):
    """No audio device matches the one asked for, or several do."""

    usage = True


class DeviceError(DictaphoneError):
    """An audio device failed to open, or failed while recording."""


class DeviceLostError(DeviceError):
    """The input device went away while recording (unplugged, its audio server stopped or
    froze). ``device`` names it and ``reason`` says what happened, in words."""

    def __init__(self, device: str, reason: str):
        super().__init__(f"{device}: {reason}")
        self.device = device
        self.reason = reason


class PortAudioMissingError(DeviceError):
    """The PortAudio library is not installed."""


class SourceError(DictaphoneError):
    """An input file is missing, unreadable or not audio."""

    usage = True


class OutputError(DictaphoneError):
    """The output cannot be created (exists, missing directory, not writable)."""

    usage = True


class WriteError(DictaphoneError):
    """Writing the recording failed while recording (disk full, I/O error, closed pipe)."""


class BrokenPipeOutputError(WriteError):
    """The reader of the output stream went away."""
