"""`dictaphone transcribe` of a 3-hour recording, decoded and recognised in windows.

What this checks: the words of three sentences (at the start, the middle and the end of
3 hours of silence) come out at their times, the saved transcript covers the whole file,
a progress bar runs in a terminal, and Ctrl-C in the middle leaves nothing (no transcript
sidecar, no -o file, no temporary file). What it does not: the memory target (peak RSS
independent of the length) is measured in bench/long_transcribe.py (10 min / 1 h / 3 h, and
the whole-file way beside it), not here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "bench"))

import speech  # noqa: E402
from cliutil import CLI, no_device_env, run  # noqa: E402

SECONDS = 3 * 3600


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    from long_transcribe import make_long, placed

    speech.require_extra("faster_whisper")
    path = tmp_path_factory.mktemp("long") / "three hours.flac"
    make_long(str(path), SECONDS, placed(SECONDS))
    return path, placed(SECONDS)


def test_three_hours_come_out_with_every_sentence_at_its_time(long_file, whisper_model, tmp_path):
    path, sentences = long_file
    env = dict(no_device_env(tmp_path), DICTAPHONE_MODEL=str(whisper_model))
    work = tmp_path / "copy.flac"
    os.link(path, work)
    r = run("transcribe", work, "-f", "json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    t = json.loads(r.stdout)
    assert t["duration"] == pytest.approx(SECONDS, abs=0.1)
    segs = t["segments"]
    assert len(segs) == 3, segs
    for seg, (at, text) in zip(segs, sentences):
        assert seg["start"] == pytest.approx(at, abs=1.0), (seg, at)
        said = seg["text"].lower()
        key = {0: "dentist", 1: "lazy dog", 2: "milk"}[sentences.index((at, text))]
        assert key in said, (said, text)
        assert all(at - 1 <= w["start"] <= at + 6 for w in seg["words"])
    saved = json.loads(Path(f"{work}.transcript.json").read_text())
    assert saved["segments"] == segs


def test_a_progress_bar_runs_and_ctrl_c_keeps_nothing_half_made(long_file, whisper_model, tmp_path, terminal):
    path, _ = long_file
    work = tmp_path / "take.flac"
    os.link(path, work)
    env = dict(no_device_env(tmp_path), DICTAPHONE_MODEL=str(whisper_model))
    t = terminal([*CLI, "transcribe", str(work), "-o", str(tmp_path / "take.srt"), "-f", "srt"],
                 env=env, cwd=tmp_path, width=100)
    t.wait_for("%", timeout=120)
    assert "take.flac" in t.capture()
    t.send_keys("C-c")
    assert t.wait_exit(timeout=30) == 130
    assert "dictaphone: aborted" in t.capture()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(("runtime", "clips"))) == ["take.flac"]
