"""Who is told when the core changes a clip's files.

The core functions that write or remove a clip's files (``clips.write_metadata``,
``clips.rename``, ``clips.delete``, ``transcript.save``, ``transcript.remove``, and whatever
else creates or changes clips: imports, trims) call :func:`changed` with the clip's audio
path once the files are in place. Listeners (the library's index) bring themselves up to
date from there; a listener that fails never fails the change (it catches up later: the
index also notices changes from the directory itself). Nothing here imports anything.
"""

from __future__ import annotations

_listeners: list = []


def listen(fn) -> None:
    """Call ``fn(path)`` after every change the core makes to the clip at ``path``."""
    if fn not in _listeners:
        _listeners.append(fn)


def changed(path) -> None:
    """The clip whose audio is ``path`` was created, changed or removed."""
    for fn in list(_listeners):
        try:
            fn(path)
        except Exception:  # noqa: BLE001 - see the module's docstring
            pass
