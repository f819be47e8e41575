"""One name, one clip (issue #20, 4 and 10), driven as users do: real `dictaphone` processes
started at the same moment, the page's Record pressed three times at once, and a rename on
a real full disk (a 256 KiB tmpfs).

A name is one clip whatever its extension. It used to be checked and then created, and for
one extension only: two recordings started in the same second in two formats, or three
parallel starts with one name, made two clips with one name, and `delete NAME` removed
one of them depending on the hash seed.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import audiolab
import cliutil
from cliutil import CLI, no_device_env, one_error_line, run


@pytest.fixture
def env(tmp_path):
    return no_device_env(tmp_path)


def names(env) -> list[str]:
    r = run("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return [c["name"] for c in json.loads(r.stdout)]


def audio_files(env) -> list[str]:
    home = Path(env["DICTAPHONE_HOME"])
    return sorted(p.name for p in home.iterdir() if not p.name.startswith(".") and not p.name.endswith(".json"))


def start_together(argvs, env, cwd):
    """Start the commands at one moment (each waits on a pipe until all exist)."""
    go_r, go_w = os.pipe()
    wait = "import os,sys; os.read(int(sys.argv[1]), 1); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
    procs = [subprocess.Popen([sys.executable, "-c", wait, str(go_r), *CLI[1:], *map(str, a)],
                              env=env, cwd=cwd, pass_fds=(go_r,), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a in argvs]
    os.close(go_r)
    os.write(go_w, b"x" * len(procs))
    os.close(go_w)
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append((p.returncode, stdout, stderr))
    return out


def test_recordings_started_in_one_second_in_several_formats_get_names_of_their_own(env, speech, tmp_path):
    for _ in range(3):
        results = start_together([["record", "--input", speech, "-q", "-f", fmt]
                                  for fmt in ("wav", "flac", "ogg")], env, tmp_path)
        assert [r[0] for r in results] == [0, 0, 0], [r[2] for r in results]
    listed = names(env)
    assert len(listed) == 9 and len(set(listed)) == 9, listed
    # ... and each name is one file
    stems = [os.path.splitext(f)[0] for f in audio_files(env)]
    assert sorted(stems) == sorted(listed)


def test_a_timestamp_taken_by_another_format_is_not_reused(env, tmp_path, monkeypatch):
    monkeypatch.setenv("DICTAPHONE_HOME", env["DICTAPHONE_HOME"])
    from dictaphone.library import clips

    now = datetime.datetime(2026, 12, 4, 10, 0, 0)
    home = Path(env["DICTAPHONE_HOME"])
    home.mkdir(parents=True)
    audiolab.make_tone(home / "2026-12-04_10-00-00.wav", 0.2, 440)
    first = clips.new_clip_path(".flac", now=now)
    second = clips.new_clip_path(".ogg", now=now)  # held by this process now, not yet a file
    assert os.path.basename(first) == "2026-12-04_10-00-00-2.flac"
    assert os.path.basename(second) == "2026-12-04_10-00-00-3.ogg"
    # another process, same second: neither the file's name nor the held names
    code = ("import datetime; from dictaphone.library import clips; "
            "print(clips.new_clip_path('.mp3', now=datetime.datetime(2026, 12, 4, 10, 0, 0)))")
    r = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(Path(__file__).parent.parent)),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.basename(r.stdout.strip()) == "2026-12-04_10-00-00-4.mp3"
    clips.release_claims()
    assert not [p for p in home.iterdir() if p.name.endswith(".claim")]


def test_parallel_recordings_under_one_name_make_one_clip(env, speech, tmp_path):
    results = start_together([["record", "--input", speech, "-q", "--name", "same", "-f", fmt]
                              for fmt in ("wav", "flac", "ogg")], env, tmp_path)
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2, 2], [r[2] for r in results]
    for code, _, stderr in results:
        if code == 2:
            line = one_error_line(stderr)
            assert "'same'" in line and ("exists already" in line or "being made" in line), line
    assert names(env) == ["same"]
    assert len([f for f in audio_files(env) if f.startswith("same.")]) == 1


def test_a_name_held_by_a_killed_recorder_is_free_again(env, speech, tmp_path):
    # A recorder killed before its file existed leaves its claim unlocked: not a clip, and
    # the next recording under that name is made.
    home = Path(env["DICTAPHONE_HOME"])
    home.mkdir(parents=True)
    (home / ".stale.claim").write_text("999999\n")
    r = run("record", "--input", speech, "-q", "--name", "stale", env=env)
    assert r.returncode == 0, r.stderr
    assert names(env) == ["stale"]
    assert not (home / ".stale.claim").exists()


def test_two_renames_to_one_name_leave_one_clip_with_it(env, speech, tmp_path):
    for name in ("a", "b"):
        assert run("record", "--input", speech, "-q", "--name", name, "-f",
                   "wav" if name == "a" else "flac", env=env).returncode == 0
    for _ in range(3):
        results = start_together([["rename", "a", "x"], ["rename", "b", "x"]], env, tmp_path)
        codes = sorted(r[0] for r in results)
        assert codes == [0, 2], [r[2] for r in results]
        listed = names(env)
        assert "x" in listed and len(listed) == 2 and len(set(listed)) == 2, listed
        back = "a" if "a" not in listed else "b"
        assert run("rename", "x", back, env=env).returncode == 0
        assert sorted(names(env)) == ["a", "b"]


def test_find_picks_the_same_file_whatever_the_hash_seed(env, tmp_path):
    # Two files with one name (copied in by hand): every run of `dictaphone` means the same one.
    home = Path(env["DICTAPHONE_HOME"])
    home.mkdir(parents=True)
    for ext in (".wav", ".flac"):
        audiolab.make_tone(home / f"twin{ext}", 0.2, 440)
    seen = set()
    for seed in ("0", "1", "2", "3", "4", "5"):
        r = run("show", "twin", env=dict(env, PYTHONHASHSEED=seed, COLUMNS="80"))
        assert r.returncode == 0, r.stderr
        code = "from dictaphone.library import clips; print(clips.find('twin').path)"
        p = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONHASHSEED=seed,
                           PYTHONPATH=str(Path(__file__).parent.parent)), capture_output=True, text=True)
        seen.add(p.stdout.strip())
    assert len(seen) == 1, seen


def test_a_name_that_is_not_text_is_one_line_and_exit_2(env, speech, tmp_path):
    # bytes that are not UTF-8 on the command line arrive as lone surrogates
    argv = [*CLI, "record", "--input", str(speech), "-q", "--name", b"a\xed\xa0\x80b"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "not valid text" in one_error_line(r.stderr)
    assert not Path(env["DICTAPHONE_HOME"]).exists() or audio_files(env) == []


# ---------------------------------------------------------------------------------------------
# rename on a full disk: all or nothing




def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; return the filler."""
    filler = directory / ".filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError:
                    break
    return filler


def snapshot(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != ".filler"}


def test_rename_on_a_full_disk_changes_nothing_and_says_so(small_disk, tmp_path, speech):
    env = dict(no_device_env(tmp_path), DICTAPHONE_HOME=str(small_disk / "library"))
    src = tmp_path / "short.wav"
    audiolab.make_tone(src, 0.5, 440, rate=16000)
    r = run("record", "--input", src, "-q", "--name", "memo", env=env)
    assert r.returncode == 0, r.stderr
    library = small_disk / "library"
    (library / "memo.wav.transcript.json").write_text(json.dumps(
        {"version": 1, "model": "m", "language": "en", "duration": 0.5, "text": "hello",
         "segments": [{"start": 0, "end": 0.5, "text": "hello", "words": []}]}))
    (library / "memo.wav.markers.json").write_text(json.dumps({"markers": [{"number": 1, "time": 0.1, "label": "x"}]}))
    before = snapshot(library)
    filler = fill(small_disk)
    try:
        r = run("rename", "memo", "groceries", env=env)
        assert r.returncode == 1, (r.stdout, r.stderr)
        line = one_error_line(r.stderr)
        assert "disk full" in line and "nothing was changed" in line, line
        assert snapshot(library) == before  # the same files, byte for byte; no new name
        assert json.loads((library / "memo.wav.json").read_text())["name"] == "memo"
    finally:
        filler.unlink()
    r = run("rename", "memo", "groceries", env=env)
    assert r.returncode == 0, r.stderr
    after = sorted(p.name for p in library.iterdir())
    assert after == ["groceries.wav", "groceries.wav.json", "groceries.wav.markers.json",
                     "groceries.wav.transcript.json"]
    assert json.loads((library / "groceries.wav.json").read_text())["name"] == "groceries"
    assert (library / "groceries.wav").read_bytes() == before["memo.wav"]
