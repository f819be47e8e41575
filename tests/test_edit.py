"""`dictaphone trim` and `dictaphone export`: exact to the frame, markers and transcript words
kept and moved, outputs read back by soundfile, sox and ffprobe, never a clobbered file,
FIFOs and stdout written through.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from cliutil import no_device_env, run

RATE = 48000


@pytest.fixture
def env(tmp_path):
    return no_device_env(tmp_path)


def ffprobe_chapters(path) -> list[tuple[float, str]]:
    audiolab.require_tool("ffprobe")
    r = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", os.fspath(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [(float(c["start_time"]), c["tags"]["title"]) for c in json.loads(r.stdout)["chapters"]]


def sox_frames(path) -> int:
    audiolab.require_tool("sox")
    r = subprocess.run(["sox", os.fspath(path), "-n", "stat"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    samples = [line for line in r.stderr.splitlines() if line.startswith("Samples read")][0]
    return int(samples.split()[-1])


def library(env) -> Path:
    return Path(env["DICTAPHONE_HOME"])


def add_clip(env, tmp_path, name, ext, subtype, seconds=5.0, channels=1, markers=(), words=()):
    """Noise (every sample different) imported as clip ``name``, with markers in its metadata
    and a transcript of ``words`` [(word, start, end)]."""
    rng = np.random.default_rng(len(name))
    info = np.iinfo(np.int16 if subtype == "PCM_16" else np.int32)
    data = rng.integers(info.min // 2, info.max // 2, size=(int(seconds * RATE), channels), dtype=info.dtype)
    if subtype == "PCM_24":
        data = data & ~0xFF  # 24 significant bits in int32
    src = tmp_path / f"{name}{ext}"
    sf.write(src, data, RATE, subtype=subtype)
    r = run("import", src, env=env)
    assert r.returncode == 0, r.stderr
    path = library(env) / f"{name}{ext}"
    meta = json.loads(Path(f"{path}.json").read_text())
    meta["markers"] = [{"number": i + 1, "time": t, "label": label} for i, (label, t) in enumerate(markers)]
    Path(f"{path}.json").write_text(json.dumps(meta))
    if words:
        from dictaphone.library.transcript import Segment, Transcript, Word, save

        ws = [Word(w, a, b, 0.9) for w, a, b in words]
        save(path, Transcript([Segment(ws[0].start, ws[-1].end, " ".join(w for w, _, _ in words), ws)],
                              model="test", language="en", duration=seconds))
    return data, path


@pytest.mark.parametrize("ext,subtype", [(".wav", "PCM_16"), (".flac", "PCM_24"), (".wav", "PCM_24")])
def test_trim_is_exact_to_the_frame_and_keeps_words_and_markers_in_range(env, tmp_path, ext, subtype):
    data, path = add_clip(
        env, tmp_path, "talk", ext, subtype, channels=2,
        markers=[("before", 0.5), ("first", 1.5), ("second", 3.25), ("after", 4.5)],
        words=[("Hello", 0.2, 0.6), ("dentist", 1.3, 1.8), ("tomorrow", 2.0, 2.6), ("morning.", 3.3, 3.9),
               ("Bye.", 4.2, 4.6)])
    r = run("trim", "talk", "--from", "1.25", "--to", "0:04.000", env=env)
    assert r.returncode == 0, r.stderr
    assert "trimmed 'talk' into 'talk (trimmed)' (2.750 s, 2 marker(s))" in r.stderr
    new = library(env) / f"talk (trimmed){ext}"
    got, rate = sf.read(new, dtype=data.dtype)
    assert rate == RATE and sf.info(new).subtype == subtype
    assert np.array_equal(got, data[60000:192000])  # sample for sample
    assert sox_frames(new) == 132000 * 2  # (sox counts the samples of both channels)
    assert np.array_equal(sf.read(path, dtype=data.dtype)[0], data)  # the original stays
    clips = {c["name"]: c for c in json.loads(run("list", "--json", env=env).stdout)}
    trimmed = clips["talk (trimmed)"]
    assert trimmed["duration"] == pytest.approx(2.75)
    assert [(m["label"], m["time"]) for m in trimmed["markers"]] == [("first", 0.25), ("second", 2.0)]
    from dictaphone.containers import markers as markers_mod

    if ext == ".wav":  # in the file too: the cue chunk at the exact frame
        assert [(m.label, m.frame) for m in markers_mod.read_wav_markers(str(new))] == [
            ("first", 12000), ("second", 96000)]
    else:
        assert ffprobe_chapters(new) == [(0.25, "first"), (2.0, "second")]
    from dictaphone.library.transcript import load

    t = load(new)
    assert [(w.word, w.start, w.end) for w in t.segments[0].words] == [
        ("dentist", 0.05, 0.55), ("tomorrow", 0.75, 1.35), ("morning.", 2.05, 2.65)]
    assert t.text == "dentist tomorrow morning." and t.duration == pytest.approx(2.75)
    r = run("search", "dentist", "--json", env=env)
    hits = {h["name"]: h["start"] for h in json.loads(r.stdout)}
    assert hits == {"talk": 1.3, "talk (trimmed)": 0.05}


def test_trim_in_place_replaces_only_once_complete_and_refuses_nonsense(env, tmp_path):
    data, path = add_clip(env, tmp_path, "memo", ".flac", "PCM_16", seconds=3.0)
    before = path.read_bytes()
    for args, words in [(["--from", "5"], "--from 5 s is outside the clip"),
                        (["--from", "2", "--to", "1"], "--to must come after --from"),
                        ([], "say what to keep"),
                        (["--to", "1", "--in-place", "--name", "x"], "not both"),
                        (["--to", "1:99"], "is not a time")]:
        r = run("trim", "memo", *args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        assert words in cliutil.one_error_line(r.stderr)
    assert path.read_bytes() == before
    r = run("trim", "nobody", "--to", "1", env=env)
    assert r.returncode == 2 and "no clip named 'nobody'" in r.stderr
    r = run("trim", "memo", "--from", "0.5", "--in-place", env=env)
    assert r.returncode == 0, r.stderr
    got, _ = sf.read(path, dtype="int16")
    assert np.array_equal(got, data[24000:, 0])
    assert sorted(p.name for p in library(env).iterdir() if p.name != ".dictaphone-index") == [
        "memo.flac", "memo.flac.json"]
    (clip,) = json.loads(run("list", "--json", env=env).stdout)
    assert clip["name"] == "memo" and clip["duration"] == pytest.approx(2.5)


def test_trim_of_an_m4a_says_what_it_is_written_as(env, tmp_path, speech):
    audiolab.require_tool("ffmpeg")
    src = tmp_path / "phone.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(speech), "-c:a", "aac", str(src)], check=True)
    assert run("import", src, env=env).returncode == 0
    r = run("trim", "phone", "--from", "0.5", "-n", "short", env=env)
    assert r.returncode == 0, r.stderr
    assert "m4a is not a format dictaphone writes: written as ogg" in r.stderr
    info = sf.info(library(env) / "short.ogg")
    assert info.duration == pytest.approx(sf.info(speech).duration - 0.5, abs=0.03)


def test_export_carries_markers_and_writes_subtitles_read_back_by_other_tools(env, tmp_path):
    data, path = add_clip(env, tmp_path, "talk", ".wav", "PCM_16", seconds=4.0,
                          markers=[("intro", 0.5), ("question", 2.25)],
                          words=[("Hello", 0.2, 0.6), ("there.", 2.4, 2.9)])
    out = tmp_path / "out"
    out.mkdir()
    for ext in ("wav", "flac", "ogg", "opus", "mp3"):
        target = out / f"talk.{ext}"
        r = run("export", "talk", target, env=env)
        assert r.returncode == 0, (ext, r.stderr)
        info = sf.info(target)
        assert info.duration == pytest.approx(4.0, abs=0.08), ext
        if ext in ("wav", "flac", "ogg"):  # (this sox has no Opus or MP3 handler)
            assert sox_frames(target) == pytest.approx(4.0 * info.samplerate, abs=0.08 * info.samplerate)
        if ext in ("flac", "ogg", "opus"):
            assert ffprobe_chapters(target) == [(0.5, "intro"), (2.25, "question")], ext
        if ext == "mp3":
            assert "mp3 has no place for markers" in r.stderr
    assert np.array_equal(sf.read(out / "talk.flac", dtype="int16")[0], data[:, 0])
    assert np.array_equal(sf.read(out / "talk.wav", dtype="int16")[0], data[:, 0])
    from dictaphone.containers import markers as markers_mod

    assert [(m.label, m.frame) for m in markers_mod.read_wav_markers(str(out / "talk.wav"))] == [
        ("intro", 24000), ("question", 108000)]
    # a part, with subtitles beside it; -f names a format the extension does not
    r = run("export", "talk", out / "part.audio", "-f", "flac", "--from", "2", "--subtitles", "srt", env=env)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(sf.read(out / "part.audio", dtype="int16")[0], data[96000:, 0])
    assert (out / "part.srt").read_text() == "1\n00:00:00,400 --> 00:00:00,900\nthere.\n"
    r = run("export", "talk", out / "v.wav", "--subtitles", "vtt", env=env)
    assert (out / "v.vtt").read_text().startswith("WEBVTT\n\n00:00:00.200 --> 00:00:02.900\nHello there.")


def test_export_never_clobbers_and_writes_through_fifos_and_stdout(env, tmp_path):
    data, path = add_clip(env, tmp_path, "talk", ".wav", "PCM_16", seconds=1.0)
    taken = tmp_path / "taken.wav"
    taken.write_bytes(b"precious")
    r = run("export", "talk", taken, env=env)
    assert r.returncode == 2 and "exists (use --force" in cliutil.one_error_line(r.stderr)
    assert taken.read_bytes() == b"precious"
    for args, words in [([tmp_path / "x.txt"], "cannot tell the format"),
                        ([tmp_path / "no" / "x.wav"], "the directory does not exist"),
                        ([path], "exists"),
                        ([tmp_path / "s.wav", "--subtitles", "srt"], "has no transcript")]:
        r = run("export", "talk", *args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        assert words in cliutil.one_error_line(r.stderr)
    assert not (tmp_path / "s.wav").exists()
    r = run("export", "talk", taken, "--force", env=env)
    assert r.returncode == 0 and np.array_equal(sf.read(taken, dtype="int16")[0], data[:, 0])
    # a FIFO stays a FIFO, and its reader gets the whole file
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = {}
    reader = threading.Thread(target=lambda: got.update(data=fifo.read_bytes()))
    reader.start()
    r = run("export", "talk", fifo, "-f", "flac", env=env)
    reader.join(20)
    assert r.returncode == 0, r.stderr
    assert fifo.is_fifo()
    import io

    assert np.array_equal(sf.read(io.BytesIO(got["data"]), dtype="int16")[0], data[:, 0])
    # stdout, as data, into sox
    r = run("export", "talk", "-", "-f", "wav", env=env, text=False)
    assert r.returncode == 0
    assert np.array_equal(sf.read(io.BytesIO(r.stdout), dtype="int16")[0], data[:, 0])
    sox = subprocess.run(["sox", "-t", "wav", "-", "-n", "stat"], input=r.stdout, capture_output=True, timeout=60)
    assert b"Samples read:             48000" in sox.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dictaphone")]


def test_trim_of_real_speech_keeps_the_words_where_they_are_said(env, tmp_path, whisper_model):
    # espeak says a sentence after 2 s of silence; the transcript (tiny.en) is trimmed from
    # 1.5 s on, and the trimmed clip transcribed again: the words come where the shifted
    # transcript says they are.
    src = audiolab.make_speech(tmp_path / "said.wav", "Call the dentist tomorrow morning.", pad_start=2.0)
    assert run("import", src, env=env).returncode == 0
    env = dict(env, DICTAPHONE_MODEL=str(whisper_model))
    r = run("transcribe", "said", "-f", "json", env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    before = json.loads(r.stdout)["segments"]
    r = run("trim", "said", "--from", "1.5", "-n", "cut", env=env)
    assert r.returncode == 0, r.stderr
    from dictaphone.library.transcript import load

    moved = load(library(env) / "cut.wav")
    words_before = [w for s in before for w in s["words"]]
    words_after = [w for s in moved.segments for w in s.words]
    assert [w.word for w in words_after] == [w["word"] for w in words_before]
    assert [w.start for w in words_after] == pytest.approx([w["start"] - 1.5 for w in words_before], abs=0.002)
    r = run("transcribe", "cut", "--redo", "-f", "json", env=env, timeout=120)
    again = [w for s in json.loads(r.stdout)["segments"] for w in s["words"]]
    assert "dentist" in " ".join(w["word"].lower() for w in again)
    dentist = lambda ws, key: next(key(w) for w in ws if "dentist" in (w["word"] if isinstance(w, dict) else w.word).lower())  # noqa: E731
    assert dentist(again, lambda w: w["start"]) == pytest.approx(dentist(words_after, lambda w: w.start), abs=0.3)


def _interrupt(args, env, cwd, after=1.5):
    import signal
    import time

    proc = subprocess.Popen([*cliutil.CLI, *map(str, args)], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    assert proc.poll() is None, "it finished before it could be interrupted: make the file longer"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_an_interrupted_import_or_in_place_trim_leaves_nothing_half_made(env, tmp_path):
    # 40 minutes of a tone: ALAC (converted on import: seconds of work) and a FLAC clip
    # trimmed in place; SIGINT in the middle of each.
    audiolab.require_tool("ffmpeg")
    alac = tmp_path / "long.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=2400:r=48000",
                    "-c:a", "alac", str(alac)], check=True, timeout=120)
    status, err = _interrupt(["import", alac], env, tmp_path)
    assert status == 130, err
    assert "long.m4a was not imported" in err and "Traceback" not in err
    assert not [p for p in library(env).iterdir() if not p.name.startswith(".index")], \
        list(library(env).iterdir())
    flac = tmp_path / "take.flac"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=f=440:d=2400:r=48000",
                    "-c:a", "flac", str(flac)], check=True, timeout=120)
    r = run("import", flac, env=env)
    assert r.returncode == 0, r.stderr
    clip = library(env) / "take.flac"
    before = clip.read_bytes()
    status, err = _interrupt(["trim", "take", "--from", "1", "--in-place"], env, tmp_path)
    assert status == 130, err
    assert "Traceback" not in err
    assert clip.read_bytes() == before  # the clip as it was
    assert sorted(p.name for p in library(env).iterdir() if not p.name.startswith(".index")) == [
        "take.flac", "take.flac.json"]


def test_trim_and_delete_on_a_read_only_library_say_where(env, tmp_path):
    """A read-only library: one line that names the directory or the file (it was only
    'dictaphone: error: Read-only file system'), exit 1, nothing changed."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run as root to mount a read-only library")
        pytest.skip("a read-only mount needs root")
    home = library(env)
    add_clip(env, tmp_path, "memo", ".wav", "PCM_16", seconds=2.0)
    before = sorted(p.name for p in home.iterdir())
    r = subprocess.run(["mount", "--bind", str(home), str(home)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        r = subprocess.run(["mount", "-o", "remount,ro,bind", str(home)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        for args, where in ((["trim", "memo", "--from", "1"], str(home)),
                            (["trim", "memo", "--from", "1", "--in-place"], str(home)),
                            (["delete", "memo", "--yes"], str(home / "memo.wav"))):
            r = run(*args, env=env)
            assert r.returncode == 1, (args, r.stderr)
            assert r.stderr == f"dictaphone: error: {where}: read-only file system\n", (args, r.stderr)
        assert sorted(p.name for p in home.iterdir()) == before
    finally:
        subprocess.run(["umount", "-l", str(home)], capture_output=True)


# SIGTERM sent to the process itself as the encoder opens: the moment after the temporary
# file exists and before edit.between_blocks holds the signals (deterministic, unlike a
# kill from outside at a guessed instant).
_TERM_AT_ENCODER = """
import os, signal, sys
import dictaphone.containers.encoders as encoders
from dictaphone.cli import main
real = encoders.make_encoder
def make_encoder(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*a, **k)
encoders.make_encoder = make_encoder
main(sys.argv[1:])
"""


@pytest.mark.parametrize("args", [["trim", "memo", "--from", "1"], ["trim", "memo", "--from", "1", "--in-place"],
                                  ["export", "memo", "OUT"]])
def test_sigterm_before_the_first_block_leaves_nothing_and_exits_130(env, tmp_path, args):
    """It killed the process on the spot (exit 143) and left a .dictaphone-*.tmp in the library."""
    import sys

    _, path = add_clip(env, tmp_path, "memo", ".wav", "PCM_16", seconds=3.0)
    before = path.read_bytes()
    out = tmp_path / "out.flac"
    args = [str(out) if a == "OUT" else a for a in args]
    r = subprocess.run([sys.executable, "-c", _TERM_AT_ENCODER, *args], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 130, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert path.read_bytes() == before
    assert sorted(p.name for p in library(env).iterdir() if not p.name.startswith(".dictaphone-index")) == [
        "memo.wav", "memo.wav.json"]
    assert not out.exists() and list(tmp_path.glob(".*out*")) == []


def test_export_force_never_replaces_a_file_of_the_library(env, tmp_path):
    """--force over a clip's metadata (talk.wav.json, -f wav) wrote audio into it; over
    another clip's audio it replaced that clip's sound under its old metadata."""
    add_clip(env, tmp_path, "talk", ".wav", "PCM_16", seconds=1.0)
    _, other = add_clip(env, tmp_path, "other", ".wav", "PCM_16", seconds=2.0)
    home = library(env)
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    for out in (home / "talk.wav.json", other, home / "other.wav.json"):
        r = run("export", "talk", out, "-f", "wav", "--force", env=env)
        assert r.returncode == 2, (out, r.stderr)
        assert "is a file of the clip library" in cliutil.one_error_line(r.stderr)
    assert {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()} == before
    r = run("export", "talk", home / "copy.wav", env=env)  # a new file there is not refused
    assert r.returncode == 0, r.stderr


def test_trim_rename_and_delete_refuse_a_clip_that_is_being_recorded(pulse, tmp_path):
    """trim --in-place replaced the file under a running recorder: a 6 s recording kept the
    2.2 s trimmed into it (its metadata still said 6 s); a rename left the clip without
    metadata; a delete left an empty library while the recorder said "Saved". Refused, as the
    page does."""
    import time

    env = dict(pulse.env, DICTAPHONE_HOME=str(tmp_path / "clips"))
    tone = tmp_path / "tone.wav"
    audiolab.make_tone(tone, 6.0, 440.0, amplitude=0.3, rate=48000)
    rec = subprocess.Popen([*cliutil.CLI, "record", "-r", "48000", "-n", "rec", "-d", "4"], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        player = pulse.play(tone)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            st = run("status", "--json", env=env)
            if st.returncode == 0 and "rec.wav" in st.stdout:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the recording did not start: {st.stderr}")
        for args in (["trim", "rec", "--from", "0.5", "--in-place"], ["trim", "rec", "--from", "0.5"],
                     ["rename", "rec", "other"], ["delete", "rec", "--yes"]):
            r = run(*args, env=env)
            assert r.returncode == 2, (args, r.stderr)
            assert cliutil.one_error_line(r.stderr) == "dictaphone: error: 'rec' is being recorded; stop it first (dictaphone stop)"
        assert rec.wait(30) == 0, rec.stderr.read()
        player.wait(30)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        rec.stderr.close()
    home = tmp_path / "clips"
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == ["rec.wav", "rec.wav.json"]
    assert sf.info(home / "rec.wav").duration == pytest.approx(json.loads((home / "rec.wav.json").read_text())["duration"], abs=0.01)
    r = run("trim", "rec", "--from", "0.5", "--in-place", env=env)  # once it is saved, it can be trimmed
    assert r.returncode == 0, r.stderr
