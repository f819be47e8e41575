"""The clip library: named recordings, list, show, play, rename, delete; devices, doctor."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

import audiolab
from cliutil import run
from dictaphone import clips
from dictaphone.library.clips import ClipExistsError, ClipNotFoundError, check_name
from dictaphone.errors import InvalidArgumentError

HOSTILE = ["../escape", "a/b", "..", ".", ".hidden", "a\\b", "tab\there", "nl\nname",
           "bell\x07", "", "   ", " lead", "x" * 300, "rtl\u202eevil", "nul\x00byte"]


@pytest.fixture
def library(tmp_path, monkeypatch):
    home = tmp_path / "library"
    monkeypatch.setenv("DICTAPHONE_HOME", str(home))
    return home


def add_clip(library, name, seconds=1.0, freq=440.0):
    library.mkdir(exist_ok=True)
    path = library / f"{name}.wav"
    audiolab.make_tone(path, seconds, freq)
    return path


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(InvalidArgumentError):
        check_name(name)


@pytest.mark.parametrize("name", ["memo", "Shopping list", "réunion 2026-11-24", "idée #3 (draft)", "日本語"])
def test_ordinary_display_names_are_accepted(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "nl\nname"])
def test_record_with_a_hostile_name_fails_cleanly_and_writes_nothing(library, tmp_path, name):
    src = audiolab.make_tone(tmp_path / "in.wav", 0.5, 440)
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    r = run("record", "--input", str(src), "--name", name, env=env, cwd=tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    outside = sorted(p.name for p in tmp_path.iterdir())
    assert outside == ["in.wav"] + (["library"] if library.exists() else [])
    assert not library.exists() or not any(library.iterdir())


def test_record_with_a_name_keeps_the_clip_and_its_metadata(library, tmp_path):
    src = audiolab.make_tone(tmp_path / "in.wav", 1.5, 440, channels=2)
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    r = run("record", "--input", str(src), "--name", "Shopping list", "-q", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    meta = json.loads((library / "Shopping list.wav.json").read_text())
    assert meta["name"] == "Shopping list"
    assert meta["duration"] == pytest.approx(1.5)
    assert (meta["format"], meta["samplerate"], meta["channels"]) == ("wav", 48000, 2)
    assert meta["size"] == (library / "Shopping list.wav").stat().st_size
    assert meta["dropped_frames"] == 0 and meta["device"] == "in.wav" and meta["created"]
    again = run("record", "--input", str(src), "--name", "Shopping list", env=env, cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr


def test_list_json_gives_the_documented_fields_newest_first(library):
    add_clip(library, "older")
    os.utime(library / "older.wav", (1_000_000_000, 1_000_000_000))
    add_clip(library, "newer", seconds=2.0)
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    r = run("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)
    assert [i["name"] for i in items] == ["newer", "older"]
    for key in ("name", "path", "duration", "created", "format", "size"):
        assert key in items[0]
    assert items[0]["duration"] == pytest.approx(2.0)
    assert items[0]["format"] == "wav"
    assert items[0]["path"] == str(library / "newer.wav")


def test_list_lines_are_aligned_and_give_the_transcript_what_is_left(library):
    from dictaphone.cli.text import ClipLines

    add_clip(library, "memo one", seconds=2.0)
    found = clips.clips()
    table = ClipLines(found, width=100)
    header, line = table.header(), table.line(found[0])
    assert "memo one" in line and "0:02.0" in line and "wav 48 kHz mono" in line
    assert header.split()[:3] == ["name", "date", "duration"]
    assert line.index("0:02.0") + len("0:02.0") == header.index("duration") + len("duration")
    found[0].transcript = "word " * 40
    table = ClipLines(found, width=100)
    line = table.line(found[0])
    assert len(line) <= 100 and line.endswith("…") and "transcript" in table.header()


def test_show_draws_the_waveform_in_the_given_width_with_levels_and_silences(library, tmp_path):
    from dictaphone.cli.ui import waveform_view
    from dictaphone.library.waveform import analyse

    rate = 48000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    data = np.concatenate([tone, np.zeros(2 * rate), tone])  # sound, 2 s silence, sound
    library.mkdir()
    sf.write(library / "gap.wav", data, rate, subtype="PCM_16")
    wf = analyse(str(library / "gap.wav"), 80)
    assert wf.peak_dbfs == pytest.approx(-6.02, abs=0.1)
    assert len(wf.silences) == 1
    a, b = wf.silences[0]
    assert a == pytest.approx(1.0, abs=0.06) and b == pytest.approx(3.0, abs=0.06)
    console = Console(width=80, color_system=None, record=True)
    with console.capture() as cap:
        console.print(waveform_view(wf, 80, 8))
    lines = cap.get().splitlines()
    assert "0:04.0" in lines[0] and "peak -6.0 dBFS" in lines[0]
    body = lines[1:9]
    assert all(len(l) <= 80 for l in lines)
    # the silent middle half of the columns is blank in the waveform, the sound is drawn
    assert all(set(l[25:55]) <= {" "} for l in body)
    assert all("█" in l[:18] for l in body[2:6])
    assert "silent" in lines[-1] and "0:01.0" in lines[-1]


def test_show_command_uses_the_width_it_is_given(library):
    add_clip(library, "tone", seconds=1.0)
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    r = run("show", "tone", "-w", "60", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(l) for l in lines[1:]) <= 60 and "█" in r.stdout


def test_rename_moves_the_clip_and_its_metadata(library):
    add_clip(library, "draft")
    clips.write_metadata(str(library / "draft.wav"), duration=1.0, format="wav")
    renamed = clips.rename("draft", "final")
    assert renamed.path == str(library / "final.wav")
    assert not (library / "draft.wav").exists() and not (library / "draft.wav.json").exists()
    assert json.loads((library / "final.wav.json").read_text())["name"] == "final"
    add_clip(library, "other")
    with pytest.raises(ClipExistsError):
        clips.rename("final", "other")
    with pytest.raises(InvalidArgumentError):
        clips.rename("final", "../final")
    assert (library / "final.wav").exists() and (library / "other.wav").exists()


def test_renaming_a_clip_to_its_own_name_says_there_is_nothing_to_rename(library, tmp_path):
    # It used to say that a clip named CON exists already: true, but it is this one.
    add_clip(library, "CON")
    before = (library / "CON.wav").read_bytes()
    r = run("rename", "CON", "CON", env=dict(os.environ, DICTAPHONE_HOME=str(library)),
            cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "Traceback" not in r.stderr
    assert "called 'CON' already; nothing to rename" in r.stderr
    assert "exists" not in r.stderr
    assert (library / "CON.wav").read_bytes() == before


def test_delete_needs_confirmation_outside_a_terminal_and_never_leaves_the_library(library, tmp_path):
    add_clip(library, "keep")
    victim = tmp_path / "victim.wav"
    audiolab.make_tone(victim, 0.5, 440)
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    r = run("delete", "keep", env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and (library / "keep.wav").exists()
    for target in (str(victim), "../victim", str(tmp_path / "victim")):
        r = run("delete", target, "--yes", env=env)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr
    assert victim.exists()
    # a symlink in the library that points outside is not a clip
    (library / "link.wav").symlink_to(victim)
    r = run("delete", "link", "--yes", env=env)
    assert r.returncode == 2 and victim.exists()
    r = run("delete", "keep", "--yes", env=env)
    assert r.returncode == 0 and not (library / "keep.wav").exists()
    with pytest.raises(ClipNotFoundError):
        clips.find("keep")


def test_delete_asks_in_a_terminal(library, terminal):
    add_clip(library, "maybe")
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    for answer, kept in (("n", True), ("y", False)):
        t = terminal(f"{sys.executable} -m dictaphone delete maybe", env=env)
        t.wait_for("Delete 'maybe'?", timeout=15)
        t.send_keys(answer, "Enter")
        assert t.exit_status(timeout=15) == 0
        assert (library / "maybe.wav").exists() is kept


def test_play_sends_the_clip_to_the_output_device(library, pulse, speech, tmp_path):
    library.mkdir()
    (library / "speech.wav").write_bytes(speech.read_bytes())
    env = dict(pulse.env, DICTAPHONE_HOME=str(library))
    heard = tmp_path / "heard.wav"
    rec = pulse.start_recording(heard)
    try:
        r = run("play", "speech", env=env)
    finally:
        # (until the capture holds the whole clip: under load it runs behind the sink)
        pulse.stop_recording_after(rec, heard, audiolab.read_mono(speech)[0])
    assert r.returncode == 0, r.stderr
    assert "played speech.wav" in r.stderr
    assert audiolab.speech_score(speech, heard) > 0.95


def test_play_plays_a_clip_to_its_last_frame(library, pulse, tmp_path):
    # Sound up to the very end (the speech file ends in silence, which hid it): the stream
    # used to be stopped as soon as its last frame was handed over, which dropped what the
    # device and the server still held, the last 0.1 s of every clip.
    library.mkdir()
    x, rate = audiolab.read_mono(audiolab.make_noise(library / "noise.wav", 1.0, seed=3))
    env = dict(pulse.env, DICTAPHONE_HOME=str(library))
    heard = tmp_path / "heard.wav"
    rec = pulse.start_recording(heard)
    try:
        r = run("play", "noise", env=env)
    finally:
        pulse.stop_recording_after(rec, heard, x)
    assert r.returncode == 0, r.stderr
    got, _ = audiolab.read_mono(heard)
    whole, start = audiolab.normalized_xcorr(x, got)
    assert whole > 0.95, whole
    n = rate // 50  # the last 20 ms, where the whole clip puts them
    ref, tail = x[-n:], got[start + len(x) - n:start + len(x)]
    assert len(tail) == n, "the capture ended before the clip"
    match = float(np.dot(ref, tail) / (np.linalg.norm(ref) * np.linalg.norm(tail) + 1e-12))
    assert match > 0.9, f"the last 20 ms of the clip were not played ({match:.2f})"


def test_play_stops_on_q_in_a_terminal(library, pulse, terminal, tmp_path):
    add_clip(library, "long", seconds=20.0)
    env = dict(pulse.env, DICTAPHONE_HOME=str(library))
    t = terminal(f"{sys.executable} -m dictaphone play long", env=env)
    t.wait_for("q stops", timeout=15)
    t.send_keys("q")
    assert t.exit_status(timeout=10) == 0


def test_devices_json_lists_the_virtual_microphone_as_default_input(pulse):
    r = run("devices", "--json", env=pulse.env)
    assert r.returncode == 0, r.stderr
    devs = json.loads(r.stdout)
    defaults = [d for d in devs if d["default_input"]]
    assert len(defaults) == 1 and defaults[0]["inputs"] > 0
    for key in ("index", "name", "hostapi", "inputs", "outputs", "default_samplerate"):
        assert key in devs[0]


def test_doctor_passes_on_a_working_setup_and_fails_with_a_fix_when_the_library_is_unwritable(pulse, tmp_path):
    env = dict(pulse.env, DICTAPHONE_HOME=str(tmp_path / "lib"))
    r = run("doctor", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all good" in r.stdout and "delivers audio" in r.stdout
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env["DICTAPHONE_HOME"] = str(blocker / "lib")
    r = run("doctor", env=env)
    assert r.returncode == 1
    assert "FAIL" in r.stdout and "fix:" in r.stdout


def test_a_clip_whose_audio_was_removed_is_listed_as_missing_and_delete_removes_the_rest(
        library, tmp_path):
    # Its metadata used to stay for ever: `delete` said there was no such clip.
    path = add_clip(library, "gone")
    clips.write_metadata(str(path), duration=1.0, format="wav", samplerate=48000, channels=1)
    sidecars = [library / "gone.wav.json", library / "gone.wav.transcript.json",
                library / "gone.wav.markers.json"]
    sidecars[1].write_text('{"version": 1, "text": "hello", "segments": []}')
    sidecars[2].write_text('{"markers": []}')
    add_clip(library, "kept")
    path.unlink()
    env = dict(os.environ, DICTAPHONE_HOME=str(library))

    r = run("list", "--json", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    listed = {c["name"]: c for c in json.loads(r.stdout)}
    assert listed["gone"]["missing"] is True and listed["gone"]["duration"] == 1.0
    assert listed["kept"]["missing"] is False
    r = run("list", env=dict(env, COLUMNS="120"), cwd=tmp_path)
    assert r.returncode == 0 and "missing" in r.stdout.split("gone", 1)[1].splitlines()[0], r.stdout

    r = run("play", "gone", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "is missing" in r.stderr and "dictaphone delete gone" in r.stderr
    assert "Traceback" not in r.stderr

    r = run("delete", "--yes", "gone", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not any(p.exists() for p in sidecars)
    # (and the index, a hidden directory that `list` made)
    assert sorted(p.name for p in library.iterdir()) == [".dictaphone-index", "kept.wav"]
    assert [c.name for c in clips.clips()] == ["kept"]
    assert [c["name"] for c in json.loads(run("list", "--json", env=env, cwd=tmp_path).stdout)] == ["kept"]


def test_metadata_of_the_wrong_types_does_not_break_the_listing(library, tmp_path):
    path = add_clip(library, "odd")
    (library / "odd.wav.json").write_text(json.dumps(
        {"duration": "long", "samplerate": "fast", "channels": None, "markers": "x", "created": 5}))
    (library / "other.wav.json").write_text("[1, 2, 3]")  # an orphan's garbage metadata
    env = dict(os.environ, DICTAPHONE_HOME=str(library))
    for args in (["list"], ["list", "--json"]):
        r = run(*args, env=env, cwd=tmp_path)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    clip = clips.find("odd")
    assert clip.duration == pytest.approx(1.0) and clip.samplerate == 48000
    assert os.path.exists(path)
