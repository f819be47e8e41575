"""The library's index (SQLite FTS5 in the clip directory): list and search of big
libraries, search syntax and ranking, and an index that stays right whatever happens to
the directory or to the database itself.

The libraries are made from one real clip: espeak-ng speech recorded by `dictaphone record
--input` and transcribed by `dictaphone transcribe` (Whisper tiny.en), then copied by
``librarylab`` (hard-linked audio, the real sidecars with their own names and dates and
one sentence of their own). Everything is checked through the CLI, as a user runs it.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import librarylab
import speech
import audiolab
from cliutil import CLI, no_device_env, one_error_line, run
from dictaphone.library import transcript as tr
from dictaphone.library.index import FILENAME, open_index, parse_query, snippet
from dictaphone.library.transcript import Segment, Transcript, Word


# ---------------------------------------------------------------------------------------------
# A real clip, and libraries made of it


@pytest.fixture(scope="module")
def source(tmp_path_factory, whisper_model):
    """A clip recorded and transcribed by the CLI: the speech script's four sentences."""
    root = tmp_path_factory.mktemp("index-source")
    env = no_device_env(root)
    env.update(DICTAPHONE_HOME=str(root / "library"), DICTAPHONE_MODEL=whisper_model, HF_HUB_OFFLINE="1")
    script = speech.make_script(root / "script.wav")
    r = run("record", "-q", "--input", script.path, "--name", "source", env=env)
    assert r.returncode == 0, r.stderr
    r = run("transcribe", "source", env=env)
    assert r.returncode == 0, r.stderr
    path = root / "library" / "source.wav"
    assert (root / "library" / "source.wav.transcript.json").is_file()
    return path


def library_env(tmp_path, home) -> dict:
    env = no_device_env(tmp_path)
    env["DICTAPHONE_HOME"] = str(home)
    return env


def names_listed(env) -> list[str]:
    r = run("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return [c["name"] for c in json.loads(r.stdout)]


def search_json(env, *args) -> list[dict]:
    r = run("search", *args, "--json", env=env)
    assert r.returncode in (0, 1), r.stderr
    assert "Traceback" not in r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def big(tmp_path_factory, source):
    """2,000 clips made from the real one (each with a note number and a topic)."""
    home = tmp_path_factory.mktemp("index-2000") / "library"
    librarylab.build(home, source, 2000)
    return home


@pytest.mark.parametrize("n", [100, 2000, 10_000])
def test_a_big_library_is_listed_newest_first_and_searched_whole(tmp_path, source, n):
    home = tmp_path / "library"
    librarylab.build(home, source, n)
    env = library_env(tmp_path, home)
    listed = names_listed(env)
    assert listed == [librarylab.name_of(i) for i in range(n)]  # one an hour back: newest first
    # Each clip's own word finds that clip only; the rare word one clip in a thousand.
    last = n - 1
    assert [h["name"] for h in search_json(env, librarylab.number_word(last))] == [librarylab.name_of(last)]
    rare = [h["name"] for h in search_json(env, librarylab.RARE)]
    assert rare == [librarylab.name_of(i) for i in range(n) if i % 1000 == 7]
    # A word every clip says: all of them, newest first (no cap unless asked for).
    dentist = search_json(env, "dentist")
    assert len(dentist) == n and [h["name"] for h in dentist] == listed
    r = run("search", "dentist", "--limit", "5", "--json", env=env)
    assert len(json.loads(r.stdout)) == 5
    assert f"5 of {n} hits" in r.stderr
    r = run("list", "-n", "3", env=env)
    assert r.returncode == 0 and [ln.split("  ")[0] for ln in r.stdout.splitlines()[1:]] == listed[:3]
    assert f"3 of {n} clips" in r.stderr


def test_the_index_is_a_hidden_directory_that_lists_and_counts_every_clip(tmp_path, big):
    env = library_env(tmp_path, big)
    r = run("index", "--json", env=env)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["clips"] == 2000 and info["transcribed"] == 2000 and info["on_disk"]
    assert info["path"] == str(big / FILENAME) and (big / FILENAME).is_file()
    assert info["segments"] >= 2000 * 2
    r = run("index", "--rebuild", env=env)
    assert r.returncode == 0 and "rebuilt the index of 2000 clips" in r.stderr
    assert r.stdout.startswith("2000 clips, 2000 with transcripts")


def test_list_on_a_terminal_shows_the_newest_screenful_in_a_pager(terminal, tmp_path, big):
    env = dict(library_env(tmp_path, big), PAGER="less", TERM="xterm")
    env.pop("LESS", None)
    names_listed(env)  # the index is built
    t = terminal([*CLI, "list"], env=env, width=120, height=20)
    screen = t.wait_for("memo 00017", timeout=30)
    assert screen.splitlines()[0].split()[:3] == ["name", "date", "duration"]
    assert "memo 00000" in screen and "memo 00030" not in screen  # one screenful, newest first
    t.send_keys("G")  # to the end: the oldest
    t.wait_for("memo 01999", timeout=60)
    t.send_keys("q")
    assert t.wait_exit(timeout=30) == 0


# ---------------------------------------------------------------------------------------------
# Search: what people mean


def _transcript(*segments) -> Transcript:
    """Segments as (start, text) or (start, text, speaker), with word times."""
    out = []
    for seg in segments:
        start, text, speaker = (*seg, None) if len(seg) == 2 else seg
        words = text.split()
        out.append(Segment(start, start + 0.3 * len(words), text,
                           [Word(" " + w, start + 0.3 * k, start + 0.3 * k + 0.25, 0.9, speaker)
                            for k, w in enumerate(words)], speaker))
    return Transcript(segments=out, model="test", language="en", duration=60.0)


def _add(home: Path, source: Path, name: str, created: str, transcript: Transcript | None):
    """A clip: the real audio hard-linked, its real metadata with this name and date."""
    home.mkdir(exist_ok=True)
    path = home / f"{name}.wav"
    os.link(source, path)
    meta = json.loads(Path(str(source) + ".json").read_text())
    meta.update(name=name, created=created)
    Path(str(path) + ".json").write_text(json.dumps(meta))
    if transcript is not None:
        tr.save(path, transcript)
    return path


@pytest.fixture
def notes(tmp_path, source):
    """A small library of known words: the real clip, and clips made to tell search apart."""
    home = tmp_path / "library"
    real = json.loads(Path(str(source) + ".transcript.json").read_text())
    _add(home, source, "real", "2026-11-20T09:00:00+01:00", Transcript.from_json(real))
    _add(home, source, "plans", "2026-11-21T09:00:00+01:00",
         _transcript((0.0, "We are planning the garden."), (5.0, "The dentists were late again.")))
    _add(home, source, "plan", "2026-11-22T09:00:00+01:00",
         _transcript((0.0, "A plan for the week."), (4.0, "Sink the boat in the kitchen.")))
    _add(home, source, "budget often", "2026-11-23T09:00:00+01:00",
         _transcript((0.0, "Budget budget budget."),))
    _add(home, source, "budget once", "2026-11-24T09:00:00+01:00",
         _transcript((0.0, "Then we spoke about the budget and many other things that day, for a long "
                           "time, until the evening came and everyone went home."),))
    _add(home, source, "budget twin", "2026-11-25T09:00:00+01:00",
         _transcript((0.0, "Then we spoke about the budget and many other things that day, for a long "
                           "time, until the evening came and everyone went home."),))
    _add(home, source, "interview", "2026-11-26T09:00:00+01:00",
         _transcript((0.0, "Tell me about the harvest.", "Anna"), (3.0, "The harvest was good.", "Ben"),
                     (6.0, "And the café?", "Anna"), (8.0, "Crème brûlée every day.", "Ben")))
    _add(home, source, "silent", "2026-11-27T09:00:00+01:00", None)
    return library_env(tmp_path, home)


def hits(env, *args) -> list[tuple[str, str]]:
    """(clip, matched text) of each hit, in order."""
    out = []
    for h in search_json(env, *args):
        out.append((h["name"], " ".join(h["text"][a:b] for a, b in h["spans"])))
    return out


def test_word_forms_match_both_ways(notes):
    assert ("plans", "dentists") in hits(notes, "dentist")
    assert ("real", "dentist") in hits(notes, "dentists")  # what Whisper heard in the real clip
    assert {n for n, _ in hits(notes, "planning")} == {"plans", "plan"}
    assert {n for n, _ in hits(notes, "plan")} == {"plans", "plan"}
    assert hits(notes, "CAFE") == [("interview", "café")]  # any case, accents or not
    assert hits(notes, "creme", "brulee") == [("interview", "Crème brûlée")]
    # a possessive asked for finds the word without it (it found nothing: "kitchen" "s")
    assert hits(notes, "kitchen's") == [("plan", "kitchen")] + [h for h in hits(notes, "kitchen") if h[0] != "plan"]
    assert ("plans", "dentists") in hits(notes, "dentist\u2019s")
    assert "plan" in [n for n, _ in hits(notes, '"the kitchen\'s"')]


def test_a_prefix_ends_with_a_star(notes):
    assert {n for n, _ in hits(notes, "dent*")} == {"real", "plans"}
    assert {n for n, _ in hits(notes, "plumb*")} == {"real"}
    assert hits(notes, "harv*", "--clip", "interview")[0] == ("interview", "harvest")


def test_all_words_are_required_in_any_order_and_quotes_make_a_phrase(notes):
    assert [n for n, _ in hits(notes, "morning", "dentist")] == ["real"]  # one sentence, any order
    assert hits(notes, "dentist", "zebra") == []
    assert [n for n, _ in hits(notes, '"kitchen sink"')] == ["real"]
    assert "plan" in [n for n, _ in hits(notes, "sink", "kitchen")]  # both words, not a phrase
    assert "plan" not in [n for n, _ in hits(notes, '"kitchen sink"')]
    assert [n for n, _ in hits(notes, "kitchen sink")] == ["real"]  # one quoted shell argument: a phrase
    # Words said in different sentences of one clip: the clip is found, at each of them.
    spread = hits(notes, "garden", "dentists")
    assert spread == [("plans", "garden"), ("plans", "dentists")]


def test_hits_are_ranked_by_relevance_then_newest(notes):
    ranked = [n for n, _ in hits(notes, "budget")]
    # the short sentence of nothing but the word first; equal ones newest first
    assert ranked == ["budget often", "budget twin", "budget once"]


def test_filters_by_date_clip_and_speaker(notes):
    assert {n for n, _ in hits(notes, "budget", "--since", "2026-11-24")} == {"budget once", "budget twin"}
    assert [n for n, _ in hits(notes, "budget", "--until", "2026-11-23")] == ["budget often"]
    assert [n for n, _ in hits(notes, "budget", "--since", "2026-11-24", "--until", "2026-11-24")] == ["budget once"]
    assert [n for n, _ in hits(notes, "budget", "--clip", "budget once", "--clip", "budget often")] == \
        ["budget often", "budget once"]
    ben = search_json(notes, "harvest", "--speaker", "ben")
    assert [(h["name"], h["speaker"], h["text"]) for h in ben] == [("interview", "Ben", "The harvest was good.")]
    assert search_json(notes, "harvest", "--speaker", "Carl") == []
    r = run("search", "budget", "--since", "someday", env=notes)
    assert r.returncode == 2 and "is not a time" in one_error_line(r.stderr)


def test_a_hit_is_at_the_matched_words_time(notes, source):
    real = Transcript.from_json(Path(str(source) + ".transcript.json").read_text())
    [hit] = search_json(notes, "plumber", "--clip", "real")
    words = [w for s in real.segments for w in s.words if "plumber" in w.word.lower()]
    assert hit["start"] == pytest.approx(words[0].start, abs=0.001)
    assert hit["end"] == pytest.approx(words[0].end, abs=0.001)
    [hit] = search_json(notes, "dentists", "--clip", "plans")
    assert hit["start"] == pytest.approx(5.3, abs=0.001)  # the second word of the segment at 5 s


def test_a_snippet_is_centred_on_the_match():
    text = " ".join(f"word{i}" for i in range(60)) + " dentist " + " ".join(f"more{i}" for i in range(60))
    a = text.index("dentist")
    cut, spans = snippet(text, [(a, a + 7)], width=60)
    assert cut.startswith("…") and cut.endswith("…") and len(cut) <= 62
    [(x, y)] = spans
    assert cut[x:y] == "dentist"
    assert abs(x - (len(cut) - y)) < 15  # about as much before the match as after it


def test_the_terminal_shows_the_match_highlighted_and_a_pipe_gets_plain_text(notes):
    r = run("search", "plumber", env=notes)
    assert r.returncode == 0 and "\x1b" not in r.stdout
    [line] = r.stdout.splitlines()
    assert line.startswith("real  0:") and "plumber" in line
    master, slave = pty.openpty()
    proc = subprocess.Popen([*CLI, "search", "plumber", "--no-pager"], env=dict(notes, COLUMNS="80"),
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(30)
    os.close(master)
    assert proc.returncode == 0, proc.stderr.read()
    assert b"\x1b[1;7mplumber\x1b[0m" in out, out


@pytest.mark.parametrize("query,expect", [('"kitchen sink', "quote is not closed"),
                                          ("a*b", "at the end of a word"), ("*", "at the end of a word"),
                                          ("...", "nothing to search for"), ("()", "nothing to search for")])
def test_bad_search_syntax_is_one_line(notes, query, expect):
    r = run("search", query, env=notes)
    assert r.returncode == 2 and r.stdout == ""
    assert expect in one_error_line(r.stderr) and "Traceback" not in r.stderr


@pytest.mark.parametrize("query", ["AND", "dentist OR zebra", "NEAR(dentist morning)", "text:dentist",
                                   "^dentist", "dentist -morning", "dentist + morning"])
def test_search_operators_are_plain_words_never_an_sqlite_error(notes, query):
    r = run("search", query, "--json", env=notes)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr and "fts5" not in r.stderr.lower()
    json.loads(r.stdout)
    terms = parse_query(query)
    assert all(t.fts.startswith('"') for t in terms)


def test_speakers_and_the_snippet_are_in_the_json(notes):
    [h] = search_json(notes, "café")
    assert h["speaker"] == "Anna" and h["created"].startswith("2026-11-26")
    assert set(h) >= {"name", "path", "start", "end", "text", "spans", "speaker", "created"}


# ---------------------------------------------------------------------------------------------
# Changes: the index follows the directory, whoever changes it


def test_clips_added_renamed_changed_and_deleted_by_another_process_are_seen(tmp_path, source):
    home = tmp_path / "library"
    librarylab.build(home, source, 100)
    env = library_env(tmp_path, home)
    assert len(names_listed(env)) == 100
    # added by hand (a file copied in, with no sidecar at all), renamed and removed by hand
    shutil.copy(source, home / "by hand.wav")
    assert "by hand" in names_listed(env)
    os.rename(home / "by hand.wav", home / "moved.wav")
    listed = names_listed(env)
    assert "moved" in listed and "by hand" not in listed
    os.unlink(home / "moved.wav")
    assert "moved" not in names_listed(env) and len(names_listed(env)) == 100
    # a transcript saved by another program: its words are found
    t = _transcript((0.0, "An aardvark in the garden."))
    (home / "memo 00042.wav.transcript.json").write_text(t.to_json())
    assert [h["name"] for h in search_json(env, "aardvark")] == ["memo 00042"]
    # the clip's metadata edited in place, at once (no rename: the directory does not change)
    meta = home / "memo 00042.wav.json"
    data = json.loads(meta.read_text())
    with open(meta, "r+") as f:
        f.truncate(0)
        f.write(json.dumps(dict(data, device="edited in place")))
    [clip] = [c for c in json.loads(run("list", "--json", env=env).stdout) if c["name"] == "memo 00042"]
    assert clip["device"] == "edited in place"
    # removed with the CLI: gone from list and search at once
    assert run("delete", "--yes", "memo 00042", env=env).returncode == 0
    assert search_json(env, "aardvark") == []


def test_an_in_place_change_long_after_is_seen_by_a_full_check(tmp_path, source):
    home = tmp_path / "library"
    librarylab.build(home, source, 10)
    env = library_env(tmp_path, home)
    names_listed(env)
    time.sleep(2.5)  # everything settled: the next commands need not stat every file
    names_listed(env)
    meta = home / "memo 00003.wav.json"
    data = json.loads(meta.read_text())
    with open(meta, "r+") as f:  # written in place, as `cp` over a file does
        f.truncate(0)
        f.write(json.dumps(dict(data, device="changed later")))
    r = run("index", env=env)  # always looks at every file
    assert r.returncode == 0, r.stderr
    [clip] = [c for c in json.loads(run("list", "--json", env=env).stdout) if c["name"] == "memo 00003"]
    assert clip["device"] == "changed later"


def test_the_core_updates_the_index_itself(tmp_path, source, monkeypatch):
    from dictaphone.library import clips

    home = tmp_path / "library"
    librarylab.build(home, source, 5)
    monkeypatch.setenv("DICTAPHONE_HOME", str(home))
    index = open_index(str(home))
    index.sync()
    before = index.gen()
    clips.rename("memo 00002", "renamed")
    # no listing needed: the rename told the index
    names = [c.name for c in index.clips(sync=False)]
    assert "renamed" in names and "memo 00002" not in names and index.gen() > before
    tr.save(home / "renamed.wav", _transcript((0.0, "Quokkas everywhere.")))
    assert [h.name for h in index.search("quokka", sync=False).hits] == ["renamed"]
    clips.delete("renamed")
    assert "renamed" not in [c.name for c in index.clips(sync=False)]
    changes = index.changes_since(before)
    assert "memo 00002" in changes.removed.values() and "renamed" in changes.removed.values()
    index.close()


# ---------------------------------------------------------------------------------------------
# The database: damaged, locked, shared, read-only, full


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "old schema", "a directory"])
def test_a_damaged_index_is_rebuilt_on_its_own(tmp_path, source, damage):
    home = tmp_path / "library"
    librarylab.build(home, source, 50)
    env = library_env(tmp_path, home)
    expected = names_listed(env)
    db = home / FILENAME
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if damage == "garbage":
        data = bytearray(db.read_bytes())
        data[100:4096] = os.urandom(3996)
        db.write_bytes(bytes(data))
    elif damage == "truncated":
        with open(db, "r+b") as f:
            f.truncate(db.stat().st_size // 3)
    elif damage == "empty":
        db.write_bytes(b"")
    elif damage == "old schema":
        con = sqlite3.connect(db)
        con.execute("UPDATE meta SET value = 0 WHERE key = 'schema'")
        con.commit()
        con.close()
    else:
        db.unlink()
        db.mkdir()
    r = run("list", "--json", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert [c["name"] for c in json.loads(r.stdout)] == expected
    assert [h["name"] for h in search_json(env, librarylab.number_word(7))] == ["memo 00007"]
    info = json.loads(run("index", "--json", env=env).stdout)
    if damage == "a directory":  # cannot be replaced: works from memory and says so
        assert not info["on_disk"] and info["warning"]
    else:
        assert info["on_disk"] and info["clips"] == 50
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.close()


def test_a_locked_index_is_waited_for(tmp_path, source):
    home = tmp_path / "library"
    librarylab.build(home, source, 20)
    env = library_env(tmp_path, home)
    names_listed(env)
    shutil.copy(source, home / "new one.wav")  # so the next command has something to write
    con = sqlite3.connect(home / FILENAME, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")  # another writer, in the middle of its transaction
    proc = subprocess.Popen([*CLI, "list", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    assert proc.poll() is None  # waiting, not failing, not forcing its way
    con.execute("COMMIT")
    con.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "new one" in [c["name"] for c in json.loads(out)]


def test_several_processes_at_once_keep_it_whole(tmp_path, source):
    home = tmp_path / "library"
    librarylab.build(home, source, 300)
    env = library_env(tmp_path, home)
    readers = [subprocess.Popen([*CLI, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
               for args in (["list", "--json"], ["search", "dentist", "--json"], ["index"],
                            ["list", "--json"], ["search", librarylab.RARE, "--json"])]
    librarylab.build(home, source, 100, start=300)  # while they read, another adds clips
    for p in readers:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, err
    assert len(names_listed(env)) == 400
    con = sqlite3.connect(home / FILENAME)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT count(*) FROM clips").fetchone() == (400,)
    con.close()


_mount_tmpfs = audiolab.mount_tmpfs


def test_a_read_only_library_is_listed_and_searched_and_says_why_it_is_slower(tmp_path, source):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "64m")
    try:
        home = disk / "library"
        home.mkdir()
        # copies (hard links cannot cross into the tmpfs)
        for name in librarylab.build(tmp_path / "staging", source, 30):
            for suffix in (".wav", ".wav.json", ".wav.transcript.json"):
                shutil.copy(tmp_path / "staging" / (name + suffix), home / (name + suffix))
        env = library_env(tmp_path, home)
        names_listed(env)  # an index on disk, as it was when the disk became read-only
        shutil.copy(source, home / "added last.wav")
        r = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        r = run("list", "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)) == 31 and "added last" in r.stdout
        assert "read-only" in one_error_line(r.stderr) and "warning" in r.stderr
        assert [h["name"] for h in search_json(env, librarylab.number_word(12))] == ["memo 00012"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_full_disk_still_lists_and_searches(tmp_path, source):
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "8m")
    try:
        home = disk / "library"
        home.mkdir()
        for i in range(3):
            clip = home / f"clip {i}.wav"
            shutil.copy(source, clip)
            tr.save(clip, _transcript((0.0, f"Number {librarylab.number_word(i)} here.")))
        with open(disk / "filler", "wb") as f:  # the rest of the disk
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        env = library_env(tmp_path, home)
        r = run("list", "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert sorted(c["name"] for c in json.loads(r.stdout)) == ["clip 0", "clip 1", "clip 2"]
        assert "warning" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert [h["name"] for h in search_json(env, "one")] == ["clip 1"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_clip_filter_that_names_no_clip_says_so(notes):
    """--clip with a typo said only "no match" (exit 1), as if the clip did not say it."""
    r = run("search", "budget", "--clip", "budget oftn", env=notes)
    assert r.returncode == 2 and r.stdout == ""
    line = one_error_line(r.stderr)
    assert line.startswith("dictaphone: error: no clip named 'budget oftn'; did you mean") and "'budget often'" in line
    assert [n for n, _ in hits(notes, "budget", "--clip", "budget often")] == ["budget often"]
