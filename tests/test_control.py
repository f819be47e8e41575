"""Controlling a running `dictaphone record` from other processes: stop, pause, resume,
status, the per-user registry and its clean-up (issue "Control a recording from anywhere").

Real audio: the recorder captures the private PulseAudio server's virtual microphone
(the ``pulse`` fixture) and the tests play espeak-ng speech into it. Every command is a
subprocess run as a user would run it, with ``pulse.env`` (whose private XDG_RUNTIME_DIR
isolates the registry), from ``tmp_path``. Every subprocess is bounded and every recorder
is stopped in a finalizer.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import audiolab
import cliutil
from audiolab import assert_complete_wav, speech_score
from cliutil import EXIT_TIMEOUT, RATE, registry, wait_started

COMMAND_TIMEOUT = 30  # s; a control command that takes longer is hanging

run = functools.partial(cliutil.run, timeout=COMMAND_TIMEOUT)
status_entries = functools.partial(cliutil.status_entries, timeout=COMMAND_TIMEOUT)


def assert_stopped(rec, *stop_args, env, cwd):
    """`dictaphone stop STOP_ARGS` prints rec's file, and rec exits 0 leaving a complete WAV."""
    r = run("stop", *stop_args, env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert (cwd / r.stdout.strip()).resolve() == rec.file.resolve()
    assert rec.wait() == 0, rec.stderr()
    assert_complete_wav(rec.file)


# ---------------------------------------------------------------------------------------------
# stop


def test_stop_from_another_process_returns_once_the_file_is_complete_and_holds_the_speech(
        pulse, speech, tmp_path, recorders):
    rec = recorders("take.wav")
    rec.wait_started()
    pulse.play_and_wait(speech)
    time.sleep(0.6)  # the tail of the speech travels through PulseAudio and PortAudio
    r = run("stop", env=pulse.env, cwd=tmp_path)
    # Checked at once, before the recorder has been waited for.
    frames = assert_complete_wav(rec.file)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1, r.stdout
    assert (tmp_path / r.stdout.strip()).resolve() == rec.file.resolve()
    assert rec.wait() == 0, rec.stderr()
    assert assert_complete_wav(rec.file) == frames  # nothing was written after stop returned
    assert frames > 3 * RATE
    assert speech_score(speech, rec.file) > 0.9


def test_stop_run_from_another_directory_prints_a_path_that_names_the_file(
        pulse, tmp_path, recorders):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rec = recorders("take.wav")
    rec.wait_started()
    entry = status_entries(pulse.env, elsewhere)[0]
    r = run("stop", env=pulse.env, cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert rec.wait() == 0
    printed = r.stdout.strip()
    # "from anywhere": the printed path must lead to the file from the caller's directory.
    assert (elsewhere / printed).resolve() == rec.file.resolve(), (
        f"stop printed {printed!r} from {elsewhere}; the file is {rec.file}")
    assert (elsewhere / entry["path"]).resolve() == rec.file.resolve(), (
        f"status --json gave path {entry['path']!r}; the file is {rec.file}")


def test_stop_with_nothing_recording_fails_with_one_line(pulse, tmp_path):
    r = run("stop", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "nothing is recording" in r.stderr


def test_stop_with_an_unknown_id_is_a_usage_error_and_stops_nothing(pulse, tmp_path, recorders):
    r = run("stop", "41", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    rec = recorders("keep.wav")
    rec.wait_started()
    r = run("stop", "41", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert rec.proc.poll() is None, "stop with an unknown id stopped the recording"
    assert run("stop", env=pulse.env, cwd=tmp_path).returncode == 0
    assert rec.wait() == 0


# ---------------------------------------------------------------------------------------------
# pause and resume


@pytest.mark.parametrize("speech_played", ["while paused", "after resuming"])
def test_pause_and_resume_from_another_process_leave_the_paused_time_out(
        pulse, speech, tmp_path, recorders, speech_played):
    env = pulse.env
    rec = recorders("take.wav")
    rec.wait_started()
    t_start = time.monotonic()

    def twice(command: str, state: str) -> float:
        """COMMAND, then COMMAND again (harmless), then the state is STATE; returns when
        the first COMMAND had returned."""
        r = run(command, env=env, cwd=tmp_path)
        t = time.monotonic()
        assert r.returncode == 0, r.stderr
        r = run(command, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert [e["state"] for e in status_entries(env, tmp_path)] == [state]
        return t

    t_paused = twice("pause", "paused")  # a second pause is harmless
    plain = run("status", env=env, cwd=tmp_path)
    assert plain.returncode == 0 and "paused" in plain.stdout
    if speech_played == "while paused":
        pulse.play_and_wait(speech)
        time.sleep(0.8)  # let its tail pass while still paused
    else:
        time.sleep(1.5)

    t_resumed = twice("resume", "recording")  # resume while recording is harmless
    if speech_played == "after resuming":
        pulse.play_and_wait(speech)
        time.sleep(0.6)
    else:
        time.sleep(1.0)

    r = run("stop", env=env, cwd=tmp_path)
    t_stop = time.monotonic()
    assert r.returncode == 0, r.stderr
    assert rec.wait() == 0, rec.stderr()
    frames = assert_complete_wav(rec.file)

    score = speech_score(speech, rec.file)
    if speech_played == "while paused":
        assert score < 0.5, f"speech played while paused is in the file (score {score:.2f})"
    else:
        assert score > 0.9, f"speech played after resume is missing (score {score:.2f})"
    wall, paused = t_stop - t_start, t_resumed - t_paused
    duration = frames / RATE
    assert wall - paused - 1.0 < duration < wall - paused + 1.0, (
        f"file {duration:.2f} s; wall {wall:.2f} s, of which paused {paused:.2f} s")


def test_pause_and_resume_with_nothing_recording_fail(pulse, tmp_path):
    for command in ("pause", "resume"):
        r = run(command, env=pulse.env, cwd=tmp_path)
        assert r.returncode == 1, (command, r.stderr)
        assert "nothing is recording" in r.stderr


# ---------------------------------------------------------------------------------------------
# status


def test_status_with_nothing_recording_exits_1_so_that_status_or_record_toggles(pulse, tmp_path):
    r = run("status", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "nothing is recording" in r.stderr
    r = run("status", "--json", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 1
    assert json.loads(r.stdout) == []


def test_status_lists_the_recording_with_its_state_duration_and_level(
        pulse, tmp_path, recorders):
    env = pulse.env
    tone = audiolab.make_tone(tmp_path / "tone.wav", 4.0, 440, amplitude=0.5)
    rec = recorders("take.wav")
    first = rec.wait_started()
    player = pulse.play(tone)
    try:
        deadline = time.monotonic() + 4.0
        while True:
            r = run("status", "--json", env=env, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            listing = json.loads(r.stdout)
            assert isinstance(listing, list) and len(listing) == 1
            entry = listing[0]
            # (the duration counts frames in the file, written every 0.25 s of audio: the
            # level, measured on every read, can show the tone before the duration moves)
            progressed = entry["duration"] > first["duration"]
            if (entry["peak_dbfs"] > -12 and progressed) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        audiolab.stop_process(player)
    for key in ("id", "pid", "path", "state", "duration", "peak_dbfs", "rms_dbfs", "started"):
        assert key in entry, f"status --json lacks {key}: {entry}"
    assert entry["pid"] == rec.pid
    assert entry["id"] == first["id"] and str(entry["id"]).strip()
    assert (tmp_path / entry["path"]).resolve() == rec.file.resolve()
    assert entry["state"] == "recording" and entry["started"] is True
    assert entry["duration"] > first["duration"] >= 0
    # A 0.5-amplitude tone peaks at -6 dBFS: the level is measured, not made up.
    assert -12 < entry["peak_dbfs"] <= 0.5, entry
    assert entry["rms_dbfs"] < entry["peak_dbfs"]

    r = run("status", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    assert str(rec.pid) in lines[0] and "recording" in lines[0] and "take.wav" in lines[0]
    assert lines[0].split()[0] == str(entry["id"])

    assert run("stop", env=env, cwd=tmp_path).returncode == 0
    assert rec.wait() == 0


# ---------------------------------------------------------------------------------------------
# several recordings


def test_two_recordings_at_once_need_an_id_or_all(pulse, tmp_path, recorders):
    env = pulse.env
    a = recorders("a.wav")
    b = recorders("b.wav")
    entries = wait_started(a, b)
    id_a, id_b = str(entries[a.pid]["id"]), str(entries[b.pid]["id"])
    assert id_a != id_b

    plain = run("status", env=env, cwd=tmp_path)
    assert plain.returncode == 0 and len(plain.stdout.splitlines()) == 2, plain.stdout

    r = run("stop", env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    for rec, id in ((a, id_a), (b, id_b)):
        assert id in r.stderr and rec.output in r.stderr, r.stderr
    time.sleep(0.3)
    assert a.proc.poll() is None and b.proc.poll() is None, "an ambiguous stop stopped something"
    assert len(status_entries(env, tmp_path)) == 2
    # An ID and --all say two things: refused in one line (it did the ID alone, silently).
    for args in (("stop", id_a, "--all"), ("pause", id_a, "--all"), ("mark", "--id", id_a, "--all")):
        r = run(*args, env=env, cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
        assert "give either an ID or --all, not both" in r.stderr.strip(), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert a.proc.poll() is None and b.proc.poll() is None
    assert [e["state"] for e in status_entries(env, tmp_path)] == ["recording"] * 2

    # pause and resume follow the same rule
    r = run("pause", env=env, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert [e["state"] for e in status_entries(env, tmp_path)] == ["recording"] * 2
    assert run("pause", "--all", env=env, cwd=tmp_path).returncode == 0
    assert [e["state"] for e in status_entries(env, tmp_path)] == ["paused"] * 2
    assert run("resume", id_b, env=env, cwd=tmp_path).returncode == 0
    states = {e["pid"]: e["state"] for e in status_entries(env, tmp_path)}
    assert states == {a.pid: "paused", b.pid: "recording"}
    assert run("resume", "--all", env=env, cwd=tmp_path).returncode == 0
    assert [e["state"] for e in status_entries(env, tmp_path)] == ["recording"] * 2

    assert_stopped(a, id_a, env=env, cwd=tmp_path)
    assert b.proc.poll() is None, "stop ID stopped another recording too"
    assert [e["pid"] for e in status_entries(env, tmp_path)] == [b.pid]

    c = recorders("c.wav")
    wait_started(b, c)
    r = run("stop", "--all", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    printed = {(tmp_path / line).resolve() for line in r.stdout.splitlines()}
    assert printed == {b.file.resolve(), c.file.resolve()}, r.stdout
    for rec in (b, c):
        assert assert_complete_wav(rec.file) > 0  # complete as soon as stop returned
    for rec in (b, c):
        assert rec.wait() == 0, rec.stderr()
    assert run("status", env=env, cwd=tmp_path).returncode == 1
    assert sorted(os.listdir(registry(env))) == []


def test_a_recording_can_be_stopped_by_its_pid(pulse, tmp_path, recorders):
    rec = recorders("a.wav")
    rec.wait_started()
    r = run("stop", str(rec.pid), env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert rec.wait() == 0
    assert_complete_wav(rec.file)


# ---------------------------------------------------------------------------------------------
# the registry


@pytest.mark.parametrize("command", ["status", "stop"])
def test_an_entry_left_by_a_killed_recorder_is_found_stale_and_removed(
        pulse, tmp_path, recorders, command):
    env = pulse.env
    directory = registry(env)
    dead = recorders("dead.wav")
    id = str(dead.wait_started()["id"])
    json_file, sock_file = directory / f"{id}.json", directory / f"{id}.sock"

    # Private: the directory is 0700, the socket and the JSON file are the user's only.
    st = directory.stat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.getuid()
    assert stat.S_ISSOCK(sock_file.stat().st_mode)
    assert stat.S_IMODE(sock_file.stat().st_mode) & 0o077 == 0, oct(sock_file.stat().st_mode)
    assert stat.S_IMODE(json_file.stat().st_mode) & 0o077 == 0, oct(json_file.stat().st_mode)

    dead.proc.kill()
    dead.proc.wait(timeout=EXIT_TIMEOUT)
    assert json_file.exists() and sock_file.exists(), "nothing stale to clean up: test is moot"

    r = run(command, env=env, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "nothing is recording" in r.stderr
    assert not json_file.exists() and not sock_file.exists(), os.listdir(directory)

    alive = recorders("alive.wav")
    alive.wait_started()
    r = run("pause", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_stopped(alive, env=env, cwd=tmp_path)
    assert os.listdir(directory) == [], "a recorder that ended left its entry behind"


def _reach_as_nobody(sock_path: str) -> str:
    """Try to ask the recorder's socket for its status as user `nobody` (in a forked child);
    returns "unreachable", "refused", "answered" or "error: ..."."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, try, report through the pipe, never return
        result = "error: child"
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(sock_path)
            except PermissionError:
                result = "unreachable"
            else:
                s.sendall(b'{"command": "status"}\n')
                reply = s.recv(65536)
                result = "answered" if b'"ok": true' in reply else "refused"
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            result = f"error: {type(e).__name__}: {e}"
        finally:
            os.write(w, result.encode())
            os._exit(0)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            out = f.read().decode()
    finally:
        os.waitpid(pid, 0)
    return out


@pytest.fixture
def without_xdg(pulse):
    """(shared_tmp, env): a shared temp dir like /tmp (world-writable, sticky), private to
    this test, and ``pulse.env`` without XDG_RUNTIME_DIR and with TMPDIR=shared_tmp."""
    shared_tmp = Path(tempfile.mkdtemp(prefix="dictaphone-test-tmp-"))
    try:
        os.chmod(shared_tmp, 0o1777)
        env = {k: v for k, v in pulse.env.items() if k != "XDG_RUNTIME_DIR"}
        env["TMPDIR"] = os.fspath(shared_tmp)
        yield shared_tmp, env
    finally:
        subprocess.run(["rm", "-rf", os.fspath(shared_tmp)], timeout=30)


def test_without_xdg_runtime_dir_the_registry_is_a_private_directory_in_tmp(
        pulse, without_xdg, tmp_path, recorders):
    shared_tmp, env = without_xdg
    assert env["PULSE_SERVER"].startswith("unix:")  # audio still finds the server
    rec = recorders("take.wav", env=env)
    entry = rec.wait_started()
    directory = shared_tmp / f"dictaphone-{os.getuid()}"
    st = directory.stat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.getuid()
    sock = directory / f"{entry['id']}.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0
    # Not in the XDG registry: the other environment sees nothing.
    assert run("status", env=pulse.env, cwd=tmp_path).returncode == 1
    if os.getuid() == 0:
        assert _reach_as_nobody(os.fspath(sock)) in ("unreachable", "refused")
    assert_stopped(rec, env=env, cwd=tmp_path)
    assert os.listdir(directory) == []


def test_a_fallback_directory_that_is_not_private_is_not_used(pulse, without_xdg, tmp_path):
    shared_tmp, env = without_xdg
    planted = shared_tmp / f"dictaphone-{os.getuid()}"
    planted.mkdir()
    os.chmod(planted, 0o777)  # as if someone else had prepared it for us
    noise = audiolab.make_noise(tmp_path / "noise.wav", 0.5)
    r = run("record", "--input", os.fspath(noise), "out.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # the recording itself goes on
    assert "not a private directory" in r.stderr, r.stderr
    assert os.listdir(planted) == []
    assert (tmp_path / "out.wav").exists()
    r = run("status", env=env, cwd=tmp_path)
    assert r.returncode != 0
    assert "not a private directory" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------
# garbage in the registry

#: files in the registry that no recorder wrote: valid JSON of the wrong shape, broken JSON
REGISTRY_GARBAGE = {
    "90.json": "[]", "91.json": '"a string"', "92.json": "{}", "93.json": '{"pid": "1234"}',
    "94.json": '{"pid": true}', "95.json": '{"pid": -5}', "96.json": '{"pid": 1, "started": "x"}',
    "97.json": '{"pid": 1, "path": 5}', "98.json": "{not json", "99.json": "null",
    "100.json": '{"pid": 1e400}',
}


@pytest.mark.parametrize("command", ["status", "stop", "pause", "resume"])
def test_garbage_in_the_registry_is_skipped_and_nothing_is_said_to_be_recording(
        tmp_path, command):
    env = cliutil.no_device_env(tmp_path)
    directory = registry(env)
    directory.mkdir(mode=0o700)
    for name, text in REGISTRY_GARBAGE.items():
        (directory / name).write_text(text)
    r = run(command, env=env, cwd=tmp_path)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    assert "nothing is recording" in cliutil.one_error_line(r.stderr)


def test_a_recording_among_garbage_in_the_registry_is_listed_paused_and_stopped(
        tmp_path, recorders):
    # One file of garbage used to make every status/stop/pause crash, so no recording could
    # be stopped. An --input delivered in real time is a recording without any device.
    env = cliutil.no_device_env(tmp_path)
    audiolab.make_tone(tmp_path / "long.wav", 60, 440.0)
    directory = registry(env)
    directory.mkdir(mode=0o700)
    for name, text in REGISTRY_GARBAGE.items():
        (directory / name).write_text(text)
    rec = recorders("take.wav", "--input", "long.wav", "--realtime", env=env, rate=None)
    entry = rec.wait_started()
    assert [e["pid"] for e in status_entries(env)] == [rec.pid], entry
    r = run("pause", env=env, cwd=tmp_path)
    assert r.returncode == 0 and "paused" in r.stderr, r.stderr
    assert_stopped(rec, env=env, cwd=tmp_path)
