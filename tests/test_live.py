"""Live transcription (dictaphone/speech/live.py and `record --transcribe`): real recognition with
the packaged tiny.en model (loaded once per session), espeak-ng speech with a known
timeline, through FileSource, `--input`, and the virtual microphone.

Times are checked against the recording's own timeline (where a sentence lands in the
file), never against the wall clock; the only wall-clock fact checked is the order of
things (a transcript event before the stop).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
import speech
from cliutil import no_device_env, one_error_line, pulse_env, read_events, run

speech.require_extra("faster_whisper")  # the transcribe extra: fails under CI when missing

from dictaphone import FileSource, MediaRecorder  # noqa: E402
from dictaphone import transcript as tmod  # noqa: E402
from dictaphone.speech.live import LiveTranscriber  # noqa: E402

RATE = speech.RATE
JOIN = 60.0  # "does not hang" bound for recognition of a few sentences on a busy machine
SENTENCES = speech.SENTENCES[:3]


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    """Three sentences with 1.5 s pauses (about 10 s), 48 kHz mono 16-bit."""
    return speech.make_script(tmp_path_factory.mktemp("live") / "script.wav", SENTENCES, pause=1.5)


def overlaps(a0, a1, b0, b1, slack=0.3) -> bool:
    return a0 < b1 + slack and b0 < a1 + slack


def content_words(text: str) -> set[str]:
    return {w for w in speech.words(text) if len(w) > 3}


def check_events_match_the_script(events, script, shift=0.0):
    """One event for each sentence, in order, at the sentence's place in the recording
    (``shift``: where the script starts in it) and with most of its words (the check is
    on the longer words: tiny.en mishears some of espeak-ng's voice)."""
    assert len(events) == len(script.sentences), [e["text"] for e in events]
    for e, s in zip(events, script.sentences):
        a, b = s.speech_start + shift, s.speech_end + shift
        assert overlaps(e["start"], e["end"], a, b), (e, a, b)
        assert a - 0.6 <= e["start"] <= a + 1.0 and b - 1.0 <= e["end"] <= b + 0.6, (e, a, b)
        want = content_words(s.text)
        assert len(want & content_words(e["text"])) >= len(want) / 2, (s.text, e["text"])
    assert speech.wer(script.text, " ".join(e["text"] for e in events)) <= 0.4


def as_dicts(events):
    return [{"text": e.text, "start": e.start, "end": e.end} for e in events]


# ------------------------------------------------------------------------------ Python API


def test_a_live_transcriber_on_a_file_source_fires_one_event_per_sentence(script, transcriber, tmp_path):
    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "out.wav")
    live = LiveTranscriber(rec, transcriber)
    on, added, threads = [], [], set()
    rec.ontranscript = on.append
    rec.add_event_listener("transcript", added.append)
    rec.add_event_listener("transcript", lambda e: threads.add(threading.current_thread().name))
    rec.start()
    assert rec.wait(JOIN)
    t = live.close(JOIN)
    assert on == added
    check_events_match_the_script(as_dicts(on), script)
    assert all(e.target is rec for e in on)
    # the whole transcript: every event's segments, in the recording's time
    assert t.segments == [s for e in on for s in e.segments]
    assert abs(t.duration - script.duration) < 0.01
    assert speech.wer(script.text, t.text) <= 0.4
    for seg in t.segments:
        assert all(seg.start - 1e-3 <= w.start <= w.end <= seg.end + 1e-3 for w in seg.words)
    # the file itself is untouched by all this: exactly the input
    np.testing.assert_array_equal(sf.read(str(tmp_path / "out.wav"), dtype="int16")[0],
                                  sf.read(str(script.path), dtype="int16")[0])


def test_live_events_arrive_while_a_real_time_source_still_records(script, transcriber, tmp_path):
    rec = MediaRecorder(FileSource(script.path, realtime=True), "audio/wav", output=tmp_path / "o.wav")
    live = LiveTranscriber(rec, transcriber)
    order = []
    rec.ontranscript = lambda e: order.append(("transcript", rec.duration, e.end))
    rec.onstop = lambda e: order.append(("stop", rec.duration, None))
    rec.start()
    assert rec.wait(JOIN)
    live.close(JOIN)
    kinds = [k for k, _, _ in order]
    assert kinds.index("stop") >= 2, order  # the first sentences were text before the end
    for kind, recorded, end in order[:kinds.index("stop")]:
        # fired while recording, after its own utterance had been recorded
        assert end < recorded < script.duration, order


@pytest.mark.parametrize("kind", ["silence", "hum", "brown noise"])
def test_silence_hum_and_noise_give_no_transcript_events(kind, transcriber, tmp_path):
    path = tmp_path / "nothing.wav"
    {"silence": speech.make_silence, "hum": speech.make_hum,
     "brown noise": speech.make_brown_noise}[kind](path, 6.0)
    rec = MediaRecorder(FileSource(path), "audio/wav", output=tmp_path / "o.wav")
    live = LiveTranscriber(rec, transcriber)
    got = []
    rec.ontranscript = got.append
    rec.start()
    assert rec.wait(JOIN)
    t = live.close(JOIN)
    assert got == [] and t.text == "" and t.segments == []


def test_paused_audio_is_left_out_and_times_follow_the_recorded_media(script, transcriber, tmp_path):
    """Pausing during the first pause: the later sentences' times move back by the paused time."""
    rec = MediaRecorder(FileSource(script.path, realtime=True), "audio/wav", output=tmp_path / "o.wav")
    live = LiveTranscriber(rec, transcriber)
    got = []
    rec.ontranscript = got.append
    s0, s1 = script.sentences[0], script.sentences[1]
    rec.start()
    while rec.duration < s0.end + 0.3:
        time.sleep(0.02)
    rec.pause()
    time.sleep(0.8)
    rec.resume()
    assert rec.wait(JOIN)
    live.close(JOIN)
    paused = script.duration - rec.duration
    assert 0.5 < paused < 1.2
    assert len(got) == 3, [e.text for e in got]
    assert overlaps(got[1].start, got[1].end, s1.speech_start - paused, s1.speech_end - paused, 0.2)


class SlowTranscriber:
    """A stand-in engine that takes as long as the test wants (recognition falling behind)."""

    def __init__(self):
        self.go = threading.Event()
        self.calls = 0

    def transcribe(self, audio, samplerate):
        assert samplerate == 16000 and audio.dtype == np.float32
        self.go.wait(JOIN)
        self.calls += 1
        seconds = len(audio) / samplerate
        return tmod.Transcript(segments=[tmod.Segment(0.0, seconds, f"utterance {self.calls}")])


def test_stop_returns_with_the_file_complete_while_recognition_is_behind(script, tmp_path):
    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "o.wav")
    engine = SlowTranscriber()
    live = LiveTranscriber(rec, engine)
    got = []
    rec.ontranscript = got.append
    rec.start()
    assert rec.wait(JOIN)  # recognition is stuck, yet the recording ended and is complete
    audiolab.assert_complete_wav(tmp_path / "o.wav")
    assert rec.frames == sf.info(str(script.path)).frames and got == []
    live.finish()
    assert not live.wait(0.3) and live.pending_seconds > 0  # the tail is still queued
    engine.go.set()  # it catches up
    assert live.wait(JOIN)
    assert [e.text for e in got] == ["utterance 1", "utterance 2", "utterance 3"]


def test_abandoning_the_tail_keeps_what_was_recognised(script, tmp_path):
    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "o.wav")
    engine = SlowTranscriber()
    live = LiveTranscriber(rec, engine)
    rec.start()
    assert rec.wait(JOIN)
    threading.Timer(0.3, engine.go.set).start()
    t = live.close(timeout=0.0)  # give up at once: at most the one in progress finishes
    assert live.wait(JOIN)
    assert len(live.segments) <= 1 and len(t.segments) <= 1


def test_a_failing_engine_leaves_the_recording_whole_and_reports_the_error(script, tmp_path):
    class Broken:
        def transcribe(self, audio, samplerate):
            raise RuntimeError("the model broke")

    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "o.wav")
    live = LiveTranscriber(rec, Broken())
    rec.start()
    assert rec.wait(JOIN)
    t = live.close(JOIN)
    assert rec.error is None and rec.frames == sf.info(str(script.path)).frames
    assert str(live.error) == "the model broke" and t.segments == []


def test_the_writer_only_copies_when_recognition_is_behind_and_the_queue_is_bounded(script, tmp_path):
    """A tiny frames queue that fills while the detector waits for a stuck engine: the
    overflow is left out of the transcription (and counted), never out of the file."""
    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "o.wav")
    engine = SlowTranscriber()
    live = LiveTranscriber(rec, engine, max_backlog=0.5, max_pending=1.0)
    rec.start()
    assert rec.wait(JOIN)
    assert rec.frames == sf.info(str(script.path)).frames
    assert live.missed_seconds > 0
    engine.go.set()
    live.close(JOIN)


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture
def env(tmp_path, whisper_model):
    e = no_device_env(tmp_path)
    e["DICTAPHONE_MODEL"] = whisper_model
    return e


def transcripts(events_path):
    return [e for e in read_events(events_path) if e["type"] == "transcript"]


def test_record_input_with_transcribe_logs_the_text_and_saves_the_transcript(script, env, tmp_path):
    r = run("record", "--input", script.path, "--transcribe", "--events", "ev.jsonl", "out.wav",
            env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    events = read_events(tmp_path / "ev.jsonl")
    texts = [e for e in events if e["type"] == "transcript"]
    check_events_match_the_script(texts, script)
    assert set(texts[0]) >= {"type", "text", "start", "end"}
    saved = tmod.load(tmp_path / "out.wav")
    assert saved is not None and [s.text for s in saved.segments] == [e["text"] for e in texts]
    assert abs(saved.duration - script.duration) < 0.01
    # stderr: the summary (the audio is complete), then where the transcript went, then
    # (a short dictation) its text, an utterance a line
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("Saved out.wav:"), lines
    where = next(i for i, line in enumerate(lines) if line.startswith("Transcript:"))
    assert "out.wav.transcript.json" in lines[where]
    assert [line.strip() for line in lines[where + 1:]] == [e["text"] for e in texts]
    assert r.stdout == ""


def test_a_clip_recorded_with_transcribe_has_its_transcript_for_search_and_the_library(script, env, tmp_path,
                                                                                 monkeypatch):
    r = run("record", "--input", script.path, "--transcribe", "-n", "groceries", env=env,
            cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    monkeypatch.setenv("DICTAPHONE_HOME", env["DICTAPHONE_HOME"])
    from dictaphone import clips

    assert clips.find("groceries").transcript.split()[0] == "Please"
    hits = tmod.search(["kitchen"])
    assert [h.name for h in hits] == ["groceries"]
    kitchen = script.sentences[2]
    assert kitchen.speech_start - 0.5 <= hits[0].start <= kitchen.speech_end + 0.5


def test_on_text_gets_the_text_and_its_times_only_through_the_environment(script, env, tmp_path):
    hook = ("printf '%s|%s|%s\\n' \"$DICTAPHONE_EVENT\" \"$DICTAPHONE_START\" \"$DICTAPHONE_END\" >> hook.txt; "
            "printf '%s\\n' \"$DICTAPHONE_TEXT\" >> text.txt")
    r = run("record", "--input", script.path, "--transcribe", "--on-text", hook,
            "--events", "ev.jsonl", "o.wav", env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    events = transcripts(tmp_path / "ev.jsonl")
    rows = (tmp_path / "hook.txt").read_text().splitlines()
    assert [row.split("|") for row in rows] == [
        ["transcript", f"{e['start']:.3f}", f"{e['end']:.3f}"] for e in events]
    assert (tmp_path / "text.txt").read_text().splitlines() == [e["text"] for e in events]


def test_a_recording_of_noise_gives_no_transcript_events_and_an_empty_transcript(env, tmp_path):
    noise = speech.make_brown_noise(tmp_path / "brown.wav", 6.0)
    r = run("record", "--input", noise, "--transcribe", "--events", "ev.jsonl", "o.wav",
            env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert transcripts(tmp_path / "ev.jsonl") == []
    saved = tmod.load(tmp_path / "o.wav")
    assert saved is not None and saved.text == "" and saved.segments == []
    assert "Transcript: no speech, saved as o.wav" in r.stderr


def test_split_pieces_each_get_the_transcript_of_what_they_hold(script, env, tmp_path):
    cut = script.sentences[1].end + 0.7  # between sentences 2 and 3
    r = run("record", "--input", script.path, "--transcribe", "--split", f"{cut:.3f}",
            "--events", "ev.jsonl", "p.wav", env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    one, two = tmod.load(tmp_path / "p-001.wav"), tmod.load(tmp_path / "p-002.wav")
    assert one is not None and two is not None
    assert len(one.segments) == 2 and len(two.segments) == 1, (one.text, two.text)
    last = script.sentences[2]
    seg = two.segments[0]
    assert overlaps(seg.start, seg.end, last.speech_start - cut, last.speech_end - cut)


def test_an_utterance_over_a_split_is_cut_with_it_each_piece_its_own_words_in_its_own_time(env, tmp_path):
    """Issue #20 item 8: a cut in the middle of a long sentence; the words before the cut
    are in the first piece, the rest in the second, each in its piece's own time (it was
    saved whole into the first piece, and the second one's transcript was empty)."""
    s = speech.make_script(tmp_path / "long.wav", speech.LIVE[2:3], lead=0.5, tail=1.0)
    sentence = s.sentences[0]
    cut = sentence.speech_start + (sentence.speech_end - sentence.speech_start) / 2
    r = run("record", "--input", s.path, "--transcribe", "--split", f"{cut:.3f}", "p.wav",
            env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    one, two = tmod.load(tmp_path / "p-001.wav"), tmod.load(tmp_path / "p-002.wav")
    assert one is not None and two is not None and one.text and two.text, (one, two)
    assert abs(one.duration - cut) < 0.01
    for piece, t in (("p-001.wav", one), ("p-002.wav", two)):
        duration = sf.info(str(tmp_path / piece)).duration
        for seg in t.segments:
            assert 0 <= seg.start <= seg.end <= duration + 1e-3, (piece, seg)
            assert all(0 <= w.start <= w.end <= duration + 1e-3 for w in seg.words), (piece, seg)
    # the second piece starts in the middle of the sentence: its first word at once
    assert two.segments[0].start < 1.0, two.segments[0]
    joined = one.text + " " + two.text
    assert speech.wer(sentence.text, joined) <= 0.3, joined
    assert len(speech.words(joined)) <= len(speech.words(sentence.text)) + 1  # no word in both


def test_a_mark_in_the_middle_of_a_sentence_with_split_on_mark_cuts_its_words_between_the_pieces(env, tmp_path):
    """--split-on-mark --transcribe, a marker while a long sentence is spoken: each piece
    has its own words, in its own time (the same cut as --split, issue #20 item 8)."""
    s = speech.make_script(tmp_path / "long.wav", speech.LIVE[2:3], lead=0.5, tail=1.0)
    sentence = s.sentences[0]
    middle = sentence.speech_start + (sentence.speech_end - sentence.speech_start) / 2
    proc = subprocess.Popen([*cliutil.CLI, "record", "--input", str(s.path), "--realtime", "--transcribe",
                             "--split-on-mark", "--events", "ev.jsonl", "m.wav"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        cliutil.wait_for_status(env, lambda es: bool(es) and es[0]["duration"] > middle, timeout=60)
        r = run("mark", "half way", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert proc.wait(120) == 0, proc.stderr.read()
    finally:
        audiolab.stop_process(proc)
    mark = [e for e in read_events(tmp_path / "ev.jsonl") if e["type"] == "mark"][0]["duration"]
    assert sentence.speech_start + 1.0 < mark < sentence.speech_end - 1.0, mark  # inside the sentence
    one, two = tmod.load(tmp_path / "m-001.wav"), tmod.load(tmp_path / "m-002.wav")
    assert one is not None and two is not None and one.text and two.text, (one, two)
    assert abs(one.duration - mark) < 0.01
    for piece, t in (("m-001.wav", one), ("m-002.wav", two)):
        duration = sf.info(str(tmp_path / piece)).duration
        assert all(0 <= w.start <= w.end <= duration + 1e-3 for seg in t.segments for w in seg.words), piece
    assert two.segments[0].start < 1.0, two.segments[0]
    joined = one.text + " " + two.text
    assert speech.wer(sentence.text, joined) <= 0.3, joined
    assert len(speech.words(joined)) <= len(speech.words(sentence.text)) + 1


def test_model_language_and_on_text_need_transcribe(env, tmp_path):
    for args in (["--model", "tiny.en"], ["--language", "en"], ["--on-text", "true"]):
        r = run("record", "--input", "x.wav", *args, "o.wav", env=env, cwd=tmp_path)
        assert r.returncode == 2
        assert "goes with --transcribe" in one_error_line(r.stderr)
    assert not (tmp_path / "o.wav").exists()


def test_a_missing_model_is_one_line_before_anything_is_recorded(env, tmp_path):
    env["DICTAPHONE_MODEL"] = str(tmp_path / "no-such-model")
    # no --input: had the device been looked up first, this would be a device error
    r = run("record", "--transcribe", "o.wav", env=env, cwd=tmp_path)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert "no-such-model" in line and "does not exist" in line
    assert not (tmp_path / "o.wav").exists()


def test_a_corrupt_model_is_one_line_before_anything_is_recorded(env, tmp_path):
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text("{}")
    (bad / "model.bin").write_bytes(b"\0" * 1000)
    r = run("record", "--transcribe", "--model", bad, "o.wav", env=env, cwd=tmp_path)
    assert r.returncode == 2
    assert "cannot load model" in one_error_line(r.stderr)
    assert not (tmp_path / "o.wav").exists()


BLOCKED = ("import sys, runpy; sys.modules['faster_whisper'] = None; sys.modules['onnxruntime'] = None; "
           "sys.argv = ['dictaphone'] + sys.argv[1:]; runpy.run_module('dictaphone', run_name='__main__')")


@pytest.mark.parametrize("args", [["--transcribe"], ["--wait-for-sound", "--vad", "silero"]])
def test_without_the_extra_transcribe_and_silero_name_the_install_command(args, env, tmp_path):
    r = subprocess.run([sys.executable, "-c", BLOCKED, "record", *args, "o.wav"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "pip install 'dictaphone[transcribe]'" in one_error_line(r.stderr)
    assert not (tmp_path / "o.wav").exists()


def test_vad_needs_a_hands_free_option_and_silero_takes_no_threshold(env, tmp_path):
    r = run("record", "--input", "x.wav", "--vad", "silero", "o.wav", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "--wait-for-sound" in one_error_line(r.stderr)
    r = run("record", "--input", "x.wav", "--vad", "silero", "--wait-for-sound", "--threshold", "-30",
            "o.wav", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "--threshold" in one_error_line(r.stderr)


def test_vad_silero_waits_through_typing_that_starts_the_level_detector(env, tmp_path):
    s = speech.make_script(tmp_path / "s.wav", SENTENCES[:1], lead=3.0, tail=4.0)
    x, _ = sf.read(str(s.path), dtype="float64")
    rng = np.random.default_rng(7)
    i, burst = int(0.2 * RATE), int(0.004 * RATE)
    while i + burst < len(x):  # keyboard clicks all through
        x[i:i + burst] += 0.4 * rng.standard_normal(burst) * np.exp(-np.arange(burst) / (burst / 4))
        i += int(rng.uniform(0.09, 0.25) * RATE)
    speech.write(tmp_path / "typing.wav", x)
    kept = {}
    for vad in ("level", "silero"):
        r = run("record", "--input", tmp_path / "typing.wav", "--wait-for-sound", "--stop-on-silence", "1.5",
                "--vad", vad, f"{vad}.wav", env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        kept[vad] = sf.info(str(tmp_path / f"{vad}.wav")).duration
    sentence = s.sentences[0].speech_end - s.sentences[0].speech_start
    assert sentence <= kept["silero"] <= sentence + 1.2, kept
    assert kept["level"] > kept["silero"] + 2.0, kept  # started at the first click


# ------------------------------------------------------------------------------ the microphone


def start_hogs(n: int = 2) -> list[subprocess.Popen]:
    """Busy loops that keep both cores busy (each its own process, stopped by the test)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def test_live_text_arrives_before_the_stop_while_recording_the_microphone(pulse, recorders, script,
                                                                          whisper_model, tmp_path):
    env = pulse_env(pulse)
    env["DICTAPHONE_MODEL"] = whisper_model
    rec = recorders("mic.wav", "--transcribe", "--events", "ev.jsonl", env=env,
                    exit_timeout=cliutil.EXIT_TIMEOUT + 60)
    rec.wait_started()
    pulse.play_and_wait(script.path)
    # text of the last sentence while the recorder still records
    first = rec.wait_for_event(lambda e: e.get("type") == "transcript", timeout=60)
    assert rec.proc.poll() is None
    assert rec.stop() == 0, rec.stderr()
    events = read_events(rec.events)
    kinds = [e["type"] for e in events]
    assert kinds.index("transcript") < kinds.index("stop")
    texts = [e for e in events if e["type"] == "transcript"]
    assert texts[0] == first
    # times in the recording's own timeline: where the script landed in the file
    x, _ = audiolab.read_mono(tmp_path / "mic.wav")
    peak, lag = audiolab.normalized_xcorr(audiolab.read_mono(script.path)[0], x)
    assert peak > 0.9
    check_events_match_the_script(texts, script, shift=lag / RATE)
    audiolab.assert_complete_wav(tmp_path / "mic.wav")
    saved = tmod.load(tmp_path / "mic.wav")
    assert saved is not None and [s.text for s in saved.segments] == [e["text"] for e in texts]


def test_no_frame_is_dropped_with_both_cores_busy_while_recognition_runs(pulse, recorders, script,
                                                                        whisper_model, tmp_path):
    env = pulse_env(pulse)
    env["DICTAPHONE_MODEL"] = whisper_model
    rec = recorders("busy.wav", "--transcribe", "--events", "ev.jsonl", env=env,
                    exit_timeout=cliutil.EXIT_TIMEOUT + 90)
    rec.wait_started()
    hogs = start_hogs()
    try:
        pulse.play_and_wait(script.path)
        rec.wait_for_event(lambda e: e.get("type") == "transcript", timeout=90)
        assert rec.stop() == 0, rec.stderr()
    finally:
        for h in hogs:
            audiolab.stop_process(h, signal.SIGKILL)
    stop = [e for e in read_events(rec.events) if e["type"] == "stop"][0]
    assert stop["dropped_frames"] == 0
    frames = audiolab.assert_complete_wav(tmp_path / "busy.wav")
    assert frames == stop["frames"]
    x, _ = audiolab.read_mono(tmp_path / "busy.wav")
    assert audiolab.normalized_xcorr(audiolab.read_mono(script.path)[0], x)[0] > 0.9
    assert len(transcripts(rec.events)) >= 2


def test_a_running_transcript_shows_under_the_meter_earlier_utterances_and_words_being_spoken(
        pulse, terminal, whisper_model, tmp_path):
    """A 30-line terminal, NO_COLOR: while the recording goes on, the utterances said so
    far are under the meter's two lines (which stay whole, one line each), the one being
    spoken shows with its tentative words in brackets; after the stop, where the
    transcript went and its text."""
    s = speech.make_script(tmp_path / "s.wav", speech.LIVE[:3], pause=1.2, voices=speech.LIVE_VOICES)
    env = pulse_env(pulse)
    env["DICTAPHONE_MODEL"] = whisper_model
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    env["NO_COLOR"] = "1"
    t = terminal([*cliutil.CLI, "record", "-r", str(RATE), "--transcribe", "m.wav"], env=env,
                 cwd=tmp_path, width=72, height=30)
    t.wait_for("REC", timeout=30)
    assert "nothing said yet" in t.capture()
    player = pulse.play(s.path)
    tentative = []
    try:
        # the long third sentence while it is spoken: words in brackets, under the first two
        def spoken(screen):
            low = screen.lower()
            if "[" in screen and "dentist" in low:
                tentative.append(screen)
            return "milk" in low and "maria" in low and "dentist" in low and "[" in screen
        screen = t.wait_for(spoken, timeout=60, interval=0.1)
    finally:
        player.wait(60)
    lines = screen.splitlines()
    meter = next(i for i, line in enumerate(lines) if "REC" in line)
    assert "m.wav" in lines[meter + 1]  # the meter's second line, whole
    below = "\n".join(lines[meter + 2:]).lower()
    assert "milk" in below and "maria" in below and "dentist" in below
    assert all(len(line) <= 72 for line in lines)
    # the earlier utterances stay while the next one is final too
    screen = t.wait_for(lambda sc: "close" in sc.lower() or "office" in sc.lower(), timeout=60)
    assert "milk" in screen.lower()
    t.send_keys("q")
    assert t.wait_exit(60) == 0
    after = t.capture(history=True)
    assert "Saved m.wav" in after and "Transcript:" in after
    assert after.index("Saved m.wav") < after.index("Transcript:")
    tail = after[after.index("Transcript:"):].lower()
    assert "m.wav.transcript.json" in tail and "milk" in tail and "dentist" in tail


def test_ctrl_c_during_the_transcripts_tail_gives_it_up_and_keeps_the_recording(terminal, whisper_model,
                                                                                tmp_path):
    long = speech.make_script(tmp_path / "long.wav", speech.SENTENCES * 4, pause=1.0)
    env = no_device_env(tmp_path)
    env["DICTAPHONE_MODEL"] = whisper_model
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    # --input: the recording ends at once and the whole file is the tail
    t = terminal([*cliutil.CLI, "record", "--input", str(long.path), "--transcribe", "o.wav"],
                 env=env, cwd=tmp_path, width=110, height=12)
    t.wait_for("transcribing the last", timeout=60)
    t.send_keys("C-c")
    assert t.wait_exit(60) == 0
    screen = t.capture(history=True)
    assert "Saved o.wav" in screen and "left out" in screen
    assert screen.index("Saved o.wav") < screen.index("left out")
    assert sf.info(str(tmp_path / "o.wav")).frames == sf.info(str(long.path)).frames
    assert tmod.load(tmp_path / "o.wav") is None  # an incomplete transcript is not saved


def test_abandoning_after_everything_was_queued_still_ends_the_threads(script, tmp_path):
    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "o.wav")
    engine = SlowTranscriber()
    live = LiveTranscriber(rec, engine)
    rec.start()
    assert rec.wait(JOIN)
    live.finish()
    deadline = time.monotonic() + JOIN
    while live._threads[0].is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)  # the detector is done: the end marker is queued behind utterances
    live.abandon()
    engine.go.set()
    assert live.wait(JOIN)


def test_one_file_per_utterance_each_with_its_own_words_in_its_own_time(script, env, tmp_path):
    r = run("record", "--input", script.path, "--split-on-silence", "1", "--vad", "silero",
            "--transcribe", "u.wav", env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    pieces = sorted(tmp_path.glob("u-*.wav"))
    assert len(pieces) == len(script.sentences)
    for piece, sentence in zip(pieces, script.sentences):
        t = tmod.load(piece)
        assert t is not None and len(t.segments) == 1, (piece, t)
        seg = t.segments[0]
        duration = sf.info(str(piece)).duration
        assert abs(t.duration - duration) < 0.01
        assert 0 <= seg.start < seg.end <= duration + 1e-3
        want = content_words(sentence.text)
        assert len(want & content_words(seg.text)) >= len(want) / 2, (sentence.text, seg.text)


def test_a_tail_that_outlasts_its_bound_is_given_up_and_no_transcript_is_saved(script, tmp_path,
                                                                                monkeypatch, capsys):
    from dictaphone.cli import report as report_mod

    rec = MediaRecorder(FileSource(script.path), "audio/wav", output=tmp_path / "o.wav")
    engine = SlowTranscriber()  # never answers within the bound
    live = LiveTranscriber(rec, engine)
    rec.start()
    assert rec.wait(JOIN)
    monkeypatch.setattr(report_mod, "TAIL_TIMEOUT", 0.5)

    class Quiet:
        signals = 0

    opts = report_mod.RecordOptions(quiet=True)
    try:
        assert report_mod.finish_transcript(live, rec, opts, Quiet()) is None
    finally:
        engine.go.set()
    err = capsys.readouterr().err
    assert "left out (still busy after 0.5 s)" in err and "was not saved" in err
    assert tmod.load(tmp_path / "o.wav") is None
    audiolab.assert_complete_wav(tmp_path / "o.wav")


def test_a_model_that_is_not_here_and_cannot_be_fetched_is_one_line_before_recording(env, tmp_path):
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    r = run("record", "--transcribe", "--model", "base.en", "o.wav", env=env, cwd=tmp_path)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert "base.en" in line and "not on this machine" in line
    assert not (tmp_path / "o.wav").exists()
