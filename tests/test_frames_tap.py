"""The recorder's frames tap (``add_frames_listener``) and ``post_event``: what helpers such
as the live transcriber build on. In-process, on FileSource (no audio device needed)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import soundfile as sf

from dictaphone import FileSource, MediaRecorder
from dictaphone.events import Event, TranscriptEvent
from dictaphone.recording.vad import LevelDetector, VoiceGate

RATE = 16000
JOIN = 30.0  # "does not hang" bound


def speechlike(rate: int, seconds: float, seed: int) -> np.ndarray:
    """Noise bursts that the level detector takes for speech (loud, with a low floor)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(-0.3, 0.3, int(rate * seconds))).astype(np.float32)


def write_timeline(path, parts) -> np.ndarray:
    data = np.concatenate(parts)
    sf.write(str(path), data, RATE, subtype="PCM_16")
    return sf.read(str(path), dtype="int16")[0]


class Tap:
    def __init__(self):
        self.blocks: list[np.ndarray] = []
        self.times: list[float] = []
        self.threads: set[str] = set()

    def __call__(self, frames, media_time):
        self.blocks.append(frames.copy())  # the recorder reuses the array after the call
        self.times.append(media_time)
        self.threads.add(threading.current_thread().name)


def test_the_frames_tap_sees_exactly_the_written_frames_with_their_media_times(tmp_path):
    data = write_timeline(tmp_path / "in.wav", [speechlike(RATE, 2.3, 1)])
    out = tmp_path / "out.wav"
    tap = Tap()
    rec = MediaRecorder(FileSource(tmp_path / "in.wav"), "audio/wav", output=out)
    rec.add_frames_listener(tap)
    rec.add_frames_listener(tap)  # a second add of the same listener is ignored
    rec.start()
    assert rec.wait(JOIN)
    got = np.concatenate(tap.blocks)[:, 0]
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(got, sf.read(str(out), dtype="int16")[0])
    # each block starts where the previous one ended, in recorded seconds
    starts = np.cumsum([0] + [len(b) for b in tap.blocks[:-1]]) / RATE
    np.testing.assert_allclose(tap.times, starts)
    assert tap.threads == {"dictaphone-writer"}


def test_skipped_silence_is_left_out_of_the_tap_and_its_times_follow_the_file(tmp_path):
    silence = np.zeros(int(RATE * 3), dtype=np.float32)
    write_timeline(tmp_path / "in.wav", [speechlike(RATE, 1.0, 1), silence, speechlike(RATE, 1.0, 2)])
    out = tmp_path / "out.wav"
    tap = Tap()
    gate = VoiceGate(RATE, LevelDetector(), skip_silence=1.0)
    rec = MediaRecorder(FileSource(tmp_path / "in.wav"), "audio/wav", output=out, voice=gate)
    rec.add_frames_listener(tap)
    rec.start()
    assert rec.wait(JOIN)
    written = sf.read(str(out), dtype="int16")[0]
    assert len(written) < RATE * 4  # the long silence was left out...
    np.testing.assert_array_equal(np.concatenate(tap.blocks)[:, 0], written)  # ...of the tap too
    starts = np.cumsum([0] + [len(b) for b in tap.blocks[:-1]]) / RATE
    np.testing.assert_allclose(tap.times, starts)


def test_a_frames_listener_that_raises_is_removed_and_the_recording_goes_on(tmp_path, caplog):
    data = write_timeline(tmp_path / "in.wav", [speechlike(RATE, 1.5, 3)])
    calls = []

    def bad(frames, media_time):
        calls.append(media_time)
        raise RuntimeError("boom")

    rec = MediaRecorder(FileSource(tmp_path / "in.wav"), "audio/wav", output=tmp_path / "o.wav")
    rec.add_frames_listener(bad)
    with caplog.at_level(logging.ERROR, logger="dictaphone"):
        rec.start()
        assert rec.wait(JOIN)
    assert rec.error is None and rec.frames == len(data)
    assert len(calls) == 1
    assert "frames listener raised" in caplog.text


def test_a_removed_frames_listener_is_not_called(tmp_path):
    write_timeline(tmp_path / "in.wav", [speechlike(RATE, 1.0, 4)])
    tap = Tap()
    rec = MediaRecorder(FileSource(tmp_path / "in.wav"), "audio/wav", output=tmp_path / "o.wav")
    rec.add_frames_listener(tap)
    rec.remove_frames_listener(tap)
    rec.start()
    assert rec.wait(JOIN)
    assert tap.blocks == []


def test_posted_events_reach_listeners_in_order_and_after_the_stop_on_the_callers_thread(tmp_path):
    write_timeline(tmp_path / "in.wav", [speechlike(RATE, 1.0, 5)])
    rec = MediaRecorder(FileSource(tmp_path / "in.wav"), "audio/wav", output=tmp_path / "o.wav")
    seen = []
    for t in ("start", "stop", "transcript"):
        rec.add_event_listener(t, lambda e: seen.append((e.type, threading.current_thread().name,
                                                         getattr(e, "text", None), e.target)))
    rec.ontranscript = lambda e: seen.append(("on", e.text))
    posted = threading.Event()

    def on_start(e):
        rec.post_event(TranscriptEvent("transcript", text="while recording", start=0.0, end=0.5))
        posted.set()

    rec.add_event_listener("start", on_start)
    rec.start()
    assert rec.wait(JOIN) and posted.is_set()
    rec.post_event(TranscriptEvent("transcript", text="after the stop", start=0.5, end=1.0))
    me = threading.current_thread().name
    assert [s[:3] for s in seen if s[0] != "on"] == [
        ("start", "dictaphone-events", None),
        ("transcript", "dictaphone-events", "while recording"),
        ("stop", "dictaphone-events", None),
        ("transcript", me, "after the stop")]
    assert [s for s in seen if s[0] == "on"] == [("on", "while recording"), ("on", "after the stop")]
    assert all(s[3] is rec for s in seen if s[0] != "on")


def test_an_event_posted_to_a_recorder_never_started_is_dispatched_at_once():
    rec = MediaRecorder(_Silent(), "audio/wav")
    got = []
    rec.add_event_listener("transcript", got.append)
    rec.post_event(Event("transcript"))
    assert [e.type for e in got] == ["transcript"]


class _Silent:
    samplerate = RATE
    channels = 1
    name = "silent"


def test_transcript_is_an_event_type_with_an_on_attribute():
    rec = MediaRecorder(_Silent(), "audio/wav")
    assert rec.ontranscript is None
    rec.add_event_listener("transcript", print)  # accepted, not "unknown event type"
