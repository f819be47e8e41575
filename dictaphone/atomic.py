"""Files written whole or not at all: the text goes to a temporary file in the target's
directory, which is then renamed over the target (or linked to it, when an existing file
must not be replaced). Readers see the old file or the new one, never a part; a failure
(a full disk, a killed process) leaves the target as it was. One mechanism for every
sidecar (clip metadata, transcripts, markers) and for `transcribe -o`.
"""

from __future__ import annotations

import os
import tempfile


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
    never replaced: FileExistsError, even when it appears while the text is written."""
    path = os.fspath(path)
    fd, tmp = mkstemp_as_open(os.path.dirname(os.path.abspath(path)), ".dictaphone-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if overwrite:
            os.replace(tmp, path)
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
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def is_write_through(path: str | os.PathLike) -> bool:
    """True for an output that is not a regular file to be replaced: ``-`` (stdout), a
    FIFO, a character or block device, a socket, ``/dev/stdout``, ``/dev/fd/N`` and
    ``/proc/self/fd/N`` (process substitution). Such outputs are written into as they
    are; only regular files are made whole beside and renamed into place."""
    import stat

    path = os.fspath(path)
    if path == "-":
        return True
    if path.startswith(("/dev/", "/proc/self/fd/")):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # nothing there yet: a new regular file
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def publish(finished: str, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Put the finished file ``finished`` (a temporary file of ours) at ``path``: renamed
    over it (``overwrite``) or linked to it (never replacing an existing file:
    FileExistsError). An output that :func:`is_write_through` is written into as it is
    (copied), and ``finished`` is left for the caller to remove."""
    import shutil
    import sys

    path = os.fspath(path)
    if is_write_through(path):
        with open(finished, "rb") as src:
            if path == "-":
                out = sys.stdout.buffer
                shutil.copyfileobj(src, out, 1 << 20)
                out.flush()
            else:
                # (no O_TRUNC, no O_CREAT: a FIFO or a device is written into, never made)
                fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        return
    if overwrite:
        os.replace(finished, path)
        return
    try:
        os.link(finished, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: checked, then renamed
        if os.path.lexists(path):
            raise FileExistsError(17, "File exists", path) from None
        os.replace(finished, path)
        return
    os.unlink(finished)
