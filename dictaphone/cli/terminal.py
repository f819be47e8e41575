"""Keys from the controlling terminal, without echo, restored on exit.

Only used when stdin is a terminal *and* this process is in its foreground: reading or
changing a terminal from a background job would stop the process (SIGTTIN/SIGTTOU).
"""

from __future__ import annotations

import os
import sys

STOP, PAUSE, MARK = "stop", "pause", "mark"
#: the terminal is gone (EOF or EIO on it: a closed window, a dropped ssh connection)
HANGUP = "hangup"


class Keys:
    """Non-blocking key reader. ``fileno()`` is for select(); ``read()`` returns actions."""

    def __init__(self, stream=None, parser=None):
        self.stream = stream or sys.stdin
        self.parser = parser or parse_keys
        self.fd = -1
        self._saved = None

    @staticmethod
    def available(stream=None) -> bool:
        stream = stream or sys.stdin
        try:
            fd = stream.fileno()
            return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
        except (OSError, ValueError, AttributeError):
            return False

    def __enter__(self):
        import termios
        import tty

        self.fd = self.stream.fileno()
        try:
            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)  # keys arrive one by one, no echo; Ctrl-C still signals
        except termios.error as e:  # it hung up since available() said yes
            self._saved = None
            raise OSError(*e.args) from None
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._saved is not None:
            self._restore()
            self._saved = None

    def _restore(self) -> None:
        import termios

        try:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
        except (termios.error, OSError):
            pass  # the terminal hung up: there is nothing left to restore

    def suspend(self) -> None:
        """Before a stop (Ctrl-Z): the terminal as it was, for the shell."""
        if self._saved is not None:
            self._restore()

    def resume(self) -> bool:
        """After SIGCONT: key mode again if this process is in the foreground. Returns
        whether keys can be read (False in the background, or when the terminal is gone)."""
        if self._saved is None or not self.available(self.stream):
            return False
        import termios
        import tty

        try:
            tty.setcbreak(self.fd)
        except (termios.error, OSError):
            return False
        return True

    def fileno(self) -> int:
        return self.fd

    def read(self) -> list[str]:
        """The actions of the keys waiting (call when select says readable). End of
        file or an I/O error on the terminal is HANGUP: it will never give a key again."""
        import errno

        try:
            data = os.read(self.fd, 64)
        except BlockingIOError:
            return []
        except OSError as e:
            if e.errno in (errno.EINTR, errno.EAGAIN):
                return []
            return [HANGUP]
        if not data:
            return [HANGUP]
        return self.parser(data)


def terminal_gone(stream=None) -> bool:
    """Whether ``stream`` (stdin) is a terminal that hung up (a closed window, a dropped
    ssh connection). A hung-up terminal answers every ioctl with EIO, for good; a file, a
    pipe or /dev/null answer ENOTTY, a live terminal answers (also to a background job:
    reading its settings does not stop it). So it sees the hang-up also when no key is
    being read: before the device opens, in the background, or after a SIGCONT found the
    terminal gone."""
    import errno

    try:
        import termios
    except ImportError:  # not a POSIX system: no hang-up to see
        return False
    stream = stream or sys.stdin
    try:
        termios.tcgetattr(stream.fileno())
    except termios.error as e:
        return bool(e.args) and e.args[0] == errno.EIO
    except (OSError, ValueError, AttributeError):
        return False  # closed, or no descriptor at all (an in-process caller's stdin)
    return False


def parse_keys(data: bytes) -> list[str]:
    """q, Enter or a lone Esc stop; Space or p pause/resume; m adds a marker. Escape
    sequences (arrows, function keys) are not a lone Esc and are ignored."""
    actions = []
    i = 0
    while i < len(data):
        c = data[i:i + 1]
        if c == b"\x1b":
            if i + 1 < len(data) and data[i + 1:i + 2] in (b"[", b"O"):
                i += 2  # skip a CSI/SS3 sequence up to its final byte
                while i < len(data) and not 0x40 <= data[i] <= 0x7E:
                    i += 1
            else:
                actions.append(STOP)
        elif c in (b"q", b"Q", b"\r", b"\n"):
            actions.append(STOP)
        elif c in (b" ", b"p", b"P"):
            actions.append(PAUSE)
        elif c in (b"m", b"M"):
            actions.append(MARK)
        i += 1
    return actions


BACK, FORWARD, SLOWER, FASTER, SKIP_SILENCE, NEXT_MARK = (
    "back", "forward", "slower", "faster", "skip-silence", "next-mark")


def parse_play_keys(data: bytes) -> list[str]:
    """`play`'s keys: q, Enter or a lone Esc stop; Space (or p) pauses and resumes; ← and →
    go 5 s back and forward; [ and ] play slower and faster; s skips silences (on/off);
    m jumps to the next marker. Other escape sequences are ignored."""
    actions = []
    i = 0
    while i < len(data):
        c = data[i:i + 1]
        if c == b"\x1b":
            if i + 1 < len(data) and data[i + 1:i + 2] in (b"[", b"O"):
                j = i + 2
                while j < len(data) and not 0x40 <= data[j] <= 0x7E:
                    j += 1
                final = data[j:j + 1]
                if final == b"D":
                    actions.append(BACK)
                elif final == b"C":
                    actions.append(FORWARD)
                i = j
            else:
                actions.append(STOP)
        elif c in (b"q", b"Q", b"\r", b"\n"):
            actions.append(STOP)
        elif c in (b" ", b"p", b"P"):
            actions.append(PAUSE)
        elif c == b"[":
            actions.append(SLOWER)
        elif c == b"]":
            actions.append(FASTER)
        elif c in (b"s", b"S"):
            actions.append(SKIP_SILENCE)
        elif c in (b"m", b"M"):
            actions.append(NEXT_MARK)
        i += 1
    return actions
