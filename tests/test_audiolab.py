"""The test rig itself works end to end: what is played into the sink is what the virtual
microphone hears (via parecord and via PortAudio in this process), the content check tells
matching audio from silence and noise, and the tmux terminal drives a command."""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np
import pytest

import audiolab
from audiolab import normalized_xcorr, read_mono, stop_process

RATE = audiolab.RATE


# --- normalized_xcorr on synthetic signals ---------------------------------------------------


def _tone(seconds=0.5, freq=440.0, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_a_shifted_copy_inside_silence_scores_one_at_its_offset():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(20000) * np.hanning(20000)
    rec = np.zeros(100000)
    rec[12345 : 12345 + len(ref)] = 0.1 * ref  # quieter: gain must not matter
    peak, lag = normalized_xcorr(ref, rec)
    assert peak == pytest.approx(1.0, abs=1e-9)
    assert lag == 12345


def test_a_copy_with_added_noise_still_scores_high():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(20000)
    rec = np.concatenate([np.zeros(5000), ref, np.zeros(5000)])
    rec += 0.1 * rng.standard_normal(len(rec))
    peak, lag = normalized_xcorr(ref, rec)
    assert peak > 0.99
    assert lag == 5000


def test_a_recording_that_starts_inside_the_reference_gives_a_negative_lag():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(10000)
    peak, lag = normalized_xcorr(ref, ref[300:])
    assert lag == -300
    assert peak == pytest.approx(np.sqrt(np.sum(ref[300:] ** 2) / np.sum(ref**2)), abs=1e-9)


def test_noise_against_a_tone_scores_low():
    rng = np.random.default_rng(4)
    peak, _ = normalized_xcorr(_tone(), rng.uniform(-0.5, 0.5, 3 * RATE))
    assert peak < 0.2


def test_an_inverted_copy_does_not_score_high():
    ref = np.random.default_rng(5).standard_normal(5000)
    peak, _ = normalized_xcorr(ref, np.concatenate([np.zeros(100), -ref]))
    assert peak < 0.2


def test_digital_silence_scores_zero():
    peak, _ = normalized_xcorr(_tone(), np.zeros(RATE))
    assert peak == 0.0


def test_a_single_loud_sample_does_not_fake_a_match():
    rec = np.zeros(RATE)
    rec[1000] = 1.0
    peak, _ = normalized_xcorr(_tone(), rec)
    assert peak < 0.1


def test_a_reference_of_zeros_is_refused():
    with pytest.raises(ValueError):
        normalized_xcorr(np.zeros(10), np.ones(10))


def test_normalized_xcorr_is_fast_enough_for_long_recordings():
    rng = np.random.default_rng(6)
    t0 = time.perf_counter()
    normalized_xcorr(rng.standard_normal(3 * RATE), rng.standard_normal(10 * RATE))
    assert time.perf_counter() - t0 < 2.0


# --- signal makers ---------------------------------------------------------------------------


def test_make_tone_is_exact_and_has_one_frequency_per_channel(tmp_path):
    import soundfile as sf

    path = audiolab.make_tone(tmp_path / "t.wav", 0.25, [440, 880], channels=2)
    data, rate = sf.read(path, dtype="float64")
    assert rate == RATE and data.shape == (RATE // 4, 2)
    again = audiolab.make_tone(tmp_path / "u.wav", 0.25, [440, 880], channels=2)
    assert np.array_equal(sf.read(again, dtype="int16")[0], sf.read(path, dtype="int16")[0])
    assert normalized_xcorr(data[:, 0], data[:, 1])[0] < 0.5


def test_make_noise_is_reproducible_from_its_seed(tmp_path):
    a, _ = read_mono(audiolab.make_noise(tmp_path / "a.wav", 0.1, seed=7))
    b, _ = read_mono(audiolab.make_noise(tmp_path / "b.wav", 0.1, seed=7))
    c, _ = read_mono(audiolab.make_noise(tmp_path / "c.wav", 0.1, seed=8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_speech_reference_is_48k_mono_16bit_and_a_few_seconds_long(speech):
    import soundfile as sf

    info = sf.info(speech)
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
    assert 2.0 < info.duration < 4.0


def test_make_speech_pads_with_silence(tmp_path, speech):
    ref, _ = read_mono(speech)
    padded, _ = read_mono(audiolab.make_speech(tmp_path / "p.wav", "The quick brown fox jumps "
                                               "over the lazy dog.", pad_start=0.5, pad_end=0.25))
    assert len(padded) == len(ref) + int(0.75 * RATE)
    assert not padded[: RATE // 2].any()
    assert normalized_xcorr(ref, padded) == (pytest.approx(1.0, abs=1e-6), RATE // 2)


# --- the virtual microphone ------------------------------------------------------------------


def test_the_private_server_is_the_one_this_process_talks_to(pulse):
    info = pulse.pactl("info")
    assert "Default Sink: testmic" in info
    assert "Default Source: testmic.monitor" in info
    assert pulse.runtime_dir in pulse.env["PULSE_SERVER"]


def test_what_is_played_into_the_sink_is_what_parecord_hears(pulse, speech, tmp_path):
    ref, _ = read_mono(speech)
    out = tmp_path / "monitor.wav"
    rec_proc = pulse.start_recording(out)  # returns once frames arrive
    try:
        pulse.play_and_wait(speech)
        time.sleep(0.3)  # the tail of the sound through the sink's latency
    finally:
        status = stop_process(rec_proc)
    assert status in (0, -signal.SIGINT), f"parecord exited with {status}"
    rec, rate = read_mono(out)
    assert rate == RATE
    peak, lag = normalized_xcorr(ref, rec)
    assert peak > 0.9, f"speech not found in the recording (peak {peak:.3f} at {lag})"
    assert 0 <= lag and lag + len(ref) <= len(rec)


def test_record_monitor_with_nothing_playing_does_not_match_the_speech(pulse, speech, tmp_path):
    ref, _ = read_mono(speech)
    rec, _ = read_mono(pulse.record_monitor(tmp_path / "idle.wav", 1.0))
    assert len(rec) >= 0.8 * RATE  # it did record, for about the time asked
    peak, _ = normalized_xcorr(ref, rec)
    assert peak < 0.2


def test_record_monitor_of_noise_does_not_match_the_speech(pulse, speech, tmp_path):
    noise = audiolab.make_noise(tmp_path / "noise.wav", 1.5, seed=3)
    ref, _ = read_mono(speech)
    out = tmp_path / "noise-rec.wav"
    rec_proc = pulse.start_recording(out)
    try:
        pulse.play_and_wait(noise)
    finally:
        stop_process(rec_proc)
    rec, _ = read_mono(out)
    assert np.abs(rec).max() > 0.1  # the noise was recorded
    assert normalized_xcorr(ref, rec)[0] < 0.2


def test_sounddevice_in_this_process_hears_the_sink(pulse, speech):
    import sounddevice as sd

    ref, _ = read_mono(speech)
    names = [d["name"] for d in sd.query_devices()]
    assert "default" in names and "pulse" in names, names
    players = []
    try:
        rec = audiolab.record_with_sounddevice(
            len(ref) / RATE + 1.0,
            device=sd.default.device[0],
            # Start playing only once frames arrive: the first callback comes 0.45-1.9 s late.
            on_first_frames=lambda: players.append(pulse.play(speech)),
        )
    finally:
        for p in players:
            stop_process(p)
    peak, lag = normalized_xcorr(ref, rec[:, 0])
    assert peak > 0.9, f"speech not found in the in-process recording (peak {peak:.3f} at {lag})"


@pytest.mark.realaudio
def test_a_killed_server_is_noticed_and_cleaned_up():
    server = audiolab.PulseServer()
    with server:
        assert server.is_alive()
        runtime = server.runtime_dir
        server.kill()
        assert not server.is_alive()
        with pytest.raises(RuntimeError):
            server.pactl("info", timeout=5)
    assert not os.path.exists(runtime)


# --- the terminal ----------------------------------------------------------------------------


def test_tmux_types_into_a_command_and_reads_its_screen_and_status(terminal):
    t = terminal("read x; echo got $x", width=100, height=20)
    assert t.is_alive()
    t.type_text("hello")
    t.wait_for("hello", timeout=5)
    t.send_keys("Enter")
    assert t.exit_status(timeout=5) == 0
    assert not t.is_alive()
    # The last line written just before the exit is on the screen as soon as the status is.
    screen = t.capture()
    assert "got hello" in screen
    assert max(len(line) for line in screen.splitlines()) <= 100


def test_tmux_reports_a_failing_status_and_a_signal(terminal):
    assert terminal(["sh", "-c", "exit 3"]).wait_exit(timeout=5) == 3
    t = terminal(["sleep", "30"])
    os.kill(t.command_pid(), signal.SIGTERM)
    assert t.wait_exit(timeout=5) == -signal.SIGTERM


def test_tmux_ctrl_c_reaches_the_command_with_its_default_action(terminal):
    t = terminal([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"])
    t.wait_for("ready", timeout=10)
    t.send_keys("C-c")
    # Python got KeyboardInterrupt (SIGINT was not ignored), then ends itself by SIGINT.
    assert t.wait_exit(timeout=5) == -signal.SIGINT
    assert "KeyboardInterrupt" in t.capture()
    t = terminal(["sleep", "30"])
    t.command_pid()
    t.send_keys("C-c")
    assert t.wait_exit(timeout=5) == -signal.SIGINT


def test_tmux_reports_a_command_that_cannot_start(terminal):
    t = terminal(["/nonexistent/dictaphone-test-command"])
    assert t.wait_exit(timeout=5) == 127
    assert "No such file" in t.capture()


def test_tmux_wait_for_times_out_with_the_screen_in_the_message(terminal):
    t = terminal("echo ready; sleep 30")
    t.wait_for("ready", timeout=5)
    with pytest.raises(AssertionError, match="ready"):
        t.wait_for("never shown", timeout=0.3)


def test_tmux_kill_ends_the_command(terminal):
    t = terminal(["sleep", "30"])
    pids = t.pane_pid(), t.command_pid()
    t.kill()
    assert not any(audiolab._pid_alive(pid) for pid in pids)


def test_tmux_gives_the_command_its_env_cwd_and_size(terminal, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DICTAPHONE_TEST_VAR": "xyzzy"}
    t = terminal("echo $DICTAPHONE_TEST_VAR; pwd; stty size", env=env, cwd=tmp_path,
                 width=80, height=24)
    assert t.wait_exit(timeout=5) == 0
    screen = t.capture()
    assert "xyzzy" in screen and str(tmp_path) in screen and "24 80" in screen
