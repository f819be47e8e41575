"""The scripts in examples/ run as the README says and do what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

import audiolab

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, env=None, cwd=None):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=60)


def test_chunks_in_memory_joins_its_blobs_into_the_same_audio(tmp_path):
    src = audiolab.make_noise(tmp_path / "speech.wav", 1.7, seed=5)
    r = run_example("chunks_in_memory.py", src, tmp_path / "out.wav", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "4 blobs" in r.stderr  # 0.5 s timeslices of 1.7 s, plus the last piece
    assert np.array_equal(sf.read(tmp_path / "out.wav", dtype="int16")[0],
                          sf.read(src, dtype="int16")[0])


def test_memo_records_the_microphone_for_the_asked_seconds(tmp_path, pulse):
    r = run_example("memo.py", tmp_path / "memo.ogg", 1.5, env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "saved" in r.stderr and "0 dropped" in r.stderr
    assert sf.info(tmp_path / "memo.ogg").frames == 72000


def test_pause_resume_leaves_the_pause_out_and_shows_the_invalid_state_error(tmp_path, pulse):
    r = run_example("pause_resume.py", tmp_path / "take.flac", env=pulse.env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "second stop:" in r.stderr
    times = {line.split()[0]: float(line.split()[1]) for line in r.stderr.splitlines()
             if line.split() and line.split()[0] in ("start", "pause", "resume", "stop")}
    assert set(times) == {"start", "pause", "resume", "stop"}
    # the 1 s pause adds no recorded time: resume comes at the pause's timecode
    assert times["resume"] - times["pause"] < 0.15
    assert times["stop"] - times["resume"] > 1.5  # the 2 s after the resume are recorded
    assert abs(sf.info(tmp_path / "take.flac").duration - times["stop"]) < 0.01


def test_live_captions_prints_each_sentence_while_a_file_plays_and_saves_the_transcript(
        tmp_path, whisper_model):
    import os

    import speech
    from dictaphone import transcript

    script = speech.make_script(tmp_path / "talk.wav", speech.SENTENCES[:2], pause=1.5)
    env = dict(os.environ, DICTAPHONE_MODEL=whisper_model)
    r = run_example("live_captions.py", "--input", script.path, tmp_path / "copy.wav", env=env,
                    cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("[00:0") and "milk" in lines[0].lower()
    assert "dentist" in lines[1].lower()
    saved = transcript.load(tmp_path / "copy.wav")
    assert saved is not None and len(saved.segments) == 2
