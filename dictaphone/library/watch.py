"""Changes to the clip directory as they happen: inotify on Linux (through ctypes: no
dependency), else a cheap poll of the index (one ``stat`` of the directory while nothing
changes; see ``Index.sync``).

A :class:`Watcher` runs one thread. Each change it sees (a file created, written and
closed, renamed, removed: by this process, another dictaphone, or by hand) brings the index
up to date for just the clips whose files were named, and then calls ``on_change(changes)``
with what changed (``index.Changes``). Nothing runs while nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import select
import struct
import sys
import threading

from . import index as index_mod

IN_MODIFY = 0x002
IN_ATTRIB = 0x004
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
#: what is watched: entries that come and go, and files finished being written. Not
#: IN_MODIFY: a recording writes its file many times a second, and its card says
#: "being recorded" until the recorder saves its metadata (a rename: seen).
MASK = (IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF)
_EVENT = struct.Struct("iIII")

#: seconds to gather a burst of events into one update (a save is a temp file and a rename)
SETTLE = 0.15
#: seconds between two looks at the index where there is no inotify
POLL = 2.0


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc
    except (OSError, AttributeError):
        return None


class Watcher:
    """Watch ``index``'s directory; call ``on_change(changes)`` after every change."""

    def __init__(self, index, on_change):
        self.index = index
        self.on_change = on_change
        self.how = "starting"  #: "inotify" or "polling", once started
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="dictaphone-library-watch", daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- the thread -----------------------------------------------------------------------

    def _update(self, only=None) -> None:
        try:
            changes = self.index.sync(only=only)
        except Exception:  # noqa: BLE001 - a bad moment (a locked or vanished database):
            return  # the next event or poll tries again
        if changes:
            try:
                self.on_change(changes)
            except Exception:  # noqa: BLE001
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            fd = self._watch()
            if fd is None:
                self.how = "polling"
                self._update()
                self._sleep(POLL)
                continue
            self.how = "inotify"
            try:
                self._update()  # whatever happened before the watch began
                self._follow(fd)
            finally:
                os.close(fd)

    def _sleep(self, seconds: float) -> bool:
        """Wait, or less when closed; True when woken by close()."""
        ready, _, _ = select.select([self._wake_r], [], [], seconds)
        return bool(ready)

    def _watch(self):
        libc = _libc()
        if libc is None or not os.path.isdir(self.index.directory):
            return None
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(self.index.directory), MASK) < 0:
            os.close(fd)
            return None
        return fd

    def _follow(self, fd: int) -> None:
        """Read events until the directory goes away (then watch again) or close()."""
        while not self._stop.is_set():
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            names, rescan, gone = self._drain(fd)
            # A save is a burst (a temp file, a rename, a second sidecar): gather it.
            while not self._stop.is_set():
                ready, _, _ = select.select([fd, self._wake_r], [], [], SETTLE)
                if fd not in ready:
                    break
                more, again, lost = self._drain(fd)
                names |= more
                rescan |= again
                gone |= lost
            if rescan or gone:
                self._update()
            else:
                audio = {a for a in (index_mod._owner(n)[0] for n in names) if a}
                if audio:
                    self._update(only=sorted(audio))
            if gone:
                return  # the directory itself went away or moved: watch it again

    def _drain(self, fd: int):
        names: set[str] = set()
        rescan = gone = False
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                gone = True
                break
            if not data:
                break
            at = 0
            while at + _EVENT.size <= len(data):
                _, mask, _, length = _EVENT.unpack_from(data, at)
                raw = data[at + _EVENT.size:at + _EVENT.size + length].rstrip(b"\0")
                at += _EVENT.size + length
                if mask & IN_Q_OVERFLOW:
                    rescan = True
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                    gone = True
                if raw:
                    name = os.fsdecode(raw)
                    if not name.startswith("."):  # not the index's own files, nor temp files
                        names.add(name)
        return names, rescan, gone
