"""`dictaphone play` you can steer: --speed (the pitch stays), --skip-silence, and the keys
(Space, ←/→, [ ], s, m) in a tmux terminal. What is played is recorded from the private
PulseAudio sink's monitor (parecord) and read back: the files are tones whose frequency
says which second of the file is sounding, so the monitor tells where playback was.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
from cliutil import CLI, run

RATE = 48000
WIN = RATE // 20  # 50 ms analysis windows


def steps(path: Path, seconds: int, base: float = 300.0, step: float = 100.0, gaps=()) -> Path:
    """Second k of the file is a tone of base + k * step Hz; ``gaps`` [(from, to)] seconds
    of digital silence instead."""
    t = np.arange(seconds * RATE) / RATE
    freq = base + step * np.floor(t)
    x = 0.4 * np.sin(2 * np.pi * np.cumsum(freq) / RATE)
    for a, b in gaps:
        x[int(a * RATE):int(b * RATE)] = 0.0
    sf.write(path, x, RATE, subtype="PCM_16")
    return path


def heard_windows(path, base=300.0, step=100.0, whole=False) -> list[float | None]:
    """Per 50 ms window of the monitor recording: the second of the steps file it sounds
    like (k, from its dominant frequency), or None for silence (``whole``: for a window
    not all tone, too: a tone cut off inside a window spreads over the neighbouring steps)."""
    x, _ = audiolab.read_mono(path)
    out = []
    for i in range(0, len(x) - WIN, WIN):
        w = x[i:i + WIN]
        quiet = np.abs(w).reshape(10, -1).max(axis=1).min() < 0.2 if whole else np.sqrt(np.mean(w ** 2)) < 0.01
        if quiet:
            out.append(None)
            continue
        spec = np.abs(np.fft.rfft(w * np.hanning(len(w))))
        f = np.argmax(spec) * RATE / len(w)
        out.append(round((f - base) / step, 1))
    return out


def dominant(path) -> float:
    x, _ = audiolab.read_mono(path)
    loud = np.flatnonzero(np.abs(x) > 0.05)
    x = x[loud[0]:loud[-1]]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * RATE / len(x)


def sounding(path) -> float:
    """Seconds of the monitor recording that are not silence."""
    return sum(w is not None for w in heard_windows(path)) * WIN / RATE


def play_and_hear(pulse, env, tmp_path, *args, wait=1.0) -> tuple:
    heard = tmp_path / "heard.wav"
    rec = pulse.start_recording(heard)
    try:
        r = run("play", *args, env=env, timeout=60)
        time.sleep(wait)  # (the capture runs behind the sink under load)
    finally:
        audiolab.stop_process(rec)
    return r, heard


@pytest.fixture
def env(pulse, tmp_path):
    home = tmp_path / "clips"
    home.mkdir()
    e = dict(pulse.env, DICTAPHONE_HOME=str(home))
    e.pop("DICTAPHONE_TRACEBACK", None)
    return e


@pytest.mark.parametrize("speed", [2.0, 0.75])
def test_speed_changes_the_length_and_keeps_the_pitch(pulse, env, tmp_path, speed):
    tone = tmp_path / "tone.wav"
    audiolab.make_tone(tone, 3.0, 440.0, amplitude=0.4)
    r, heard = play_and_hear(pulse, env, tmp_path, tone, "--speed", f"{speed}x")
    assert r.returncode == 0, r.stderr
    assert sounding(heard) == pytest.approx(3.0 / speed, abs=0.2)
    assert dominant(heard) == pytest.approx(440.0, abs=3.0)  # not 880 or 330 Hz
    r = run("play", tone, "--speed", "3", env=env)
    assert r.returncode == 2 and "the speed is 0.5 to 2" in r.stderr


@pytest.mark.parametrize("speed", ["1.5xx", "x", "1.5 x x"])
def test_a_speed_with_more_than_one_x_is_refused_before_playing(env, tmp_path, speed):
    tone = tmp_path / "tone.wav"
    audiolab.make_tone(tone, 1.0, 440.0, amplitude=0.4)
    r = run("play", tone, "--speed", speed, env=env)  # it played '1.5xx' at 1.5
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert "is not a speed" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_skip_silence_cuts_long_silences_and_keeps_the_sound(pulse, env, tmp_path):
    # 1 s of sound, 3 s of silence, 1 s of sound, 0.3 s of silence (short: kept), 1 s of sound
    path = steps(tmp_path / "gappy.wav", 7, gaps=[(1, 4), (5, 5.3)])
    r, heard = play_and_hear(pulse, env, tmp_path, path, "--skip-silence")
    assert r.returncode == 0, r.stderr
    ks = heard_windows(heard)
    first = next(i for i, k in enumerate(ks) if k is not None)
    last = max(i for i, k in enumerate(ks) if k is not None)
    span = (last - first + 1) * WIN / RATE
    assert sounding(heard) == pytest.approx(3.7, abs=0.25)  # all the sound: 1 + 1 + 1.7 s
    assert span == pytest.approx(7.0 - 3.0 + 0.25, abs=0.35)  # the long gap cut to 0.25 s
    # what was heard is the sound of seconds 0, 4, 5 and 6 in order
    heard_seconds = [k for k in heard_windows(heard, whole=True) if k is not None]
    order = [int(round(k)) for k in heard_seconds if abs(k - round(k)) < 0.2]
    assert sorted(set(order)) == [0, 4, 5, 6] and order == sorted(order)


def test_play_keys_pause_seek_jump_to_a_marker_and_change_speed(pulse, env, tmp_path, terminal):
    path = steps(tmp_path / "steps.wav", 20)
    Path(f"{path}.markers.json").write_text(json.dumps(
        {"markers": [{"number": 1, "time": 15.0, "label": "fifteen"}]}))
    heard = tmp_path / "heard.wav"
    rec = pulse.start_recording(heard)
    try:
        t = terminal([*CLI, "play", str(path)], env=env, cwd=tmp_path, width=120)
        t.wait_for("▶ steps.wav", timeout=20)
        time.sleep(1.5)
        t.send_keys("Space")
        t.wait_for("paused", timeout=10)
        assert "⏸ steps.wav" in t.capture()
        time.sleep(2.0)
        t.send_keys("Space")
        t.wait_for("resumed", timeout=10)
        time.sleep(1.0)
        t.send_keys("Right")
        t.wait_for("→ 0:0", timeout=10)
        time.sleep(1.5)
        t.send_keys("m")
        t.wait_for("⚑ 1 fifteen", timeout=10)
        time.sleep(1.5)
        t.send_keys("]")
        t.wait_for("speed 1.25×", timeout=10)
        t.send_keys("s")
        t.wait_for("skip silences on", timeout=10)
        t.send_keys("Left")
        t.wait_for("← 0:1", timeout=10)
        time.sleep(1.0)
        t.send_keys("q")
        assert t.wait_exit(timeout=15) == 0
        time.sleep(1.0)
    finally:
        audiolab.stop_process(rec)
    ks = heard_windows(heard)
    sound = [(i, k) for i, k in enumerate(ks) if k is not None]
    assert sound, "nothing was played"
    # the pause: a silence of well over a second between two sounding stretches, after
    # which playback goes on where it stopped (the same second of the file, or the next)
    runs, i = [], 0
    while i < len(ks):
        if ks[i] is None:
            j = i
            while j < len(ks) and ks[j] is None:
                j += 1
            runs.append((i, j))
            i = j
        else:
            i += 1
    inner = [(a, b) for a, b in runs if a > sound[0][0] and b <= sound[-1][0]]
    assert inner, ks
    a, b = max(inner, key=lambda r: r[1] - r[0])
    assert (b - a) * WIN / RATE > 1.2, "no pause was heard"
    assert 0 <= round(ks[b]) - round(ks[a - 1]) <= 1, (ks[a - 1], ks[b])
    # → jumps 5 s ahead, m jumps to the marker at 15 s, ← goes back 5 s
    seconds = [round(k) for k in heard_windows(heard, whole=True) if k is not None]
    jumps = [(a, b) for a, b in zip(seconds, seconds[1:]) if b != a and b != a + 1]
    assert len(jumps) == 3, jumps  # →, m, ←: nothing else skipped or repeated
    (f0, f1), (m0, m1), (b0, b1) = jumps
    assert 4 <= f1 - f0 <= 6, jumps  # → 5 s (give or take the second being heard)
    assert m1 == 15 and m0 < 14, jumps  # m: the marker at 15 s, from before it
    assert -6 <= b1 - b0 <= -4, jumps  # ← 5 s


@pytest.mark.parametrize("kind", ["atempo", "wsola"])
@pytest.mark.parametrize("speed", [0.5, 1.5, 2.0])
def test_both_stretchers_keep_the_pitch_length_and_level_of_a_tone(kind, speed):
    from dictaphone.capture.stretch import make_stretcher

    t = np.arange(RATE * 3) / RATE
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    s = make_stretcher(RATE, 1, speed, prefer=kind)
    assert s.name == kind
    y = np.concatenate([s.process(x[i:i + 8192]) for i in range(0, len(x), 8192)] + [s.flush()])[:, 0]
    assert len(y) / RATE == pytest.approx(3.0 / speed, rel=0.01)
    mid = y[RATE // 4: -RATE // 4]
    spec = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    assert np.argmax(spec) * RATE / len(mid) == pytest.approx(440.0, abs=1.5)
    w = RATE // 100
    rms = np.sqrt((mid[:len(mid) // w * w].reshape(-1, w) ** 2).mean(axis=1))
    assert rms.max() / rms.min() < 1.1  # steady: the periods line up (no beating)
    assert rms.mean() == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_an_m4a_plays_from_a_time_and_seeks(pulse, env, tmp_path):
    # PyAV's reader under the player: --at 2 starts at the file's second 2 (an AAC file).
    import subprocess

    audiolab.require_tool("ffmpeg")
    wav = steps(tmp_path / "s.wav", 5)
    m4a = tmp_path / "s.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "128k", str(m4a)],
                   check=True)
    r, heard = play_and_hear(pulse, env, tmp_path, m4a, "--at", "2s")
    assert r.returncode == 0, r.stderr
    seconds = [round(k) for k in heard_windows(heard, whole=True) if k is not None]
    assert seconds and seconds[0] == 2 and sorted(set(seconds)) == [2, 3, 4], seconds
    assert "played s.m4a: from 0:02" in r.stderr


def test_the_status_line_fits_a_narrow_terminal_and_is_redrawn_in_place(pulse, env, tmp_path, terminal):
    """On 60 columns the status line (about 110 columns with its keys hint) wrapped, and each
    redraw scrolled the terminal by a line: the pane filled with copies of it."""
    tone = tmp_path / "tone.wav"
    audiolab.make_tone(tone, 4.0, 440.0, amplitude=0.4)
    t = terminal([*CLI, "play", str(tone)], env=env, cwd=tmp_path, width=60, height=12)
    t.wait_for("▶ tone.wav", timeout=20)
    time.sleep(1.5)  # several redraws
    shown = [line for line in t.capture().splitlines() if line.strip()]
    assert len(shown) == 1 and shown[0].startswith("▶ tone.wav") and shown[0].endswith("…"), shown
    t.send_keys("q")
    assert t.wait_exit(timeout=15) == 0
