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
    first bytes, or for the reader of a FIFO it writes): there is nothing to finish, only
    to leave. ``signum`` is the signal, or None for a stop that was no signal (``reason``
    then says what it was, e.g. "control")."""

    def __init__(self, signum: int | str):
        reason = signal.Signals(signum).name if isinstance(signum, int) else str(signum)
        super().__init__(reason)
        self.signum = signum if isinstance(signum, int) else None
        self.reason = reason


_original: dict[int, object] = {}  # signum -> disposition before catch_early()
_pending: list[int] = []  # stop signals that arrived while caught early, in order
#: whether stdin was a terminal at catch_early() (None: it was not called)
_stdin_terminal: bool | None = None
#: the first stop a recording's own handlers noted (see note()), after take_over()
_noted: int | str | None = None


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
    global _noted
    first = pending()
    _original.clear()
    _pending.clear()
    _noted = None
    return first


def note(reason: int | str) -> None:
    """A recording's own handler saw a stop (a signal number, or a word such as
    "control"): waits that must end at a stop (open_for_writing) see it in requested()."""
    global _noted
    if _noted is None:
        _noted = reason


def requested() -> int | str | None:
    """The stop that came, held early (pending) or noted by a recording, or None."""
    first = pending()
    return first if first is not None else _noted


#: seconds between two tries to open a FIFO that has no reader yet
FIFO_POLL = 0.05


def open_for_writing(path: str, flags: int, mode: int = 0o666, *, on_wait=None,
                     waited: float = 0.5) -> int:
    """``os.open(path, flags, mode)`` for writing, except that the wait for the reader of
    a FIFO ends at a stop: a blocking open() of a FIFO nobody reads waits in the kernel
    for ever, and Python retries it after every signal (PEP 475), so the program could
    not be stopped. Here the open is non-blocking; while it fails with ENXIO (no reader)
    it is tried again every FIFO_POLL s until a reader comes or requested() says a stop
    came (StopRequested; nothing was created). ``on_wait()`` is called once when the wait
    has lasted ``waited`` s (to say what the program waits for). The descriptor returned
    is blocking, as os.open's would be. OSError as os.open raises it otherwise."""
    import errno
    import time

    begun = time.monotonic()
    told = False
    while True:
        try:
            fd = os.open(path, flags | os.O_NONBLOCK, mode)
        except OSError as e:
            if e.errno != errno.ENXIO or not _is_fifo(path):
                raise  # (ENXIO also means "a device that is not there")
        else:
            if not flags & os.O_NONBLOCK:
                os.set_blocking(fd, True)
            return fd
        stop = requested()
        if stop is not None:
            raise StopRequested(stop)
        if not told and on_wait is not None and time.monotonic() - begun >= waited:
            told = True
            on_wait()
        time.sleep(FIFO_POLL)  # a signal ends the sleep early (its handler runs first)


def _is_fifo(path: str) -> bool:
    import stat

    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


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
