"""Scripting a recording: --split, --timeslice with --events, and the --on-data/--on-stop
hooks (issue "Control a recording from anywhere").

Most tests record an ``--input`` file, so their results can be checked sample by sample
and need no audio server; their registry (every recorder registers itself) lives in a
private XDG_RUNTIME_DIR under tmp_path. The microphone tests use the ``pulse`` fixture's
virtual microphone. Every subprocess is bounded and every recorder is stopped in a
finalizer.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from audiolab import assert_complete_wav
from cliutil import RATE, START_TIMEOUT, read_events, run


@pytest.fixture
def env(tmp_path):
    """An environment with a private XDG_RUNTIME_DIR, so recorders register out of
    everyone's way; no PulseAudio needed (for --input recordings)."""
    return cliutil.no_device_env(tmp_path)


def read_int16(path) -> np.ndarray:
    data, rate = sf.read(os.fspath(path), dtype="int16", always_2d=True)
    assert rate == RATE
    return data


def same_file(cwd: Path, printed: str, expected: Path) -> bool:
    return (Path(cwd) / printed).resolve() == Path(expected).resolve()


# A hook that appends its DICTAPHONE_* environment (and the size of DICTAPHONE_FILE as it
# is when the hook runs) as one JSON line to the file named by its argument.
_DUMP_ENV = (
    "import json, os, sys\n"
    "e = {k: v for k, v in os.environ.items() if k.startswith('DICTAPHONE_')}\n"
    "f = e.get('DICTAPHONE_FILE')\n"
    "e['size_now'] = os.path.getsize(f) if f and os.path.exists(f) else None\n"
    "with open(sys.argv[1], 'a') as out:\n"
    "    out.write(json.dumps(e) + '\\n')\n"
)


def dump_env_hook(log: str) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(_DUMP_ENV)} {shlex.quote(log)}"


# ---------------------------------------------------------------------------------------------
# --split


@pytest.mark.parametrize("channels", [1, 2], ids=["mono", "stereo"])
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_split_pieces_are_standalone_files_that_join_into_the_input_sample_for_sample(
        tmp_path, env, fmt, channels):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 3.3, channels=channels, seed=channels)
    r = run("record", "--input", noise, "--split", "1", f"name.{fmt}", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pieces = [tmp_path / f"name-{i:03d}.{fmt}" for i in range(1, 5)]
    assert sorted(p.name for p in tmp_path.glob("name*")) == [p.name for p in pieces]
    lengths = []
    for piece in pieces:
        info = sf.info(os.fspath(piece))  # each piece opens on its own
        assert info.format == fmt.upper() and info.subtype == "PCM_16"
        assert (info.samplerate, info.channels) == (RATE, channels)
        if fmt == "wav":
            assert_complete_wav(piece, channels)
        lengths.append(len(read_int16(piece)))
    assert lengths == [48000, 48000, 48000, 14400]
    joined = np.concatenate([read_int16(p) for p in pieces])
    assert np.array_equal(joined, read_int16(noise)), "the pieces are not the input, exactly"


def test_split_of_the_microphone_gives_pieces_of_exact_length(pulse, tmp_path):
    r = run("record", "-r", RATE, "--split", "1", "-d", "3.5", "take.wav",
            env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pieces = [tmp_path / f"take-{i:03d}.wav" for i in range(1, 5)]
    assert sorted(p.name for p in tmp_path.glob("take*")) == [p.name for p in pieces]
    lengths = [assert_complete_wav(p) for p in pieces]
    assert lengths == [48000, 48000, 48000, 24000]
    assert sum(lengths) == 168000


def test_stop_of_a_split_recording_prints_every_piece_once_it_is_complete(
        pulse, tmp_path, recorders):
    rec = recorders("take.wav", "--split", "0.5")
    rec.wait_started()
    wait_for_piece = time.monotonic() + START_TIMEOUT
    while not (tmp_path / "take-003.wav").exists():  # two pieces are finished
        assert time.monotonic() < wait_for_piece, "no third piece"
        time.sleep(0.05)
    r = run("stop", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    printed = r.stdout.splitlines()
    assert len(printed) >= 3, r.stdout
    expected = [tmp_path / f"take-{i:03d}.wav" for i in range(1, len(printed) + 1)]
    assert [same_file(tmp_path, p, e) for p, e in zip(printed, expected)] == [True] * len(printed)
    lengths = [assert_complete_wav(e) for e in expected]  # complete as soon as stop returned
    assert lengths[:-1] == [24000] * (len(lengths) - 1)
    assert 0 < lengths[-1] <= 24000
    assert rec.wait() == 0, rec.stderr()
    assert sorted(p.name for p in tmp_path.glob("take*.wav")) == [e.name for e in expected]


# ---------------------------------------------------------------------------------------------
# --timeslice and --events


def test_timeslice_events_come_every_half_second_of_audio_and_add_up_to_the_file(tmp_path, env):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 3.0)
    r = run("record", "--input", noise, "--timeslice", "0.5", "-d", "2",
            "--events", "events.jsonl", "out.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out.wav"
    events = read_events(tmp_path / "events.jsonl")
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "stop", types
    assert set(types[1:-1]) == {"dataavailable"}, types
    for e in events:
        datetime.datetime.fromisoformat(e["time"])
        assert isinstance(e["duration"], (int, float))
    data = [e for e in events if e["type"] == "dataavailable"]
    full = [e for e in data if e["bytes"] > 0]
    assert [e["duration"] for e in full] == [0.5, 1.0, 1.5, 2.0]
    assert all(e["duration"] == 2.0 for e in data[len(full):]), "empty chunks only at the end"
    assert data[:len(full)] == full
    size = out.stat().st_size
    assert sum(e["bytes"] for e in data) == size
    header = full[0]["bytes"] - 24000 * 2
    assert header >= 44 and [e["bytes"] for e in full[1:]] == [24000 * 2] * 3
    offset = 0
    for e in data:  # each chunk is the region of the file that follows the last one
        assert same_file(tmp_path, e["path"], out) and e["offset"] == offset
        offset += e["bytes"]
    stop = events[-1]
    assert stop["dropped_frames"] == 0
    assert same_file(tmp_path, stop["path"], out)
    assert stop["frames"] == 96000 and stop["duration"] == 2.0
    assert assert_complete_wav(out) == 96000
    assert np.array_equal(read_int16(out), read_int16(noise)[:96000])


def test_events_to_stdout_leave_only_json_lines_there_and_hook_output_goes_to_stderr(
        tmp_path, env):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 1.2)
    r = run("record", "--input", noise, "--timeslice", "0.5",
            "--events", "-", "--on-data", "echo HOOK-SAYS-HI", "--on-stop",
            "echo HOOK-SAYS-BYE", "out.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # every line is JSON
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "stop" and "dataavailable" in types, types
    assert "HOOK-SAYS" not in r.stdout
    assert "HOOK-SAYS-HI" in r.stderr and "HOOK-SAYS-BYE" in r.stderr
    assert assert_complete_wav(tmp_path / "out.wav") == int(1.2 * RATE)


def test_events_to_stdout_are_refused_when_stdout_carries_the_audio(tmp_path, env):
    r = run("record", "--input", audiolab.make_noise(tmp_path / "n.wav", 0.2),
            "--events", "-", "-", "-f", "wav", env=env, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_event_log_shows_pause_and_resume_requested_from_another_process(
        pulse, tmp_path, recorders):
    log = tmp_path / "events.jsonl"
    rec = recorders("live.wav", "--timeslice", "0.1", "--events", os.fspath(log))
    rec.wait_for_audio()
    r = run("pause", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    time.sleep(1.0)
    r = run("resume", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    resumed = rec.wait_for_event(lambda e: e["type"] == "resume")
    rec.wait_for_event(lambda e: e["type"] == "dataavailable"
                       and e["duration"] > resumed["duration"] + 0.15)
    r = run("stop", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert rec.wait() == 0, rec.stderr()

    events = read_events(log)
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "stop", types
    assert types.count("pause") == 1 and types.count("resume") == 1, types
    assert types.index("pause") < types.index("resume")
    assert set(types) == {"start", "dataavailable", "pause", "resume", "stop"}, types
    pause, resume = events[types.index("pause")], events[types.index("resume")]
    # A second of wall time passed between them, but (almost) no recorded time.
    assert 0 <= resume["duration"] - pause["duration"] < 0.5, (pause, resume)
    data = [e for e in events if e["type"] == "dataavailable"]
    durations = [e["duration"] for e in data]
    assert durations == sorted(durations)
    for e in data[:-1]:  # every 0.1 s of recorded audio; the last chunk is cut by stop
        assert abs(e["duration"] * 10 - round(e["duration"] * 10)) < 1e-4, e
    stop = events[-1]
    assert stop["dropped_frames"] == 0
    assert same_file(tmp_path, stop["path"], rec.file)
    assert stop["frames"] == assert_complete_wav(rec.file)
    assert sum(e["bytes"] for e in data) == rec.file.stat().st_size


# ---------------------------------------------------------------------------------------------
# hooks


def test_on_data_runs_for_every_split_piece_in_order_once_it_is_complete(tmp_path, env):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 3.3)
    on_data = f"printf '%s\\n' \"$DICTAPHONE_FILE\" >> hooklog; {dump_env_hook('data.jsonl')}"
    r = run("record", "--input", noise, "--split", "1",
            "--on-data", on_data, "--on-stop", dump_env_hook("stop.jsonl"), "name.wav",
            env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "hook" not in r.stderr, r.stderr
    pieces = [tmp_path / f"name-{i:03d}.wav" for i in range(1, 5)]
    logged = (tmp_path / "hooklog").read_text().splitlines()
    assert len(logged) == 4 and all(same_file(tmp_path, a, b) for a, b in zip(logged, pieces)), logged

    calls = read_events(tmp_path / "data.jsonl")
    assert [c["DICTAPHONE_EVENT"] for c in calls] == ["dataavailable"] * 4
    assert [c["DICTAPHONE_INDEX"] for c in calls] == ["1", "2", "3", "4"]
    assert [float(c["DICTAPHONE_DURATION"]) for c in calls] == [1.0, 2.0, 3.0, 3.3]
    for call, piece in zip(calls, pieces):
        # The piece is finished when its hook runs: its size is final and announced.
        assert call["size_now"] == int(call["DICTAPHONE_SIZE"]) == piece.stat().st_size
        assert call["DICTAPHONE_OFFSET"] == "0"
        assert call["DICTAPHONE_FORMAT"] == "audio/wav"
        assert call["DICTAPHONE_SAMPLERATE"] == str(RATE) and call["DICTAPHONE_CHANNELS"] == "1"

    (stop,) = read_events(tmp_path / "stop.jsonl")
    assert stop["DICTAPHONE_EVENT"] == "stop"
    files = stop["DICTAPHONE_FILES"].split("\n")
    assert len(files) == 4 and all(same_file(tmp_path, a, b) for a, b in zip(files, pieces)), files
    assert stop["DICTAPHONE_DROPPED_FRAMES"] == "0"
    assert stop["DICTAPHONE_FRAMES"] == str(158400)
    assert same_file(tmp_path, stop["DICTAPHONE_FILE"], pieces[-1])
    assert int(stop["DICTAPHONE_SIZE"]) == sum(p.stat().st_size for p in pieces)
    assert "DICTAPHONE_ERROR" not in stop


def test_every_hook_gets_the_recording_id_and_every_event_line_carries_it(tmp_path, env):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 2.2)
    r = run("record", "--input", noise, "--split", "0.5",
            "--events", "events.jsonl", "--on-data", dump_env_hook("data.jsonl"),
            "--on-stop", dump_env_hook("stop.jsonl"), "name.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    calls = read_events(tmp_path / "data.jsonl") + read_events(tmp_path / "stop.jsonl")
    assert len(calls) == 6
    ids = [c.get("DICTAPHONE_ID") for c in calls]
    assert ids[0] and ids == [ids[0]] * len(ids), f"DICTAPHONE_ID per hook call: {ids}"
    events = read_events(tmp_path / "events.jsonl")
    assert [e.get("id") for e in events] == [ids[0]] * len(events), (
        f"id per event line: {[(e['type'], e.get('id')) for e in events]}")


@pytest.mark.parametrize("name", [
    "a;touch PWNED;b.wav",
    "$(touch PWNED).wav",
    "`touch PWNED`'\" && touch PWNED.wav",
], ids=["semicolon", "command-substitution", "backticks-and-quotes"])
def test_a_file_name_with_shell_metacharacters_cannot_inject_a_command(tmp_path, env, name):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 0.5)
    hook = 'echo "$DICTAPHONE_FILE" >> log'
    r = run("record", "--input", noise, "--on-data", hook,
            "--on-stop", hook, name, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.glob("PWNED*")) == [], "a hook ran a command taken from the file name"
    assert (tmp_path / name).exists()
    logged = (tmp_path / "log").read_text().splitlines()
    assert logged == [name, name], logged  # --on-data (the one chunk), then --on-stop


def test_a_failing_hook_is_reported_and_does_not_affect_the_recording(tmp_path, env):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 1.0)
    r = run("record", "--input", noise, "--timeslice", "0.25",
            "--on-data", "exit 3", "--on-stop", "exit 3", "out.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "hook failed" in r.stderr, r.stderr
    assert "--on-data" in r.stderr and "--on-stop" in r.stderr, r.stderr
    assert assert_complete_wav(tmp_path / "out.wav") == RATE
    assert np.array_equal(read_int16(tmp_path / "out.wav"), read_int16(noise))


def test_a_slow_hook_loses_no_audio(tmp_path, env):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 3.0, seed=7)
    r = run("record", "--input", noise, "--split", "0.5", "-d", "2",
            "--on-data", "sleep 2; printf '%s\\n' \"$DICTAPHONE_FILE\" >> slowlog",
            "name.wav", env=env, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    pieces = [tmp_path / f"name-{i:03d}.wav" for i in range(1, 5)]
    assert sorted(p.name for p in tmp_path.glob("name*")) == [p.name for p in pieces]
    assert [assert_complete_wav(p) for p in pieces] == [24000] * 4
    joined = np.concatenate([read_int16(p) for p in pieces])
    assert np.array_equal(joined, read_int16(noise)[:96000])
    logged = (tmp_path / "slowlog").read_text().splitlines()
    assert len(logged) == 4 and all(same_file(tmp_path, a, b) for a, b in zip(logged, pieces)), logged
