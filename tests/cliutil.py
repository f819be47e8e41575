"""Running the dictaphone CLI from tests: one-shot runs, background recorders, events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "dictaphone"]


def run(*args, env=None, cwd=None, timeout=60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, **kw)


def start(*args, env=None, cwd=None, **kw) -> subprocess.Popen:
    """A recorder in the background (stdin closed, output captured as text)."""
    return subprocess.Popen([*CLI, *map(str, args)], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def status(env) -> list[dict]:
    r = run("status", "--json", env=env, timeout=15)
    return json.loads(r.stdout) if r.returncode == 0 else []


def wait_started(proc: subprocess.Popen, env, timeout: float = 20.0) -> dict:
    """Wait until the recorder ``proc`` has received its first audio frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the recorder exited early ({proc.returncode}): {proc.stderr.read()}")
        for entry in status(env):
            if entry["pid"] == proc.pid and entry.get("started"):
                return entry
        time.sleep(0.1)
    raise AssertionError(f"the recorder did not start within {timeout} s")


def read_events(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def wait_for_event(path: Path, predicate, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for e in read_events(path):
            if predicate(e):
                return e
        time.sleep(0.05)
    raise AssertionError(f"no matching event in {path} within {timeout} s: {read_events(path)}")


def finish(proc: subprocess.Popen, timeout: float = 20.0) -> tuple[int, str, str]:
    """Wait for a background recorder; kill it if it hangs. (status, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the recorder hung; stderr: {err}")
    return proc.returncode, out, err


def one_error_line(stderr: str) -> str:
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    assert "Traceback" not in stderr
    return lines[0]


def env_without(env: dict, *names) -> dict:
    return {k: v for k, v in env.items() if k not in names}


__all__ = ["CLI", "run", "start", "status", "wait_started", "read_events", "wait_for_event",
           "finish", "one_error_line", "env_without", "os"]
