"""`dictaphone import`: recordings made elsewhere (a phone's M4A, a browser's WebM, MP4 with
video, ALAC, WAV) become clips; a bad file among good ones is skipped in one line; the
original bytes are kept when a browser plays them; `record --input` reads the same files.

The files are made with ffmpeg from espeak-ng speech, and what the clips hold is checked
against that speech (cross-correlation of the decoded audio).
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from cliutil import no_device_env, run


@pytest.fixture
def env(tmp_path):
    return no_device_env(tmp_path)


def ffmpeg(*args) -> None:
    audiolab.require_tool("ffmpeg")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *map(str, args)], check=True,
                   capture_output=True, timeout=60)


@pytest.fixture
def made(tmp_path, speech):
    """The speech as a phone's M4A (AAC), a browser's WebM (Opus), an MP4 with video, an
    ALAC M4A and a plain WAV, in tmp_path/src."""
    src = tmp_path / "src"
    src.mkdir()
    files = {"m4a": src / "Voice memo 12.m4a", "webm": src / "browser take.webm",
             "mp4": src / "screen.mp4", "alac": src / "lossless.m4a", "wav": src / "plain.wav"}
    ffmpeg("-i", speech, "-c:a", "aac", "-b:a", "96k", files["m4a"])
    ffmpeg("-i", speech, "-c:a", "libopus", files["webm"])
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=3", "-i", speech, "-c:v", "libx264",
           "-c:a", "aac", "-shortest", files["mp4"])
    ffmpeg("-i", speech, "-c:a", "alac", files["alac"])
    files["wav"].write_bytes(Path(speech).read_bytes())
    return files


def clip_list(env) -> dict[str, dict]:
    r = run("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return {c["name"]: c for c in json.loads(r.stdout)}


def decoded(path) -> np.ndarray:
    from dictaphone.containers.decode import open_audio

    with open_audio(path) as f:
        return f.read(dtype="float64", always_2d=True).mean(axis=1)


def assert_is_the_speech(path, speech, at_least=0.9):
    x, _ = audiolab.read_mono(speech)
    got = decoded(path)
    peak, _ = audiolab.normalized_xcorr(x[4800:-4800], got)
    assert peak > at_least, (path, peak)


def test_import_keeps_what_browsers_play_and_converts_the_rest(env, made, speech, tmp_path):
    r = run("import", *made.values(), env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 5, lines
    assert lines[0].startswith("[1/5] imported ") and "as 'Voice memo 12': kept (m4a, AAC)" in lines[0]
    assert "as 'browser take': kept (webm, Opus)" in lines[1]
    assert "as 'screen': audio copied out of its video (mp4, AAC)" in lines[2]
    assert "as 'lossless': converted to flac (browsers cannot play alac in m4a)" in lines[3]
    assert "as 'plain': kept (wav, PCM_16)" in lines[4]
    clips = clip_list(env)
    assert set(clips) == {"Voice memo 12", "browser take", "screen", "lossless", "plain"}
    library = Path(env["DICTAPHONE_HOME"])
    # the original bytes, byte for byte
    assert (library / "Voice memo 12.m4a").read_bytes() == made["m4a"].read_bytes()
    assert (library / "browser take.webm").read_bytes() == made["webm"].read_bytes()
    assert (library / "plain.wav").read_bytes() == made["wav"].read_bytes()
    # the video's audio only, its packets unchanged: the same samples as the MP4 decodes to
    import av

    with av.open(str(library / "screen.m4a")) as c:
        assert [s.type for s in c.streams] == ["audio"]
    assert np.array_equal(decoded(library / "screen.m4a"), decoded(made["mp4"]))
    # ALAC is lossless: the FLAC holds the very samples of the WAV it was made from
    flac, _ = sf.read(library / "lossless.flac", dtype="int16")
    wav, _ = sf.read(speech, dtype="int16")
    assert np.array_equal(flac, wav)
    for name, c in clips.items():
        assert c["duration"] == pytest.approx(len(wav) / 48000, abs=0.05), (name, c)
        assert c["samplerate"] == 48000 and c["channels"] == 1
        assert_is_the_speech(c["path"], speech)
    assert clips["Voice memo 12"]["format"] == "m4a" and clips["browser take"]["format"] == "webm"
    # the originals are where they were (no --move), and nothing else is in the library
    assert all(p.exists() for p in made.values())
    # no temp file left (the index is the one hidden entry the library keeps)
    assert not [p for p in library.iterdir() if p.name.startswith(".") and p.name != ".dictaphone-index"]


def test_a_bad_file_among_good_ones_is_skipped_in_one_line(env, made, tmp_path):
    bad = tmp_path / "src" / "broken.m4a"
    bad.write_bytes(made["m4a"].read_bytes()[:600])  # cut off in its header
    text = tmp_path / "src" / "notes.webm"
    text.write_text("not audio at all\n")
    r = run("import", made["m4a"], bad, text, tmp_path / "missing.wav", made["webm"], env=env)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 6, lines
    assert lines[1].startswith("dictaphone: [2/5] ") and "broken.m4a" in lines[1]
    assert lines[2].startswith("dictaphone: [3/5] ") and "notes.webm" in lines[2]
    assert "missing.wav: no such file" in lines[3]
    assert "[5/5] imported" in lines[4]
    assert lines[5] == "dictaphone: 3 of 5 files not imported"
    assert set(clip_list(env)) == {"Voice memo 12", "browser take"}
    library = Path(env["DICTAPHONE_HOME"])
    assert sorted(p.name for p in library.iterdir() if p.name != ".dictaphone-index") == [
        "Voice memo 12.m4a", "Voice memo 12.m4a.json", "browser take.webm", "browser take.webm.json"]


def test_name_move_and_the_recordings_own_date(env, made, tmp_path):
    tagged = tmp_path / "src" / "tagged.m4a"
    ffmpeg("-i", made["m4a"], "-c", "copy", "-metadata", "creation_time=2019-05-06T07:08:09Z", tagged)
    when = datetime.datetime(2020, 1, 2, 3, 4, 5).timestamp()
    os.utime(made["webm"], (when, when))
    r = run("import", tagged, "--name", "dentist", "--move", env=env)
    assert r.returncode == 0, r.stderr
    assert "file removed" in r.stderr
    assert not tagged.exists()
    r = run("import", made["webm"], made["wav"], env=env)
    assert r.returncode == 0, r.stderr
    clips = clip_list(env)
    tag = datetime.datetime(2019, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    assert datetime.datetime.fromisoformat(clips["dentist"]["created"]) == tag
    assert clips["browser take"]["created"].startswith("2020-01-02T03:04:05")
    # the same name again: a new clip beside, never over the first
    r = run("import", made["wav"], env=env)
    assert r.returncode == 0 and "as 'plain-2'" in r.stderr
    r = run("import", made["wav"], "--name", "dentist", env=env)
    assert r.returncode == 1
    assert "a clip named 'dentist' exists already" in r.stderr
    r = run("import", made["wav"], made["webm"], "--name", "x", env=env)
    assert r.returncode == 2 and "--name names one clip" in cliutil.one_error_line(r.stderr)


def test_imported_clips_play_show_and_feed_record_input(env, made, speech, tmp_path):
    r = run("import", made["m4a"], env=env)
    assert r.returncode == 0, r.stderr
    r = run("show", "Voice memo 12", "-w", "40", env=env)
    assert r.returncode == 0, r.stderr
    assert "Voice memo 12.m4a" in r.stdout and "0:0" in r.stdout
    for source in (made["m4a"], made["webm"], made["mp4"]):
        out = tmp_path / f"{source.stem}.wav"
        r = run("record", "--input", source, out, env=env)
        assert r.returncode == 0, r.stderr
        assert_is_the_speech(out, speech)


def test_without_pyav_m4a_is_refused_in_one_line_and_wav_still_imports(env, made, tmp_path):
    # PyAV made unimportable: libsndfile's formats import; M4A says what to install
    block = tmp_path / "no-av"
    block.mkdir()
    (block / "av.py").write_text("raise ImportError('PyAV is not installed here')\n")
    env = dict(env, PYTHONPATH=str(block))
    r = run("import", made["m4a"], made["wav"], env=env)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert "libsndfile cannot read it" in lines[0] and "pip install 'dictaphone[transcribe]'" in lines[0]
    assert "imported" in lines[1] and "'plain'" in lines[1]
    assert set(clip_list(env)) == {"plain"}


def test_imports_of_one_file_name_at_once_each_get_a_name(env, tmp_path):
    """Four imports of 'take.wav' (from four folders) started together: take, take-2, take-3,
    take-4. The name was chosen before the file was decoded and claimed only after, so all but
    one said "a clip named 'take' exists already" (exit 1); and four trims of one clip at once
    each get a '(trimmed)' name of their own."""
    rate = 48000
    rng = np.random.default_rng(7)
    sources = []
    for i in range(4):
        folder = tmp_path / f"from{i}"
        folder.mkdir()
        sf.write(folder / "take.wav", rng.integers(-8000, 8000, 20 * rate, dtype=np.int16), rate,
                 subtype="PCM_16")
        sources.append(folder / "take.wav")
    procs = [subprocess.Popen([*cliutil.CLI, "import", src], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for src in sources]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close(), p.stderr.close()
    assert [status for status, _ in results] == [0] * 4, results
    home = Path(env["DICTAPHONE_HOME"])
    names = sorted(c["name"] for c in json.loads(run("list", "--json", env=env).stdout))
    assert names == ["take", "take-2", "take-3", "take-4"]
    # the four clips hold the four files, one each
    held = sorted(sf.read(home / f"{n}.wav", dtype="int16")[0][:8].tobytes() for n in names)
    assert held == sorted(sf.read(s, dtype="int16")[0][:8].tobytes() for s in sources)
    procs = [subprocess.Popen([*cliutil.CLI, "trim", "take", "--from", "1"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close(), p.stderr.close()
    assert [status for status, _ in results] == [0] * 4, results
    names = {c["name"] for c in json.loads(run("list", "--json", env=env).stdout)}
    assert {"take (trimmed)", "take (trimmed)-2", "take (trimmed)-3", "take (trimmed)-4"} <= names


def test_a_file_of_bytes_that_are_no_audio_is_said_to_be_so(env, tmp_path):
    """An .mp3 of random bytes was 'cannot be read as audio (File does not exist or is not a
    regular file (possibly a pipe?))': libsndfile's words, wrong for a file that is there."""
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    r = run("import", bad, env=env)
    assert r.returncode == 1 and r.stdout == ""
    line = cliutil.one_error_line(r.stderr)
    assert line.startswith(f"dictaphone: {bad}: not a readable audio file"), line
    assert "regular file" not in line and "pipe" not in line
