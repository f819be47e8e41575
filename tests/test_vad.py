"""Hands-free dictation: the voice gate against speech with known silences.

The timelines are built from espeak-ng speech and digital silence (or a hum / noise floor
mixed in), so every cut point is known to the sample; cuts are checked to within 100 ms.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from dictaphone import FileSource, MediaRecorder
from dictaphone.recording.vad import LevelDetector, VoiceGate

RATE = 48000
TOL = 0.1  # seconds: how far a cut may be from where the timeline says it belongs
PRE = TAIL = 0.3


@pytest.fixture(scope="module")
def utterance(tmp_path_factory):
    """espeak-ng speech and where its sound starts and ends (seconds)."""
    path = tmp_path_factory.mktemp("vad") / "utterance.wav"
    audiolab.make_speech(path, "Remember to buy milk and bread.")
    x, _ = sf.read(path, dtype="int16")
    loud = np.flatnonzero(np.abs(x.astype(int)) > 330)  # above -40 dBFS
    return x, loud[0] / RATE, (loud[-1] + 1) / RATE


def timeline(utterance, silences, lead=1.5, trail=1.0, noise=None):
    """lead silence, utterance, silences[0], utterance, ... , trail silence.
    Returns (samples, [(onset, offset) of each utterance's sound in seconds])."""
    x, on, off = utterance
    parts, spans, t = [np.zeros(int(lead * RATE), np.int16)], [], lead
    for i, gap in enumerate([*silences, None]):
        parts.append(x)
        spans.append((t + on, t + off))
        t += len(x) / RATE
        pause = trail if gap is None else gap
        parts.append(np.zeros(int(pause * RATE), np.int16))
        t += pause
    y = np.concatenate(parts)
    if noise is not None:
        y = np.clip(y.astype(np.int32) + noise(len(y)), -32768, 32767).astype(np.int16)
    return y, spans


def record_through_gate(tmp_path, samples, name="in.wav", **gate):
    src = tmp_path / name
    sf.write(src, samples, RATE, subtype="PCM_16")
    events = []
    rec = MediaRecorder(FileSource(src), "audio/wav", output=os.fspath(tmp_path / ("out-" + name)),
                        voice=VoiceGate(RATE, **gate))
    for t in ("pause", "resume", "stop", "dataavailable"):
        rec.add_event_listener(t, events.append)
    rec.start()
    assert rec.wait(30)
    return rec, events


def find_exact(haystack, needle):
    """Start index of the exact occurrence of needle in haystack (lossless paths)."""
    first = np.flatnonzero(haystack == needle[0])
    for i in first:
        if i + len(needle) <= len(haystack) and np.array_equal(haystack[i:i + len(needle)], needle):
            return i
    raise AssertionError("the output is not a contiguous piece of the input")


def test_level_detector_calls_speech_speech_and_a_steady_hum_not(utterance):
    x, on, off = utterance
    rng = np.random.default_rng(0)
    room = (rng.normal(0, 60, RATE)).astype(np.int16)  # about -55 dBFS of room noise first
    det = LevelDetector()
    w = int(0.03 * RATE)
    for i in range(0, len(room) - w, w):
        assert not det(room[i:i + w, None])
    sound = x[int(on * RATE):int(off * RATE)]
    verdicts = [det(sound[i:i + w, None]) for i in range(0, len(sound) - w, w)]
    assert sum(verdicts) > len(verdicts) * 0.6
    hum = (0.05 * 32767 * np.sin(2 * np.pi * 100 * np.arange(3 * RATE) / RATE)).astype(np.int16)
    det = LevelDetector()
    assert not any(det(hum[i:i + w, None]) for i in range(0, len(hum) - w, w))
    assert det.level_dbfs > -40  # the hum is louder than the threshold: the floor saved it


def test_wait_for_sound_starts_a_pre_roll_before_the_first_word(tmp_path, utterance):
    x, spans = timeline(utterance, [2.0])
    rec, _ = record_through_gate(tmp_path, x, wait_for_sound=True)
    y, _ = sf.read(rec.path, dtype="int16")
    start = find_exact(x, y[:RATE])
    assert start / RATE == pytest.approx(spans[0][0] - PRE, abs=TOL)
    assert np.array_equal(y, x[start:start + len(y)])  # nothing after the start is lost
    assert start + len(y) == len(x)


def test_stop_on_silence_ends_a_short_tail_after_the_last_word(tmp_path, utterance):
    x, spans = timeline(utterance, [0.6, 2.5])  # a 0.6 s pause is not long enough to stop
    rec, events = record_through_gate(tmp_path, x, wait_for_sound=True, stop_on_silence=1.5)
    y, _ = sf.read(rec.path, dtype="int16")
    start = find_exact(x, y[:RATE])
    end = (start + len(y)) / RATE
    assert end == pytest.approx(spans[1][1] + TAIL, abs=TOL)
    assert np.array_equal(y, x[start:start + len(y)])
    assert events[-1].type == "stop" and rec.error is None


def test_skip_silence_shortens_long_silences_to_a_short_gap(tmp_path, utterance):
    x, spans = timeline(utterance, [2.0, 3.0, 0.5])
    rec, events = record_through_gate(tmp_path, x, skip_silence=1.0)
    y, _ = sf.read(rec.path, dtype="int16")
    pauses = [e for e in events if e.type == "pause"]
    resumes = [e for e in events if e.type == "resume"]
    # the lead silence (1.5 s), the 2 s and 3 s gaps and the 1 s trail are skipped (the
    # recording ends while skipping: a last pause with no resume); the 0.5 s gap is kept
    assert len(pauses) == 4 and len(resumes) == 3
    assert all(e.reason == "silence" for e in pauses + resumes)
    speech_span = spans[-1][1] - spans[2][0]  # the last two utterances with the 0.5 s between
    expected = ((TAIL + PRE) + (spans[0][1] - spans[0][0]) + (TAIL + PRE) + (spans[1][1] - spans[1][0])
                + (TAIL + PRE) + speech_span + TAIL)
    assert len(y) / RATE == pytest.approx(expected, abs=3 * TOL)
    # every utterance is in the output whole
    u = utterance[0]
    for k in range(3):
        find_exact(y, u[int(utterance[1] * RATE):int(utterance[2] * RATE)])


def test_split_on_silence_gives_one_file_per_utterance(tmp_path, utterance):
    x, spans = timeline(utterance, [2.0, 1.5])
    rec, _ = record_through_gate(tmp_path, x, skip_silence=1.0, split_on_silence=True)
    assert len(rec.paths) == 3
    u, on, off = utterance
    sound = u[int(on * RATE):int(off * RATE)]
    for path in rec.paths:
        y, rate = sf.read(path, dtype="int16")
        assert rate == RATE
        find_exact(y, sound)
        assert len(y) / RATE == pytest.approx(off - on + PRE + TAIL, abs=TOL)


def test_a_steady_hum_does_not_start_a_recording_that_waits_for_sound(tmp_path):
    hum = (0.05 * 32767 * np.sin(2 * np.pi * 100 * np.arange(4 * RATE) / RATE)).astype(np.int16)
    rec, events = record_through_gate(tmp_path, hum, wait_for_sound=True)
    assert rec.frames == 0
    assert events[-1].type == "stop"


def test_speech_over_a_hum_is_still_found_and_cut_in_the_right_places(tmp_path, utterance):
    def hum(n):
        return (0.04 * 32767 * np.sin(2 * np.pi * 100 * np.arange(n) / RATE)).astype(np.int32)

    x, spans = timeline(utterance, [2.0], noise=hum)
    rec, events = record_through_gate(tmp_path, x, wait_for_sound=True, stop_on_silence=1.5)
    y, _ = sf.read(rec.path, dtype="int16")
    start = find_exact(x, y[:RATE])
    # the hum masks the quietest edges of the speech a little: allow twice the tolerance
    assert start / RATE == pytest.approx(spans[0][0] - PRE, abs=2 * TOL)
    assert (start + len(y)) / RATE == pytest.approx(spans[0][1] + TAIL, abs=2 * TOL)


def test_voice_gate_memory_is_bounded_by_the_longest_silence_limit(utterance):
    gate = VoiceGate(RATE, stop_on_silence=2.0)
    silence = np.zeros((RATE // 4, 1), np.int16)
    u = utterance[0][:, None]
    kinds = [k for k, _ in gate.process(u)]
    held_max = 0
    for _ in range(12):  # 3 s of silence: held back, then a stop at 2 s
        kinds += [k for k, _ in gate.process(silence)]
        held_max = max(held_max, gate._held_frames)
    assert held_max <= 2.0 * RATE
    assert kinds.count("stop") == 1 and kinds[-1] == "stop"
    assert gate.process(silence) == []  # nothing after the stop


def test_cli_split_on_silence_with_events_marks_the_skips(tmp_path, utterance):
    x, _ = timeline(utterance, [2.0, 2.0])
    src = tmp_path / "in.wav"
    sf.write(src, x, RATE, subtype="PCM_16")
    proc = cliutil.run("record", "--input", src, "--split-on-silence", "1", "--events", "-",
                       "u.wav", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(l) for l in proc.stdout.splitlines()]
    kinds = [l["type"] for l in lines]
    # two gaps and the trailing silence are left out; no resume after the last
    assert kinds.count("pause") == 3 and kinds.count("resume") == 2
    assert all(l.get("reason") == "silence" for l in lines if l["type"] in ("pause", "resume"))
    assert lines[-1]["type"] == "stop"
    assert [os.path.basename(p) for p in lines[-1]["paths"]] == ["u-001.wav", "u-002.wav", "u-003.wav"]
    assert "3 files" in proc.stderr


def test_real_microphone_dictation_starts_on_speech_and_stops_after_silence(
        tmp_path, pulse, speech, recorders):
    """Through PulseAudio: the recorder waits, hears the speech, stops by itself."""
    out = tmp_path / "memo.wav"
    events = tmp_path / "ev.jsonl"
    rec = recorders(out, "--wait-for-sound", "--stop-on-silence", "1.5", "--events", events,
                    "--timeslice", "0.1")
    rec.wait_started(timeout=15)  # audio flows
    time.sleep(1.0)  # silence first: nothing may be written
    assert out.stat().st_size <= 80 + 2 * int(0.1 * RATE)  # (a file's WAV header: 80 bytes)
    pulse.play_and_wait(speech, timeout=15)
    status = rec.wait(timeout=15)  # stops by itself after 1.5 s of silence
    assert status == 0, rec.stderr()
    assert audiolab.speech_score(speech, out) > 0.9
    got, _ = audiolab.read_mono(out)
    x = sf.read(speech, dtype="int16")[0]
    loud = np.flatnonzero(np.abs(x.astype(int)) > 330)
    sound = (loud[-1] - loud[0]) / RATE
    assert len(got) / RATE == pytest.approx(sound + PRE + TAIL, abs=0.3)
