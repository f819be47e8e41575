"""The clip library: recordings kept by name in the clip directory, with metadata.

The directory is ``DICTAPHONE_HOME``, else the platform's user data directory
(``$XDG_DATA_HOME/dictaphone`` or ``~/.local/share/dictaphone`` on Linux,
``~/Library/Application Support/dictaphone`` on macOS, ``%LOCALAPPDATA%\\dictaphone`` on
Windows). A clip is an audio file ``NAME.EXT`` plus a metadata sidecar ``NAME.EXT.json``
(name, created, duration, format, rate, channels, size, device, dropped frames). A clip
without a sidecar (copied in by hand, or its recorder was killed) is still listed, with
what its file says.

Names are display names, and also the file's name: a name that could leave the library
(a path separator, ``..``, a leading dot, control characters) is refused. Every
operation resolves the clip's real path and checks that it is inside the library.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import json
import os
import sys
import unicodedata

from .. import jsontext
from ..atomic import write_text
from ..errors import DictaphoneError, InvalidArgumentError, OutputError, SourceError, WriteError
from .changes import changed
from ..containers.formats import format_name_for_path, is_library_audio, library_extensions

MAX_NAME_BYTES = 200


class ClipNotFoundError(DictaphoneError):
    """No clip has that name."""

    usage = True


class ClipExistsError(DictaphoneError):
    """A clip with that name exists already."""

    usage = True


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


def check_name(name: str) -> str:
    """Return the name if it is a safe display name; InvalidArgumentError otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgumentError("a clip name cannot be empty")
    if name != name.strip():
        raise InvalidArgumentError(f"clip name {name!r} has leading or trailing spaces")
    if any(unicodedata.category(c) == "Cs" for c in name):
        # a lone surrogate (from JSON's "\\ud800", or bytes that are not UTF-8 on the
        # command line): no file system can store it, and no page can show it
        raise InvalidArgumentError(f"clip name {ascii(name)} is not valid text (a lone surrogate)")
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    if bad:
        raise InvalidArgumentError(f"clip name {name!r} contains control characters")
    try:
        os.fsencode(name)
    except UnicodeError:
        raise InvalidArgumentError(
            f"clip name {name!r} cannot be a file name here (file names are "
            f"{sys.getfilesystemencoding()})") from None
    if "/" in name or "\\" in name or (os.sep in name) or (os.altsep and os.altsep in name):
        raise InvalidArgumentError(f"clip name {name!r} contains a path separator")
    if name.startswith(".") or name in ("..", "."):
        raise InvalidArgumentError(f"clip name {name!r} cannot start with a dot")
    if ":" in name and os.name == "nt":
        raise InvalidArgumentError(f"clip name {name!r} contains ':'")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise InvalidArgumentError(f"clip name is longer than {MAX_NAME_BYTES} bytes")
    return name


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: str, directory: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(directory)
    return os.path.commonpath([real, base]) == base and real != base


@dataclasses.dataclass
class Clip:
    name: str
    path: str
    created: str | None = None  #: ISO 8601, local time with offset
    duration: float | None = None  #: seconds
    format: str | None = None  #: wav, flac, ...
    samplerate: int | None = None
    channels: int | None = None
    size: int = 0
    device: str | None = None
    dropped_frames: int | None = None
    #: [{"number", "time" (s of this file), "label"}]; see dictaphone.containers.markers
    markers: list = dataclasses.field(default_factory=list)
    #: where the device was lost and came back: [{"time": s, "duration": s, "reason": str}]
    gaps: list = dataclasses.field(default_factory=list)
    transcript: str | None = None  #: the first words of its saved transcript ("" if silent)
    #: who speaks in its saved transcript, in order ([] when it is not labelled)
    speakers: list = dataclasses.field(default_factory=list)
    #: the file it was imported from (dictaphone import), as given then
    imported: str | None = None
    #: the audio file is gone (removed by hand): only its metadata is left, which
    #: `delete` removes
    missing: bool = False

    @property
    def meta_path(self) -> str:
        return self.path + ".json"

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# -- one name, one clip ----------------------------------------------------------------------
#
# A name is one clip whatever its extension: "memo.wav" and "memo.flac" would be two clips
# called "memo", and `delete memo` would remove one of them. Checking "no clip has this
# name" and then creating the file is a race (two recordings started in the same second,
# three Record clicks on the page), so a new name is first *claimed*: the hidden file
# ``.NAME.claim`` in the library, created if needed and locked (flock) by the claimer for
# as long as it holds the name. Only then is the name checked against the clips and the
# audio created. A recorder holds its claim until it exits, when its file exists; a claim
# left by a killed process is not locked, so the next claimer takes it over. Listings skip
# dot files, so claims are never clips.


class _Claim:
    def __init__(self, path: str, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            os.unlink(self.path)  # while still locked: nobody can have taken it meanwhile
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1
        _kept.discard(self)


#: claims this process keeps until it exits (the recordings it is making)
_kept: set[_Claim] = set()


def release_claims() -> None:
    """Give back the names this process holds (:func:`new_clip_path`, :func:`named_clip_path`):
    at exit, which a program that leaves by ``os._exit`` must call itself."""
    for claim in list(_kept):
        claim.release()


def _try_claim(name: str) -> _Claim | None:
    """Claim ``name`` for this process; None when another one (or another thread) holds
    it. Does not look at the clips: see :func:`_claim`."""
    directory = clip_dir(create=True)
    path = os.path.join(directory, "." + name + ".claim")
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        import fcntl
    except ImportError:  # (Windows: no flock; an exclusive creation is the claim)
        fcntl = None
        flags |= os.O_EXCL
    while True:
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            return None
        except OSError as e:
            raise OutputError(f"cannot claim the name {name!r} in {directory}: {e.strerror}") from None
        if fcntl is None:
            return _Claim(path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return None
        try:
            mine = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            mine = False
        if mine:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError:
                pass  # (who holds it is for people; the lock is the claim)
            return _Claim(path, fd)
        os.close(fd)  # its holder released (removed) it meanwhile: claim it anew


def _claim(name: str) -> _Claim:
    """Claim ``name`` and check that no clip has it (any extension); ClipExistsError
    otherwise. The caller creates the clip, then releases the claim."""
    claim = _try_claim(name)
    if claim is None:
        raise ClipExistsError(f"a clip named {name!r} is being made right now")
    try:
        taken = find(name, missing_ok=True) is not None
    except BaseException:
        claim.release()
        raise
    if taken:
        claim.release()
        raise ClipExistsError(f"a clip named {name!r} exists already")
    return claim


def _keep(claim: _Claim) -> None:
    if not _kept:
        import atexit

        atexit.register(release_claims)
    _kept.add(claim)


def new_clip_path(extension: str, now: datetime.datetime | None = None) -> str:
    """A fresh timestamped file name in the clip directory (created if missing), whose
    name this process holds until it exits: no other clip gets it, whatever its format."""
    directory = clip_dir(create=True)
    stamp = (now or datetime.datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    n = 1
    while True:
        stem = stamp if n == 1 else f"{stamp}-{n}"
        n += 1
        claim = _try_claim(stem)
        if claim is None:
            continue
        path = os.path.join(directory, stem + extension)
        try:
            taken = (find(stem, missing_ok=True) is not None
                     or os.path.lexists(path.replace("{n:03d}", "001")))
        except BaseException:
            claim.release()
            raise
        if taken:
            claim.release()
            continue
        _keep(claim)
        return path


def named_clip_path(name: str, extension: str) -> str:
    """The file for a new clip called ``name`` (ClipExistsError if a clip has the name,
    in any format, or another process is making one with it). The name is this process's
    until it exits."""
    check_name(name)
    directory = clip_dir(create=True)
    claim = _claim(name)
    _keep(claim)
    return os.path.join(directory, name + extension)


def is_clip_path(path: str) -> bool:
    return _inside(path, clip_dir())


def _name_of(filename: str) -> str:
    return os.path.splitext(filename)[0]


def _read_meta(path: str) -> dict:
    try:
        meta = jsontext.load_file(path + ".json")
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


#: what each metadata field must be to be believed (a hand-edited or damaged sidecar must
#: not break `list`)
_META_TYPES = {"created": str, "duration": (int, float), "format": str, "samplerate": int,
               "channels": int, "device": str, "dropped_frames": int, "markers": list,
               "gaps": list, "transcript": str, "imported": str}


def _apply_meta(clip: Clip, meta: dict) -> None:
    for field in dataclasses.fields(Clip):
        name = field.name
        if name not in meta or name in ("path", "size", "name", "missing"):
            continue
        value, kind = meta[name], _META_TYPES.get(name)
        if kind is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            continue
        setattr(clip, name, value)


def _orphan(path: str) -> Clip:
    """A clip whose audio file was removed: what its metadata still says."""
    clip = Clip(name=_name_of(os.path.basename(path)), path=path, missing=True)
    _apply_meta(clip, _read_meta(path))
    if clip.format is None:
        clip.format = format_name_for_path(path)
    return clip


def _orphan_audio_path(directory: str, filename: str) -> str | None:
    """For ``NAME.EXT.json`` whose ``NAME.EXT`` (an audio extension) does not exist: the
    audio's path. Transcript and marker sidecars are not clips' metadata."""
    if not filename.endswith(".json") or filename.endswith((".transcript.json", ".markers.json")):
        return None
    audio = filename[:-5]
    if not is_library_audio(audio) or audio.startswith("."):
        return None
    path = os.path.join(directory, audio)
    return None if os.path.lexists(path) else path


_UNREAD = object()


def _from_file(path: str, saved=_UNREAD) -> Clip:
    """The clip of the audio file ``path``, from its metadata, else from the file; ``saved``
    is its transcript when the caller has read it already (the index does)."""
    meta = _read_meta(path)
    st = os.stat(path)
    clip = Clip(name=_name_of(os.path.basename(path)), path=path, size=st.st_size)
    _apply_meta(clip, meta)
    if "markers" not in meta:
        # killed while recording (the recorder's sidecar) or copied in with a cue chunk
        from ..containers.markers import load

        try:
            clip.markers = [m.to_json() for m in load(path)]
        except DictaphoneError:
            clip.markers = []

    if saved is _UNREAD:
        from . import transcript

        saved = transcript.load(path)
    clip.transcript = saved.first_words() if saved is not None else None
    clip.speakers = saved.speakers if saved is not None else []
    if clip.created is None:
        clip.created = datetime.datetime.fromtimestamp(st.st_mtime).astimezone().isoformat(timespec="seconds")
    if clip.format is None:
        clip.format = format_name_for_path(path)
    if clip.duration is None or clip.samplerate is None:
        try:
            import soundfile as sf

            info = sf.info(path)
            if 0 <= info.frames < 2**62:
                clip.duration = info.frames / info.samplerate
            clip.samplerate, clip.channels = info.samplerate, info.channels
        except Exception:
            _probe_imported(clip)  # not readable (raw, or damaged): listed without a duration
    return clip


def _probe_imported(clip: Clip) -> None:
    """An M4A or WebM copied in by hand (no sidecar): its rate, channels and length as its
    container gives them, through PyAV when it is installed."""
    from ..containers.formats import IMPORTED

    if os.path.splitext(clip.path)[1].lower() not in IMPORTED:
        return
    try:
        from ..containers.decode import AVReader, have_pyav

        if not have_pyav():
            return
        with AVReader(clip.path) as r:
            clip.samplerate, clip.channels = r.samplerate, r.channels
            if r.frames >= 0:
                clip.duration = r.frames / r.samplerate
    except Exception:
        pass


def clips() -> list[Clip]:
    """Every clip in the library, newest first."""
    directory = clip_dir()
    if not os.path.isdir(directory):
        return []
    result = []
    for entry in os.scandir(directory):
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        orphan = _orphan_audio_path(directory, entry.name)
        if orphan is not None:
            result.append(_orphan(orphan))
            continue
        if not is_library_audio(entry.name):
            continue
        result.append(_from_file(entry.path))
    result.sort(key=lambda c: (c.created or "", c.name), reverse=True)
    return result


def find(name: str, missing_ok: bool = False) -> Clip | None:
    """The clip called ``name`` (any extension)."""
    check_name(name)
    directory = clip_dir()
    if os.path.isdir(directory):
        for ext in sorted(library_extensions()):
            path = os.path.join(directory, name + ext)
            if os.path.isfile(path) and not os.path.islink(path) and _inside(path, directory):
                return _from_file(path)
        for ext in sorted(library_extensions()):
            path = os.path.join(directory, name + ext)
            meta = path + ".json"
            if (not os.path.lexists(path) and os.path.isfile(meta) and not os.path.islink(meta)
                    and _inside(meta, directory)):
                return _orphan(path)
    if missing_ok:
        return None
    raise ClipNotFoundError(f"no clip named {name!r}{did_you_mean(name)}")


def did_you_mean(name: str) -> str:
    """``; did you mean 'live test'?`` with the clip names closest to ``name`` (a typo,
    another case), or the hint to list them when none is close."""
    import difflib

    try:
        names = sorted({c.name for c in clips()})
    except OSError:
        names = []
    folded = {n.casefold(): n for n in names}
    close = difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)
    if not close:
        return " ('dictaphone list' shows them)"
    return "; did you mean " + " or ".join(repr(folded[c]) for c in close) + "?"


def resolve(name_or_path: str) -> str:
    """A clip name, or else an existing audio file's path (for play and show)."""
    try:
        clip = find(name_or_path, missing_ok=True)
    except InvalidArgumentError:
        clip = None  # not a valid name: maybe a path
    if clip is not None:
        check_present(clip)
        return clip.path
    if os.path.isfile(name_or_path):
        return name_or_path
    if os.path.exists(name_or_path):  # there is something by that name, just not audio
        import stat

        mode = os.stat(name_or_path).st_mode
        what = ("a directory" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        raise SourceError(f"{name_or_path} is {what}, not an audio file; give a clip's name or an audio file")
    raise ClipNotFoundError(f"no clip or file named {name_or_path!r}{did_you_mean(name_or_path)}")


def clip_at(path: str) -> Clip | None:
    """The clip whose audio file is ``path``, or None when ``path`` is not in the library."""
    if not os.path.isfile(path) or not is_clip_path(path):
        return None
    return _from_file(path)


def write_metadata(path: str, **meta) -> None:
    """Write a clip's sidecar atomically (a temp file renamed over it)."""
    fields = {f.name for f in dataclasses.fields(Clip)}
    data = {k: v for k, v in meta.items() if k in fields}
    data["name"] = _name_of(os.path.basename(path))
    data["size"] = os.path.getsize(path) if os.path.exists(path) else 0
    write_text(path + ".json", json.dumps(data, indent=2))
    changed(path)


def check_present(clip: Clip) -> None:
    if clip.missing:
        raise ClipNotFoundError(
            f"the audio file of clip {clip.name!r} is missing ({clip.path}); only its metadata "
            f"is left: 'dictaphone delete {clip.name}' removes it")


def rename(old: str, new: str) -> Clip:
    clip = find(old)
    check_present(clip)
    check_name(new)
    if new == clip.name:
        raise InvalidArgumentError(f"the clip is called {new!r} already; nothing to rename")
    other = find(new, missing_ok=True)
    if other is not None and not _same_file(other.path, clip.path):
        # (the same file under another spelling: a case-insensitive file system, where
        # 'memo' -> 'Memo' is a change of case, not a clash)
        raise ClipExistsError(f"a clip named {new!r} exists already")
    ext = os.path.splitext(clip.path)[1]
    target = os.path.join(os.path.dirname(clip.path), new + ext)
    if not _inside(target, clip_dir()) or (os.path.lexists(target) and not _same_file(target, clip.path)):
        raise ClipExistsError(f"{target} exists already")
    if os.path.lexists(target):  # a change of case only, on a case-insensitive file system
        os.rename(clip.path, target)
        if os.path.exists(clip.meta_path):
            os.rename(clip.meta_path, target + ".json")
        meta = _read_meta(target)
        meta["name"] = new
        write_metadata(target, **meta)
        changed(clip.path)
        return _from_file(target)
    claim = _claim(new)
    try:
        _move_clip(clip, target, new)
    finally:
        claim.release()
    changed(clip.path)
    changed(target)
    return _from_file(target)


class _Undo(list):
    """What a rename did so far, to be undone in reverse order if a later step fails."""

    def run(self) -> list[str]:
        """Undo everything; the steps that could not be undone, in words."""
        left = []
        for what, step in reversed(self):
            try:
                step()
            except OSError as e:
                left.append(f"{what} ({e.strerror or e})")
        self.clear()
        return left


def _move_clip(clip: Clip, target: str, new: str) -> None:
    """Give ``clip`` (audio, metadata, transcript, markers) the file name ``target``, all
    or nothing. What needs space comes first (the new metadata, with the new name in it,
    written whole beside the old), then the new names are linked to the files; only when
    every new name exists are the old ones removed, which needs no space. A failure before
    that removes what was made and leaves the clip as it was; if even that fails, the
    error says what is left where."""
    from ..containers.markers import sidecar_path as markers_sidecar
    from .transcript import sidecar_path

    pairs = [(sidecar(clip.path), sidecar(target)) for sidecar in (sidecar_path, markers_sidecar)]
    pairs = [(a, b) for a, b in pairs if os.path.exists(a)]
    undo = _Undo()

    def failed(e: OSError, doing: str) -> WriteError:
        why = "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else (e.strerror or str(e))
        left = undo.run()
        if not left:
            return WriteError(f"cannot rename {clip.name!r} to {new!r} ({doing}: {why}); "
                               f"nothing was changed")
        return WriteError(f"cannot rename {clip.name!r} to {new!r} ({doing}: {why}), and undoing "
                           f"it failed too: {'; '.join(left)}. The clip's files are all still "
                           f"under {os.path.basename(clip.path)!r} in {os.path.dirname(clip.path)}")

    def remove(path: str):
        return lambda: os.unlink(path)

    if os.path.exists(clip.meta_path):
        meta = _read_meta(clip.path)
        meta.update(name=new, size=os.path.getsize(clip.path))
        fields = {f.name for f in dataclasses.fields(Clip)}
        try:
            write_text(target + ".json", json.dumps({k: v for k, v in meta.items() if k in fields},
                                                    indent=2), overwrite=False)
        except FileExistsError:
            raise ClipExistsError(f"{target}.json exists already") from None
        except OSError as e:
            raise failed(e, "writing its metadata") from None
        undo.append((f"remove {target}.json", remove(target + ".json")))
        pairs.append((clip.meta_path, None))  # replaced by the new one, not moved
    linked = True
    for old, new_path in [(clip.path, target)] + [p for p in pairs if p[1] is not None]:
        try:
            os.link(old, new_path)  # fails rather than overwrite
        except FileExistsError:
            undo.run()
            raise ClipExistsError(f"{new_path} exists already") from None
        except OSError as e:
            if e.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK) and not undo:
                linked = False  # a file system without hard links: renamed one by one below
                break
            raise failed(e, f"linking {os.path.basename(new_path)}") from None
        undo.append((f"remove {new_path}", remove(new_path)))
    if not linked:
        for old, new_path in [(clip.path, target)] + [p for p in pairs if p[1] is not None]:
            if os.path.lexists(new_path):
                undo.run()
                raise ClipExistsError(f"{new_path} exists already")
            try:
                os.rename(old, new_path)
            except OSError as e:
                raise failed(e, f"renaming {os.path.basename(old)}") from None
            undo.append((f"rename {new_path} back to {old}", lambda a=new_path, b=old: os.rename(a, b)))
        pairs = [p for p in pairs if p[1] is None]
    # Every new name exists: drop the old ones (no space needed; nothing to undo after this).
    undo.clear()
    stuck = []
    for old, _ in ([(clip.path, None)] if linked else []) + pairs:
        try:
            os.unlink(old)
        except FileNotFoundError:
            pass
        except OSError as e:
            stuck.append(f"{os.path.basename(old)} ({e.strerror or e})")
    if stuck:
        raise WriteError(f"renamed {clip.name!r} to {new!r}, but the old files could not be "
                          f"removed: {', '.join(stuck)}")


def delete(name: str) -> Clip:
    clip = find(name)
    if not _inside(clip.path, clip_dir()):
        raise InvalidArgumentError(f"{clip.path} is outside the library")
    try:
        os.unlink(clip.path)
    except FileNotFoundError:
        pass  # an orphan: its audio is gone already, what is left goes below
    from ..containers.markers import sidecar_path as markers_sidecar
    from .transcript import sidecar_path

    for sidecar in (clip.meta_path, sidecar_path(clip.path), markers_sidecar(clip.path)):
        try:
            os.unlink(sidecar)
        except FileNotFoundError:
            pass
    changed(clip.path)
    return clip


# -- clips made from finished files (import, trim) ------------------------------------------


def temp_audio_path(extension: str) -> str:
    """A new, empty, hidden file in the clip directory (``.dictaphone-*.EXT.tmp``, which
    listings skip) to write a clip's audio into before it becomes one with :func:`add`."""
    from ..atomic import mkstemp_as_open

    directory = clip_dir(create=True)
    fd, tmp = mkstemp_as_open(directory, ".dictaphone-")
    os.close(fd)
    path = tmp[:-4] + extension + ".tmp"
    try:
        os.rename(tmp, path)
    except OSError:
        os.unlink(tmp)
        raise
    return path


def unique_name(base: str, skip=()) -> str:
    """``base``, or ``base-2``, ``base-3``, ... : the first that no clip has (and that is
    not in ``skip``)."""
    check_name(base)
    if base not in skip and find(base, missing_ok=True) is None:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        name = base[:MAX_NAME_BYTES - len(suffix)] if len(base.encode()) + len(suffix) > MAX_NAME_BYTES else base
        name = name + suffix
        if name not in skip and find(name, missing_ok=True) is None:
            return name
        n += 1


def add_unique(audio: str, base: str, extension: str, **kw) -> Clip:
    """:func:`add` under ``base``, or ``base-2``, ... : the first name that is free when
    the clip is made, not when it was chosen (two imports of one file name at once, or
    a name another process is taking right now, got "exists already" instead of NAME-2)."""
    tried: set[str] = set()
    while True:
        name = unique_name(base, skip=tried)
        try:
            return add(audio, name, extension, **kw)
        except ClipExistsError:
            tried.add(name)
            if len(tried) >= 1000:
                raise


def add(audio: str, name: str, extension: str, *, transcript=None, move: bool = True,
        **meta) -> Clip:
    """Make the finished file ``audio`` the clip ``name`` (``NAME.EXT``), with its
    metadata (the fields of :class:`Clip`: created, duration, markers, ...) and, if given,
    its transcript. Nothing clobbers: ClipExistsError when the name is taken, even when
    another process takes it meanwhile. All or nothing: if the metadata cannot be written
    the clip is removed again. ``move``: ``audio`` is linked into place (copied when that
    cannot be done) and its old name removed once the clip is whole; else it is copied
    and left as it is (a hard link would let an edit of the original change the clip)."""
    check_name(name)
    claim = _claim(name)
    try:
        return _add(audio, name, extension, transcript=transcript, move=move, **meta)
    finally:
        claim.release()


def _add(audio: str, name: str, extension: str, *, transcript, move: bool, **meta) -> Clip:
    directory = clip_dir(create=True)
    target = os.path.join(directory, name + extension)
    if not _inside(target, directory):
        raise InvalidArgumentError(f"clip name {name!r} leaves the library")
    try:
        _link_or_copy(audio, target, copy=not move)
    except FileExistsError:
        raise ClipExistsError(f"{target} exists already") from None
    try:
        if transcript is not None:
            from .transcript import save

            save(target, transcript)
        meta.setdefault("format", format_name_for_path(target))
        write_metadata(target, **meta)
    except BaseException:
        for path in (target, target + ".json"):
            try:
                os.unlink(path)
            except OSError:
                pass
        from .transcript import remove

        remove(target)
        raise
    if move:
        try:
            os.unlink(audio)
        except OSError:
            pass
    return _from_file(target)


def _link_or_copy(source: str, target: str, copy: bool = False) -> None:
    """``target`` as a new name of ``source`` (a hard link), else (or with ``copy``) a copy
    of it; never over an existing file (FileExistsError). A copy is made under a hidden
    temporary name and linked into place once whole."""
    if not copy:
        try:
            os.link(source, target)
            return
        except FileExistsError:
            raise
        except OSError:
            pass  # another file system, or none with hard links: copy
    import shutil

    tmp = temp_audio_path(os.path.splitext(target)[1])
    try:
        shutil.copyfile(source, tmp)
        try:
            os.link(tmp, target)
        except FileExistsError:
            raise
        except OSError:
            if os.path.lexists(target):
                raise FileExistsError(17, "File exists", target) from None
            os.rename(tmp, target)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def replace_audio(clip: Clip, audio: str, extension: str, *, transcript=None, **meta) -> Clip:
    """Put the finished file ``audio`` (a temporary file of ours) in place of ``clip``'s
    audio, with new metadata and transcript (its markers sidecar goes: the metadata holds
    them). The old audio stays until the new one is in place; with the same extension the
    new file is renamed over it in one step."""
    check_present(clip)
    from ..containers.markers import remove_sidecar
    from .transcript import remove, save

    target = os.path.splitext(clip.path)[0] + extension
    if not _inside(target, clip_dir()):
        raise InvalidArgumentError(f"{target} is outside the library")
    if os.path.normcase(target) != os.path.normcase(clip.path) and os.path.lexists(target):
        raise ClipExistsError(f"{target} exists already")
    os.replace(audio, target)
    if target != clip.path:
        for old in (clip.path, clip.meta_path):
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
        remove(clip.path)
        remove_sidecar(clip.path)
    remove_sidecar(target)
    if transcript is not None:
        save(target, transcript)
    else:
        remove(target)
    meta.setdefault("format", format_name_for_path(target))
    write_metadata(target, **meta)
    return _from_file(target)
