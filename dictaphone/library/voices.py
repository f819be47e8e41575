"""Named voices: voice prints (embeddings, never audio) kept by name in the data directory.

``<clip directory>/.voices.json`` (a dot file, so never taken for a clip)::

    {"version": 1, "voices": [{"name": "Anna", "encoder": "resemblyzer-ge2e",
                               "print": [0.0132, ...], "seconds": 12.4,
                               "added": "2026-12-04T19:40:00+00:00", "source": "interview"}]}

``print`` is a unit vector of the ``encoder``'s embedding; ``seconds`` the speech it was
made from. Written atomically: a reader sees the old file or the new one.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import unicodedata

from ..atomic import write_text
from ..errors import DictaphoneError, InvalidArgumentError, OutputError

VERSION = 1
FILENAME = ".voices.json"
MAX_NAME = 80


class VoiceNotFoundError(DictaphoneError):
    """No known voice has that name."""

    usage = True


class VoiceExistsError(DictaphoneError):
    """A known voice has that name already."""

    usage = True


@dataclasses.dataclass
class Voice:
    name: str
    encoder: str
    print: list[float]
    seconds: float = 0.0
    added: str = ""
    source: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "encoder": self.encoder,
                "print": [round(float(v), 6) for v in self.print],
                "seconds": round(self.seconds, 2), "added": self.added, "source": self.source}

    def summary(self) -> dict:
        """What ``speakers list --json`` shows (no print)."""
        return {"name": self.name, "seconds": round(self.seconds, 2), "added": self.added,
                "source": self.source, "encoder": self.encoder}


def path() -> str:
    from .clips import clip_dir

    return os.path.join(clip_dir(), FILENAME)


def check_name(name: str) -> str:
    """A voice's name as given, trimmed; InvalidArgumentError when it cannot be one."""
    if not isinstance(name, str):
        raise InvalidArgumentError("a speaker's name is text")
    name = unicodedata.normalize("NFC", name).strip()
    if not name:
        raise InvalidArgumentError("a speaker's name cannot be empty")
    if len(name) > MAX_NAME:
        raise InvalidArgumentError(f"a speaker's name is at most {MAX_NAME} characters")
    if any(unicodedata.category(c)[0] == "C" for c in name):
        raise InvalidArgumentError("a speaker's name cannot hold control characters (a tab, a new line)")
    return name


def load() -> list[Voice]:
    """The known voices (none when there is no file). A damaged file is an error, not an
    empty list: saving over it would lose every voice."""
    p = path()
    try:
        with open(p, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise OutputError(f"the known voices ({p}) cannot be read: {e}; move it away to start "
                          "afresh") from None
    try:
        return [Voice(name=str(v["name"]), encoder=str(v["encoder"]),
                      print=[float(x) for x in v["print"]], seconds=float(v.get("seconds") or 0),
                      added=str(v.get("added") or ""), source=str(v.get("source") or ""))
                for v in data["voices"]]
    except (KeyError, TypeError, ValueError) as e:
        raise OutputError(f"the known voices ({p}) are damaged ({e}); move the file away to "
                          "start afresh") from None


def save(voices: list[Voice]) -> None:
    from .clips import clip_dir

    clip_dir(create=True)
    text = json.dumps({"version": VERSION, "voices": [v.to_json() for v in voices]},
                      indent=1, ensure_ascii=False)
    try:
        write_text(path(), text + "\n")
    except OSError as e:
        raise OutputError(f"cannot save the known voices ({path()}): "
                          f"{(e.strerror or str(e)).lower()}") from None


class _locked:
    """The known voices held by this process while it reads, changes and saves them
    (``flock`` on ``.dictaphone-voices.lock`` in the clip directory): two ``speakers add``
    at once each saved what they had read, and one voice was lost (5 at once kept 3).
    Where there is no ``fcntl`` (Windows) it holds nothing."""

    def __enter__(self):
        from .clips import clip_dir

        self.fd = None
        try:
            import fcntl
        except ImportError:
            return self
        directory = clip_dir(create=True)
        try:
            self.fd = os.open(os.path.join(directory, LOCKNAME), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only library: saving will say so
            return self
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # releases the lock


LOCKNAME = ".dictaphone-voices.lock"


def find(voices: list[Voice], name: str) -> Voice | None:
    key = check_name(name).casefold()
    return next((v for v in voices if v.name.casefold() == key), None)


def get(name: str) -> Voice:
    v = find(load(), name)
    if v is None:
        raise VoiceNotFoundError(_unknown(name, load()))
    return v


def _unknown(name: str, voices: list[Voice]) -> str:
    known = ", ".join(v.name for v in voices)
    return (f"no known voice named {name!r}" + (f" (known: {known})" if known else
                                                 " (none is known yet: dictaphone speakers add NAME CLIP)"))


def add(name: str, encoder: str, vector, seconds: float, source: str = "",
        replace: bool = False) -> Voice:
    with _locked():
        name = check_name(name)
        voices = load()
        old = find(voices, name)
        if old is not None and not replace:
            raise VoiceExistsError(f"a voice named {old.name!r} is known already (use --replace to "
                                   "make it again, or another name)")
        voice = Voice(name=name, encoder=encoder, print=[float(x) for x in vector], seconds=float(seconds),
                      added=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      source=source)
        voices = [v for v in voices if v is not old] + [voice]
        save(voices)
        return voice


def rename(old: str, new: str) -> Voice:
    with _locked():
        new = check_name(new)
        voices = load()
        voice = find(voices, old)
        if voice is None:
            raise VoiceNotFoundError(_unknown(old, voices))
        other = find(voices, new)
        if other is not None and other is not voice:
            raise VoiceExistsError(f"a voice named {other.name!r} is known already")
        voice.name = new
        save(voices)
        return voice


def remove(name: str) -> Voice:
    with _locked():
        voices = load()
        voice = find(voices, name)
        if voice is None:
            raise VoiceNotFoundError(_unknown(name, voices))
        save([v for v in voices if v is not voice])
        return voice
