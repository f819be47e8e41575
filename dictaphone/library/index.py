"""The library's index: an SQLite database in the clip directory that answers `list`,
`search` and the page without reading every sidecar.

The sidecars stay the truth (``NAME.EXT``, ``NAME.EXT.json``, ``NAME.EXT.transcript.json``,
``NAME.EXT.markers.json``); the index is derived from them and can always be thrown away
(``dictaphone index --rebuild``). It is kept current in two ways:

- the core's own changes (a clip recorded, transcribed, renamed, deleted, imported, trimmed)
  call :func:`note_change` (through ``clips.changed``), which re-reads that one clip;
- every reader first calls :meth:`Index.sync`: one directory listing with the size and
  modification time of each file, compared with what the index holds. Only clips whose
  files changed are read again, so another process's changes (the CLI, the page, a file
  copied in by hand) are picked up for the price of the listing.

A missing, damaged or older-schema database is rebuilt on its own. Several processes may
use it at once: WAL journal, short write transactions, and a locked database is waited for
(never forced). When it cannot be written (a read-only or full disk) the readers still
work from a copy in memory, and :attr:`Index.warning` says so.

Search (FTS5, porter stemming, diacritics folded): the words are all required, in any
order, within one clip; ``"quoted words"`` are a phrase; ``dent*`` a prefix (of the word's
stem); hits are the transcript segments that hold the words, ranked by bm25 and then newest.

This module imports ``sqlite3`` only inside its functions (``record`` stays quick).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import threading
import time
import zlib
from stat import S_ISREG

from ..errors import DictaphoneError, InvalidArgumentError

#: the index's own directory inside the clip directory (a directory of its own, so that the
#: database's journal files coming and going never change the clip directory itself)
DIRNAME = ".dictaphone-index"
FILENAME = os.path.join(DIRNAME, "index.sqlite3")
SCHEMA = 1
#: seconds a writer waits for another process's transaction before it gives up
BUSY_TIMEOUT = 30.0
#: clips per write transaction while (re)building: readers and other writers never wait long
BATCH = 400
#: a file unchanged this long (s) is not being written any more (see Index.sync)
SETTLE = 2.0
#: the longest (s) the index trusts an unchanged directory without a stat of every file
FULL_EVERY = 300.0
TOKENIZE = "porter unicode61 remove_diacritics 2"

_KINDS = {"audio": 0, "meta": 1, "transcript": 2, "markers": 3}


class QueryError(InvalidArgumentError):
    """A search that cannot be understood (an unbalanced quote, a lone ``*``)."""


# -- the directory listing -----------------------------------------------------------------


def _owner(filename: str):
    """(audio file name, kind) for a file of the library, or (None, None)."""
    from ..containers.formats import is_library_audio

    if filename.endswith(".transcript.json"):
        audio, kind = filename[:-16], "transcript"
    elif filename.endswith(".markers.json"):
        audio, kind = filename[:-13], "markers"
    elif filename.endswith(".json"):
        audio, kind = filename[:-5], "meta"
    else:
        audio, kind = filename, "audio"
    if not audio or audio.startswith(".") or not is_library_audio(audio):
        return None, None
    return audio, kind


def _audio_extensions() -> frozenset[str]:
    from ..containers.formats import library_extensions

    return frozenset(e.lower() for e in library_extensions())


def listing(directory: str, newest: list | None = None) -> dict[str, str]:
    """{audio file name: stamp} for every clip in ``directory``: the sizes and modification
    times of its audio and sidecars, as one string that changes when any of them changes.
    One ``scandir`` and one ``lstat`` a file; nothing is opened, nothing but the names
    parsed (this is what every command pays for freshness: keep it lean). ``newest``, a
    list, gets the latest modification time seen (ns)."""
    extensions = _audio_extensions()
    groups: dict[str, list] = {}
    latest = 0
    try:
        entries = os.scandir(directory)
    except OSError:
        return {}
    with entries:
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            if name.endswith(".json"):
                if name.endswith(".transcript.json"):
                    audio, slot = name[:-16], 2
                elif name.endswith(".markers.json"):
                    audio, slot = name[:-13], 3
                else:
                    audio, slot = name[:-5], 1
                if not audio or audio[0] == ".":
                    continue
            else:
                audio, slot = name, 0
            dot = audio.rfind(".")
            if dot <= 0 or audio[dot:].lower() not in extensions:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone while listed
            if not S_ISREG(st.st_mode):
                continue  # a symlink or a directory is not a clip (as clips.clips() says)
            stamps = groups.get(audio)
            if stamps is None:
                stamps = groups[audio] = ["-", "-", "-", "-"]
            stamps[slot] = f"{st.st_size}:{st.st_mtime_ns}"
            if st.st_mtime_ns > latest:
                latest = st.st_mtime_ns
    if newest is not None:
        newest.append(latest)
    # A clip is its audio, or its metadata when the audio is gone (listed as missing).
    return {audio: "|".join(s) for audio, s in groups.items() if s[0] != "-" or s[1] != "-"}


# -- reading one clip from its files --------------------------------------------------------


@dataclasses.dataclass
class Segment:
    start: float
    end: float
    text: str
    speaker: str | None = None
    #: the start and end of each word of ``text`` (as the tokens of ``text`` run), when the
    #: transcript's word times line up with its text
    words: list | None = None


_TOKEN = re.compile(r"[\w']+")


def _read_json(path: str):
    from .. import jsontext

    try:
        with open(path, encoding="utf-8") as f:
            return jsontext.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return None


def _segments(path: str) -> tuple[object, list[Segment]]:
    """(the saved transcript or None, its segments with speakers and word times)."""
    from . import transcript as tmod

    data = _read_json(tmod.sidecar_path(path))
    if data is None:
        return None, []
    try:
        saved = tmod.Transcript.from_json(data)
    except (ValueError, RecursionError):
        return None, []
    out = []
    for seg in saved.segments:
        if not seg.text:
            continue
        speaker = seg.speaker or next((w.speaker for w in seg.words if w.speaker), None)
        toks = _TOKEN.findall(seg.text)
        words = [w for w in seg.words if _TOKEN.findall(w.word)]
        times = ([[round(w.start, 3), round(w.end, 3)] for w in words]
                 if words and len(words) == len(toks) else None)
        out.append(Segment(seg.start, seg.end, seg.text, speaker or None, times))
    return saved, out


def read_clip(directory: str, audio: str):
    """(Clip, segments) for the clip whose audio file is ``audio`` in ``directory``, from
    its files; None when it is no longer a clip."""
    from . import clips as lib

    path = os.path.join(directory, audio)
    saved, segments = _segments(path)
    try:
        if os.path.lexists(path):
            if os.path.islink(path) or not os.path.isfile(path):
                return None
            clip = lib._from_file(path, saved=saved)
        elif os.path.isfile(path + ".json"):
            clip = lib._orphan(path)
        else:
            return None
    except OSError:
        return None  # removed while it was read: the next sync sees it gone
    return clip, segments


# -- the database ----------------------------------------------------------------------------

_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,          -- the audio file's name in the clip directory
    name TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT '',   -- ISO 8601 as the metadata says ('' unknown)
    created_ts REAL,                    -- the same as seconds since the epoch (filters)
    duration REAL, format TEXT, samplerate INTEGER, channels INTEGER, size INTEGER,
    device TEXT, dropped_frames INTEGER,
    markers TEXT NOT NULL DEFAULT '[]', gaps TEXT NOT NULL DEFAULT '[]',
    preview TEXT,                       -- the first words of the transcript (NULL: none)
    has_transcript INTEGER NOT NULL DEFAULT 0,
    missing INTEGER NOT NULL DEFAULT 0,
    text TEXT NOT NULL DEFAULT '',      -- the whole transcript (clip_fts's content)
    stamp TEXT NOT NULL,                -- sizes and mtimes of its files (see listing())
    gen INTEGER NOT NULL                -- the change counter when it last changed
);
CREATE INDEX IF NOT EXISTS clips_newest ON clips (created DESC, name DESC);
CREATE INDEX IF NOT EXISTS clips_gen ON clips (gen);
CREATE INDEX IF NOT EXISTS clips_name ON clips (name);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY,
    clip_id INTEGER NOT NULL REFERENCES clips (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    start REAL NOT NULL, "end" REAL NOT NULL,
    speaker TEXT,
    text TEXT NOT NULL,
    words TEXT                          -- [[start, end], ...] a token of text, or NULL
);
CREATE INDEX IF NOT EXISTS segments_clip ON segments (clip_id, seq);
CREATE TABLE IF NOT EXISTS removed (file TEXT PRIMARY KEY, name TEXT NOT NULL, gen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_gen ON removed (gen);
CREATE VIRTUAL TABLE IF NOT EXISTS seg_fts USING fts5(
    text, content='segments', content_rowid='id', tokenize='{TOKENIZE}');
CREATE VIRTUAL TABLE IF NOT EXISTS clip_fts USING fts5(
    text, content='clips', content_rowid='id', tokenize='{TOKENIZE}');
"""


def _statements() -> list[str]:
    lines = [ln.split("--")[0] for ln in _SCHEMA_SQL.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _connect(target: str, uri: bool = False):
    import sqlite3

    db = sqlite3.connect(target, timeout=BUSY_TIMEOUT, isolation_level=None, uri=uri,
                         check_same_thread=False)
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _timestamp(created: str | None) -> float | None:
    if not created:
        return None
    try:
        when = datetime.datetime.fromisoformat(created)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


def _damaged(e: Exception) -> bool:
    import sqlite3

    text = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError) or any(
        w in text for w in ("malformed", "not a database", "no such table", "no such column",
                            "file is encrypted", "corrupt"))


def _unwritable(e: Exception, directory: str | None = None) -> str | None:
    """Why the database cannot be written, when that is what ``e`` says; else None."""
    text = str(e).lower()
    if directory is not None and any(w in text for w in ("readonly", "read-only", "read only",
                                                         "unable to open", "disk i/o", "permission")):
        try:
            if os.statvfs(directory).f_flag & os.ST_RDONLY:
                return "the library's file system is read-only"
        except OSError:
            pass
        if not os.access(directory, os.W_OK):
            return "the library is read-only"
    for words, why in ((("readonly", "read-only", "read only"), "the library is read-only"),
                       (("disk is full", "database or disk is full"), "the disk is full"),
                       (("unable to open",), "the index file cannot be opened"),
                       (("disk i/o",), "the disk gives errors")):
        if any(w in text for w in words):
            return why
    if isinstance(e, OSError):
        return (e.strerror or str(e)).lower()
    return None


@dataclasses.dataclass
class Changes:
    """What one sync found: the change counter after it, the audio file names of the clips
    that changed or appeared, and of those that went away ({file: name})."""

    gen: int
    changed: list[str] = dataclasses.field(default_factory=list)
    removed: dict[str, str] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)


@dataclasses.dataclass
class Hit:
    """One place the words are said: the clip, the segment's time (``start``/``end`` are
    the matched words' times when the transcript has word times), its text and where the
    matches are in it."""

    name: str
    path: str
    start: float
    end: float
    text: str
    spans: list = dataclasses.field(default_factory=list)  #: [(first char, one past last)]
    speaker: str | None = None
    created: str | None = None
    segment_start: float = 0.0
    segment_end: float = 0.0

    @property
    def span(self) -> tuple[int, int]:
        return tuple(self.spans[0]) if self.spans else (0, 0)

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "start": round(self.start, 3),
                "end": round(self.end, 3), "text": self.text,
                "spans": [list(s) for s in self.spans], "speaker": self.speaker,
                "created": self.created}


@dataclasses.dataclass
class Results:
    hits: list[Hit]
    total: int  #: hits in all (``hits`` is the page of them that was asked for)


class Index:
    """The index of one clip directory. Open with :func:`open_index`; every read method
    syncs first unless ``sync=False``."""

    def __init__(self, directory: str):
        self.directory = directory
        self.path = os.path.join(directory, FILENAME)
        #: why the index is not being kept on disk (read-only or full disk), else None
        self.warning: str | None = None
        self.db = None
        self._identity = None  #: (device, inode) of the database file this has open
        self._lock = threading.RLock()
        self._open()

    # -- opening, rebuilding, falling back ----------------------------------------------------

    def _open(self) -> None:
        if not os.path.isdir(self.directory):
            self._memory(None)  # no library yet: an empty index, nothing written
            return
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.db = _connect(self.path)
            self._prepare(self.db)
            self._identity = _file_id(self.path)
        except Exception as e:  # noqa: BLE001 - sorted out below
            self._close_db()
            if isinstance(e, _Stale) or _damaged(e):
                self._discard()
                try:
                    self.db = _connect(self.path)
                    self._prepare(self.db)
                    self._identity = _file_id(self.path)
                    return
                except Exception as again:  # noqa: BLE001
                    self._close_db()
                    e = again
            why = _unwritable(e, self.directory)
            if why is None and not _damaged(e):
                raise
            self._memory(why or "the index is damaged and cannot be rebuilt")

    def _prepare(self, db) -> None:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        version = None
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            version = int(row[0]) if row else None
        except Exception as e:  # noqa: BLE001
            if "no such table" not in str(e):
                raise
        if version is not None and version != SCHEMA:
            raise _Stale()
        if version is None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements():
                    db.execute(statement)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA,))
                db.execute("INSERT OR IGNORE INTO meta VALUES ('gen', 0)")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def _memory(self, why: str | None) -> None:
        """Work from a copy in memory: of the database on disk when it can be read, else
        empty (the next sync reads what it lacks from the files)."""
        self.warning = (f"{why}: the library's index is kept in memory only, so this reads "
                        f"the clips' files that changed since it was last saved") if why else None
        mem = _connect(":memory:")
        if why and os.path.isfile(self.path):
            try:
                src = _connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
                try:
                    if src.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == SCHEMA:
                        src.backup(mem)
                finally:
                    src.close()
            except Exception:  # noqa: BLE001 - unreadable too: start empty
                mem.close()
                mem = _connect(":memory:")
        self.db = mem
        try:
            self.db.execute("SELECT 1 FROM meta WHERE key = 'schema'").fetchone()
        except Exception:  # noqa: BLE001
            self.db.close()
            self.db = _connect(":memory:")
        self._prepare_memory()

    def _prepare_memory(self) -> None:
        for statement in _statements():
            self.db.execute(statement)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA,))
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('gen', 0)")

    def _discard(self) -> None:
        """Remove a damaged or outdated database (and its WAL): it is rebuilt from the files."""
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass

    def _close_db(self) -> None:
        if self.db is not None:
            try:
                self.db.close()
            except Exception:  # noqa: BLE001
                pass
            self.db = None

    def close(self) -> None:
        with self._lock:
            self._close_db()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def on_disk(self) -> bool:
        return self.warning is None and os.path.isdir(self.directory)

    def rebuild(self) -> int:
        """Throw the index away and read every clip again; the number of clips."""
        with self._lock:
            self._close_db()
            if os.path.isdir(self.directory):
                try:
                    self._discard()
                except OSError as e:
                    self.warning = None
                    self._memory(_unwritable(e, self.directory) or "the index cannot be removed")
            if self.db is None:
                self.warning = None
                self._open()
            self.sync()
            return self.count(sync=False)

    def _guard(self, work):
        """Run ``work()``; a damaged database is rebuilt and ``work`` run again; one that
        cannot be written makes this index work from memory; one that another process
        replaced (it found it damaged and rebuilt it) is opened again."""
        with self._lock:
            if self.on_disk and _file_id(self.path) != self._identity:
                self._reopen(discard=False)
            for attempt in range(3):
                try:
                    return work()
                except _Stale:
                    self._reopen(discard=True)
                except Exception as e:  # noqa: BLE001
                    if self.db is not None and self.db.in_transaction:
                        try:
                            self.db.execute("ROLLBACK")
                        except Exception:  # noqa: BLE001
                            pass
                    if _damaged(e) and self.on_disk:
                        self._reopen(discard=True)
                        continue
                    why = _unwritable(e, self.directory)
                    if why is not None and self.warning is None:
                        self._close_db()
                        self._memory(why)
                        self._sync(None, full=True)
                        continue
                    raise
            return work()

    def _reopen(self, discard: bool) -> None:
        """Open the database again (``discard``: a new one), and read what it lacks."""
        self._close_db()
        if discard:
            try:
                self._discard()
            except OSError:
                pass
        self._open()
        self._sync(None, full=True)

    # -- keeping it current --------------------------------------------------------------------

    def _gen(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'gen'").fetchone()
        return int(row[0]) if row else 0

    def gen(self) -> int:
        """The change counter: it grows with every change the index takes in (a database
        made anew starts again from 0)."""
        return self._guard(self._gen)

    def sync(self, only: list[str] | None = None, full: bool = False) -> Changes:
        """Bring the index up to date with the directory (``only``: just these audio file
        names, without a listing: the core's own changes).

        The listing (a stat of every file) is skipped when the directory itself has not
        changed since a listing that found every file settled (unchanged for SETTLE
        seconds), and that listing is less than FULL_EVERY old, unless ``full``: a clip
        added, removed, renamed or saved by dictaphone (always a rename into place) changes
        the directory; a file written in place by another program without any of those
        (``cp`` over an existing clip) is noticed by the next full listing."""
        return self._guard(lambda: self._sync(only, full))

    def _settled(self) -> tuple[bool, int | None]:
        """(whether the listing can be skipped, the directory's mtime now)."""
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:
            return False, None
        row = self.db.execute("SELECT value FROM meta WHERE key = 'directory'").fetchone()
        if row is None:
            return False, mtime
        try:
            then, checked, settled = (int(x) for x in str(row[0]).split(":"))
        except ValueError:
            return False, mtime
        fresh = 0 <= time.time_ns() - checked < FULL_EVERY * 1e9
        return bool(settled) and then == mtime and fresh, mtime

    def _sync(self, only, full=False) -> Changes:
        db = self.db
        digest = None
        if only is None:
            skip, dir_mtime = self._settled()
            if skip and not full:
                return Changes(self._gen())
            started = time.time_ns()
            latest = []
            now = listing(self.directory, latest)
            settled = int(dir_mtime is not None and started - max(latest[0], dir_mtime) > SETTLE * 1e9)
            digest = (_digest(now), f"{dir_mtime}:{started}:{settled}")
            row = db.execute("SELECT value FROM meta WHERE key = 'listing'").fetchone()
            if row is not None and row[0] == digest[0]:
                self._remember(digest)
                return Changes(self._gen())  # nothing changed since the last sync
            held = dict(db.execute("SELECT file, stamp FROM clips"))
        else:
            now = {}
            for audio in only:
                one = _one_stamp(self.directory, audio)
                if one is not None:
                    now[audio] = one
            marks = ",".join("?" * len(only))
            held = dict(db.execute(f"SELECT file, stamp FROM clips WHERE file IN ({marks})", only)) if only else {}
        stale = [a for a, stamp in now.items() if held.get(a) != stamp]
        gone = [a for a in held if a not in now]
        if not stale and not gone:
            if digest is not None:
                self._remember(digest)
            return Changes(self._gen())
        changes = Changes(0)
        # Read the files outside any transaction; write in short batches.
        for i in range(0, max(len(stale), 1), BATCH):
            batch = stale[i:i + BATCH]
            read = []
            for audio in batch:
                found = read_clip(self.directory, audio)
                read.append((audio, now[audio], found))
            gone_here = gone if i == 0 else []
            changes.gen = self._write(read, gone_here, changes)
        if digest is not None:
            self._remember(digest)
        return changes

    def _remember(self, digest) -> None:
        """Keep the digest of the listing the index now matches, and the directory's state
        when it was taken (both checked at the next sync)."""
        if self.db.execute("SELECT value FROM meta WHERE key = 'listing'").fetchone() != (digest[0],):
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('listing', ?)", (digest[0],))
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('directory', ?)", (digest[1],))

    def _write(self, read, gone, changes: Changes) -> int:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            gen = int(db.execute("SELECT value FROM meta WHERE key = 'gen'").fetchone()[0]) + 1
            for audio in gone:
                row = db.execute("SELECT id, name FROM clips WHERE file = ?", (audio,)).fetchone()
                if row is not None:
                    self._drop(row[0])
                    db.execute("INSERT OR REPLACE INTO removed VALUES (?, ?, ?)", (audio, row[1], gen))
                    changes.removed[audio] = row[1]
            for audio, stamp, found in read:
                row = db.execute("SELECT id, name FROM clips WHERE file = ?", (audio,)).fetchone()
                if row is not None:
                    self._drop(row[0])
                if found is None:
                    if row is not None:
                        db.execute("INSERT OR REPLACE INTO removed VALUES (?, ?, ?)", (audio, row[1], gen))
                        changes.removed[audio] = row[1]
                    continue
                clip, segments = found
                self._insert(audio, stamp, clip, segments, gen)
                db.execute("DELETE FROM removed WHERE file = ?", (audio,))
                changes.changed.append(audio)
            db.execute("UPDATE meta SET value = ? WHERE key = 'gen'", (gen,))
            db.execute("DELETE FROM removed WHERE gen < ?", (gen - 10000,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return gen

    def _drop(self, clip_id: int) -> None:
        db = self.db
        for sid, text in db.execute("SELECT id, text FROM segments WHERE clip_id = ?", (clip_id,)).fetchall():
            db.execute("INSERT INTO seg_fts (seg_fts, rowid, text) VALUES ('delete', ?, ?)", (sid, text))
        text = db.execute("SELECT text FROM clips WHERE id = ?", (clip_id,)).fetchone()[0]
        if text:  # (only what was put in may be taken out: FTS5 trusts these 'delete's)
            db.execute("INSERT INTO clip_fts (clip_fts, rowid, text) VALUES ('delete', ?, ?)", (clip_id, text))
        db.execute("DELETE FROM segments WHERE clip_id = ?", (clip_id,))
        db.execute("DELETE FROM clips WHERE id = ?", (clip_id,))

    def _insert(self, audio, stamp, clip, segments, gen) -> None:
        db = self.db
        text = " ".join(s.text for s in segments)
        cur = db.execute(
            "INSERT INTO clips (file, name, created, created_ts, duration, format, samplerate, channels,"
            " size, device, dropped_frames, markers, gaps, preview, has_transcript, missing, text, stamp, gen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (audio, clip.name, clip.created or "", _timestamp(clip.created), clip.duration, clip.format,
             clip.samplerate, clip.channels, clip.size, clip.device, clip.dropped_frames,
             json.dumps(clip.markers, ensure_ascii=False), json.dumps(clip.gaps, ensure_ascii=False),
             clip.transcript, int(clip.transcript is not None), int(clip.missing), text, stamp, gen))
        clip_id = cur.lastrowid
        if text:
            db.execute("INSERT INTO clip_fts (rowid, text) VALUES (?, ?)", (clip_id, text))
        for seq, s in enumerate(segments):
            cur = db.execute(
                'INSERT INTO segments (clip_id, seq, start, "end", speaker, text, words) VALUES (?, ?, ?, ?, ?, ?, ?)',
                (clip_id, seq, s.start, s.end, s.speaker, s.text,
                 None if s.words is None else json.dumps(s.words)))
            db.execute("INSERT INTO seg_fts (rowid, text) VALUES (?, ?)", (cur.lastrowid, s.text))

    def changes_since(self, gen: int) -> Changes:
        """Which clips changed (audio file names) and went away since change ``gen``."""
        def read():
            db = self.db
            now = self._gen()
            changed = [r[0] for r in db.execute("SELECT file FROM clips WHERE gen > ?", (gen,))]
            removed = dict(db.execute("SELECT file, name FROM removed WHERE gen > ?", (gen,)))
            return Changes(now, changed, {f: n for f, n in removed.items() if f not in changed})

        return self._guard(read)

    # -- reading ---------------------------------------------------------------------------

    _COLUMNS = ("file, name, created, duration, format, samplerate, channels, size, device,"
                " dropped_frames, markers, gaps, preview, missing, stamp,"
                # who speaks in its transcript, in the order they are first heard
                " (SELECT group_concat(speaker, char(31)) FROM (SELECT speaker FROM segments s"
                " WHERE s.clip_id = clips.id AND s.speaker IS NOT NULL GROUP BY speaker"
                " ORDER BY min(s.seq)))")

    def _clip(self, row):
        """A ``clips.Clip`` from a row; it also carries ``stamp`` (its files' sizes and
        mtimes: audio, metadata, transcript, markers; see :func:`listing`)."""
        from .clips import Clip

        (file, name, created, duration, fmt, rate, channels, size, device, dropped, markers,
         gaps, preview, missing, stamp, speakers) = row
        clip = Clip(name=name, path=os.path.join(self.directory, file), created=created or None,
                    duration=duration, format=fmt, samplerate=rate, channels=channels, size=size or 0,
                    device=device, dropped_frames=dropped,
                    markers=json.loads(markers) if markers != "[]" else [],
                    gaps=json.loads(gaps) if gaps != "[]" else [],
                    transcript=preview, missing=bool(missing),
                    speakers=speakers.split("\x1f") if speakers else [])
        clip.stamp = stamp
        return clip

    def clips(self, limit: int | None = None, before: tuple[str, str] | None = None,
              sync: bool = True) -> list:
        """Clips newest first (as ``clips.clips()``): at most ``limit``, those after the
        (created, name) ``before`` (the last one of the previous page)."""
        if sync:
            self.sync()

        def read():
            sql = f"SELECT {self._COLUMNS} FROM clips"
            args: list = []
            if before is not None:
                sql += " WHERE (created, name) < (?, ?)"
                args += [before[0] or "", before[1]]
            sql += " ORDER BY created DESC, name DESC"
            if limit is not None:
                sql += " LIMIT ?"
                args.append(limit)
            return [self._clip(r) for r in self.db.execute(sql, args)]

        return self._guard(read)

    def clip_rows(self, files: list[str]) -> list:
        """The clips whose audio file names are ``files`` (those still in the index)."""
        def read():
            out = []
            for i in range(0, len(files), 500):
                part = files[i:i + 500]
                marks = ",".join("?" * len(part))
                out += [self._clip(r) for r in self.db.execute(
                    f"SELECT {self._COLUMNS} FROM clips WHERE file IN ({marks})", part)]
            return out

        return self._guard(read)

    def find(self, name: str, sync: bool = True):
        """The clip called ``name``, or None."""
        if sync:
            self.sync()
        return self._guard(lambda: next(
            (self._clip(r) for r in self.db.execute(
                f"SELECT {self._COLUMNS} FROM clips WHERE name = ? ORDER BY missing, file", (name,))), None))

    def count(self, sync: bool = True) -> int:
        if sync:
            self.sync()
        return self._guard(lambda: self.db.execute("SELECT count(*) FROM clips").fetchone()[0])

    def stats(self) -> dict:
        """What the index holds: clips, transcribed clips, segments, its file and size."""
        def read():
            db = self.db
            size = 0
            if self.on_disk:
                for suffix in ("", "-wal"):
                    try:
                        size += os.path.getsize(self.path + suffix)
                    except OSError:
                        pass
            return {"clips": db.execute("SELECT count(*) FROM clips").fetchone()[0],
                    "transcribed": db.execute("SELECT count(*) FROM clips WHERE has_transcript").fetchone()[0],
                    "segments": db.execute("SELECT count(*) FROM segments").fetchone()[0],
                    "path": self.path, "on_disk": self.on_disk, "bytes": size, "gen": self._gen(),
                    "warning": self.warning}

        return self._guard(read)

    def segments(self, name: str) -> list[Segment]:
        """The indexed transcript segments of the clip called ``name`` (with speakers)."""
        def read():
            rows = self.db.execute(
                'SELECT s.start, s."end", s.text, s.speaker, s.words FROM segments s JOIN clips c'
                ' ON c.id = s.clip_id WHERE c.name = ? ORDER BY s.seq', (name,))
            return [Segment(a, b, t, sp, json.loads(w) if w else None) for a, b, t, sp, w in rows]

        return self._guard(read)

    # -- search ----------------------------------------------------------------------------

    def search(self, query: str, since: float | None = None, until: float | None = None,
               clips: list[str] | None = None, speaker: str | None = None,
               limit: int | None = None, offset: int = 0, sync: bool = True) -> Results:
        """Where ``query`` is said (see :func:`parse_query`): hits ranked by relevance
        (bm25), then newest clip first, then in the order they are said. ``since`` and
        ``until`` are seconds since the epoch (a clip's creation time); ``clips`` clip names;
        ``speaker`` a speaker label (any case). ``limit``/``offset`` page the hits;
        :attr:`Results.total` counts them all."""
        terms = parse_query(query)
        match = " ".join(t.fts for t in terms)
        if sync:
            self.sync()
        return self._guard(lambda: self._search(terms, match, since, until, clips, speaker, limit, offset))

    def _search(self, terms, match, since, until, clips, speaker, limit, offset) -> Results:
        import sqlite3

        where, args = [], []
        if since is not None:
            where.append("c.created_ts >= ?")
            args.append(since)
        if until is not None:
            where.append("c.created_ts < ?")
            args.append(until)
        if clips:
            where.append(f"c.name IN ({','.join('?' * len(clips))})")
            args += list(clips)
        clip_where, clip_args = "".join(f" AND {w}" for w in where), list(args)
        if speaker is not None:
            where.append("s.speaker = ? COLLATE NOCASE")
            args.append(speaker)
        extra = "".join(f" AND {w}" for w in where)
        db = self.db
        segs = ("FROM seg_fts JOIN segments s ON s.id = seg_fts.rowid JOIN clips c ON c.id = s.clip_id"
                " WHERE seg_fts MATCH ?")
        try:
            # 1. Segments that hold every word (said in one breath): ranked by bm25, then
            # the newest clip, then the order they were said.
            total = db.execute(f"SELECT count(*) {segs}{extra}", [match, *args]).fetchone()[0]
            want = None if limit is None else offset + limit
            rows = []
            if want is None or want > 0:
                rows = db.execute(
                    f"SELECT s.id {segs}{extra} ORDER BY bm25(seg_fts), c.created DESC, c.name DESC, s.seq"
                    f" LIMIT ? OFFSET ?", [match, *args, -1 if limit is None else limit, offset]).fetchall()
            picked = [(r[0], match) for r in rows]
            # 2. Clips that hold every word, spread over several segments (only when no
            # speaker is asked for): after those, the segments that hold any of the words.
            if len(terms) > 1 and speaker is None:
                spread = [cid for (cid,) in db.execute(
                    "SELECT c.id FROM clip_fts JOIN clips c ON c.id = clip_fts.rowid WHERE clip_fts MATCH ?"
                    f"{clip_where} AND c.id NOT IN (SELECT s.clip_id {segs}) ORDER BY bm25(clip_fts),"
                    " c.created DESC, c.name DESC", [match, *clip_args, match])]
                if spread:
                    either = " OR ".join(t.fts for t in terms)
                    ids = []
                    for i in range(0, len(spread), 500):
                        part = spread[i:i + 500]
                        ids += db.execute(
                            f"SELECT s.id, s.clip_id, s.seq {segs} AND s.clip_id IN ({','.join('?' * len(part))})",
                            [either, *part]).fetchall()
                    order = {cid: k for k, cid in enumerate(spread)}
                    ids.sort(key=lambda r: (order[r[1]], r[2]))
                    skip = max(0, offset - total)
                    room = None if limit is None else max(0, limit - len(picked))
                    more = ids[skip:] if room is None else ids[skip:skip + room]
                    picked += [(r[0], either) for r in more]
                    total += len(ids)
            # The page of hits, read a few hundred at a time (highlight() only for these).
            found = {}
            for query in {q for _, q in picked}:
                ids = [sid for sid, q in picked if q == query]
                for i in range(0, len(ids), 500):
                    part = ids[i:i + 500]
                    for row in db.execute(
                            "SELECT seg_fts.rowid, c.name, c.file, c.created, s.start, s.\"end\", s.speaker, s.words,"
                            " highlight(seg_fts, 0, char(2), char(3)) FROM seg_fts JOIN segments s ON s.id = seg_fts.rowid"
                            f" JOIN clips c ON c.id = s.clip_id WHERE seg_fts MATCH ? AND seg_fts.rowid IN"
                            f" ({','.join('?' * len(part))})", [query, *part]):
                        found[row[0]] = row[1:]
            hits = [self._hit(found[sid]) for sid, _ in picked if sid in found]
        except sqlite3.OperationalError as e:
            if "fts5" in str(e).lower() or "syntax" in str(e).lower():
                raise QueryError(f"cannot search for {match!r}: {e}") from None
            raise
        return Results(hits, total)

    def _hit(self, r) -> Hit:
        name, file, created, start, end, speaker, words, marked = r[:8]
        text, spans = _unmark(marked)
        a, b = start, end
        times = json.loads(words) if words else None
        if times and spans:
            toks = [m.span() for m in _TOKEN.finditer(text)]
            first = _token_at(toks, spans[0][0])
            last = _token_at(toks, spans[-1][1] - 1)
            if first is not None and last is not None and last < len(times):
                a, b = times[first][0], times[last][1]
        return Hit(name=name, path=os.path.join(self.directory, file), start=a, end=b, text=text,
                   spans=spans, speaker=speaker, created=created or None,
                   segment_start=start, segment_end=end)


def _digest(now: dict[str, str]) -> str:
    return f"{len(now)}:{zlib.crc32(chr(0).join(sorted(f'{k}/{v}' for k, v in now.items())).encode('utf-8', 'surrogateescape')):08x}"


class _Stale(Exception):
    """The database was made by another version of this module."""


def _file_id(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _one_stamp(directory: str, audio: str) -> str | None:
    path = os.path.join(directory, audio)
    parts = []
    for suffix in ("", ".json", ".transcript.json", ".markers.json"):
        try:
            st = os.lstat(path + suffix)
        except OSError:
            parts.append("-")
            continue
        import stat

        parts.append(f"{st.st_size}:{st.st_mtime_ns}" if stat.S_ISREG(st.st_mode) else "-")
    if parts[0] == "-" and parts[1] == "-":
        return None
    return "|".join(parts)


def _unmark(marked: str) -> tuple[str, list[tuple[int, int]]]:
    """The text of ``highlight()`` output (matches between \\x02 and \\x03), and the spans."""
    out, spans, at, begin = [], [], 0, None
    for ch in marked:
        if ch == "\x02":
            begin = at
        elif ch == "\x03":
            if begin is not None:
                spans.append((begin, at))
            begin = None
        else:
            out.append(ch)
            at += 1
    return "".join(out), spans


def snippet(text: str, spans, width: int = 72) -> tuple[str, list[tuple[int, int]]]:
    """``text`` cut to about ``width`` characters, centred on the first of ``spans`` (the
    match), at word boundaries, with "…" where it was cut; the spans that are still inside,
    moved with it."""
    spans = [tuple(s) for s in spans]
    if len(text) <= width or not spans:
        if len(text) > width:  # nothing to centre on: the start
            cut = text[:width].rsplit(" ", 1)[0] or text[:width]
            return cut + "…", []
        return text, spans
    a, b = spans[0]
    room = max(0, width - (b - a))
    start = max(0, a - room // 2)
    end = min(len(text), max(b, start + width))
    start = max(0, min(start, end - width))
    if start > 0:
        cut = text.find(" ", start, a)
        start = cut + 1 if cut != -1 else start
    if end < len(text):
        cut = text.rfind(" ", b, end)
        end = cut if cut != -1 else end
    pre, post = ("…" if start > 0 else ""), ("…" if end < len(text) else "")
    shift = len(pre) - start
    inside = [(max(x, start) + shift, min(y, end) + shift) for x, y in spans if x < end and y > start]
    return pre + text[start:end] + post, inside


def _token_at(toks, char: int):
    for i, (a, b) in enumerate(toks):
        if a <= char < b:
            return i
        if a > char:
            return i
    return None


# -- queries ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Term:
    words: list[str]  #: the words (a phrase when more than one)
    prefix: bool = False  #: the last word is a prefix

    @property
    def fts(self) -> str:
        """As an FTS5 string: every word quoted, so nothing the user typed is an operator."""
        return '"' + " ".join(w.replace('"', '""') for w in self.words) + '"' + ("*" if self.prefix else "")


_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
#: a possessive ending: the tokenizer splits "dentist's" into "dentist" "s", so the query
#: "dentist's" would ask for that pair and miss "dentist"; without it, it finds both
_POSSESSIVE = re.compile(r"['\u2019]s$", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return [_POSSESSIVE.sub("", w) for w in _WORD.findall(text)]


def parse_query(query: str) -> list[Term]:
    """The terms of a search: words (all required, any order), ``"quoted words"`` (a
    phrase) and ``word*`` (a prefix). Anything else (punctuation, FTS operators such as
    AND, OR, NEAR, parentheses or column names) is taken as plain words or left out.
    QueryError with one line when the query cannot be read."""
    if not isinstance(query, str):
        raise QueryError("give the words to search for")
    if query.count('"') % 2:
        raise QueryError('a quote is not closed: put "quoted words" between two double quotes')
    terms: list[Term] = []
    for i, part in enumerate(query.split('"')):
        if i % 2:  # inside quotes: a phrase
            words = _words(part)
            if words:
                terms.append(Term(words))
            continue
        for chunk in part.split():
            prefix = chunk.endswith("*")
            core = chunk.rstrip("*")
            if "*" in core:
                raise QueryError(f"{chunk!r}: a * goes at the end of a word, as in dent*")
            words = _words(core)
            if prefix and not words:
                raise QueryError("a * goes at the end of a word, as in dent*")
            if prefix and len(words) > 1:  # "don't*" -> don t*
                terms.append(Term(words, prefix=True))
                continue
            for k, w in enumerate(words):
                terms.append(Term([w], prefix=prefix and k == len(words) - 1))
    if not terms:
        raise QueryError("nothing to search for: give a word")
    return terms


def parse_when(text: str, end: bool = False) -> float:
    """A time for --since/--until: a date (2026-11-24), a date and time (2026-11-24 14:30,
    ISO 8601), 'today', 'yesterday', or an age (3d, 2w, 12h, 30m ago). With ``end``, a
    bare date means the end of that day. Seconds since the epoch; InvalidArgumentError."""
    value = text.strip().lower()
    now = datetime.datetime.now().astimezone()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    day = datetime.timedelta(days=1)
    if value in ("today", "yesterday"):
        start = midnight - (day if value == "yesterday" else datetime.timedelta(0))
        return (start + (day if end else datetime.timedelta(0))).timestamp()
    m = re.fullmatch(r"([0-9]+)\s*(m|min|h|d|w)(?:\s+ago)?", value)
    if m:
        unit = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[m.group(2)]
        return now.timestamp() - int(m.group(1)) * unit
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            start = datetime.datetime.fromisoformat(value).astimezone()
            return (start + (day if end else datetime.timedelta(0))).timestamp()
        when = datetime.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise InvalidArgumentError(
            f"{text!r} is not a time (try 2026-11-24, '2026-11-24 14:30', today, yesterday, 3d or 2w)") from None
    if when.tzinfo is None:
        when = when.astimezone()
    return when.timestamp()


# -- the process's index, and the core's hook -----------------------------------------------

_open_lock = threading.Lock()
_indexes: dict[str, Index] = {}


def open_index(directory: str | None = None) -> Index:
    """The index of ``directory`` (default: the clip directory), one per process."""
    from .clips import clip_dir

    directory = os.path.abspath(directory or clip_dir())
    with _open_lock:
        index = _indexes.get(directory)
        if index is None or index.db is None:
            index = _indexes[directory] = Index(directory)
        elif not os.path.isdir(directory) or (index.warning is None and index.on_disk
                                              and not os.path.exists(index.path)):
            index.close()  # the directory or the database was removed meanwhile
            index = _indexes[directory] = Index(directory)
        return index


def note_change(path: str) -> None:
    """The core changed the clip whose audio is ``path`` (recorded, transcribed, renamed,
    deleted): update the index now, if there is one on disk. Never fails the change itself:
    the next sync catches up with whatever this could not do."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isfile(os.path.join(directory, FILENAME)):
        return  # no index yet: the first reader builds it
    audio, _ = _owner(os.path.basename(path))
    if audio is None:
        return
    try:
        index = open_index(directory)
        if index.on_disk:
            index.sync(only=[audio])
    except (DictaphoneError, OSError, Exception):  # noqa: BLE001 - see above
        pass




from . import changes as _changes  # noqa: E402

_changes.listen(note_change)
