"""Stopping a recording in the hostile ways users and scripts really do it: a SIGINT in
the first instants of the program, a terminal closed under it, Ctrl-Z and `fg`.

Real audio through the session's virtual microphone (the ``pulse`` fixture), the CLI as a
subprocess or in a tmux terminal (the ``terminal`` fixture). Every wait is bounded only so
that a hang fails instead of blocking the suite.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

import audiolab
import cliutil
from audiolab import assert_complete_wav
from cliutil import CLI, RATE, START_TIMEOUT, pulse_env

EXIT_TIMEOUT = 20.0  # s: a stop or hang-up -> the process ended ("does not hang")


def _caught(pid: int, signum: int) -> bool | None:
    """Whether ``pid`` has a handler for ``signum`` (its SigCgt mask); None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
    except FileNotFoundError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith("Z"):
        return None
    return bool(int(fields["SigCgt"].strip(), 16) & (1 << (signum - 1)))


def _heavy_libraries(pid: int) -> list[str]:
    """Which of numpy's core and PortAudio are loaded into ``pid`` (from /proc/PID/maps)."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            maps = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [lib for lib in ("_multiarray_umath", "libportaudio") if lib in maps]


def wait_until_caught(proc: subprocess.Popen | int, signum: int, timeout: float = 20.0) -> None:
    """Until ``proc`` (or that pid) catches ``signum``: the earliest moment any program can
    see a signal that was ignored at exec (before it, the kernel drops it). Fails if numpy or
    PortAudio were loaded before that: the stop handling must come before the heavy imports."""
    pid = proc if isinstance(proc, int) else proc.pid
    deadline = time.monotonic() + timeout
    while True:
        heavy = _heavy_libraries(pid)
        state = _caught(pid, signum)
        if state or state is None:
            return
        assert not heavy, f"{heavy} loaded before the stop signals were caught"
        assert time.monotonic() < deadline, "the recorder never caught the signal"
        time.sleep(0.0005)


def _sigint_ignored() -> None:
    # What a non-interactive shell does to `cmd &`: the child starts with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _assert_stopped_cleanly(proc: subprocess.Popen, out, stderr: str) -> str:
    """Exit 0 with a complete WAV, or 130 with one line and no file; never a traceback."""
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    if proc.returncode == 0:
        assert stderr.strip().splitlines()[-1].startswith("Saved "), stderr
        assert_complete_wav(out)
        return "recorded"
    assert proc.returncode == 130, f"exit status {proc.returncode}; stderr:\n{stderr}"
    line = cliutil.one_error_line(stderr)
    assert "before the recording began" in line and "nothing was recorded" in line, line
    assert not out.exists(), "a stop before the recording began left a file"
    return "nothing"


# A script's `dictaphone record x.wav & kill -INT $!`: the stop comes while the program is
# still importing, looking up the device or opening it. It used to be lost (the recorder
# then recorded for ever) or to print a KeyboardInterrupt traceback.
DELAYS = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8]


@pytest.mark.parametrize("disposition", ["ignored", "default"])
def test_a_sigint_in_the_first_instants_stops_the_recording_cleanly(pulse, tmp_path, disposition):
    outcomes = []
    for i, delay in enumerate(DELAYS):
        out = tmp_path / f"take{i}.wav"
        proc = subprocess.Popen([*CLI, "record", "-r", str(RATE), out.name], cwd=tmp_path,
                                env=pulse_env(pulse), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=_sigint_ignored if disposition == "ignored" else None)
        try:
            # Python catches SIGINT itself from its start (the default disposition), so
            # the moment dictaphone's own code runs is told by SIGTERM, which only
            # dictaphone catches, right after SIGINT.
            wait_until_caught(proc, signal.SIGTERM)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            try:
                _, stderr = proc.communicate(timeout=EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"SIGINT {delay} s after start-up was lost: still "
                                     f"recording after {EXIT_TIMEOUT} s") from None
        finally:
            audiolab.stop_process(proc)
        outcomes.append(_assert_stopped_cleanly(proc, out, stderr))
    # The earliest stop comes before any device is open.
    assert outcomes[0] == "nothing", outcomes


def test_a_sigint_before_the_device_opens_writes_no_clip_and_no_event_log(pulse, tmp_path):
    env = dict(pulse_env(pulse), DICTAPHONE_HOME=str(tmp_path / "clips"))
    proc = subprocess.Popen([*CLI, "record", "--name", "early", "--events", "ev.jsonl"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_ignored)
    try:
        wait_until_caught(proc, signal.SIGINT)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=EXIT_TIMEOUT)
    finally:
        audiolab.stop_process(proc)
    assert proc.returncode == 130, stderr
    assert "before the recording began" in cliutil.one_error_line(stderr)
    clips = tmp_path / "clips"
    assert not clips.exists() or list(clips.iterdir()) == []
    assert not (tmp_path / "ev.jsonl").exists()


@pytest.mark.parametrize("command", [["list"], ["show", "long.wav", "-w", "40"]])
def test_other_commands_still_die_of_sigterm_and_say_interrupted_on_sigint(tmp_path, command):
    # Stop signals are held from the first line only for a recording; other commands get
    # them back, so they stay interruptible.
    audiolab.make_tone(tmp_path / "long.wav", 1.0, 440.0)
    env = cliutil.no_device_env(tmp_path)
    code = ("import signal, sys\n"
            "from dictaphone.stopsignals import catch_early\n"
            "catch_early()\n"
            "signal.raise_signal(signal.SIGTERM)\n"  # arrives while held, before the command
            "from dictaphone.cli import main\n"
            f"main({command!r})\n")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGTERM, (r.returncode, r.stderr)
    code = code.replace("SIGTERM", "SIGINT")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert cliutil.one_error_line(r.stderr) in ("dictaphone: interrupted", "dictaphone: aborted")


# ---------------------------------------------------------------------------------------------
# A terminal that goes away


def _recorder_pid(t) -> int:
    """The dictaphone process in the pane (the wrapper's child; `exec`ed by sh if wrapped)."""
    return t.command_pid()


def _wait_gone(pid: int, timeout: float = EXIT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while _caught(pid, signal.SIGINT) is not None:
        assert time.monotonic() < deadline, f"dictaphone (pid {pid}) still running after the hang-up"
        time.sleep(0.05)


def _wait_started(pulse, pid: int, t) -> None:
    def check():
        if not t.is_alive():
            raise AssertionError(f"dictaphone ended before starting:\n{t.capture()}")

    cliutil.wait_for_status(pulse_env(pulse),
                            lambda es: any(e.get("pid") == pid and e.get("started") for e in es),
                            timeout=START_TIMEOUT, check=check)


@pytest.mark.parametrize("how", ["meter-on-the-terminal", "stderr-to-a-file", "sighup-ignored",
                                 "setsid"])
def test_closing_the_terminal_keeps_the_clip_and_its_metadata(pulse, terminal, tmp_path, how):
    # tmux kill-session: the window is gone. It used to end in a termios.error traceback and
    # no metadata, or (with the shell surviving) a recorder spinning on the dead terminal.
    clips = tmp_path / "clips"
    env = dict(pulse_env(pulse), DICTAPHONE_HOME=str(clips))
    cmd = shlex.join([*CLI, "record", "-r", str(RATE), "--name", "X"])
    wrapped = {"meter-on-the-terminal": f"exec {cmd}",
               "stderr-to-a-file": f"exec {cmd} 2>err.txt",
               # a shell that survives hang-ups passes SIGHUP ignored on to the recorder
               "sighup-ignored": f"trap '' HUP; exec {cmd} 2>err.txt",
               # a session of its own: the terminal is its stdin but not its controlling
               # terminal, so no SIGHUP comes and no key is read (like a background job)
               "setsid": f"trap '' HUP; exec setsid {cmd} 2>err.txt"}[how]
    t = terminal(wrapped, env=env, cwd=tmp_path)
    pid = _recorder_pid(t)
    _wait_started(pulse, pid, t)
    if how == "meter-on-the-terminal":
        t.wait_for("● REC", timeout=START_TIMEOUT)
    time.sleep(1.0)
    t._run("kill-session", "-t", t.name)
    _wait_gone(pid)

    audio = clips / "X.wav"
    frames = assert_complete_wav(audio)
    assert frames >= RATE // 2, frames
    meta = json.loads((clips / "X.wav.json").read_text())
    assert meta["name"] == "X" and meta["samplerate"] == RATE
    assert meta["duration"] == pytest.approx(frames / RATE)
    if how != "meter-on-the-terminal":
        stderr = (tmp_path / "err.txt").read_text(errors="replace")
        assert "Traceback" not in stderr and "termios" not in stderr, stderr
        assert stderr.strip().splitlines()[-1].startswith("Saved "), stderr


def _hang_up_while_stopped(t, pid: int) -> None:
    """Close the terminal while the recorder is stopped (SIGSTOP), then let it go on.

    A hang-up makes the terminal give end of file and brings a SIGCONT (the kernel sends
    SIGHUP and SIGCONT to the foreground group when the session's leader dies of its
    SIGHUP). A recorder that runs sees one and then the other, in either order; one that
    was stopped sees both at once: the order that once made it drop the dead terminal
    from its watch and, with SIGHUP ignored, record for ever."""
    os.kill(pid, signal.SIGSTOP)
    try:
        t._run("kill-session", "-t", t.name)
        deadline = time.monotonic() + EXIT_TIMEOUT
        while _caught(t.pane_pid(), signal.SIGHUP) is not None:  # the pane's leader
            assert time.monotonic() < deadline, "the pane's process outlived its terminal"
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)  # (the kernel sent one already; a second is harmless)


def test_a_hang_up_and_its_sigcont_together_still_stop_a_recorder_that_ignores_sighup(
        pulse, terminal, tmp_path):
    clips = tmp_path / "clips"
    env = dict(pulse_env(pulse), DICTAPHONE_HOME=str(clips))
    cmd = shlex.join([*CLI, "record", "-r", str(RATE), "--name", "X"])
    t = terminal(f"trap '' HUP; exec {cmd} 2>err.txt", env=env, cwd=tmp_path)
    pid = _recorder_pid(t)
    _wait_started(pulse, pid, t)
    time.sleep(1.0)
    _hang_up_while_stopped(t, pid)
    _wait_gone(pid)
    frames = assert_complete_wav(clips / "X.wav")
    assert frames >= RATE // 2, frames
    assert json.loads((clips / "X.wav.json").read_text())["duration"] == pytest.approx(frames / RATE)
    stderr = (tmp_path / "err.txt").read_text(errors="replace")
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("Saved "), stderr


def test_a_terminal_closed_before_the_device_opens_ends_a_recorder_that_ignores_sighup(
        pulse, terminal, tmp_path):
    # The hang-up comes while the program is still starting: there is no terminal to read
    # keys from by the time it would, and with SIGHUP ignored nothing else would stop it.
    clips = tmp_path / "clips"
    env = dict(pulse_env(pulse), DICTAPHONE_HOME=str(clips))
    cmd = shlex.join([*CLI, "record", "-r", str(RATE), "--name", "X"])
    t = terminal(f"trap '' HUP; exec {cmd} 2>err.txt", env=env, cwd=tmp_path)
    pid = _recorder_pid(t)
    wait_until_caught(pid, signal.SIGTERM)  # dictaphone's first line ran; nothing is open
    _hang_up_while_stopped(t, pid)
    _wait_gone(pid)
    stderr = (tmp_path / "err.txt").read_text(errors="replace")
    assert "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    assert "before the recording began" in line and "nothing was recorded" in line, stderr
    assert not clips.exists() or list(clips.iterdir()) == []


def test_a_terminal_that_was_already_gone_at_start_does_not_stop_the_recording(pulse, tmp_path):
    # A script that outlived its terminal (SIGHUP ignored) starts a recording: its stdin is
    # a terminal that hung up before dictaphone ran. No one closed a terminal on this
    # recording, so it goes on like one with stdin from /dev/null, until it is stopped.
    import pty

    master, slave = pty.openpty()
    os.close(master)  # the terminal hangs up: every use of the slave now fails with EIO
    out = tmp_path / "take.wav"
    try:
        proc = subprocess.Popen(
            [*CLI, "record", "-r", str(RATE), out.name], cwd=tmp_path, env=pulse_env(pulse),
            stdin=slave, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    finally:
        os.close(slave)
    def check():
        if proc.poll() is not None:
            raise AssertionError(f"it ended before recording:\n{proc.communicate()[1]}")

    try:
        cliutil.wait_for_status(pulse_env(pulse),
                                lambda es: any(e.get("pid") == proc.pid and e.get("started")
                                               for e in es),
                                timeout=START_TIMEOUT, check=check)
        time.sleep(1.5)  # three turns of the recorder's loop, which looks at the terminal
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=EXIT_TIMEOUT)
    finally:
        audiolab.stop_process(proc)
    assert proc.returncode == 0, stderr
    assert stderr.strip().splitlines()[-1].startswith("Saved "), stderr
    assert assert_complete_wav(out) >= RATE


# ---------------------------------------------------------------------------------------------
# Ctrl-Z, then fg


def test_after_ctrl_z_and_fg_a_single_q_still_stops_the_recording(pulse, terminal, tmp_path):
    # An interactive shell with job control, as a user has it.
    env = dict(pulse_env(pulse), PS1="$ ", HISTFILE="/dev/null")
    t = terminal(["bash", "--norc", "--noprofile", "-i"], env=env, cwd=tmp_path)
    t.wait_for("$", timeout=10)
    t.type_text(shlex.join([*CLI, "record", "-r", str(RATE), "take.wav"]))
    t.send_keys("Enter")
    t.wait_for("● REC", timeout=START_TIMEOUT)
    t.send_keys("C-z")
    t.wait_for(lambda s: "Stopped" in s, timeout=10)
    # The shell has a normal terminal while the recorder is stopped: what is typed echoes.
    t.type_text("fg")
    t.wait_for("fg", timeout=5)
    t.send_keys("Enter")
    t.wait_for(lambda s: s.rstrip().endswith("dBFS") or "● REC" in s.split("fg", 1)[-1],
               timeout=10)
    time.sleep(0.5)
    t.send_keys("q")  # one key, no Enter
    t.wait_for(lambda s: "Saved take.wav" in s, timeout=EXIT_TIMEOUT)
    t.type_text("echo EXIT=$?")
    t.send_keys("Enter")
    t.wait_for(lambda s: "EXIT=" in s.split("Saved take.wav", 1)[-1], timeout=10)
    screen = t.capture(history=True)
    assert "EXIT=0" in screen, screen
    assert "Saved take.wav" in screen, screen
    assert "Traceback" not in screen, screen
    assert_complete_wav(tmp_path / "take.wav")
    assert sf.info(str(tmp_path / "take.wav")).frames > 0
