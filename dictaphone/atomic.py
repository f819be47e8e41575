"""Files written whole or not at all: the text goes to a temporary file in the target's
directory, which is then renamed over the target (or linked to it, when an existing file
must not be replaced). Readers see the old file or the new one, never a part; a failure
(a full disk, a killed process) leaves the target as it was. One mechanism for every
sidecar (clip metadata, transcripts, markers), `transcribe -o` and `export`.

Only regular files are replaced. An output that is not one is written *through*, as a
shell's ``>`` would: a FIFO, a character device (``/dev/null``, a terminal), ``/dev/stdout``,
``/dev/fd/N`` and ``/proc/self/fd/N`` (process substitution, ``>(cmd)``). There is nothing
there to protect, and renaming over one would turn the system's ``/dev/stdout`` or a
reader's FIFO into a regular file. A descriptor alias (``/dev/fd/1``) is written to the
descriptor itself, so ``>> log`` still appends. A symlink to a regular file keeps the
link: its target is replaced. Refused (:class:`NotRegularError`): a directory, a block
device (a disk), a socket, a symlink to nothing (in a shared directory, following it is
how a file gets planted elsewhere).

See :func:`output_kind`; the recorder's file sink follows the same rule.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile


class NotRegularError(OSError):
    """An output that is neither a regular file (to replace) nor one to write through."""


#: paths that name one of this process's open descriptors
_FD_ALIAS = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/%d/fd)/(\d+)$" % os.getpid())
_STD_ALIAS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def fd_alias(path: str | os.PathLike) -> int | None:
    """The descriptor ``path`` names (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``)
    when it is open in this process, else None."""
    path = os.fspath(path)
    if isinstance(path, bytes):
        return None
    m = _FD_ALIAS.match(path)
    fd = int(m.group(1)) if m else _STD_ALIAS.get(path)
    if fd is None:
        return None
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd


def output_kind(path: str | os.PathLike) -> str:
    """What writing ``path`` means: "new" (nothing there: a file is created), "file" (a
    regular file, or a symlink to one: replaced), "through" (a FIFO, a character device,
    one of our descriptors: written into as it is). NotRegularError for the rest."""
    path = os.fspath(path)
    if path == "-" or fd_alias(path) is not None:
        return "through"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise NotRegularError(f"{path} is a symlink to nothing ({os.readlink(path)}); "
                                  f"not following it") from None
        return "new"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return "through"
    what = ("a directory" if stat.S_ISDIR(mode) else "a block device (a disk)" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise NotRegularError(f"{path} is {what}; not writing over it")


def open_through(path: str | os.PathLike) -> int:
    """A descriptor to write an output that :func:`output_kind` calls "through": a dup of
    our own descriptor for an alias, else the FIFO or device opened for writing, never
    created or truncated (a FIFO with no reader is waited for until a stop signal:
    stopsignals.StopRequested)."""
    path = os.fspath(path)
    fd = 1 if path == "-" else fd_alias(path)
    if fd is not None:
        return os.dup(fd)
    from .stopsignals import open_for_writing

    return open_for_writing(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (a change,
    even for a moment, would apply to files other threads create meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mkstemp_as_open(directory: str, prefix: str) -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``directory``, but with the mode ``open()`` would give a new
    file (0666 less the umask), not mkstemp's 0600: a transcript is as readable as its
    audio and the clip metadata beside it."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError:
        pass  # a file system without modes: what it gives is all there is
    return fd, tmp


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` atomically. With ``overwrite=False`` an existing file is
    never replaced: FileExistsError, even when it appears while the text is written. An
    output to write through (see the module) is written into, ``overwrite`` or not: there
    is no file there to keep."""
    path = os.fspath(path)
    kind = output_kind(path)
    if kind == "through":
        fd = open_through(path)
        try:
            _write_all(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
        return
    if kind == "file":
        if not overwrite:
            raise FileExistsError(17, "File exists", path)
        path = os.path.realpath(path)  # (a symlink stays; what it points to is replaced)
    fd, tmp = mkstemp_as_open(os.path.dirname(os.path.abspath(path)), ".dictaphone-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _put(tmp, path, overwrite)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _put(tmp: str, path: str, overwrite: bool) -> None:
    """Our finished temporary file ``tmp`` at ``path``: renamed over it, or linked (never
    over an existing file: FileExistsError); ``tmp`` is gone afterwards."""
    if overwrite:
        if os.path.lexists(path) and output_kind(path) != "file":
            raise NotRegularError(f"{path} is no longer a regular file; not replacing it")
        try:
            os.replace(tmp, path)
        except OSError as e:
            import errno

            if e.errno != errno.EXDEV:
                raise
            # (a symlink into another file system: made whole there, then renamed)
            import shutil

            fd, there = mkstemp_as_open(os.path.dirname(path), ".dictaphone-")
            try:
                with os.fdopen(fd, "wb") as out, open(tmp, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                os.replace(there, path)
            except BaseException:
                try:
                    os.unlink(there)
                except OSError:
                    pass
                raise
            os.unlink(tmp)
        return
    try:
        os.link(tmp, path)  # fails if the file appeared meanwhile: never clobber
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: checked, then renamed
        if os.path.lexists(path):
            raise FileExistsError(17, "File exists", path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def is_write_through(path: str | os.PathLike) -> bool:
    """True for an output that is written into, not replaced: ``-`` (stdout), a FIFO, a
    character device, ``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N`` (see
    :func:`output_kind`; what it refuses is not "through" either)."""
    try:
        return output_kind(path) == "through"
    except NotRegularError:
        return False


def publish(finished: str, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Put the finished file ``finished`` (a temporary file of ours) at ``path``: renamed
    over it (``overwrite``) or linked to it (never replacing an existing file:
    FileExistsError). An output that :func:`is_write_through` is written into as it is
    (copied), and ``finished`` is left for the caller to remove. NotRegularError for an
    output that is neither."""
    import shutil
    import sys

    path = os.fspath(path)
    kind = output_kind(path)
    if kind == "through":
        with open(finished, "rb") as src:
            if path == "-":
                out = sys.stdout.buffer
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
            else:
                with os.fdopen(open_through(path), "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        return
    if kind == "file":
        if not overwrite:
            raise FileExistsError(17, "File exists", path)
        path = os.path.realpath(path)
    _put(finished, path, overwrite)
