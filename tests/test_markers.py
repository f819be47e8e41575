"""Markers (issue 13): flag a moment while recording, from the keyboard, another shell or
Python, and find it again in the file, its sidecar, the clip library and the player.

- The recorder's own timeline: a fake source (test_recorder.FakeSource) feeds counted
  frames, so where a marker must land is known to the sample; the containers are parsed
  back with parsers written here (RIFF chunks, FLAC metadata blocks), and with sox,
  libsndfile and ffprobe as second readers.
- Real audio: the private PulseAudio server's virtual microphone. A beep is played into
  it and a marker made the moment the recorder hears it: the marker must sit at the beep
  in the file. Keys go through tmux, `dictaphone mark` runs as a user runs it.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from cliutil import CLI, RATE, START_TIMEOUT, no_device_env, one_error_line, pulse_env, read_events
from dictaphone import InvalidArgumentError, InvalidStateError, MediaRecorder, Microphone
from dictaphone import markers as markers_mod
from dictaphone.containers.markers import MAX_LABEL, clean_label, parse_time, resolve_position
from test_recorder import FakeSource, counter

FAKE_RATE = 8000
JOIN = 10.0


# --------------------------------------------------------------------------- parsers of our own


def riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(id, body offset, size) of every top-level chunk of a RIFF/WAVE file; asserts that the
    chunks tile the file and the RIFF size is right."""
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8, "RIFF size is not the file's"
    out, pos = [], 12
    while pos < len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        out.append((cid, pos + 8, size))
        pos += 8 + size + (size & 1)
    assert pos == len(data), "the chunks do not end where the file ends"
    return out


def wav_cues(path) -> list[tuple[int, str]]:
    """(sample offset, label) of each cue point, by our own reading of `cue ` and `labl`."""
    data = Path(path).read_bytes()
    chunks = riff_chunks(data)
    ids = [c[0] for c in chunks]
    cues, labels = {}, {}
    for cid, at, size in chunks:
        if cid == b"cue ":
            assert ids.index(b"cue ") > ids.index(b"data"), "the cue chunk belongs after the data"
            n = struct.unpack_from("<I", data, at)[0]
            assert size == 4 + 24 * n
            for i in range(n):
                name, position, fcc, cstart, bstart, offset = struct.unpack_from("<II4sIII", data, at + 4 + 24 * i)
                assert fcc == b"data" and position == offset
                cues[name] = offset
        elif cid == b"LIST" and data[at:at + 4] == b"adtl":
            pos = at + 4
            while pos < at + size:
                sub, n = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
                if sub == b"labl":
                    name = struct.unpack_from("<I", data, pos + 8)[0]
                    text = data[pos + 12:pos + 8 + n]
                    assert text.endswith(b"\0")
                    labels[name] = text[:-1].decode("utf-8")
                pos += 8 + n + (n & 1)
    assert set(labels) == set(cues), "every cue point has its label"
    return sorted((cues[k], labels[k]) for k in cues)


def flac_comments(path) -> tuple[list[str], list[int]]:
    """The VORBIS_COMMENT strings of a FLAC file and the types of its metadata blocks."""
    data = Path(path).read_bytes()
    assert data[:4] == b"fLaC"
    pos, kinds, comments = 4, [], []
    while True:
        last, kind = data[pos] & 0x80, data[pos] & 0x7F
        n = int.from_bytes(data[pos + 1:pos + 4], "big")
        kinds.append(kind)
        if kind == 4:
            body = data[pos + 4:pos + 4 + n]
            vlen = struct.unpack_from("<I", body, 0)[0]
            count = struct.unpack_from("<I", body, 4 + vlen)[0]
            at = 8 + vlen
            for _ in range(count):
                k = struct.unpack_from("<I", body, at)[0]
                comments.append(body[at + 4:at + 4 + k].decode("utf-8"))
                at += 4 + k
            assert at == n, "the comment block holds exactly its comments"
        pos += 4 + n
        if last:
            return comments, kinds


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


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def fake():
    made = []

    def make(**kw):
        kw.setdefault("samplerate", FAKE_RATE)
        s = FakeSource(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s._halt.set()


def recorder(source, out, mime="audio/wav", **kw):
    return MediaRecorder(source, mime, output=os.fspath(out), stall_timeout=None,
                         start_timeout=None, **kw)


def collect_marks(rec) -> list:
    got = []
    rec.add_event_listener("mark", got.append)
    return got


# --------------------------------------------------------------------------- labels and times


def test_a_label_is_one_line_and_an_unlabelled_marker_is_called_by_its_number():
    assert clean_label(None, 3) == "Marker 3"
    assert clean_label("", 4) == "Marker 4"
    assert clean_label("  \n\t ", 5) == "Marker 5"
    assert clean_label("the\ndecision\r\nhere\x00!", 1) == "the decision here !"
    assert clean_label("Frage 2: über Ölpreise", 1) == "Frage 2: über Ölpreise"


def test_a_label_longer_than_the_limit_is_refused_not_cut():
    assert clean_label("x" * MAX_LABEL, 1) == "x" * MAX_LABEL
    with pytest.raises(InvalidArgumentError, match="at most"):
        clean_label("x" * 10_000, 1)


def test_times_are_seconds_or_clock_readings_and_a_plain_number_names_a_marker():
    assert parse_time("83.5") == 83.5
    assert parse_time("83s") == 83.0
    assert parse_time("1:23.456") == pytest.approx(83.456)
    assert parse_time("01:02:03.5") == pytest.approx(3723.5)
    assert parse_time("1:75") is None and parse_time("intro") is None
    ms = [markers_mod.Marker(1, 1.5, "intro"), markers_mod.Marker(2, 7.25, "Question 2")]
    assert resolve_position(ms, "2") == 7.25
    assert resolve_position(ms, "question 2") == 7.25
    assert resolve_position(ms, "0:05") == 5.0
    assert resolve_position(ms, "3s") == 3.0
    with pytest.raises(markers_mod.MarkerNotFoundError, match="no marker 3"):
        resolve_position(ms, "3")
    with pytest.raises(markers_mod.MarkerNotFoundError, match="outro"):
        resolve_position(ms, "outro")


# --------------------------------------------------------------------------- the API, to the sample


def test_a_marker_is_the_next_frame_the_source_delivers_and_paused_frames_do_not_count(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "m.wav")
    marks = collect_marks(rec)
    rec.start()
    src.feed(1000)
    first = rec.mark()
    src.feed(500)
    rec.pause()
    src.feed(700)  # left out of the file
    paused = rec.mark("while paused")
    rec.resume()
    src.feed(300)
    last = rec.mark("the\nend")
    src.feed(200)
    rec.stop()
    assert [(m.frame, m.number, m.label) for m in (first, paused, last)] == [
        (1000, 1, "Marker 1"), (1500, 2, "while paused"), (1800, 3, "the end")]
    assert [(e.timecode, e.number, e.label) for e in marks] == [
        (1000 / FAKE_RATE, 1, "Marker 1"), (1500 / FAKE_RATE, 2, "while paused"),
        (1800 / FAKE_RATE, 3, "the end")]
    assert wav_cues(rec.path) == [(1000, "Marker 1"), (1500, "while paused"), (1800, "the end")]
    # the audio is whole and untouched for every reader
    data, _ = sf.read(rec.path, dtype="int16", always_2d=True)
    expected = np.concatenate([counter(0, 1500, 1, "int16"), counter(2200, 500, 1, "int16")])
    assert np.array_equal(data, expected)
    assert sox_frames(rec.path) == 2000
    # and the sidecar beside a file outside the library says the same
    side = json.loads(Path(markers_mod.sidecar_path(rec.path)).read_text())
    assert side == {"markers": [{"number": 1, "time": 0.125, "label": "Marker 1"},
                                {"number": 2, "time": 0.1875, "label": "while paused"},
                                {"number": 3, "time": 0.225, "label": "the end"}]}


def test_mark_when_not_recording_raises_invalid_state(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "m.wav")
    with pytest.raises(InvalidStateError):
        rec.mark()
    rec.start()
    src.feed(100)
    rec.stop()
    with pytest.raises(InvalidStateError):
        rec.mark("late")
    assert not os.path.exists(markers_mod.sidecar_path(rec.path))


def test_a_label_that_is_too_long_is_refused_and_the_recording_goes_on(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "m.wav")
    rec.start()
    src.feed(100)
    with pytest.raises(InvalidArgumentError):
        rec.mark("y" * 10_000)
    assert rec.mark("ok").number == 1  # the refused one took no number
    src.feed(100)
    rec.stop()
    assert wav_cues(rec.path) == [(100, "ok")]


@pytest.mark.parametrize("fmt,mime", [("flac", "audio/flac"), ("ogg", "audio/ogg; codecs=vorbis"),
                                      ("opus", "audio/ogg; codecs=opus")])
def test_flac_and_ogg_files_carry_the_markers_as_chapter_comments(fake, tmp_path, fmt, mime):
    rate = 48000 if fmt == "opus" else FAKE_RATE
    src = fake(samplerate=rate, noise=True)
    rec = recorder(src, tmp_path / f"m.{fmt}", mime)
    rec.start()
    src.feed(rate // 2)
    rec.mark("Intro")
    src.feed(rate)
    rec.mark("Question 2 = the hard one")
    src.feed(rate // 4)
    rec.stop()
    expected = [(0.5, "Intro"), (1.5, "Question 2 = the hard one")]
    assert ffprobe_chapters(rec.path) == [(pytest.approx(t, abs=0.001), label) for t, label in expected]
    got = markers_mod.read_file_markers(rec.path)
    assert [(m.time, m.label) for m in got] == expected
    info = sf.info(rec.path)
    assert info.frames == rate * 7 // 4  # the audio is all there
    if fmt == "flac":
        comments, kinds = flac_comments(rec.path)
        assert comments == ["CHAPTER001=00:00:00.500", "CHAPTER001NAME=Intro",
                            "CHAPTER002=00:00:01.500", "CHAPTER002NAME=Question 2 = the hard one"]
        assert kinds == [0, 4, 1]  # STREAMINFO, the comments, what is left of the reserve as PADDING
        data, _ = sf.read(rec.path, dtype="int16", always_2d=True)
        assert len(data) == info.frames and sox_frames(rec.path) == info.frames


def test_a_flac_without_markers_has_no_blank_comment_left(fake, tmp_path):
    src = fake(noise=True)
    rec = recorder(src, tmp_path / "m.flac", "audio/flac")
    rec.start()
    src.feed(4000)
    rec.stop()
    comments, kinds = flac_comments(rec.path)
    assert comments == [] and kinds == [0, 4, 1]


def test_split_pieces_each_hold_their_markers_at_their_own_offsets(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "s.wav", split=0.5)  # 4000 frames a piece
    rec.start()
    src.feed(1000)
    rec.mark("a")  # piece 1 at 1000
    src.feed(3000)
    rec.mark("on the boundary")  # frame 4000: the first of piece 2
    src.feed(2500)
    rec.mark("b")  # frame 6500: piece 2 at 2500
    src.feed(2000)
    rec.stop()
    p1, p2, p3 = rec.paths
    assert wav_cues(p1) == [(1000, "a")]
    assert wav_cues(p2) == [(0, "on the boundary"), (2500, "b")]
    assert wav_cues(p3) == []
    assert [m.to_json() for m in rec.markers_in(p2)] == [
        {"number": 2, "time": 0.0, "label": "on the boundary"},
        {"number": 3, "time": 0.3125, "label": "b"}]
    joined = np.concatenate([sf.read(p, dtype="int16", always_2d=True)[0] for p in rec.paths])
    assert np.array_equal(joined, counter(0, 8500, 1, "int16"))


def test_split_on_mark_starts_a_file_at_each_marker_and_the_pieces_join_to_the_recording(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "q.wav", split_on_mark=True)
    rec.start()
    rec.mark("before any audio")  # frame 0: no empty piece before it
    src.feed(1234)
    rec.mark("Question 1")
    src.feed(4321)
    rec.mark("Question 2")
    rec.mark("Question 2 again")  # the same frame: no empty piece either
    src.feed(777)
    rec.stop()
    assert [os.path.basename(p) for p in rec.paths] == ["q-001.wav", "q-002.wav", "q-003.wav"]
    frames = [sf.info(p).frames for p in rec.paths]
    assert frames == [1234, 4321, 777]
    assert wav_cues(rec.paths[0]) == [(0, "before any audio")]
    assert wav_cues(rec.paths[1]) == [(0, "Question 1")]
    assert wav_cues(rec.paths[2]) == [(0, "Question 2"), (0, "Question 2 again")]
    joined = np.concatenate([sf.read(p, dtype="int16", always_2d=True)[0] for p in rec.paths])
    assert np.array_equal(joined, counter(0, 1234 + 4321 + 777, 1, "int16"))
    assert rec.piece_frames == dict(zip(rec.paths, frames))


def test_split_on_mark_needs_a_file_and_takes_no_timeslice(fake, tmp_path):
    with pytest.raises(InvalidArgumentError):
        MediaRecorder(fake(), "audio/wav", output=None, split_on_mark=True)
    rec = recorder(fake(), tmp_path / "x.wav", split_on_mark=True)
    with pytest.raises(InvalidArgumentError):
        rec.start(timeslice=1.0)


def test_a_marker_made_after_the_last_frame_is_kept_at_the_end(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "m.wav", max_duration=0.25)  # 2000 frames
    rec.start()
    src.feed(1500)
    rec.mark("inside")
    src.feed(1500)  # 1000 past the limit
    rec.wait(JOIN)
    assert rec.frames == 2000
    assert wav_cues(rec.path) == [(1500, "inside")]


# --------------------------------------------------------------------------- recovery


def test_a_sigkilled_recording_is_recovered_with_the_markers_it_had_written(tmp_path):
    env = no_device_env(tmp_path)
    source = audiolab.make_noise(tmp_path / "in.wav", 8.0, amplitude=0.3)
    proc = subprocess.Popen([*CLI, "record", "--input", str(source), "--realtime", "-q", "k.wav"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["duration"] > 0.5)
        replies = []
        for label in ("first", "second"):
            r = cliutil.run("mark", label, "--json", env=env, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            replies += json.loads(r.stdout)
            time.sleep(0.6)
        # until the header was updated after the second marker reached the file
        sidecar = tmp_path / "k.wav.markers.json"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if sidecar.exists() and len(json.loads(sidecar.read_text())["markers"]) == 2:
                break
            time.sleep(0.05)
        time.sleep(1.5)  # one header sync later
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        audiolab.stop_process(proc)
    r = cliutil.run("recover", "k.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 marker(s) restored" in r.stderr
    rate = 48000
    cues = wav_cues(tmp_path / "k.wav")
    assert cues == [(int(round(m["time"] * rate)), m["label"]) for m in replies]
    # every frame of the file is the input's, up to where it was killed, read by sox too
    data, _ = sf.read(tmp_path / "k.wav", dtype="int16")
    ref, _ = sf.read(source, dtype="int16")
    assert len(data) > cues[-1][0] and np.array_equal(data, ref[:len(data)])
    assert sox_frames(tmp_path / "k.wav") == len(data)
    # a second recover finds a whole file with chunks after its data, and leaves it so
    again = cliutil.run("recover", "k.wav", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "nothing to repair" in again.stderr
    assert wav_cues(tmp_path / "k.wav") == cues


# --------------------------------------------------------------------------- the CLI, no device


def _record_input(tmp_path, env, *args, seconds=3.0):
    source = audiolab.make_noise(tmp_path / "in.wav", seconds, amplitude=0.3)
    return subprocess.Popen([*CLI, "record", "--input", str(source), "--realtime", *args],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_mark_with_nothing_recording_says_so_in_one_line_and_exits_1(tmp_path):
    r = cliutil.run("mark", "hello", env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert "nothing is recording" in one_error_line(r.stderr)


def test_a_label_of_ten_thousand_characters_is_refused_and_a_multiline_one_is_made_one_line(tmp_path):
    env = no_device_env(tmp_path)
    proc = _record_input(tmp_path, env, "--events", "ev.jsonl", "t.wav")
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["started"])
        r = cliutil.run("mark", "x" * 10_000, env=env, cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == ""
        assert "at most 256" in one_error_line(r.stderr)
        r = cliutil.run("mark", "line one\nline two", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert proc.wait(20) == 0, proc.stderr.read()
    finally:
        audiolab.stop_process(proc)
    marks = [e for e in read_events(tmp_path / "ev.jsonl") if e["type"] == "mark"]
    assert [(e["number"], e["label"]) for e in marks] == [(1, "line one line two")]
    assert [label for _, label in wav_cues(tmp_path / "t.wav")] == ["line one line two"]


def test_joiners_and_direction_marks_stay_in_labels_and_an_empty_label_says_it_got_the_default(tmp_path):
    # ZWJ (an emoji family), ZWNJ (Persian), RLM/LRM (bidirectional text) are text; a bidi
    # override (it would reorder the rest of a terminal line) and a BOM are controls.
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467 family"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0645"
    mixed = "Price \u200f\u05de\u05d7\u05d9\u05e8\u200e: 5"
    env = no_device_env(tmp_path)
    proc = _record_input(tmp_path, env, "--events", "ev.jsonl", "t.wav")
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["started"])
        replies = []
        for label in (family, persian, mixed, "\u202eevil\ufeff", ""):
            r = cliutil.run("mark", label, env=env, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            replies.append(r.stderr)
        assert proc.wait(20) == 0, proc.stderr.read()
    finally:
        audiolab.stop_process(proc)
    expected = [family, persian, mixed, "evil", "Marker 5"]
    assert "the label given was empty" in replies[4] and "'Marker 5'" in replies[4]
    assert not any("empty" in r for r in replies[:4])
    marks = [e for e in read_events(tmp_path / "ev.jsonl") if e["type"] == "mark"]
    assert [e["label"] for e in marks] == expected
    assert [label for _, label in wav_cues(tmp_path / "t.wav")] == expected
    r = cliutil.run("marks", "t.wav", "--json", env=env, cwd=tmp_path)
    assert [m["label"] for m in json.loads(r.stdout)] == expected


def test_marks_lists_a_file_as_text_json_and_an_audacity_label_track(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "m.wav")
    rec.start()
    src.feed(8000)
    rec.mark("Intro")
    src.feed(4000)
    rec.mark()
    src.feed(100)
    rec.stop()
    env = no_device_env(tmp_path)
    os.unlink(markers_mod.sidecar_path(rec.path))  # from the file's cue chunk alone
    r = cliutil.run("marks", "m.wav", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["  1  0:01.000  Intro", "  2  0:01.500  Marker 2"]
    r = cliutil.run("marks", "m.wav", "--json", env=env, cwd=tmp_path)
    assert json.loads(r.stdout) == [{"number": 1, "time": 1.0, "label": "Intro"},
                                    {"number": 2, "time": 1.5, "label": "Marker 2"}]
    r = cliutil.run("marks", "m.wav", "--audacity", env=env, cwd=tmp_path)
    assert r.stdout == "1.000000\t1.000000\tIntro\n1.500000\t1.500000\tMarker 2\n"
    r = cliutil.run("marks", "m.wav", "--audacity", "--json", env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    one_error_line(r.stderr)


def test_play_at_a_marker_that_does_not_exist_is_one_clear_line_and_exit_2(fake, tmp_path):
    src = fake()
    rec = recorder(src, tmp_path / "m.wav")
    rec.start()
    src.feed(8000)
    rec.mark("Intro")
    src.feed(100)
    rec.stop()
    env = no_device_env(tmp_path)
    for at, says in (("7", "no marker 7"), ("Outro", "no marker labelled 'Outro'"),
                     ("9:00", "past the end")):
        r = cliutil.run("play", "m.wav", "--at", at, env=env, cwd=tmp_path)
        assert r.returncode == 2, (at, r.stderr)
        assert says in one_error_line(r.stderr) and r.stdout == ""


def test_split_on_mark_refuses_stdout_and_a_timeslice(tmp_path):
    env = no_device_env(tmp_path)
    for args in (["--split-on-mark", "-", "-f", "wav"], ["--split-on-mark", "--timeslice", "1", "x.wav"]):
        r = cliutil.run("record", "--input", str(audiolab.make_noise(tmp_path / "n.wav", 0.2)), *args,
                        env=env, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        one_error_line(r.stderr)
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "x-001.wav").exists()


# --------------------------------------------------------------------------- real audio


BEEP_LEVEL = 0.1  # the beep's amplitude is 0.5; the virtual microphone is silent otherwise


def beep_onsets(path) -> list[float]:
    """Seconds at which each beep starts in a recording (a gap of 0.1 s separates beeps)."""
    x, rate = audiolab.read_mono(path)
    loud = np.flatnonzero(np.abs(x) > BEEP_LEVEL)
    if not len(loud):
        return []
    starts = [loud[0]] + [b for a, b in zip(loud, loud[1:]) if b - a > rate * 0.1]
    return [s / rate for s in starts]


def test_a_marker_made_when_the_recorder_hears_a_beep_sits_at_the_beep_with_pauses_left_out(
        pulse, tmp_path):
    beep = audiolab.make_tone(tmp_path / "beep.wav", 0.3, 1000, amplitude=0.5)
    # Deliveries every 20 ms (the default is a quarter second): the recorder hears the beep
    # within a few tens of ms of its arrival, and that is when the marker is made.
    mic = Microphone(samplerate=RATE, pace=0.02, latency=0.1)
    rec = MediaRecorder(mic, "audio/wav", output=os.fspath(tmp_path / "b.wav"))
    made, heard = [], []
    rec.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not rec.started:
            assert time.monotonic() < deadline, "no audio from the virtual microphone"
            time.sleep(0.01)
        for i in range(3):
            time.sleep(0.4)
            if i == 1:  # a second of pause before the second beep: not in the file
                rec.pause()
                time.sleep(1.0)
                rec.resume()
            player = pulse.play(beep)
            deadline = time.monotonic() + 10
            while rec.level.peak < BEEP_LEVEL:
                assert time.monotonic() < deadline, "the beep never reached the recorder"
                time.sleep(0.002)
            # how much audio had been taken in when the test noticed the beep (on a busy
            # machine, noticing may take a while: that delay is the test's, not the marker's)
            heard.append(rec._capture.accepted / RATE)
            made.append(rec.mark(f"beep {i + 1}"))
            assert player.wait(10) == 0
            while rec.level.peak > BEEP_LEVEL / 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(0.3)
    finally:
        rec.stop()
    onsets = beep_onsets(rec.path)
    assert len(onsets) == 3, onsets
    for marker, onset, taken in zip(made, onsets, heard):
        # the marker is at the beep, or after it by no more than the audio that had come in
        # by then, and it is the moment of the call: at most 0.1 s past that audio
        assert onset - 0.01 <= marker.time, (marker, onset)
        assert taken <= marker.time < taken + 0.1, (marker, taken)
    # the cue points are the markers, to the sample
    assert wav_cues(rec.path) == [(m.frame, m.label) for m in made]
    assert rec.duration < onsets[-1] + 1.0  # (the pause is not in the file)


def test_a_marker_made_just_before_a_pause_stays_before_the_pause_and_the_markers_made_in_it(
        pulse, tmp_path, speech):
    # A marker counts the audio the device captured but has not delivered yet (up to a
    # quarter second); the pause dropped that audio, so a marker made just before it
    # pointed into what came after resume, and after a marker made while paused (here:
    # marker 1 at 0.62 s, marker 2, made later, at 0.37 s).
    rec = MediaRecorder(Microphone(samplerate=RATE), "audio/wav", output=os.fspath(tmp_path / "p.wav"))
    player = pulse.play(speech)  # something to capture: the virtual microphone is live
    rec.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not rec.started:
            assert time.monotonic() < deadline, "no audio from the virtual microphone"
            time.sleep(0.01)
        pairs = []
        for i in range(6):
            time.sleep(0.15 + 0.07 * i)  # at different points between two deliveries
            before = rec.mark(f"before pause {i + 1}")
            rec.pause()
            during = rec.mark(f"while paused {i + 1}")
            time.sleep(0.4)
            rec.resume()
            pairs.append((before, during))
    finally:
        rec.stop()
        player.wait(10)
    times = [m.time for m in rec.markers]
    assert times == sorted(times), [(m.number, round(m.time, 3)) for m in rec.markers]
    for before, during in pairs:
        # the pause cut where the device was when it was asked (what a marker made then
        # counts): the marker just before it is in the audio kept before the pause
        assert during.time - 0.1 <= before.time <= during.time, (before, during)
    assert times[-1] <= rec.duration
    assert wav_cues(rec.path) == sorted((m.frame, m.label) for m in rec.markers)


def _wait_marks(path, n, rec=None, timeout=20.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        events = [e for e in read_events(path)] if Path(path).exists() else []
        marks = [e for e in events if e["type"] == "mark"]
        if len(marks) >= n:
            return marks
        assert time.monotonic() < deadline, f"{len(marks)} of {n} markers in {events}"
        time.sleep(0.05)


def _wall(event) -> float:
    import datetime

    return datetime.datetime.fromisoformat(event["time"]).timestamp()


def test_the_m_key_adds_markers_the_meter_counts_them_and_their_times_follow_the_recording(
        pulse, terminal, tmp_path):
    t = terminal([*CLI, "record", "-r", str(RATE), "--events", "ev.jsonl", "take.wav"],
                 env=pulse_env(pulse), cwd=tmp_path, width=120, height=10)
    t.wait_for("● REC", timeout=START_TIMEOUT)
    time.sleep(0.5)
    t.send_keys("m")
    t.wait_for("1 marker, last: Marker 1", timeout=10)
    time.sleep(1.0)
    t.send_keys("m")
    t.wait_for("2 markers, last: Marker 2", timeout=10)
    time.sleep(0.3)
    t.send_keys("Space")  # pause: the next marker comes after a second left out
    t.wait_for("PAUSED", timeout=10)
    time.sleep(1.0)
    t.send_keys("Space")
    t.wait_for("● REC", timeout=10)
    time.sleep(0.6)
    t.send_keys("M")
    t.wait_for("3 markers, last: Marker 3", timeout=10)
    t.send_keys("q")
    assert t.wait_exit(timeout=20) == 0, t.capture(history=True)
    events = read_events(tmp_path / "ev.jsonl")
    marks = [e for e in events if e["type"] == "mark"]
    assert [(e["number"], e["label"]) for e in marks] == [(1, "Marker 1"), (2, "Marker 2"), (3, "Marker 3")]
    # On the recording's own timeline: between two markers, the recorded time is the time
    # that passed between them by the recorder's clock (when each was made)...
    recorded = marks[1]["duration"] - marks[0]["duration"]
    assert abs(recorded - (_wall(marks[1]) - _wall(marks[0]))) < 0.1, marks
    # ...less a pause between them. A pause cuts the audio where the device's delivery is
    # when it is asked for (up to a delivery, 0.1 s with the meter, plus the server's 0.125 s
    # fragment, on either side), so that interval is known to that much less.
    pause = next(e for e in events if e["type"] == "pause")
    resume = next(e for e in events if e["type"] == "resume")
    paused = _wall(resume) - _wall(pause)
    assert paused > 0.9
    recorded = marks[2]["duration"] - marks[1]["duration"]
    assert abs(recorded - (_wall(marks[2]) - _wall(marks[1]) - paused)) < 0.3, (marks, paused)
    cues = wav_cues(tmp_path / "take.wav")
    assert [(round(o / RATE, 6), label) for o, label in cues] == [
        (e["duration"], e["label"]) for e in marks]


def test_dictaphone_mark_from_another_shell_labels_the_moment_runs_the_hook_and_lands_in_the_file(
        pulse, tmp_path, recorders):
    beep = audiolab.make_tone(tmp_path / "beep.wav", 0.3, 1000, amplitude=0.5)
    hook_out = tmp_path / "hooks.txt"
    rec = recorders("take.flac", "--events", "ev.jsonl", "--on-mark",
                    f'printf "%s|%s|%s\\n" "$DICTAPHONE_MARK_NUMBER" "$DICTAPHONE_MARK_TIME" '
                    f'"$DICTAPHONE_MARK_LABEL" >> {hook_out}')
    rec.wait_started()
    env = pulse_env(pulse)
    r = cliutil.run("mark", "Question 1", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "marker 1 'Question 1'" in r.stderr
    # A marker, then a beep: the beep is in the file after the marker (within the 0.1 s a
    # marker's place may be off: the virtual microphone delivers in blocks, and the time
    # since its last block is an estimate), and a playback start-up's worth after it at most.
    r = cliutil.run("mark", "--json", env=env, cwd=tmp_path)
    second = json.loads(r.stdout)[0]
    pulse.play_and_wait(beep)
    time.sleep(0.5)
    r = cliutil.run("mark", 'a label with "quotes" and $(rm -rf /)', "--id", "1", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    marks = _wait_marks(tmp_path / "ev.jsonl", 3, rec)
    assert rec.stop() == 0, rec.stderr()
    assert [(e["number"], e["label"]) for e in marks] == [
        (1, "Question 1"), (2, "Marker 2"), (3, 'a label with "quotes" and $(rm -rf /)')]
    assert second["time"] == marks[1]["duration"]
    onset = beep_onsets(tmp_path / "take.flac")[0]
    assert second["time"] - 0.1 < onset < second["time"] + 2.0, (second, onset)
    assert onset < marks[2]["duration"]
    # the hook saw each marker in its environment only
    lines = hook_out.read_text().splitlines()
    assert [line.split("|")[0] for line in lines] == ["1", "2", "3"]
    assert [line.split("|", 2)[2] for line in lines] == [e["label"] for e in marks]
    assert [float(line.split("|")[1]) for line in lines] == pytest.approx([e["duration"] for e in marks], abs=1e-6)
    # and the file's chapters, read by ffprobe, are the markers
    chapters = ffprobe_chapters(tmp_path / "take.flac")
    assert [label for _, label in chapters] == [e["label"] for e in marks]
    assert [c for c, _ in chapters] == pytest.approx([e["duration"] for e in marks], abs=0.001)


def test_a_clip_keeps_its_markers_in_the_library_for_list_show_and_play_at(pulse, tmp_path):
    env = dict(pulse_env(pulse), DICTAPHONE_HOME=str(tmp_path / "clips"))
    proc = subprocess.Popen([*CLI, "record", "-r", str(RATE), "-q", "--name", "interview"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["started"])
        time.sleep(1.0)
        assert cliutil.run("mark", "Question 1", env=env, cwd=tmp_path).returncode == 0
        time.sleep(1.0)
        assert cliutil.run("mark", "Question 2", env=env, cwd=tmp_path).returncode == 0
        time.sleep(0.5)
        assert cliutil.run("stop", env=env, cwd=tmp_path).returncode == 0
        assert proc.wait(20) == 0, proc.stderr.read()
    finally:
        audiolab.stop_process(proc)
    clips = tmp_path / "clips"
    assert sorted(os.listdir(clips)) == ["interview.wav", "interview.wav.json"]  # no stray sidecar
    listed = json.loads(cliutil.run("list", "--json", env=env, cwd=tmp_path).stdout)
    ms = listed[0]["markers"]
    assert [m["label"] for m in ms] == ["Question 1", "Question 2"]
    assert 0.5 < ms[0]["time"] < ms[1]["time"] < listed[0]["duration"]
    assert [(round(o / RATE, 6), label) for o, label in wav_cues(clips / "interview.wav")] == [
        (m["time"], m["label"]) for m in ms]
    shown = cliutil.run("show", "interview", "-w", "80", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if "▲" in line]
    assert rows and "markers (▲): 1 " in shown.stdout and "Question 2" in shown.stdout
    assert rows[0].count("▲") == 2
    r = cliutil.run("play", "interview", "--at", "question 2", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"from {_clock(ms[1]['time'])} to " in r.stderr
    r = cliutil.run("play", "interview", "--at", "5", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "no marker 5" in one_error_line(r.stderr)


def _clock(seconds: float) -> str:
    from dictaphone.cli.text import clock

    return clock(seconds)


@pytest.mark.parametrize("fmt,mime", [("flac", "audio/flac"), ("ogg", "audio/ogg; codecs=vorbis")])
def test_more_markers_than_the_reserved_room_holds_keeps_the_first_in_the_file_and_all_in_the_sidecar(
        fake, tmp_path, fmt, mime):
    src = fake(noise=True)
    rec = recorder(src, tmp_path / f"many.{fmt}", mime)
    rec.start()
    for i in range(300):
        src.feed(80)
        rec.mark(f"{i:03d} " + "x" * 96)
    src.feed(80)
    rec.stop()
    in_file = markers_mod.read_file_markers(rec.path)
    assert 100 < len(in_file) < 300
    assert [m.label for m in in_file] == [m.label for m in rec.markers[:len(in_file)]]
    assert len(markers_mod.load(rec.path)) == 300  # the sidecar has them all
    assert sf.info(rec.path).frames == 301 * 80
    assert len(ffprobe_chapters(rec.path)) == len(in_file)


class PushSource:
    """Frames the test pushes itself, synchronously: a marker's frame is then exact."""

    name = "push"
    live = False
    channels = 1

    def __init__(self, samplerate=FAKE_RATE):
        self.samplerate = samplerate

    def open(self, capture, dtype):
        self.capture, self.dtype = capture, dtype

    def start(self):
        pass

    def stop(self):
        pass

    def close(self):
        pass

    def push(self, frames):
        self.capture.push(np.asarray(frames, dtype=self.dtype).reshape(-1, 1).copy(), owned=True)


def test_with_silences_left_out_a_marker_keeps_its_place_in_the_audio_that_is_written(tmp_path):
    from dictaphone.recording.vad import VoiceGate

    loud = lambda n: np.where(np.arange(n) % 2, 5000, -5000)  # noqa: E731
    quiet = lambda n: np.zeros(n)  # noqa: E731
    src = PushSource()
    gate = VoiceGate(FAKE_RATE, lambda w: np.abs(w).max() > 1000, skip_silence=1.0)
    rec = MediaRecorder(src, "audio/wav", output=os.fspath(tmp_path / "v.wav"), voice=gate,
                        stall_timeout=None, start_timeout=None)
    rec.start()
    src.push(loud(2000))
    rec.mark("in speech")  # frame 2000
    src.push(loud(2000))
    src.push(quiet(1600))
    rec.mark("in a short silence")  # frame 5600: a silence of 0.4 s is kept whole
    src.push(quiet(1600))
    src.push(loud(4000))  # ends at 11200
    src.push(quiet(12000))
    rec.mark("in a long silence")  # 1.5 s into a silence that is cut to 0.6 s
    src.push(quiet(4000))
    src.push(loud(4000))
    time.sleep(0.5)
    rec.stop()
    window = int(0.03 * FAKE_RATE)  # the gate decides 30 ms at a time
    assert abs(sf.info(rec.path).frames - (4000 + 3200 + 4000 + 4800 + 4000)) <= window
    (a, la), (b, lb), (c, lc) = wav_cues(rec.path)
    assert (la, lb, lc) == ("in speech", "in a short silence", "in a long silence")
    assert abs(a - 2000) <= window and abs(b - 5600) <= window
    assert 11200 <= c <= 11200 + 4800  # in the gap that stands for the silence


def test_split_on_mark_from_the_cli_gives_one_file_per_marker_that_join_to_the_input(tmp_path):
    env = no_device_env(tmp_path)
    proc = _record_input(tmp_path, env, "--split-on-mark", "--events", "ev.jsonl", "q.flac",
                         seconds=3.0)
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["duration"] > 0.5)
        said = []
        for label in ("Question 1", "Question 2"):
            r = cliutil.run("mark", label, env=env, cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            said.append(r.stderr)
            time.sleep(0.7)
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        audiolab.stop_process(proc)
    # each `mark` names the file its marker starts (it named the one that ends there)
    for text, piece in zip(said, ("q-002.flac", "q-003.flac")):
        assert text.strip().endswith(f"(starts {tmp_path / piece})"), text
    pieces = sorted(tmp_path.glob("q-*.flac"))
    assert [p.name for p in pieces] == ["q-001.flac", "q-002.flac", "q-003.flac"]
    marks = [e for e in read_events(tmp_path / "ev.jsonl") if e["type"] == "mark"]
    lengths = [sf.info(p).frames for p in pieces]
    # each piece after the first starts at its marker, to the sample
    assert [round(e["duration"] * RATE) for e in marks] == [lengths[0], lengths[0] + lengths[1]]
    for piece, label in zip(pieces[1:], ("Question 1", "Question 2")):
        assert [(m.time, m.label) for m in markers_mod.read_file_markers(piece)] == [(0.0, label)]
        assert json.loads(Path(markers_mod.sidecar_path(piece)).read_text())["markers"][0]["label"] == label
    joined = np.concatenate([sf.read(p, dtype="int16")[0] for p in pieces])
    assert np.array_equal(joined, sf.read(tmp_path / "in.wav", dtype="int16")[0])


@pytest.mark.parametrize("fmt", ["mp3", "raw"])
def test_mp3_and_raw_keep_their_markers_in_the_sidecar(tmp_path, fmt):
    env = no_device_env(tmp_path)
    proc = _record_input(tmp_path, env, f"take.{fmt}", seconds=2.0)
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["duration"] > 0.3)
        r = cliutil.run("mark", "here", "--json", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        made = json.loads(r.stdout)[0]
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        audiolab.stop_process(proc)
    r = cliutil.run("marks", f"take.{fmt}", "--json", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"number": 1, "time": made["time"], "label": "here"}]


@pytest.mark.parametrize("fmt", ["flac", "ogg"])
def test_a_sigkilled_flac_or_ogg_recording_gets_its_chapters_back_from_recover(tmp_path, fmt):
    env = no_device_env(tmp_path)
    proc = _record_input(tmp_path, env, "-q", f"k.{fmt}", seconds=8.0)
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["duration"] > 0.5)
        r = cliutil.run("mark", "kept", "--json", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        made = json.loads(r.stdout)[0]
        sidecar = tmp_path / f"k.{fmt}.markers.json"
        deadline = time.monotonic() + 20
        while not sidecar.exists():
            assert time.monotonic() < deadline, "the marker never reached the sidecar"
            time.sleep(0.05)
        time.sleep(2.5)  # audio past the marker reaches the file
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        audiolab.stop_process(proc)
    assert markers_mod.read_file_markers(tmp_path / f"k.{fmt}") == []  # the blank reserve only
    r = cliutil.run("recover", f"k.{fmt}", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 marker(s) restored" in r.stderr
    chapters = ffprobe_chapters(tmp_path / f"k.{fmt}")
    assert chapters == [(pytest.approx(made["time"], abs=0.001), "kept")]
    assert sf.info(tmp_path / f"k.{fmt}").frames > made["time"] * RATE


def test_play_at_a_marker_plays_from_that_moment_on(pulse, speech, tmp_path):
    # The speech file with a marker half-way, played --at it into the virtual sink while
    # its monitor is recorded: the second half is heard, the first half is not.
    x, rate = audiolab.read_mono(speech)
    half = len(x) // 2
    take = tmp_path / "take.wav"
    take.write_bytes(Path(speech).read_bytes())
    markers_mod.save_sidecar(take, [markers_mod.Marker(1, half / rate, "half way")])
    heard = tmp_path / "heard.wav"
    env = pulse_env(pulse)
    recorder_proc = pulse.start_recording(heard)
    try:
        r = cliutil.run("play", str(take), "--at", "half way", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    finally:
        # (until the capture holds the second half: under load it runs behind the sink)
        pulse.stop_recording_after(recorder_proc, heard, x[half:])
    got, _ = audiolab.read_mono(heard)
    second, _ = audiolab.normalized_xcorr(x[half + rate // 10: half + rate], got)
    first, _ = audiolab.normalized_xcorr(x[rate // 10: half - rate // 10], got)
    assert second > 0.9, second
    assert first < 0.5, first


# --------------------------------------------------------------------------- the meter's width


def _meter_lines(width: int, label: str, **state) -> list[str]:
    import io
    import types

    from rich.console import Console

    from dictaphone.cli.ui import Meter

    marks = [types.SimpleNamespace(number=i + 1, time=t, label=text)
             for i, (text, t) in enumerate(state.pop("markers", []))]
    rec = types.SimpleNamespace(level=types.SimpleNamespace(peak=0.1, rms=0.05, clipped=0),
                                state="recording", voice=None, started=True, duration=65.3,
                                device_lost=None, bytes_written=447_700, dropped_frames=0,
                                markers=marks)
    vars(rec).update(state)
    console = Console(file=io.StringIO(), width=width, force_terminal=False)
    console.print(Meter(rec, console, label, keys=True).render())
    return console.file.getvalue().splitlines()


LONG_CLIP = "/home/someone/.local/share/dictaphone/the weekly meeting with the design team.wav"


@pytest.mark.parametrize("width", [60, 80, 100, 132, 200])
@pytest.mark.parametrize("state", [
    {},
    {"markers": [("the decision about the budget for next year", 4.7)] * 3, "dropped_frames": 120},
    {"device_lost": {"reason": "the audio server stopped", "left": 28.2, "lost": 12.0}},
], ids=["plain", "markers and drops", "device lost"])
def test_the_meter_keeps_to_two_lines_of_the_terminals_width(width, state):
    # On an 80-column terminal the marker count, a lost device's countdown and the keys'
    # hint made the meter wrap onto four lines; it must stay two, keeping what matters.
    lines = _meter_lines(width, LONG_CLIP, **state)
    assert len(lines) == 2, lines
    assert all(len(line) <= width for line in lines), lines
    info = lines[1]
    if width >= 80:
        assert "design team.wav" in info  # the path is cut from the left: the name stays
    if state.get("markers") and width >= 80:
        assert "120 dropped frames" in info and "⚑ 3 markers, last: the" in info
    if state.get("device_lost"):
        assert "DEVICE LOST — waiting 29 s" in lines[0]
        assert "the audio server stopped" in lines[0] or width < 80
    if width >= 200 or (width >= 100 and not state.get("markers")):
        assert "q stop" in info, (width, info)  # the hint goes first, and only when short of room


def test_the_meter_shows_a_short_path_and_the_keys_whole(tmp_path):
    lines = _meter_lines(100, "memo.wav", markers=[("Marker 1", 1.0)])
    assert lines[1].startswith("memo.wav  447.7 kB  ⚑ 1 marker, last: Marker 1 at 0:01.0")
    assert lines[1].endswith("q stop · space pause/resume · m marker")


def _wav_with_cues(path: Path, cues: list[tuple[int, bytes]]) -> Path:
    """A WAV as another program writes it: a cue chunk and an adtl list of labl texts."""
    sf.write(path, np.zeros((RATE, 1), np.int16), RATE, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    cue = struct.pack("<I", len(cues)) + b"".join(
        struct.pack("<II4sIII", i + 1, offset, b"data", 0, 0, offset) for i, (offset, _) in enumerate(cues))
    labls = b""
    for i, (_, text) in enumerate(cues):
        body = struct.pack("<I", i + 1) + text + b"\0"
        labls += b"labl" + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")
    adtl = b"adtl" + labls
    data += b"cue " + struct.pack("<I", len(cue)) + cue + b"LIST" + struct.pack("<I", len(adtl)) + adtl
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    return path


def test_labels_another_program_wrote_with_tabs_and_line_breaks_come_out_as_one_line(tmp_path):
    # dictaphone keeps its own labels to one line, but a file from elsewhere may not: its
    # tab made an extra column in `marks --audacity` and its line break a line of its own.
    wav = _wav_with_cues(tmp_path / "edited.wav", [(RATE // 2, b"intro\tpart\none"), (RATE - 1, b"\x01\r\n")])
    env = no_device_env(tmp_path)
    r = cliutil.run("marks", "edited.wav", "--audacity", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["0.500000\t0.500000\tintro part one",
                                     f"{(RATE - 1) / RATE:.6f}\t{(RATE - 1) / RATE:.6f}\tMarker 2"]
    r = cliutil.run("marks", "edited.wav", env=env, cwd=tmp_path)
    # (frame 47999 is 0.99998 s: cut to the millisecond, as every time is cut, 0:00.999)
    assert r.stdout.splitlines() == ["  1  0:00.500  intro part one", "  2  0:00.999  Marker 2"]
    assert [m.label for m in markers_mod.load(str(wav))] == ["intro part one", "Marker 2"]
    r = cliutil.run("play", "edited.wav", "--at", "intro part one", "-D", "no such output", env=env, cwd=tmp_path)
    assert "no marker" not in r.stderr  # found by the label as listed


def test_marks_of_a_file_that_is_not_audio_says_so_instead_of_no_markers(tmp_path):
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    sf.write(tmp_path / "plain.wav", np.zeros((800, 1), np.int16), RATE)
    env = no_device_env(tmp_path)
    for args in (["notes.txt"], ["notes.txt", "--json"], ["notes.txt", "--audacity"]):
        r = cliutil.run("marks", *args, env=env, cwd=tmp_path)
        assert r.returncode == 2 and r.stdout == "", (args, r.stdout)
        assert "notes.txt: not a readable audio file" in one_error_line(r.stderr)
    r = cliutil.run("marks", "plain.wav", env=env, cwd=tmp_path)  # audio without markers
    assert r.returncode == 0 and r.stderr.strip() == "no markers in plain.wav", r.stderr


def test_a_label_that_is_a_number_and_digits_that_are_not_ascii_are_found_or_refused_in_words(tmp_path):
    # "--at ²" (and "-D ²") ended in a traceback: str.isdigit() takes "²", int() does not.
    # A label "2024" could not be reached: a number is a marker's number, and there is none.
    _wav_with_cues(tmp_path / "t.wav", [(RATE // 4, "2024".encode()), (RATE // 2, "²".encode())])
    env = no_device_env(tmp_path)
    for at in ("2024", "²", "1", "2"):
        r = cliutil.run("play", "t.wav", "--at", at, "-D", "no such output", env=env, cwd=tmp_path)
        # --at was found: the next step, the output device, is what fails (there is none here)
        assert r.returncode == 1, r.stderr
        assert "no output devices found" in one_error_line(r.stderr), (at, r.stderr)
    r = cliutil.run("play", "t.wav", "--at", "³", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "no marker labelled '³'" in one_error_line(r.stderr)


def test_a_device_named_with_digits_that_are_not_ascii_is_a_name_that_matches_nothing(tmp_path, pulse):
    # "-D ²" ended in a traceback (str.isdigit() takes "²", int() does not). Where there are
    # devices it is a name like any other, and no device has it.
    _wav_with_cues(tmp_path / "t.wav", [(RATE // 4, b"one")])
    env = cliutil.pulse_env(pulse)
    for args in (["record", "-D", "²", "-d", "1", "x.wav"], ["play", "t.wav", "-D", "²"]):
        r = cliutil.run(*args, env=env, cwd=tmp_path)
        assert r.returncode == 2 and "matches '²'" in one_error_line(r.stderr), (args, r.stderr)
    assert not (tmp_path / "x.wav").exists()
