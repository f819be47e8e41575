"""The recorder's parts one by one (dictaphone/recording/): the intake the audio thread
pushes into, the files of a recording, marker placement, the voice gate's input, device
loss and reconnection, and the writer loop. Real rings, real encoders writing real files
(read back with soundfile), fake sources driven by the test. test_recorder.py and the
others test them together through MediaRecorder."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from dictaphone.capture.levels import LevelMeter
from dictaphone.capture.ring import RingBuffer
from dictaphone.containers import markers as markers_mod
from dictaphone.containers.formats import format_for_mime
from dictaphone.containers.markers import Marker
from dictaphone.errors import DeviceError, DeviceLostError, OutputError
from dictaphone.recording.gating import GatedInput
from dictaphone.recording.intake import Intake
from dictaphone.recording.pieces import Pieces, check_not_the_input, split_path
from dictaphone.recording.placement import MarkerPlacement
from dictaphone.recording.reconnect import Reconnection
from dictaphone.recording.vad import VoiceGate
from dictaphone.recording.writer import FramesTap, Writer

RATE = 8000
WAV = format_for_mime("audio/wav")


def counter(start: int, n: int) -> np.ndarray:
    """Frames start..start+n-1 of a counter signal: frame i holds i + 1."""
    return np.arange(start + 1, start + n + 1, dtype=np.int32).reshape(-1, 1)


def intake(capacity: int = RATE) -> Intake:
    return Intake(RingBuffer(capacity, 1, "int32"), LevelMeter(channels=1), threading.Event())


class Src:
    """What the parts read of a source: its rate and channels, and (a device) lost/reopen."""

    name = "fake"
    label = "Fake device"
    samplerate = RATE
    channels = 1
    live = True

    def __init__(self, come_back_after: int | None = None, capture: Intake | None = None):
        self.come_back_after = come_back_after  # reopen() calls before it works (None: never)
        self.capture = capture
        self.reopens = self.losses = self.stops = self.closes = 0

    def lost(self):
        self.losses += 1

    def reopen(self, capture):
        self.reopens += 1
        if self.come_back_after is None or self.reopens <= self.come_back_after:
            return False
        capture.push(counter(0, 100))  # the first audio back
        return True

    def stop(self):
        self.stops += 1

    def close(self):
        self.closes += 1


def wav_pieces(tmp_path, cut=False, name="memo.wav") -> Pieces:
    return Pieces(str(tmp_path / name), WAV, Src(), "PCM_32", cut=cut)


# --------------------------------------------------------------------------- Intake


def test_the_intake_keeps_what_fits_in_the_ring_and_counts_the_rest_as_dropped():
    i = intake(capacity=4096)
    i.push(counter(0, 3000))
    i.push(counter(3000, 3000))
    assert (i.received, i.accepted, i.dropped) == (6000, 4096, 1904)
    out = np.zeros((5000, 1), np.int32)
    assert i.ring.read_into(out) == 4096
    assert out[4095, 0] == 4096  # the frames kept are the first ones, in order


def test_a_paused_intake_still_takes_what_the_device_captured_before_the_pause():
    i = intake()
    i.push(counter(0, 100))
    i.paused, i.keep_until = True, 150
    i.push(counter(100, 100))  # 50 of these were captured before the pause
    assert (i.accepted, i.paused_frames) == (150, 50)
    i.push(counter(200, 100))
    assert (i.accepted, i.paused_frames) == (150, 150)


def test_the_intake_wakes_the_writer_only_once_it_has_the_frames_asked_for():
    i = intake()
    i.wake_at = 250
    i.push(counter(0, 200))
    assert not i.wake.is_set()
    i.push(counter(200, 100))
    assert i.wake.is_set()


def test_an_intake_that_stopped_accepting_takes_nothing_more():
    i = intake()
    i.accepting = False
    i.push(counter(0, 100))
    assert not i.push_all(counter(100, 100))
    assert (i.received, i.accepted, len(i.ring)) == (200, 0, 0)


def test_the_first_error_an_intake_is_ended_with_is_the_one_kept():
    i = intake()
    i.end(DeviceError("first"))
    i.end(DeviceError("second"))
    assert i.ended and str(i.error) == "first" and i.wake.is_set()


def test_audio_on_its_way_follows_the_device_clock_of_the_promptest_delivery():
    i = intake()
    now = time.monotonic()
    # 1000 frames (1/8 s) delivered at once 0.3 s ago and then nothing: by the device's
    # clock 0.3 s more were captured, capped at what a marker may look ahead
    i.deliveries.append((now - 0.3, 1000))
    i.received = 1000
    ahead = i.on_its_way(RATE, since=now - 10, most=0.25, clock_jump=0.5)
    assert ahead == pytest.approx(0.25 * RATE, abs=2)
    # and never further back than the resume
    assert i.on_its_way(RATE, since=now - 0.05, most=1.0, clock_jump=0.5) == pytest.approx(
        0.05 * RATE, abs=RATE * 0.02)
    # a late block (arrived long after its frames) does not move the clock
    i.deliveries.append((now, 1100))
    i.received = 1100
    late = i.on_its_way(RATE, since=now - 10, most=1.0, clock_jump=0.5)
    assert late == pytest.approx(0.3 * RATE - 100, abs=RATE * 0.02)


def test_no_deliveries_means_nothing_on_its_way():
    assert intake().on_its_way(RATE, since=0.0, most=1.0, clock_jump=0.5) == 0


# --------------------------------------------------------------------------- Pieces


def test_pieces_of_a_cut_recording_are_numbered_files_each_with_its_own_frames(tmp_path):
    p = wav_pieces(tmp_path, cut=True)
    for n in range(3):
        enc = p.open(n * 800)
        enc.write(counter(n * 800, 800))
        assert p.place_of(n * 800 + 400) == (n + 1, 0.05)
        blob = p.close()
        assert blob.size > 800 * 4
    assert p.place_of(2400) == (4, 0.0)  # between pieces: the next one's start
    assert p.paths == [str(tmp_path / f"memo-00{n}.wav") for n in (1, 2, 3)]
    assert p.frames_in == {path: 800 for path in p.paths}
    assert [p.number_of(path) for path in p.paths] == [1, 2, 3]
    assert p.bytes_written == p.bytes_closed == sum(p_.stat().st_size for p_ in tmp_path.iterdir())
    data, rate = sf.read(p.paths[1], dtype="int32")
    assert rate == RATE and data[0] == 801 and data[-1] == 1600


def test_one_file_is_piece_zero_and_its_path_is_the_output(tmp_path):
    p = wav_pieces(tmp_path)
    assert p.path == str(tmp_path / "memo.wav") and p.paths == []
    p.open(0)
    assert p.close() is not None and p.close() is None
    assert p.number_of(str(tmp_path / "memo.wav")) == 0
    assert p.number_of(str(tmp_path / "other.wav")) is None


def test_a_file_recorded_anew_loses_the_markers_and_transcript_of_the_old_audio(tmp_path):
    audio = tmp_path / "memo.wav"
    for suffix in (".markers.json", ".transcript.json", ".json"):
        (tmp_path / f"memo.wav{suffix}").write_text("{}")
    p = Pieces(str(audio), WAV, Src(), "PCM_16", force=True)
    p.open(0)
    p.close()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["memo.wav", "memo.wav.json"]


def test_an_aborted_start_leaves_no_file_and_names_none(tmp_path):
    p = wav_pieces(tmp_path)
    p.open(0)
    p.abort()
    assert list(tmp_path.iterdir()) == [] and p.paths == [] and p.encoder is None


def test_split_path_numbers_pieces_or_formats_a_template():
    assert split_path("a/memo.wav", 7) == "a/memo-007.wav"
    assert split_path("take-{n:02d}.flac", 3) == "take-03.flac"


def test_a_recording_is_never_written_over_its_own_input(tmp_path):
    src = Src()
    src.path = str(tmp_path / "in.wav")
    sf.write(src.path, np.zeros(10), RATE)
    (tmp_path / "link.wav").symlink_to(src.path)
    with pytest.raises(OutputError, match="is the input file"):
        check_not_the_input(src, str(tmp_path / "link.wav"))
    check_not_the_input(src, str(tmp_path / "out.wav"))  # another file is fine


# --------------------------------------------------------------------------- MarkerPlacement


def test_markers_made_out_of_order_are_placed_in_frame_order_where_their_audio_is(tmp_path):
    marks = MarkerPlacement(RATE)
    p = wav_pieces(tmp_path)
    enc = p.open(0)
    marks.add(Marker(2, 0.5, "second", frame=4000))
    marks.add(Marker(1, 0.25, "first", frame=2000))
    assert marks.around(2000) == (True, 4000)
    marks.place(p, 3000)  # the writer is about to write frames up to 3000
    path = str(tmp_path / "memo.wav")
    assert [m.label for m in marks.file_markers[path]] == ["first"]
    enc.write(counter(0, 8000))
    marks.place(p, None)
    p.close()
    assert [(m.number, m.time) for m in marks.file_markers[path]] == [(1, 0.25), (2, 0.5)]
    assert [(m.number, m.label, m.time) for m in markers_mod.load(path)] == [
        (1, "first", 0.25), (2, "second", 0.5)]


def test_a_marker_in_a_later_piece_is_placed_at_its_offset_in_that_piece(tmp_path):
    marks = MarkerPlacement(RATE)
    p = wav_pieces(tmp_path, cut=True)
    p.open(0).write(counter(0, 800))
    p.close()
    p.open(800)
    marks.add(Marker(1, 0.125, "", frame=1000))
    marks.place(p, 1200)
    assert marks.file_markers == {str(tmp_path / "memo-002.wav"): [Marker(1, 0.025, "", frame=200)]}


def test_a_marker_left_after_the_last_piece_closed_goes_at_the_end_of_that_piece(tmp_path):
    marks = MarkerPlacement(RATE)
    p = wav_pieces(tmp_path, cut=True)
    p.open(0).write(counter(0, 800))
    p.close()
    marks.add(Marker(1, 0.2, "late", frame=1600))
    marks.place(p, None)
    (held,) = marks.file_markers.values()
    assert held[0].frame == 800 and held[0].time == 0.1


def test_markers_pulled_back_on_a_device_loss_point_where_the_audio_resumes():
    marks = MarkerPlacement(RATE)
    marks.add(Marker(1, 0.5, "", frame=4000))
    marks.add(Marker(2, 0.1, "", frame=800))
    marks.pull_back(2000)
    assert marks.around(1999) == (True, 2000)
    assert marks.around(2000) == (True, None)


def test_an_unmapped_marker_is_taken_once_the_gate_reaches_it_and_mapped_to_the_file():
    marks = MarkerPlacement(RATE)
    m = Marker(1, 0.0, "", frame=500)
    marks.add(m, mapped=False)
    assert marks.next_unmapped(500) is None
    assert marks.next_unmapped(501) is m
    marks.map(m, 300, 300 / RATE)
    assert marks.around(300) == (True, None) and m.time == 300 / RATE
    assert marks.take_unmapped() == []


# --------------------------------------------------------------------------- GatedInput


class PassGate:
    """A voice gate that keeps everything, one write per call, and holds ``held`` frames."""

    pending_frames = 0

    def __init__(self):
        self.calls = []

    def process(self, frames):
        self.calls.append(len(frames))
        return [("write", frames)]

    def flush(self):
        return [("stop", None)]


def test_the_gate_sees_the_audio_before_a_marker_before_the_marker_is_yielded():
    marks = MarkerPlacement(RATE)
    gate = PassGate()
    g = GatedInput(gate, marks)
    m1, m2 = Marker(1, 0, "", frame=300), Marker(2, 0, "", frame=1500)
    marks.add(m1, mapped=False)
    marks.add(m2, mapped=False)
    out = list(g.feed(counter(0, 1000)))
    assert [(k, len(a) if k == "write" else a.number) for k, a in out] == [
        ("write", 300), ("mark", 1), ("write", 700)]
    out = list(g.feed(counter(1000, 1000)))
    assert [(k, len(a) if k == "write" else a.number) for k, a in out] == [
        ("write", 500), ("mark", 2), ("write", 500)]
    assert g.read == 2000 and g.flush() == [("stop", None)]


def test_a_real_voice_gate_leaves_silence_out_and_says_when_it_paused():
    gate = VoiceGate(RATE, skip_silence=0.5)
    g = GatedInput(gate, MarkerPlacement(RATE))
    loud = (np.sin(np.arange(RATE) / 3) * 2**30).astype(np.int32).reshape(-1, 1)
    quiet = np.zeros((3 * RATE, 1), np.int32)
    kinds = [k for k, _ in g.feed(loud)] + [k for k, _ in g.feed(quiet)] + [
        k for k, _ in g.feed(loud)] + [k for k, _ in g.flush()]
    assert "pause" in kinds and "resume" in kinds
    assert kinds.index("pause") < kinds.index("resume")


# --------------------------------------------------------------------------- Reconnection


def reconnection(src, i, tmp_path, posted, window=2.0, **kw):
    pieces = wav_pieces(tmp_path)
    pieces.source = src
    pieces.open(0)
    kw.setdefault("stall_timeout", 5.0)
    kw.setdefault("start_timeout", 15.0)
    kw.setdefault("started_at", time.monotonic())
    return Reconnection(src, i, pieces, MarkerPlacement(RATE), post=posted.append, window=window,
                        retry=0.01, first_audio=0.2, **kw)


def test_a_source_that_never_sends_is_an_error_after_the_start_timeout(tmp_path):
    i = intake()
    link = reconnection(Src(), i, tmp_path, [], start_timeout=1.0, started_at=time.monotonic() - 2)
    with pytest.raises(DeviceError, match="no audio arrived within 1 s"):
        link.check_stall(time.monotonic())


def test_a_source_that_stops_sending_is_an_error_after_the_stall_timeout(tmp_path):
    i = intake()
    i.push(counter(0, 10))
    link = reconnection(Src(), i, tmp_path, [], stall_timeout=0.5)
    link.check_stall(time.monotonic())  # it just sent
    with pytest.raises(DeviceError, match="no audio for 0.5 s"):
        link.check_stall(time.monotonic() + 1)


def test_a_device_that_comes_back_is_a_gap_and_two_events(tmp_path):
    i = intake()
    i.push(counter(0, 800))
    src = Src(come_back_after=2)
    posted = []
    link = reconnection(src, i, tmp_path, posted)
    i.error = DeviceLostError("Fake device", "it was unplugged")
    assert link.reconnect(800, stopping=lambda: False)
    assert [e.type for e in posted] == ["devicelost", "devicerestored"]
    assert src.reopens == 3 and src.losses >= 1
    (gap,) = link.gaps
    assert gap["time"] == 0.1 and gap["reason"] and gap["duration"] >= 0
    assert link.gaps_in(0) == [dict(gap, time=0.1)] and link.lost is None
    assert i.wake_at == 1 and i.error is None


def test_a_device_that_stays_away_ends_the_recording_with_a_device_lost_error(tmp_path):
    i = intake()
    i.push(counter(0, 10))
    link = reconnection(Src(), i, tmp_path, [], window=0.2)
    i.error = DeviceLostError("Fake device", "it was unplugged")
    t0 = time.monotonic()
    assert not link.reconnect(10, stopping=lambda: False)
    assert 0.2 <= time.monotonic() - t0 < 5
    assert isinstance(i.error, DeviceLostError) and "did not come back within 0.2 s" in str(i.error)


def test_a_stop_while_the_device_is_away_ends_without_an_error(tmp_path):
    i = intake()
    link = reconnection(Src(), i, tmp_path, [], window=30)
    i.error = DeviceError("gone")
    assert not link.reconnect(0, stopping=lambda: True)  # asked before: not even tried
    calls = []

    def stopping():
        calls.append(1)
        return len(calls) > 3

    assert not link.reconnect(0, stopping=stopping)
    assert i.ended and i.error is None


def test_without_a_window_nothing_is_waited_for(tmp_path):
    i = intake()
    link = reconnection(Src(come_back_after=0), i, tmp_path, [], window=0)
    i.error = DeviceError("gone")
    assert not link.reconnect(0, stopping=lambda: False)


# --------------------------------------------------------------------------- Writer


def run_writer(tmp_path, frames: int, **kw):
    """Push ``frames`` counter frames, ask for a stop (as stop() does), and run the writer
    loop on this thread; returns (writer, events posted, pieces)."""
    i = intake(capacity=max(4096, frames))
    src = Src()
    pieces = Pieces(kw.pop("output", str(tmp_path / "memo.wav")), WAV, src, "PCM_32",
                    cut=kw.pop("cut", False))
    marks = MarkerPlacement(RATE)
    posted, ended = [], []
    link = Reconnection(src, i, pieces, marks, post=posted.append, window=0,
                        stall_timeout=5.0, start_timeout=15.0, started_at=time.monotonic())
    tap = kw.pop("tap", FramesTap())
    for m in kw.pop("marks", []):
        marks.add(m)
    w = Writer(src, i, pieces, marks, link, tap, post=posted.append,
               on_end=lambda: ended.append(1), mime_type="audio/wav", chunk=RATE,
               write_ahead=RATE // 4, idle_wait=0.05, sync_interval=1.0, **kw)
    pieces.open(0)
    i.push(counter(0, frames))
    w.stop_requested = True
    w.run()
    assert ended == [1] and src.stops >= 1 and src.closes == 1
    return w, posted, pieces


def test_the_writer_writes_every_frame_and_ends_with_a_blob_and_stop(tmp_path):
    w, posted, pieces = run_writer(tmp_path, 10000)
    assert w.frames == 10000 and w.error is None
    assert [e.type for e in posted] == ["dataavailable", "stop"]
    assert posted[-1].frames == 10000 and posted[-1].path == str(tmp_path / "memo.wav")
    data, _ = sf.read(tmp_path / "memo.wav", dtype="int32")
    assert np.array_equal(data, counter(0, 10000)[:, 0])


def test_the_writer_cuts_a_blob_at_every_timeslice_and_stops_exactly_at_the_limit(tmp_path):
    w, posted, _ = run_writer(tmp_path, 10000, output=None, timeslice=2000, limit=7000)
    blobs = [e for e in posted if e.type == "dataavailable"]
    assert w.frames == 7000 and len(blobs) == 4  # 2000, 4000, 6000, and the last 1000
    assert posted[-1].type == "stop" and posted[-1].frames == 7000


def test_the_writer_closes_a_piece_at_each_split_boundary(tmp_path):
    w, posted, pieces = run_writer(tmp_path, 5000, cut=True, split=2000)
    assert [pieces.frames_in[p] for p in pieces.paths] == [2000, 2000, 1000]
    assert sum(e.type == "dataavailable" for e in posted) == 3


def test_the_writer_starts_a_new_piece_at_a_marker_with_split_on_mark(tmp_path):
    marks = [Marker(1, 0.3, "", frame=2400)]
    w, posted, pieces = run_writer(tmp_path, 5000, cut=True, split_on_mark=True, marks=marks)
    assert [pieces.frames_in[p] for p in pieces.paths] == [2400, 2600]


def test_the_frames_tap_sees_every_block_in_order_and_loses_a_listener_that_raises(tmp_path, caplog):
    seen, tap = [], FramesTap()
    tap.add(lambda frames, t: seen.append((t, frames[0, 0], len(frames))))
    tap.add(lambda frames, t: 1 / 0)
    w, _, _ = run_writer(tmp_path, 3 * RATE, tap=tap)
    assert sum(n for _, _, n in seen) == 3 * RATE
    assert all(first == round(t * RATE) + 1 for t, first, _ in seen)
    assert len(tap.listeners) == 1 and "a frames listener raised" in caplog.text
