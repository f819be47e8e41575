"""Where recordings go when no output is named: the clip directory.

``DICTAPHONE_HOME`` overrides the platform's user data directory
(``$XDG_DATA_HOME/dictaphone`` or ``~/.local/share/dictaphone`` on Linux,
``~/Library/Application Support/dictaphone`` on macOS, ``%LOCALAPPDATA%\\dictaphone`` on
Windows).
"""

from __future__ import annotations

import datetime
import os
import sys

from .errors import OutputError


def clip_dir(create: bool = False) -> str:
    home = os.environ.get("DICTAPHONE_HOME")
    if home:
        path = os.path.expanduser(home)
    elif sys.platform == "darwin":
        path = os.path.expanduser("~/Library/Application Support/dictaphone")
    elif os.name == "nt":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~\\AppData\\Local")
        path = os.path.join(base, "dictaphone")
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        path = os.path.join(base, "dictaphone")
    if create:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create the clip directory {path}: {e.strerror}") from None
    return path


def new_clip_path(extension: str, now: datetime.datetime | None = None) -> str:
    """A fresh timestamped file name in the clip directory (created if missing)."""
    directory = clip_dir(create=True)
    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(directory, stamp + extension)
    n = 2
    while os.path.exists(path):
        path = os.path.join(directory, f"{stamp}-{n}{extension}")
        n += 1
    return path
