"""Stop signals caught from the program's first statement, before the heavy imports.

A script that starts ``dictaphone record`` in the background (SIGINT ignored at exec)
and sends SIGINT at once used to lose it: the kernel drops a signal that is ignored, and
the recorder's own handler came only after click, numpy, sounddevice and PortAudio were
loaded (~120 ms). With the normal disposition the same SIGINT printed a KeyboardInterrupt
traceback from the middle of an import. ``catch_early()``, the entry point's first call,
holds any SIGINT, SIGTERM or SIGHUP as *pending* until the recording's session takes
over (``take_over``) or, for any other command, gives the signals back (``release``),
which then acts on a pending one as the original disposition would have.

What remains is the interpreter's own start-up, before any line of dictaphone runs: a
signal ignored at exec and sent then is gone before a program could see it.

Only ``os`` and ``signal`` are imported here; no click, no numpy.
"""

from __future__ import annotations

import os
import signal

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

class StopRequested(Exception):
    """A stop signal came while the program waited before recording (for a stream's
    first bytes, say): there is nothing to finish, only to leave."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_original: dict[int, object] = {}  # signum -> disposition before catch_early()
_pending: list[int] = []  # stop signals that arrived while caught early, in order
#: whether stdin was a terminal at catch_early() (None: it was not called)
_stdin_terminal: bool | None = None


def _held(signum, frame) -> None:
    _pending.append(signum)


def catch_early() -> None:
    """Hold stop signals from now on (idempotent). SIGHUP ignored on purpose (nohup)
    stays ignored. Also notes whether stdin is a terminal now: one that hangs up later
    stops the recording as a SIGHUP would, even an ignored one (see stdin_was_terminal)."""
    global _stdin_terminal
    if _stdin_terminal is None:
        _stdin_terminal = os.isatty(0)
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None or signum in _original:
            continue
        try:
            previous = signal.getsignal(signum)
            if name == "SIGHUP" and previous is signal.SIG_IGN:
                continue
            signal.signal(signum, _held)
        except (ValueError, OSError):  # not the main thread: nothing to hold
            return
        _original[signum] = previous


def stdin_was_terminal() -> bool | None:
    """Whether stdin was a terminal at the program's first line (None: catch_early() was
    not called, as for an in-process caller). A terminal that is dead by the time the
    recording looks at it closed under the program if this is true; if false, the program
    was started on a terminal that was already gone, and no one closed it on the recording."""
    return _stdin_terminal


def original(signum: int):
    """The disposition ``signum`` had before catch_early() (the current one if not held)."""
    if signum in _original:
        return _original[signum]
    return signal.getsignal(signum)


def pending() -> int | None:
    """The first stop signal that arrived while held, or None."""
    return _pending[0] if _pending else None


def take_over() -> int | None:
    """A recording installs its own handlers now: forget the held state; return the
    first signal that arrived early (the recording must stop at once), or None."""
    first = pending()
    _original.clear()
    _pending.clear()
    return first


def release() -> None:
    """Give the signals back for a command that is not a recording: the original
    dispositions return, and a signal that arrived early acts now as it would have
    (SIGINT: KeyboardInterrupt; SIGTERM/SIGHUP: the default, which ends the process)."""
    first = pending()
    held = dict(_original)
    _original.clear()
    _pending.clear()
    for signum, handler in held.items():
        try:
            signal.signal(signum, handler)
        except (ValueError, OSError, TypeError):
            pass
    if first is None or first not in held:
        return
    handler = held[first]
    if handler is signal.SIG_IGN:
        return
    if callable(handler):
        handler(first, None)  # Python's default_int_handler raises KeyboardInterrupt
    else:
        os.kill(os.getpid(), first)
