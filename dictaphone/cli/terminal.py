"""Keys from the controlling terminal, without echo, restored on exit.

Only used when stdin is a terminal *and* this process is in its foreground: reading or
changing a terminal from a background job would stop the process (SIGTTIN/SIGTTOU).
"""

from __future__ import annotations

import os
import sys

STOP, PAUSE, MARK = "stop", "pause", "mark"


class Keys:
    """Non-blocking key reader. ``fileno()`` is for select(); ``read()`` returns actions."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdin
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
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)  # keys arrive one by one, no echo; Ctrl-C still signals
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def fileno(self) -> int:
        return self.fd

    def read(self) -> list[str]:
        """The actions of the keys waiting (call when select says readable)."""
        try:
            data = os.read(self.fd, 64)
        except OSError:
            return []
        return parse_keys(data)


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
