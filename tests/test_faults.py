"""Fault injection: whatever goes wrong, what was captured survives as a playable file.

Each test breaks something for real: SIGKILL, a full tmpfs, a killed or frozen PulseAudio,
a source that raises, corrupt files, CPU hogs on both cores. docs/RELIABILITY.md has the
table of cases, expected behaviour and what was lost.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import audiolab
import cliutil
from dictaphone import DictaphoneError, FileSource, MediaRecorder
from dictaphone.errors import SourceError
from dictaphone.capture.sources import Source

RATE = 48000


def kill_after_speech(pulse, speech, recorders, tmp_path, out, extra=()):
    """Record, play the speech, keep recording a little, SIGKILL. Returns the recorded
    duration the last event reported before the kill."""
    events = tmp_path / "ev.jsonl"
    rec = recorders(out, "--events", events, "--timeslice", "0.25", *extra)
    rec.wait_started()
    pulse.play_and_wait(speech)
    time.sleep(2.2)
    reported = max(e["duration"] for e in cliutil.read_events(events) if e["type"] == "dataavailable")
    rec.proc.kill()
    rec.proc.wait(timeout=10)
    return reported


def assert_has_speech(path, speech, minimum=0.9):
    assert audiolab.speech_score(speech, path) > minimum


def test_sigkill_leaves_a_wav_that_standard_tools_read_up_to_about_the_last_second(
        pulse, speech, tmp_path, recorders):
    out = tmp_path / "killed.wav"
    reported = kill_after_speech(pulse, speech, recorders, tmp_path, out)
    info = sf.info(out)
    assert info.frames >= (reported - 1.3) * RATE  # the header is made valid once a second
    sox = subprocess.run(["sox", str(out), "-n", "stat"], capture_output=True, text=True, timeout=30)
    assert sox.returncode == 0 and "Samples read" in sox.stderr
    assert_has_speech(out, speech)
    before = info.frames
    r = cliutil.run("recover", out)
    assert r.returncode == 0, r.stderr
    after = sf.info(out).frames
    assert after >= before and after >= (reported - 0.1) * RATE  # recover takes all the data
    assert str(out) in r.stderr
    # the killed recorder's registry entry is stale: status notices and removes it
    assert cliutil.run("status", env=pulse.env).returncode == 1
    assert not [f for f in os.listdir(cliutil.registry(pulse.env)) if f.endswith(".json")]


def test_sigkill_leaves_a_flac_that_recover_makes_readable(pulse, speech, tmp_path, recorders):
    out = tmp_path / "killed.flac"
    reported = kill_after_speech(pulse, speech, recorders, tmp_path, out)
    # before any repair, STREAMINFO has the total of the last sync (once a second)
    assert (reported - 1.3) * RATE <= sf.info(out).frames < 2**40
    r = cliutil.run("recover", out)
    assert r.returncode == 0, r.stderr
    info = sf.info(out)
    assert (reported - 1.3) * RATE <= info.frames < 2**40
    data, _ = sf.read(out)
    assert len(data) == info.frames
    assert_has_speech(out, speech)


@pytest.mark.parametrize("fmt", ["ogg", "opus", "mp3"])
def test_sigkill_leaves_a_lossy_file_that_recover_makes_whole_up_to_the_last_second(
        fmt, pulse, speech, tmp_path, recorders):
    """Ogg Vorbis and Opus: cut after the last whole page, marked end-of-stream; MP3: cut
    after the last whole frame, its length header filled in. Measured against what the
    recorder had reported as recorded before the kill."""
    out = tmp_path / f"killed.{fmt}"
    reported = kill_after_speech(pulse, speech, recorders, tmp_path, out)
    if fmt == "mp3":  # before any repair, its Info tag is the one of the last sync
        assert sf.info(out).frames >= (reported - 1.3) * RATE
    r = cliutil.run("recover", out)
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stderr
    info = sf.info(out)
    data, _ = sf.read(out)
    assert len(data) == info.frames
    loss = reported - info.frames / RATE
    print(f"{fmt}: {loss:.2f} s lost of {reported:.2f} s reported")
    assert loss <= 1.0, f"{loss:.2f} s lost"
    ff = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "f32le", "-ac", "1", "-"],
                        capture_output=True, timeout=60)
    assert ff.returncode == 0 and not ff.stderr, ff.stderr
    assert abs(len(ff.stdout) // 4 - info.frames) <= 2048  # a second decoder agrees
    assert_has_speech(out, speech, minimum=0.8)
    again = cliutil.run("recover", out)
    assert again.returncode == 0 and "nothing to repair" in again.stderr


@pytest.mark.parametrize("fmt", ["ogg", "opus"])
def test_sigkill_during_digital_silence_loses_at_most_the_last_second(fmt, tmp_path, recorders):
    """A muted microphone gives exact zeros, which Vorbis codes to a few bytes a packet;
    a page is still ended at every sync. (--input with --realtime: a device's pace.)"""
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros((RATE * 30, 1), np.int16), RATE)
    out = tmp_path / f"quiet.{fmt}"
    events = tmp_path / "ev.jsonl"
    rec = recorders(out, "--input", silence, "--realtime", "--events", events, "--timeslice", "0.5")
    rec.wait_for_event(lambda e: e["type"] == "dataavailable" and e["duration"] >= 4.5, timeout=60)
    reported = max(e["duration"] for e in cliutil.read_events(events) if e["type"] == "dataavailable")
    rec.proc.kill()
    rec.proc.wait(timeout=10)
    r = cliutil.run("recover", out)
    assert r.returncode == 0, r.stderr
    frames = sf.info(out).frames
    assert len(sf.read(out)[0]) == frames
    assert frames >= (reported - 1.0) * RATE, f"{reported - frames / RATE:.2f} s lost"




@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "opus", "mp3"])
def test_a_full_disk_stops_with_a_clear_error_and_what_fit_is_a_valid_file(small_disk, tmp_path, fmt):
    src = audiolab.make_noise(tmp_path / "long.wav", 60, channels=2, amplitude=0.3)
    out = small_disk / f"take.{fmt}"
    r = cliutil.run("record", "--input", src, out, timeout=120)
    assert r.returncode == 1
    line = cliutil.one_error_line(r.stderr)
    assert "disk full" in line and str(out) in line
    data, rate = sf.read(out, dtype="int16", always_2d=True)
    assert rate == RATE and len(data) > RATE // 2
    if fmt in ("wav", "flac"):  # lossless: exactly the start of the input
        ref, _ = sf.read(src, dtype="int16", always_2d=True)
        assert np.array_equal(data, ref[:len(data)])
    kept = int(line.split("(")[1].split(" frames")[0])
    assert abs(kept - len(data)) <= 8192  # the message says how much was kept


def test_killing_the_audio_server_with_reconnect_off_ends_the_recording_with_an_error_and_keeps_the_audio(
        speech, tmp_path, recorders):
    with audiolab.PulseServer() as server:
        events = tmp_path / "ev.jsonl"
        out = tmp_path / "lost.wav"
        rec = recorders(out, "--events", events, "--reconnect", "0", env=server.env)
        rec.wait_started()
        server.play_and_wait(speech)
        time.sleep(0.5)
        server.kill()
        status = rec.wait(timeout=20)
    assert status == 1
    line = cliutil.one_error_line(rec.stderr())
    assert line.startswith("dictaphone: error:") and str(out) in line
    assert 'input device "default": the audio server stopped' in line
    assert "PaErrorCode" not in line and "host error" not in line
    kinds = [e["type"] for e in cliutil.read_events(events)]
    assert "devicelost" not in kinds
    assert kinds[-3:] == ["error", "dataavailable", "stop"]
    assert_has_speech(out, speech)


def locate(reference, recording) -> tuple[float, int]:
    """(score, first sample) of ``reference`` inside the WAV ``recording``."""
    ref, _ = audiolab.read_mono(reference)
    rec, _ = audiolab.read_mono(recording)
    return audiolab.normalized_xcorr(ref, rec)


def test_a_restarted_audio_server_is_reconnected_and_the_recording_goes_on_in_the_same_file(
        speech, tmp_path, recorders):
    after = audiolab.make_noise(tmp_path / "after.wav", 1.0, seed=7, amplitude=0.3)
    library = tmp_path / "library"
    library.mkdir()
    out = library / "back.wav"  # inside the library: the clip gets its metadata
    events = tmp_path / "ev.jsonl"
    with audiolab.PulseServer() as server:
        env = dict(server.env, DICTAPHONE_HOME=str(library))
        rec = recorders(out, "--events", events, "--reconnect", "30", env=env)
        rec.wait_started()
        server.play_and_wait(speech)
        time.sleep(0.5)
        server.kill()
        lost = rec.wait_for_event(lambda e: e["type"] == "devicelost")
        [entry] = cliutil.status_entries(env)  # `status` tells a script what is going on
        assert entry["state"] == "recording" and 0 < entry["device_lost"]["left"] <= 30
        assert entry["device_lost"]["reason"] == "the audio server stopped"
        r = cliutil.run("status", env=env)
        assert "DEVICE LOST (the audio server stopped), waiting" in r.stdout
        time.sleep(1.0)  # down for a while, as in a real restart
        server.restart()
        back = rec.wait_for_event(lambda e: e["type"] == "devicerestored", timeout=30)
        server.play_and_wait(after)
        time.sleep(0.5)
        status = rec.stop()
    assert status == 0, rec.stderr()
    summary = rec.stderr().strip().splitlines()[-1]
    assert summary.startswith(f"Saved {out}") and "0 dropped frames, 1 gap where the device was lost (" in summary
    log = cliutil.read_events(events)
    kinds = [e["type"] for e in log]
    assert kinds.count("devicelost") == 1 and kinds.count("devicerestored") == 1
    assert "error" not in kinds and kinds[-1] == "stop"
    assert lost["reason"] == back["reason"] == "the audio server stopped"
    assert lost["device"] == 'input device "default"' and lost["wait"] == 30
    assert 1.0 <= back["gap"] < 30  # at least the second it was down
    # both sounds are in the one file, the speech before the gap, the noise after it
    speech_score, speech_at = locate(speech, out)
    after_score, after_at = locate(after, out)
    assert speech_score > 0.9 and after_score > 0.9
    gap_at = int(lost["duration"] * RATE)
    assert speech_at + sf.info(speech).frames <= gap_at + RATE // 10 <= after_at + RATE // 10
    assert back["duration"] == lost["duration"]  # nothing was written while it was lost
    meta = json.loads(out.with_name("back.wav.json").read_text())
    assert len(meta["gaps"]) == 1
    gap = meta["gaps"][0]
    assert gap["reason"] == "the audio server stopped"
    assert gap["time"] == pytest.approx(lost["duration"], abs=1e-3)
    assert gap["duration"] == pytest.approx(back["gap"], abs=1e-3)
    listed = json.loads(cliutil.run("list", "--json", env=env).stdout)
    assert listed[0]["gaps"] == meta["gaps"]


def test_a_device_that_does_not_come_back_in_time_ends_the_recording_with_one_clear_line(
        speech, tmp_path, recorders):
    events = tmp_path / "ev.jsonl"
    out = tmp_path / "gone.flac"
    with audiolab.PulseServer() as server:
        rec = recorders(out, "--events", events, "--reconnect", "2", env=server.env)
        rec.wait_started()
        server.play_and_wait(speech)
        time.sleep(0.5)
        server.kill()
        status = rec.wait(timeout=30)
    assert status == 1
    line = cliutil.one_error_line(rec.stderr())
    assert line.startswith('dictaphone: error: input device "default": the audio server stopped '
                           'and did not come back within 2 s; kept ')
    assert str(out) in line and "PaErrorCode" not in line
    kinds = [e["type"] for e in cliutil.read_events(events)]
    assert kinds[-4:] == ["devicelost", "error", "dataavailable", "stop"]
    assert sf.info(out).frames > 0
    assert_has_speech(out, speech)


def test_a_frozen_audio_server_is_a_lost_device_noticed_within_the_stall_timeout(tmp_path, recorders):
    events = tmp_path / "ev.jsonl"
    with audiolab.PulseServer() as server:
        out = tmp_path / "stalled.wav"
        rec = recorders(out, "--events", events, "--reconnect", "1", env=server.env)
        rec.wait_started()
        time.sleep(0.5)
        os.kill(server.pid, signal.SIGSTOP)
        try:
            status = rec.wait(timeout=40)
        finally:
            os.kill(server.pid, signal.SIGCONT)
    assert status == 1
    line = cliutil.one_error_line(rec.stderr())
    assert "the audio server stopped responding (no audio for 5 s)" in line
    assert "did not come back within 1 s" in line
    lost = [e for e in cliutil.read_events(events) if e["type"] == "devicelost"]
    assert len(lost) == 1 and lost[0]["reason"].startswith("the audio server stopped responding")
    assert sf.info(out).frames >= RATE // 4


def test_a_frozen_audio_server_that_thaws_within_the_window_is_reconnected(speech, tmp_path, recorders):
    events = tmp_path / "ev.jsonl"
    out = tmp_path / "thawed.wav"
    with audiolab.PulseServer() as server:
        rec = recorders(out, "--events", events, "--reconnect", "30", env=server.env)
        rec.wait_started()
        os.kill(server.pid, signal.SIGSTOP)
        try:
            lost = rec.wait_for_event(lambda e: e["type"] == "devicelost", timeout=30)
            time.sleep(1.0)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        back = rec.wait_for_event(lambda e: e["type"] == "devicerestored", timeout=40)
        server.play_and_wait(speech)
        time.sleep(0.5)
        status = rec.stop()
    assert status == 0, rec.stderr()
    assert lost["reason"] == "the audio server stopped responding (no audio for 5 s)"
    assert back["gap"] >= 5
    score, at = locate(speech, out)
    assert score > 0.9 and at >= lost["duration"] * RATE - RATE // 10


class RaisingSource(Source):
    """Delivers a ramp, then fails like a device that threw."""

    name = "raising"

    def __init__(self, frames_before_failure=RATE):
        self.samplerate, self.channels = RATE, 1
        self.frames_before_failure = frames_before_failure

    def open(self, capture, dtype):
        self.capture, self.dtype = capture, dtype

    def start(self):
        def run():
            data = (np.arange(self.frames_before_failure) % 30000).astype(self.dtype)[:, None]
            for i in range(0, len(data), 4800):
                self.capture.push_all(data[i:i + 4800])
            self.capture.end(SourceError("the source broke"))

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        pass

    def close(self):
        pass


def test_a_source_that_raises_fires_error_then_keeps_everything_it_delivered(tmp_path):
    out = tmp_path / "raised.wav"
    rec = MediaRecorder(RaisingSource(), "audio/wav", output=str(out))
    seen = []
    for t in ("error", "dataavailable", "stop"):
        rec.add_event_listener(t, seen.append)
    rec.start()
    assert rec.wait(10)
    assert [e.type for e in seen] == ["error", "dataavailable", "stop"]
    assert isinstance(seen[0].error, DictaphoneError) and "broke" in str(seen[0].error)
    data, _ = sf.read(out, dtype="int16")
    assert np.array_equal(data, (np.arange(RATE) % 30000).astype(np.int16))


def test_cpu_hogs_on_both_cores_make_no_frame_drop(pulse, tmp_path):
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        events = tmp_path / "ev.jsonl"
        r = cliutil.run("record", "-r", RATE, "-d", 10, "--events", events, tmp_path / "busy.wav",
                        env=pulse.env, cwd=tmp_path, timeout=60)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert r.returncode == 0, r.stderr
    stop = cliutil.read_events(events)[-1]
    assert stop["type"] == "stop" and stop["frames"] == 10 * RATE
    assert stop["dropped_frames"] == 0
    assert "0 dropped frames" in r.stderr


def test_two_recorders_racing_for_one_file_never_share_it(tmp_path, recorders):
    src = audiolab.make_noise(tmp_path / "in.wav", 1.0, seed=3)
    recs = [recorders("same.wav", "--input", src, "--realtime", rate=None, env=dict(os.environ))
            for _ in range(2)]
    results = [(rec.wait(timeout=20), rec.stderr()) for rec in recs]
    assert sorted(status for status, _ in results) == [0, 2]
    loser = next(stderr for status, stderr in results if status == 2)
    assert "exists" in cliutil.one_error_line(loser)
    data, _ = sf.read(tmp_path / "same.wav", dtype="int16")
    assert np.array_equal(data, sf.read(src, dtype="int16")[0])


# ----------------------------------------------------------------------------- hostile input

def _valid_bytes(tmp_path, fmt):
    path = tmp_path / f"seed.{fmt}"
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(int(0.3 * RATE)) / RATE)
    sf.write(path, tone, RATE)  # each format's default encoding
    return path.read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_file_readers_turn_any_damage_into_a_dictaphone_error(tmp_path, data):
    fmt = data.draw(st.sampled_from(["wav", "flac", "ogg"]))
    seed = _valid_bytes(tmp_path, fmt)
    how = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if how == "truncate":
        blob = seed[:data.draw(st.integers(0, len(seed)))]
    elif how == "flip":
        blob = bytearray(seed)
        for _ in range(data.draw(st.integers(1, 20))):
            i = data.draw(st.integers(0, min(len(blob) - 1, 200)))
            blob[i] = data.draw(st.integers(0, 255))
        blob = bytes(blob)
    else:
        blob = data.draw(st.binary(max_size=4096))
    path = tmp_path / f"damaged.{fmt}"
    path.write_bytes(blob)
    from dictaphone.containers.recover import recover
    from dictaphone.library.waveform import analyse

    for action in (lambda: FileSource(path), lambda: recover(str(path), dry_run=True),
                   lambda: analyse(str(path), 40)):
        try:
            action()
        except DictaphoneError:
            pass  # a clear, expected error


def _main(argv, cwd):
    """Run the CLI in-process; return (exit status, stderr)."""
    from dictaphone.cli import main

    err = io.StringIO()
    old = os.getcwd()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                main(argv)
                status = 0
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(old)
        for signum, handler in handlers.items():  # a recording keeps them caught
            signal.signal(signum, handler)
    return status, err.getvalue()


TEXT = st.one_of(st.text(max_size=12), st.sampled_from(
    ["0", "-1", "48000", "1e9", "nan", "inf", "1:30", "5m", "PCM_24", "opus", "flac", "",
     # the families of issue 12: zero and blank taken as "not given", absurd splits,
     # clock typos, overflow, less than a frame, codecs named as subtypes
     "   ", "0.0", "00", "1:99", "1:-5", "1e400", "0.00001", "0.0001", "1e-9", "vorbis", "mp3",
     "-inf", "-0", "1::2", "٣", "１", "a\x1eb", "x\ny", "\x00"]))

#: options that take a value, and flags
VALUED = ["-r", "-c", "-f", "--subtype", "-d", "--timeslice", "--split", "--threshold",
          "--skip-silence", "--stop-on-silence", "--reconnect", "-D", "--name", "--events",
          "--on-data", "--on-stop", "--model", "--language", "--on-text", "--vad"]
FLAGS = ["--realtime", "--force", "--wait-for-sound", "--split-on-mark"]
#: OUTPUT: a new file, the input itself (by name and through a symlink), nothing, empty
OUTPUTS = ["out.wav", "out.ogg", "in.wav", "link.wav", None, "", "out\nx.wav", "nodir/out.wav"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(opts=st.lists(st.one_of(st.tuples(st.sampled_from(VALUED), TEXT),
                               st.tuples(st.sampled_from(FLAGS))), max_size=4),
       output=st.sampled_from(OUTPUTS))
def test_record_argument_parsing_never_shows_a_traceback(tmp_path, opts, output):
    src = tmp_path / "in.wav"
    if not src.exists():
        audiolab.make_tone(src, 0.2, 440)
        os.symlink("in.wav", tmp_path / "link.wav")
    original = src.read_bytes()
    argv = ["record", "--input", str(src), "-q"]
    for opt, *value in opts:
        if opt == "-D":
            continue  # a device would mean the microphone; --input is what is fuzzed here
        if opt in ("--on-data", "--on-stop", "--on-text") and value[0].strip():
            value = ["true"]  # a hook is run by sh: only ever a harmless one
        argv += [opt, *value]
    for f in tmp_path.glob("out*"):
        f.unlink()
    clips = tmp_path / "clips"
    if output is not None:
        argv += [output]
    env = {"DICTAPHONE_HOME": str(clips)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        status, err = _main(argv, tmp_path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert status in (0, 1, 2)
    assert "Traceback" not in err
    # The input is never touched, whatever OUTPUT and --force say.
    assert src.read_bytes() == original
    if status != 0:
        assert len([l for l in err.splitlines() if l.strip()]) == 1, err
        leftovers = list(tmp_path.glob("out*"))
        assert not leftovers or status == 1, f"a refused command left {leftovers}"
    for f in tmp_path.glob("*.jsonl"):
        f.unlink()
    if clips.exists():
        for f in clips.iterdir():
            f.unlink()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mime=st.one_of(st.none(), st.integers(), st.text(max_size=20),
                      st.sampled_from(["audio/wav", "audio/flac", "audio/ogg; codecs=opus", ""])),
       kwargs=st.dictionaries(
           st.sampled_from(["max_duration", "split", "stall_timeout", "start_timeout", "subtype"]),
           st.one_of(st.none(), st.booleans(), st.integers(-5, 10**30), st.text(max_size=5),
                     st.floats(allow_nan=True, allow_infinity=True)), max_size=3),
       timeslice=st.one_of(st.none(), st.booleans(), st.integers(-5, 10**30), st.text(max_size=5),
                           st.floats(allow_nan=True, allow_infinity=True)))
def test_the_python_api_answers_any_argument_with_its_own_errors(tmp_path, mime, kwargs, timeslice):
    src = tmp_path / "in.wav"
    if not src.exists():
        audiolab.make_tone(src, 0.2, 440)
    out = tmp_path / "o.wav"
    if out.exists():
        out.unlink()
    assert MediaRecorder.is_type_supported(mime) in (True, False)
    try:
        rec = MediaRecorder(FileSource(src), mime, output=out, **kwargs)
        rec.start(timeslice=timeslice)
    except DictaphoneError:
        return  # a clear, expected error
    rec.wait(30)
