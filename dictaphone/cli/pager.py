"""Long output on a terminal goes through a pager (as `git log` does): the first screenful
shows at once, the rest is produced as the reader scrolls, and quitting the pager stops
producing it. Not on a terminal (a pipe, a file), lines are written straight through."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys


def _pager_argv() -> list[str] | None:
    command = os.environ.get("DICTAPHONE_PAGER") or os.environ.get("PAGER") or "less"
    if command.strip() in ("", "cat"):
        return None
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    return argv if argv and shutil.which(argv[0]) else None


def show(lines, pager: bool = True) -> None:
    """Write ``lines`` (an iterable of str, without newlines) to stdout, through the pager
    when stdout is a terminal and ``pager``."""
    argv = _pager_argv() if pager and sys.stdout.isatty() else None
    if argv is None:
        out = sys.stdout
        for line in lines:
            out.write(line + "\n")
        out.flush()
        return
    env = dict(os.environ)
    if os.path.basename(argv[0]) == "less" and "LESS" not in env:
        # quit at once when it fits one screen, keep colours, leave the text on the screen
        env["LESS"] = "FRX"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the pager's
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env, text=True, errors="replace")
        try:
            for line in lines:
                proc.stdin.write(line + "\n")
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the reader quit the pager: nothing more to produce
        proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
