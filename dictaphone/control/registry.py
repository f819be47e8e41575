"""The registry of running recordings, and how other processes control them.

A running ``dictaphone record`` registers itself in a private directory
(``$XDG_RUNTIME_DIR/dictaphone``, else ``<tmp>/dictaphone-<uid>``, mode 0700, owned by
the user) as two files: ``<id>.json`` (pid, path, start time) and ``<id>.sock``, a Unix
socket that answers one JSON request per connection:

    {"command": "stop" | "pause" | "resume" | "status"}  ->  {"ok": true, ...}
    {"command": "mark", "label": str | null}  ->  {"ok": true, "marker": {...}, ...}

Only the same user can reach it: the directory is 0700 and the server also checks the
peer's uid (SO_PEERCRED) where the platform provides it. Entries whose process is gone
(a recorder killed with SIGKILL) are found stale and removed by whoever looks.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import tempfile
import threading
import time
from typing import Callable

from .. import jsontext
from ..errors import DictaphoneError, InvalidArgumentError, InvalidStateError

COMMANDS = ("stop", "pause", "resume", "status", "mark")
REQUEST_LIMIT = 4096  # bytes; a request is one small JSON object


class ControlError(DictaphoneError):
    """A running recording could not be reached or refused the request."""


def registry_dir(create: bool = True) -> str:
    """The per-user registry directory, created 0700 and checked to be ours."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    uid = os.getuid()
    if runtime and os.path.isdir(runtime):
        path = os.path.join(runtime, "dictaphone")
    else:
        path = os.path.join(tempfile.gettempdir(), f"dictaphone-{uid}")
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise ControlError(f"cannot create {path}: {e.strerror}") from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    # In a shared temp dir someone else could have made the directory first: refuse it.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or stat.S_IMODE(st.st_mode) & 0o077:
        raise ControlError(f"{path} is not a private directory of this user; remove it")
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Entry:
    """A registered recording, as read from its JSON file."""

    def __init__(self, id: str, info: dict, directory: str):
        self.id = id
        self.info = info
        self.pid = int(info.get("pid", -1))
        self.path = info.get("path")
        self.socket_path = os.path.join(directory, f"{id}.sock")
        self.json_path = os.path.join(directory, f"{id}.json")

    def request(self, command: str, timeout: float = 30.0, **params) -> dict:
        """Send a command (with ``params``, e.g. a marker's label); return the reply
        (ControlError when unreachable)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(self.socket_path)
            s.sendall(json.dumps(dict(params, command=command)).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            raise ControlError(f"recording {self.id} (pid {self.pid}) did not answer") from None
        except OSError as e:
            raise ControlError(f"cannot reach recording {self.id} (pid {self.pid}): {e.strerror or e}") from None
        finally:
            s.close()
        try:
            reply = jsontext.loads(data)
        except ValueError:
            raise ControlError(f"recording {self.id} gave no answer (it may have just ended)") from None
        if not isinstance(reply, dict):
            raise ControlError(f"recording {self.id} gave an answer that is not a reply (is it a dictaphone?)")
        if not reply.get("ok"):
            error = reply.get("error", "refused")
            if reply.get("kind") == "InvalidStateError":
                raise InvalidStateError(error)
            if reply.get("kind") == "InvalidArgumentError":
                raise InvalidArgumentError(error)
            raise ControlError(error)
        return reply

    def remove(self) -> None:
        for p in (self.socket_path, self.json_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def running(cleanup: bool = True) -> list[Entry]:
    """The live recordings of this user, oldest first; stale entries are removed."""
    directory = registry_dir(create=False)
    if not os.path.isdir(directory):
        return []
    registry_dir(create=False)  # ownership check
    entries = []
    for name in os.listdir(directory):
        if not name.endswith(".json"):
            continue
        id = name[:-5]
        try:
            info = jsontext.load_file(os.path.join(directory, name))
        except (OSError, ValueError):
            continue  # being written or removed right now
        if not well_formed(info):
            continue  # not an entry a recorder wrote: never let it stop status or stop
        entry = Entry(id, info, directory)
        if not _pid_alive(entry.pid) or not os.path.exists(entry.socket_path):
            if cleanup and not _pid_alive(entry.pid):
                entry.remove()
            continue
        entries.append(entry)
    entries.sort(key=lambda e: (e.info.get("started", 0), _id_key(e.id)))
    return entries


def well_formed(info) -> bool:
    """Whether a registry file holds what a recorder writes: an object with a positive
    integer pid, and (if present) a numeric start time and a string or null path."""
    if not isinstance(info, dict):
        return False
    pid = info.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    started = info.get("started", 0)
    if isinstance(started, bool) or not isinstance(started, (int, float)) or started != started:
        return False
    return info.get("path") is None or isinstance(info.get("path"), str)


def _id_key(id: str):
    return (0, int(id)) if id.isascii() and id.isdigit() else (1, id)


def select(id: str | None, all_: bool = False) -> list[Entry]:
    """The recordings a control command acts on: one by ID, all, or the only one."""
    if id is not None and all_:
        # (it acted on the ID alone: `stop 2 --all` left the others running)
        raise InvalidArgumentError("give either an ID or --all, not both")
    entries = running()
    if id is not None:
        for e in entries:
            if e.id == id or str(e.pid) == id:
                return [e]
        raise InvalidArgumentError(f"no recording with id {id} ('dictaphone status' lists them)")
    if not entries:
        raise InvalidStateError("nothing is recording")
    if all_ or len(entries) == 1:
        return entries
    listing = "; ".join(f"{e.id}: pid {e.pid}, {e.path}" for e in entries)
    raise AmbiguousError(f"{len(entries)} recordings are running ({listing}); give an ID or --all")


def statuses(timeout: float = 5.0) -> list[dict]:
    """The ``status`` reply of every running recording (those that end while being asked
    are left out), oldest first."""
    replies = []
    for entry in running():
        try:
            replies.append(entry.request("status", timeout=timeout))
        except DictaphoneError:
            continue  # it ended while we asked
    return replies


class AmbiguousError(InvalidArgumentError):
    """Several recordings run and the command did not say which."""


class ControlServer:
    """Registers a recording and answers requests on its socket, from a daemon thread.

    ``handler(command, params) -> dict`` runs on the server's thread (``params``: the
    request's other fields); it may block (a stop waits until the file is finalized
    before answering).
    """

    def __init__(self, info: dict, handler: Callable[[str, dict], dict]):
        self.handler = handler
        self.directory = registry_dir(create=True)
        running()  # clean stale entries first, so their ids can be reused
        self.info = dict(info, pid=os.getpid(), started=time.time())
        self.id = self._claim_id()
        self.socket_path = os.path.join(self.directory, f"{self.id}.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
            self._sock.bind(self.socket_path)
            os.chmod(self.socket_path, 0o600)
            self._sock.listen(8)
        except OSError as e:
            self.close()
            raise ControlError(f"cannot create the control socket {self.socket_path}: {e.strerror}") from None
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, name="dictaphone-control", daemon=True)
        self._thread.start()

    def _claim_id(self) -> str:
        n = 1
        while True:
            path = os.path.join(self.directory, f"{n}.json")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                n += 1
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(dict(self.info, id=str(n)), f)
            self.json_path = path
            return str(n)

    def _serve(self) -> None:
        while not self._closing:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                if not _same_user(conn):
                    conn.sendall(b'{"ok": false, "error": "permission denied"}\n')
                    return
                data = b""
                while not data.endswith(b"\n") and len(data) < REQUEST_LIMIT:
                    chunk = conn.recv(REQUEST_LIMIT)
                    if not chunk:
                        break
                    data += chunk
                try:
                    params = dict(jsontext.loads(data, jsontext.MAX_DEPTH))
                    command = params.pop("command", None)
                except (ValueError, AttributeError, TypeError):
                    command, params = None, {}
                if command not in COMMANDS:
                    reply = {"ok": False, "error": f"unknown command {command!r}"}
                else:
                    try:
                        reply = dict(self.handler(command, params), ok=True, id=self.id)
                    except DictaphoneError as e:
                        reply = {"ok": False, "error": str(e), "kind": type(e).__name__}
                conn.settimeout(None)
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass  # the client went away; nothing to tell it

    def close(self, wait: float = 10.0) -> None:
        """Unregister; let answers in progress (a stop waiting for the file) finish."""
        self._closing = True
        for p in (getattr(self, "socket_path", None), getattr(self, "json_path", None)):
            if p:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
        try:
            self._sock.close()
        except OSError:
            pass
        deadline = time.monotonic() + wait
        for t in getattr(self, "_threads", []):
            t.join(max(0.0, deadline - time.monotonic()))


def _same_user(conn: socket.socket) -> bool:
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return True  # the 0700 directory is the guard on platforms without SO_PEERCRED
    try:
        creds = conn.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError:
        return False
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()
