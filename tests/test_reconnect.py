"""A device that comes back: the recorder's side of a lost device, on a fake device the
test makes lose and regain (no audio server needed), PortAudio errors in words, and the
meter and the CLI options. The real thing (a PulseAudio server killed and restarted in
the middle of a recording) is in test_faults.py.
"""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
import dictaphone.recording.recorder as recorder_mod
from dictaphone import DeviceLostError, FileSource, InvalidArgumentError, MediaRecorder
from dictaphone.capture.sources import Microphone, Source, is_server_device, portaudio_words, rates_in_words

RATE = 8000
JOIN = 10.0  # seconds: "does not hang" bounds, never speed requirements


def counter(start: int, n: int) -> np.ndarray:
    return np.arange(start + 1, start + n + 1, dtype=np.int32)[:, None]


class LosableDevice(Source):
    """A device the test unplugs and plugs back in.

    ``feed(n)`` pushes the next ``n`` frames of a counter (frame i holds i + 1) as an
    audio callback would; ``unplug()`` ends its stream with a DeviceLostError; reopen()
    succeeds only while ``plugged`` is set, and then delivers to the capture it is given.
    """

    name = "fake mic"
    label = 'input device "fake mic"'

    def __init__(self, reconnect=5.0):
        self.samplerate, self.channels = RATE, 1
        self.reconnect = reconnect
        self.capture = None
        self.sent = 0
        self.plugged = threading.Event()
        self.plugged.set()
        self.reopened = threading.Event()
        self.reopen_calls = self.lost_calls = 0

    def open(self, capture, dtype):
        self.capture, self.dtype = capture, dtype

    def start(self):
        pass

    def stop(self):
        pass

    def close(self):
        pass

    def feed(self, n: int) -> None:
        self.capture.push(counter(self.sent, n).astype(self.dtype))
        self.sent += n

    def unplug(self) -> None:
        self.plugged.clear()
        self.reopened.clear()
        self.capture.end(self.lost_error())

    def lost_error(self, cause=None, silent_for=None):
        if silent_for is not None:
            return DeviceLostError(self.label, f"the device stopped sending audio (no audio for {silent_for:g} s)")
        return DeviceLostError(self.label, "the device was unplugged")

    def lost(self):
        self.lost_calls += 1

    def reopen(self, capture):
        self.reopen_calls += 1
        if not self.plugged.is_set():
            return False
        self.capture = capture
        self.reopened.set()
        return True


class Log:
    def __init__(self, rec):
        self.events = []
        for t in ("start", "dataavailable", "stop", "error", "devicelost", "devicerestored"):
            rec.add_event_listener(t, self.events.append)

    @property
    def types(self):
        return [e.type for e in self.events]

    def of(self, kind):
        return [e for e in self.events if e.type == kind]

    def wait_for(self, kind, timeout=JOIN):
        deadline = time.monotonic() + timeout
        while not self.of(kind):
            assert time.monotonic() < deadline, f"no {kind} event; got {self.types}"
            time.sleep(0.01)
        return self.of(kind)[0]


@pytest.fixture
def started(tmp_path):
    """Factory: (recorder, log, device, output path), recording to a WAV (PCM_32)."""
    made = []

    def make(device=None, **kw):
        device = device or LosableDevice()
        out = tmp_path / f"take{len(made)}.wav"
        rec = MediaRecorder(device, "audio/wav", output=str(out), subtype="PCM_32", **kw)
        log = Log(rec)
        rec.start()
        made.append(rec)
        return rec, log, device, out

    yield make
    for rec in made:
        if rec.state != "inactive":
            rec.stop()
        rec.wait(JOIN)


def frames_of(path) -> np.ndarray:
    return sf.read(path, dtype="int32", always_2d=True)[0]


def test_a_device_that_comes_back_is_reopened_and_the_recording_goes_on_in_the_same_file(started):
    rec, log, dev, out = started()
    dev.feed(800)
    dev.unplug()
    lost = log.wait_for("devicelost")
    assert lost.reason == "the device was unplugged" and lost.device == 'input device "fake mic"'
    assert lost.wait == 5.0
    assert rec.state == "recording" and rec.device_lost["reason"] == "the device was unplugged"
    time.sleep(0.3)  # a few attempts while it is away
    assert dev.reopen_calls >= 1 and not dev.reopened.is_set()
    dev.plugged.set()
    assert dev.reopened.wait(JOIN)
    dev.feed(400)
    restored = log.wait_for("devicerestored")
    assert restored.gap > 0.25 and restored.reason == "the device was unplugged"
    assert rec.device_lost is None
    dev.feed(100)
    rec.stop()
    assert rec.error is None
    assert log.types == ["start", "devicelost", "devicerestored", "dataavailable", "stop"]
    # every frame delivered, in order, in the one file: nothing written for the gap
    np.testing.assert_array_equal(frames_of(out), counter(0, 1300))
    assert lost.timecode == restored.timecode == 800 / RATE
    assert rec.gaps == [{"time": 0.1, "duration": round(restored.gap, 3),
                         "reason": "the device was unplugged"}]


class LiveLosableDevice(LosableDevice):
    live = True  # a marker counts what it captured and has not delivered yet


def test_markers_made_as_and_while_the_device_is_lost_are_where_the_audio_resumes(started):
    # A marker counts the audio a device has captured but not yet delivered (up to 0.3 s
    # by its clock). When the device is lost that audio never comes: a marker made just
    # before the loss, or while it is waited for, landed 0.3 s into the audio after the
    # gap (a real server killed: gap at 4.12 s, marker made while lost at 4.42 s).
    rec, log, dev, out = started(LiveLosableDevice())
    dev.feed(800)
    time.sleep(0.35)  # the device's clock runs on: 0.3 s would be on its way
    before = rec.mark("just before the loss")
    dev.unplug()
    log.wait_for("devicelost")
    during = rec.mark("while lost")
    dev.plugged.set()
    assert dev.reopened.wait(JOIN)
    dev.feed(400)
    log.wait_for("devicerestored")
    rec.stop()
    assert (before.frame, during.frame) == (800, 800)
    assert [(m.time, m.label) for m in rec.markers_in(str(out))] == [
        (0.1, "just before the loss"), (0.1, "while lost")]
    assert rec.gaps[0]["time"] == 0.1
    np.testing.assert_array_equal(frames_of(out), counter(0, 1200))


def test_a_device_that_does_not_come_back_in_time_ends_the_recording_with_what_was_recorded(started):
    rec, log, dev, out = started(reconnect=0.6)
    dev.feed(800)
    dev.unplug()
    assert rec.wait(JOIN)
    assert log.types == ["start", "devicelost", "error", "dataavailable", "stop"]
    err = log.of("error")[0].error
    assert isinstance(err, DeviceLostError)
    assert str(err) == ('input device "fake mic": the device was unplugged and did not come '
                        'back within 0.6 s')
    assert dev.reopen_calls >= 1 and rec.gaps == []
    np.testing.assert_array_equal(frames_of(out), counter(0, 800))


def test_reconnect_zero_ends_the_recording_at_the_loss_as_before(started):
    rec, log, dev, out = started(reconnect=0)
    dev.feed(800)
    dev.unplug()
    assert rec.wait(JOIN)
    assert log.types == ["start", "error", "dataavailable", "stop"]
    assert str(log.of("error")[0].error) == 'input device "fake mic": the device was unplugged'
    assert dev.reopen_calls == 0
    np.testing.assert_array_equal(frames_of(out), counter(0, 800))


def test_the_source_s_own_reconnect_window_is_the_default(started):
    rec, log, dev, out = started(LosableDevice(reconnect=0))
    assert rec.reconnect == 0
    dev.feed(100)
    dev.unplug()
    assert rec.wait(JOIN) and "devicelost" not in log.types


def test_a_stop_while_the_device_is_lost_is_a_normal_stop(started):
    rec, log, dev, out = started()
    dev.feed(800)
    dev.unplug()
    log.wait_for("devicelost")
    t0 = time.monotonic()
    rec.stop()
    assert time.monotonic() - t0 < JOIN
    assert rec.error is None and rec.state == "inactive"
    assert log.types == ["start", "devicelost", "dataavailable", "stop"]
    np.testing.assert_array_equal(frames_of(out), counter(0, 800))


def test_a_device_that_stops_sending_is_lost_too_and_comes_back(started):
    rec, log, dev, out = started(stall_timeout=0.3)
    dev.feed(800)  # then nothing, as from a frozen server
    lost = log.wait_for("devicelost")
    assert lost.reason == "the device stopped sending audio (no audio for 0.3 s)"
    assert dev.reopened.wait(JOIN)  # it is "plugged": the first attempt reopens it
    dev.feed(200)
    restored = log.wait_for("devicerestored")
    assert restored.gap >= 0.25
    rec.stop()
    assert rec.error is None
    np.testing.assert_array_equal(frames_of(out), counter(0, 1000))


def test_a_reopened_device_that_sends_nothing_is_dropped_and_tried_again(started, monkeypatch):
    monkeypatch.setattr(MediaRecorder, "RECONNECT_FIRST_AUDIO", 0.2)
    rec, log, dev, out = started()
    dev.feed(400)
    dev.unplug()
    dev.plugged.set()  # it opens, but no audio comes
    log.wait_for("devicelost")
    deadline = time.monotonic() + JOIN
    while dev.reopen_calls < 3:
        assert time.monotonic() < deadline, "the silent device was not tried again"
        time.sleep(0.02)
    assert dev.lost_calls >= 3  # each silent stream was closed before the next try
    assert "devicerestored" not in log.types
    while "devicerestored" not in log.types:  # now it sends: the next stream is kept
        assert time.monotonic() < deadline, "the device that came back was not restored"
        dev.feed(10)
        time.sleep(0.02)
    rec.stop()
    np.testing.assert_array_equal(frames_of(out), counter(0, dev.sent))


def test_the_countdown_of_a_lost_device_runs_down(started):
    rec, log, dev, out = started(reconnect=3)
    dev.feed(100)
    dev.unplug()
    log.wait_for("devicelost")
    first = rec.device_lost["left"]
    time.sleep(0.3)
    second = rec.device_lost["left"]
    assert 0 < second < first <= 3
    assert rec.device_lost["lost"] >= 0.3


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), "5", True])
def test_a_reconnect_window_that_is_not_a_number_of_seconds_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="reconnect"):
        MediaRecorder(LosableDevice(), "audio/wav", reconnect=bad)


def test_a_file_source_cannot_reconnect(tmp_path):
    src = audiolab.make_tone(tmp_path / "in.wav", 0.1, 440)
    with pytest.raises(InvalidArgumentError, match="reconnect is for devices"):
        MediaRecorder(FileSource(src), "audio/wav", reconnect=5)
    assert MediaRecorder(FileSource(src), "audio/wav").reconnect == 0


# --------------------------------------------------------------------------- words, not codes


class PortAudioError(Exception):
    """Shaped like sounddevice.PortAudioError: (text, code[, host error info])."""


@pytest.mark.parametrize("args, words", [
    (("Unanticipated host error", -9999, (0, -5, "Input/output error")),
     "the device or its audio server went away"),
    (("Unanticipated host error", -9999, (0, -19, "No such device")), "the device was unplugged"),
    (("Invalid sample rate", -9997), "it does not take that sample rate"),
    (("Error opening InputStream: Illegal combination of I/O devices", -9993),
     "the device cannot be opened (is its audio server running?)"),
    (("Device unavailable", -9985), "the device is busy or unavailable"),
    (("Error querying device -1",), "the device does not exist (any more)"),
    (("something new", -12345), "the audio system failed"),
])
def test_portaudio_errors_are_said_in_words_without_their_codes(args, words):
    said = portaudio_words(PortAudioError(*args))
    assert said == words
    assert "PaErrorCode" not in said and "-99" not in said


def _mic(name, hostapi="ALSA"):
    mic = Microphone.__new__(Microphone)
    mic.name, mic.hostapi = name, hostapi
    return mic


def test_a_lost_server_device_says_the_audio_server_stopped_and_hardware_says_unplugged():
    assert is_server_device("default") and is_server_device("pulse") and is_server_device("pipewire")
    assert not is_server_device("USB Audio Device: - (hw:1,0)")
    hw_gone = PortAudioError("Unanticipated host error", -9999, (0, -19, "No such device"))
    assert str(_mic("default").lost_error(hw_gone)) == 'input device "default": the audio server stopped'
    assert _mic("USB Mic").lost_error(hw_gone).reason == "the device was unplugged"
    assert _mic("USB Mic").lost_error().reason == "the device was unplugged or stopped working"
    assert _mic("pulse").lost_error(silent_for=5).reason == \
        "the audio server stopped responding (no audio for 5 s)"
    assert _mic("system", "JACK Audio Connection Kit").lost_error().reason == "the audio server stopped"


def test_rates_are_listed_as_a_range_or_a_few_choices():
    assert rates_in_words([8000, 16000, 44100, 48000, 96000, 192000]) == "8000 to 192000 Hz"
    assert rates_in_words([44100, 48000]) == "44100 or 48000 Hz"
    assert rates_in_words([48000]) == "only 48000 Hz"


# --------------------------------------------------------------------------- the meter and the CLI


def test_the_meter_shows_the_lost_device_and_the_seconds_left(started):
    from rich.console import Console

    from dictaphone.cli.ui import Meter

    rec, log, dev, out = started(reconnect=30)
    dev.feed(100)
    dev.unplug()
    log.wait_for("devicelost")
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    console.print(Meter(rec, console, "take.wav", keys=True).render())
    text = console.file.getvalue()
    assert "DEVICE LOST — waiting 30 s" in text or "DEVICE LOST — waiting 29 s" in text
    assert "the device was unplugged" in text and "take.wav" in text
    assert "q stop" in text  # the keys still work while it waits


def test_reconnect_is_refused_with_an_input_file_and_when_negative(tmp_path):
    src = audiolab.make_tone(tmp_path / "in.wav", 0.2, 440)
    r = cliutil.run("record", "--input", src, "--reconnect", "5", tmp_path / "o.wav", cwd=tmp_path)
    assert r.returncode == 2
    assert "--reconnect is for a device" in cliutil.one_error_line(r.stderr)
    r = cliutil.run("record", "--input", src, "--reconnect", "-1", tmp_path / "o.wav", cwd=tmp_path)
    assert r.returncode == 2 and "reconnect" in cliutil.one_error_line(r.stderr)
    assert not (tmp_path / "o.wav").exists()


def test_a_rate_the_device_does_not_take_is_refused_with_the_rates_it_takes(pulse, tmp_path):
    r = cliutil.run("record", "-r", "768000", "-d", "1", tmp_path / "fast.wav", env=pulse.env,
                    cwd=tmp_path)
    assert r.returncode == 2
    line = cliutil.one_error_line(r.stderr)
    assert "cannot record at 768000 Hz; it takes 8000 to 384000 Hz" in line
    assert "PaErrorCode" not in line and "Invalid sample rate" not in line
    assert not (tmp_path / "fast.wav").exists()


def test_the_meter_counts_down_while_the_audio_server_is_away_and_recording_resumes(
        terminal, speech, tmp_path):
    with audiolab.PulseServer() as server:
        t = terminal([*cliutil.CLI, "record", "-r", str(RATE * 6), "--reconnect", "20",
                      "meter.wav"], env=server.env, cwd=tmp_path, width=100, height=20)
        t.wait_for("REC", timeout=cliutil.START_TIMEOUT)
        server.kill()
        screen = t.wait_for("DEVICE LOST — waiting", timeout=20)
        assert "the audio server stopped" in screen

        def seconds_left(text):
            after = text.split("DEVICE LOST — waiting ", 1)[1]
            return int(after.split(" s", 1)[0])

        first = seconds_left(screen)
        t.wait_for(lambda s: "DEVICE LOST" in s and seconds_left(s) < first, timeout=10)
        server.restart()
        t.wait_for(lambda s: "REC" in s and "DEVICE LOST" not in s, timeout=30)
        t.send_keys("q")
        assert t.wait_exit(timeout=cliutil.EXIT_TIMEOUT) == 0
    assert sf.info(tmp_path / "meter.wav").frames > 0


def test_each_split_piece_lists_the_gaps_that_fell_in_it_in_its_own_seconds(tmp_path, monkeypatch):
    import json

    from dictaphone.cli.session import save_clip_metadata
    from dictaphone.containers.formats import format_by_name

    monkeypatch.setenv("DICTAPHONE_HOME", str(tmp_path))
    dev = LosableDevice()
    rec = MediaRecorder(dev, "audio/wav", output=str(tmp_path / "take.wav"), split=0.5)
    log = Log(rec)
    rec.start()
    dev.feed(6000)  # 0.75 s: the second piece is under way
    dev.unplug()
    log.wait_for("devicelost")
    dev.plugged.set()
    assert dev.reopened.wait(JOIN)
    dev.feed(4000)
    log.wait_for("devicerestored")
    rec.stop()
    assert [g["time"] for g in rec.gaps] == [0.75]
    save_clip_metadata(rec, format_by_name("wav"), "2026-12-01T12:00:00+00:00")
    metas = [json.loads(open(p + ".json").read()) for p in rec.paths]
    assert len(metas) == 3  # 1.25 s in pieces of 0.5 s
    assert metas[0]["gaps"] == [] and metas[2]["gaps"] == []
    assert metas[1]["gaps"] == [dict(rec.gaps[0], time=0.25)]


@pytest.fixture
def own_server(pulse):
    """A PulseAudio server of its own for this process's PortAudio (this test kills it),
    the session's server restored afterwards."""
    import os

    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    server = audiolab.PulseServer().start()
    try:
        os.environ.update({k: server.env[k] for k in saved})
        audiolab.reinit_portaudio()
        yield server
    finally:
        server.stop()
        os.environ.update({k: v for k, v in saved.items() if v is not None})
        audiolab.reinit_portaudio()


@pytest.mark.parametrize("mode", ["paced", "callback"])
def test_the_python_api_survives_an_audio_server_restart_in_either_capture_mode(
        own_server, speech, tmp_path, mode):
    after = audiolab.make_noise(tmp_path / "after.wav", 1.0, seed=11, amplitude=0.3)
    out = tmp_path / f"{mode}.wav"
    rec = MediaRecorder(Microphone(samplerate=48000, mode=mode, reconnect=20), "audio/wav",
                        output=str(out))
    log = Log(rec)
    rec.start()
    try:
        deadline = time.monotonic() + cliutil.START_TIMEOUT
        while not rec.started:
            assert time.monotonic() < deadline, "no audio from the server"
            time.sleep(0.05)
        own_server.play_and_wait(speech)
        own_server.kill()
        lost = log.wait_for("devicelost", timeout=20)
        own_server.restart()
        back = log.wait_for("devicerestored", timeout=30)
        own_server.play_and_wait(after)
        time.sleep(0.5)
    finally:
        rec.stop()
    assert rec.error is None
    assert lost.reason == "the audio server stopped" and back.gap > 0
    assert rec.gaps == [{"time": round(lost.timecode, 6), "duration": round(back.gap, 3),
                         "reason": "the audio server stopped"}]
    ref, _ = audiolab.read_mono(speech)
    noise, _ = audiolab.read_mono(after)
    got, _ = audiolab.read_mono(out)
    (s_score, s_at), (n_score, n_at) = (audiolab.normalized_xcorr(ref, got),
                                        audiolab.normalized_xcorr(noise, got))
    assert s_score > 0.9 and n_score > 0.9
    assert s_at < lost.timecode * 48000 <= n_at + 4800


def test_a_gap_on_a_split_boundary_belongs_to_the_start_of_the_next_piece(tmp_path):
    dev = LosableDevice()
    rec = MediaRecorder(dev, "audio/wav", output=str(tmp_path / "take.wav"), split=0.5)
    log = Log(rec)
    rec.start()
    dev.feed(4000)  # exactly one piece: it is closed, the next is opened with its first audio
    deadline = time.monotonic() + JOIN
    while len(log.of("dataavailable")) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    dev.unplug()
    log.wait_for("devicelost")
    dev.plugged.set()
    assert dev.reopened.wait(JOIN)
    dev.feed(1000)
    log.wait_for("devicerestored")
    rec.stop()
    assert len(rec.paths) == 2 and rec.gaps[0]["time"] == 0.5
    assert rec.gaps_in(rec.paths[0]) == []
    assert rec.gaps_in(rec.paths[1]) == [dict(rec.gaps[0], time=0.0)]
    assert rec.gaps_in(tmp_path / "elsewhere.wav") == []
