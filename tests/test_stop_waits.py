"""Nothing a recording opens or runs can make it deaf to a stop (issue #20, items 6 and 7).

- A FIFO as ``--events`` or as OUTPUT, with no reader: open() would wait in the kernel for
  ever and Python retries it after every signal. The wait is non-blocking now: SIGINT or
  SIGTERM ends it with exit 130 and nothing made. A reader that goes away or stops reading
  ends the event log (a warning, exit 1 at the end), never the recording.
- Hooks: a stop signal ends the running hook (its whole process group) and drops the
  queued ones, said in one line and in ``--events`` (``hooksdropped``); ``--on-stop`` still
  runs, once; a hook that never ends (one writing to a FIFO nobody reads) is ended by the
  next stop signal. A recording that ends by itself still runs every queued hook.

Every recording reads an ``--input`` file (no audio server needed), in real time where a
test needs it to last; every subprocess is bounded and stopped in a finalizer.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import audiolab
import cliutil
from audiolab import assert_complete_wav
from cliutil import RATE, read_events


@pytest.fixture
def env(tmp_path):
    return cliutil.no_device_env(tmp_path)


@pytest.fixture
def noise(tmp_path):
    return audiolab.make_noise(tmp_path / "noise.wav", 6.0, amplitude=0.2)


def wait_until(predicate, timeout: float = 20.0, what: str = "a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def stderr_lines(rec) -> list[str]:
    return [line for line in rec.stderr().splitlines() if line.strip()]


def is_fifo(path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


# ---------------------------------------------------------------------------------------------
# FIFOs with no reader


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_events_fifo_with_no_reader_is_left_at_a_stop_signal_with_nothing_made(
        recorders, tmp_path, env, noise, sig):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    rec = recorders("out.wav", "--input", noise, "--realtime", "--events", fifo.name,
                    env=env, cwd=tmp_path)
    # It says what it waits for (once), and waits.
    wait_until(lambda: "waiting for a reader of the FIFO" in rec.stderr(), what="the waiting line")
    time.sleep(0.3)
    rec.check_alive("the stop signal")
    assert rec.stop(sig, timeout=5) == 130
    lines = stderr_lines(rec)
    assert len(lines) == 2 and "Traceback" not in rec.stderr(), lines
    assert lines[0] == (f"dictaphone: waiting for a reader of the FIFO {fifo.name} (--events); "
                        f"Ctrl-C or SIGTERM ends the wait")
    assert lines[1] == (f"dictaphone: stopped by {sig.name} before the recording began; "
                        f"nothing was recorded and no file was written")
    assert not (tmp_path / "out.wav").exists()
    assert is_fifo(fifo)  # left as it was
    assert {p.name for p in tmp_path.iterdir()} - {"clips", "runtime"} == {"events.fifo",
                                                                          "noise.wav"}


def test_an_events_fifo_for_a_library_clip_leaves_no_clip_at_a_stop(recorders, tmp_path, env,
                                                                      noise):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    rec = recorders("--realtime", "--input", noise, "--events", fifo.name, "--name", "fifo clip",
                    env=env, cwd=tmp_path)
    wait_until(lambda: "waiting for a reader" in rec.stderr(), what="the waiting line")
    assert rec.stop(signal.SIGTERM, timeout=5) == 130
    clips = tmp_path / "clips"
    assert not clips.exists() or sorted(p.name for p in clips.iterdir()) == []


def test_an_output_fifo_with_no_reader_is_left_at_a_stop_signal(recorders, tmp_path, env, noise):
    fifo = tmp_path / "out.wav"
    os.mkfifo(fifo)
    rec = recorders("out.wav", "--force", "--input", noise, "--realtime", env=env, cwd=tmp_path)
    time.sleep(1.5)  # the interpreter starts, the --input opens, and the open waits
    rec.check_alive("the stop signal")
    assert rec.stop(signal.SIGTERM, timeout=5) == 130
    line = cliutil.one_error_line(rec.stderr())
    assert line == ("dictaphone: stopped by SIGTERM before the recording began; "
                    "nothing was recorded and no file was written")
    assert is_fifo(fifo)


def test_an_events_fifo_whose_reader_comes_later_gets_every_event(recorders, tmp_path, env,
                                                                   noise):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    audiolab.make_noise(tmp_path / "short.wav", 1.0)
    rec = recorders("out.wav", "--input", "short.wav", "--timeslice", "0.25", "--events",
                    fifo.name, env=env, cwd=tmp_path)
    wait_until(lambda: "waiting for a reader" in rec.stderr(), what="the waiting line")
    with open(fifo, encoding="utf-8") as reader:
        lines = reader.read().splitlines()
    assert rec.wait() == 0, rec.stderr()
    events = [json.loads(line) for line in lines]
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "stop" and len(types) >= 6, types
    assert set(types[1:-1]) == {"dataavailable"}, types
    chunks = sum(e["bytes"] for e in events if e["type"] == "dataavailable")
    assert chunks == os.path.getsize(tmp_path / "out.wav")
    assert assert_complete_wav(tmp_path / "out.wav") == RATE


def test_an_events_reader_that_goes_away_ends_the_log_and_the_recording_goes_on(
        recorders, tmp_path, env, noise):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    rec = recorders("out.wav", "--input", noise, "--realtime", "--timeslice", "0.5",
                    "--events", fifo.name, env=env, cwd=tmp_path, exit_timeout=30)
    with open(fifo, encoding="utf-8") as reader:  # reads two lines, then goes away
        first = [json.loads(reader.readline()) for _ in range(2)]
    assert [e["type"] for e in first] == ["start", "dataavailable"]
    assert rec.wait() == 1
    lines = stderr_lines(rec)
    assert lines[0] == ("dictaphone: warning: cannot write the event log any more: its reader "
                        "went away (the FIFO was closed)"), lines
    assert lines[1].startswith("Saved out.wav: 0:06.0 (288000 frames)"), lines
    assert lines[2] == (f"dictaphone: error: the event log {fifo.name} is incomplete (it could "
                        f"not be written); the recording itself is complete"), lines
    assert len(lines) == 3 and "Traceback" not in rec.stderr()
    assert assert_complete_wav(tmp_path / "out.wav") == 6 * RATE


def test_an_events_reader_that_stops_reading_cannot_hang_the_recording(tmp_path, env, noise):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    # A reader that opens the FIFO and never reads: the pipe (64 KiB) fills after a few
    # hundred lines; 600 chunks of 10 ms make about 110 kB of lines.
    holder = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        began = time.monotonic()
        r = cliutil.run("record", "--input", noise, "--timeslice", "0.01", "--events", fifo.name,
                        "out.wav", env=env, cwd=tmp_path, timeout=40)
        took = time.monotonic() - began
    finally:
        os.close(holder)
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[0] == ("dictaphone: warning: cannot write the event log any more: its reader "
                        "has not read for 5 s (the FIFO is full)"), lines
    assert lines[-1].startswith(f"dictaphone: error: the event log {fifo.name} is incomplete")
    assert assert_complete_wav(tmp_path / "out.wav") == 6 * RATE
    assert took < 25, took  # the 5 s stall bound and the start-up, not a hang


# ---------------------------------------------------------------------------------------------
# hooks and stop signals

def _hook_counter(log) -> str:
    """A shell command that appends its event and (for data) the chunk's offset to ``log``."""
    return f'echo "$DICTAPHONE_EVENT" >> {log}'


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_running_hook_drops_the_queue_and_runs_on_stop_once(
        recorders, tmp_path, env, noise, sig):
    runs = tmp_path / "runs.log"
    # each data hook: a shell that starts `sleep` (a child it waits for), then logs
    on_data = f'echo started >> {runs}; sleep 5; echo finished >> {runs}'
    rec = recorders("out.wav", "--input", noise, "--realtime", "--timeslice", "0.5",
                    "--events", "ev.jsonl", "--on-data", on_data,
                    "--on-stop", _hook_counter(runs), env=env, cwd=tmp_path, exit_timeout=15)
    rec.wait_for_event(lambda e: e["type"] == "dataavailable" and e["duration"] >= 2.0)
    wait_until(lambda: runs.exists() and "started" in runs.read_text(), what="the first hook")
    rec.check_alive("the stop signal")
    sent = time.monotonic()
    rec.proc.send_signal(sig)
    status = rec.wait(timeout=15)
    took = time.monotonic() - sent
    assert status == 0, rec.stderr()
    # Before: 23 s here (every queued `sleep 5` ran after the stop); now the running one is
    # ended (SIGTERM to its group) and the queue dropped: well under one hook's 5 s.
    assert took < 4.5, (took, rec.stderr())  # ("does not wait for a hook": under its 5 s)
    events = read_events(tmp_path / "ev.jsonl")
    chunks = [e for e in events if e["type"] == "dataavailable" and e["bytes"]]  # (an empty
    dropped = events[-1]                                          # last chunk runs no hook)
    assert dropped["type"] == "hooksdropped" and dropped["reason"] == sig.name, events[-3:]
    assert [e["type"] for e in events[-3:-1]] == ["dataavailable", "stop"]
    started = runs.read_text().split().count("started")
    assert "finished" not in runs.read_text()  # the running one was ended, not waited for
    assert runs.read_text().split().count("stop") == 1  # --on-stop ran, once
    assert dropped["count"] == len(chunks) - started >= 2, (dropped, len(chunks), started)
    assert dropped["hooks"] == {"--on-data": dropped["count"]}
    lines = stderr_lines(rec)
    assert lines[-1] == (f"dictaphone: warning: stopped by {sig.name}: {dropped['count']} queued "
                         f"hooks did not run (--on-data: {dropped['count']})"), lines
    assert f"dictaphone: warning: --on-data hook was ended by the stop: {on_data}" in lines
    assert "Traceback" not in rec.stderr()
    assert assert_complete_wav(tmp_path / "out.wav") == events[-2]["frames"]


def test_no_process_of_an_ended_hook_is_left_holding_the_recorders_output(tmp_path, env, noise):
    """The hook's whole process group is ended: a `sleep` its shell started does not keep
    stderr open (a caller reading it to the end would wait for it)."""
    proc = subprocess.Popen([*cliutil.CLI, "record", "--input", os.fspath(noise), "--realtime",
                             "--timeslice", "0.5", "--on-data", "sleep 30; true", "out.wav"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        began = time.monotonic()
        out, err = proc.communicate(timeout=10)  # EOF on both pipes: nobody holds them
        assert time.monotonic() - began < 4.5
        assert proc.returncode == 0, err
        assert b"hook was ended by the stop: sleep 30; true" in err
    finally:
        audiolab.stop_process(proc)


def test_a_hook_that_blocks_on_a_fifo_with_no_reader_cannot_make_the_recorder_deaf(
        recorders, tmp_path, env, noise):
    fifo = tmp_path / "hook.fifo"
    os.mkfifo(fifo)
    rec = recorders("out.wav", "--input", noise, "--realtime", "--timeslice", "0.5",
                    "--on-data", f"echo chunk > {fifo}", env=env, cwd=tmp_path)
    time.sleep(2.5)
    rec.check_alive("the stop signal")
    sent = time.monotonic()
    assert rec.stop(signal.SIGINT, timeout=10) == 0, rec.stderr()
    assert time.monotonic() - sent < 5.0
    assert "queued hooks did not run (--on-data: " in rec.stderr()
    assert (tmp_path / "out.wav").exists() and is_fifo(fifo)


def test_an_on_stop_hook_that_never_ends_is_ended_by_the_next_stop_signal(
        recorders, tmp_path, env, noise):
    fifo = tmp_path / "stop.fifo"
    os.mkfifo(fifo)
    rec = recorders("out.wav", "--input", noise, "--realtime", "--on-stop", f"echo done > {fifo}",
                    env=env, cwd=tmp_path)
    time.sleep(2.0)
    rec.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "Saved out.wav" in rec.stderr(), what="the summary")
    time.sleep(1.0)
    rec.check_alive("the second signal")  # --on-stop waits for the FIFO's reader
    sent = time.monotonic()
    assert rec.stop(signal.SIGTERM, timeout=10) == 0, rec.stderr()
    assert time.monotonic() - sent < 5.0
    assert f"--on-stop hook was ended by the stop: echo done > {fifo}" in rec.stderr()
    assert "did not run" not in rec.stderr()  # nothing was queued behind it


def test_a_recording_that_ends_by_itself_runs_every_queued_hook(tmp_path, env):
    audiolab.make_noise(tmp_path / "two.wav", 2.0)
    runs = tmp_path / "runs.log"
    r = cliutil.run("record", "--input", "two.wav", "--timeslice", "0.5", "--events", "ev.jsonl",
                    "--on-data", f"sleep 0.8; {_hook_counter(runs)}",
                    "--on-stop", _hook_counter(runs), "out.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    chunks = [e for e in read_events(tmp_path / "ev.jsonl")
              if e["type"] == "dataavailable" and e["bytes"]]
    assert len(chunks) == 4
    assert runs.read_text().split() == ["dataavailable"] * 4 + ["stop"]
    assert "did not run" not in r.stderr
    # the wait (about 3.2 s of hooks after a recording of a few ms) is said once, after 2 s
    import re

    waits = re.findall(r"dictaphone: waiting for (\d+) hooks? to finish \(Ctrl-C ends (?:them|it)\)",
                       r.stderr)
    assert len(waits) == 1 and 1 <= int(waits[0]) <= 3, r.stderr


def test_a_stop_signal_while_the_queued_hooks_run_after_the_end_drops_the_rest(tmp_path, env):
    """The recording ended by itself (its whole --input, not paced) with hooks queued; a
    SIGTERM while they run ends the running one and drops the rest."""
    audiolab.make_noise(tmp_path / "two.wav", 2.0)
    runs = tmp_path / "runs.log"
    proc = subprocess.Popen([*cliutil.CLI, "record", "--input", "two.wav", "--timeslice", "0.25",
                             "--on-data", f"{_hook_counter(runs)}; sleep 5",
                             "--on-stop", _hook_counter(runs), "out.wav"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: runs.exists(), what="the first hook")
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert runs.read_text().split() == ["dataavailable", "stop"], err
        assert "stopped by SIGTERM: 7 queued hooks did not run (--on-data: 7)" in err
    finally:
        audiolab.stop_process(proc)
