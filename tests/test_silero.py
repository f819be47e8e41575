"""Silero VAD (dictaphone/speech/silero.py): the resampler, the streaming detector, utterance
segmentation, and Silero as the voice gate's detector. Real model (faster-whisper's ONNX
copy), real espeak-ng speech; no audio device."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import audiolab
import speech

speech.require_extra("onnxruntime")  # the transcribe extra: fails under CI when missing

from dictaphone import silero  # noqa: E402
from dictaphone.speech.silero import Resampler, Segmenter, SileroDetector, SileroVAD  # noqa: E402
from dictaphone.recording.vad import LevelDetector, VoiceGate  # noqa: E402

RATE = 48000
SENTENCES = ["The meeting is moved to Thursday at three.",
             "Please call the dentist tomorrow morning."]


@pytest.fixture(scope="module")
def vad():
    return SileroVAD()


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    """1.5 s of silence, sentence 1, 2.5 s of silence, sentence 2, 1.5 s of silence (48 kHz).
    Returns (samples, [(start, end) of each sentence in seconds])."""
    d = tmp_path_factory.mktemp("silero")
    parts, spans, t = [np.zeros(int(1.5 * RATE))], [], 1.5
    for i, text in enumerate(SENTENCES):
        x, _ = audiolab.read_mono(audiolab.make_speech(d / f"s{i}.wav", text))
        nz = np.flatnonzero(np.abs(x) > 1e-3)
        spans.append((t + nz[0] / RATE, t + nz[-1] / RATE))
        gap = 2.5 if i == 0 else 1.5
        parts += [x, np.zeros(int(gap * RATE))]
        t += len(x) / RATE + gap
    return np.concatenate(parts).astype(np.float32), spans


def feed_all(seg: Segmenter, x: np.ndarray, block: int):
    out = []
    for i in range(0, len(x), block):
        out += seg.feed(x[i:i + block])
    return out + seg.flush()


def pink(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    y = np.fft.irfft(spec, n)
    return (y / np.abs(y).max()).astype(np.float32)


# ---------------------------------------------------------------------------- resampler


@pytest.mark.parametrize("rate", [48000, 44100, 22050, 16000])
def test_the_resampler_turns_a_tone_at_any_rate_into_the_same_tone_at_16_khz(rate):
    t = np.arange(2 * rate) / rate
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    r = Resampler(rate)
    y = np.concatenate([r(x[i:i + 1111]) for i in range(0, len(x), 1111)])
    assert abs(len(y) - 32000) <= 1
    delay = 0 if r.identity else (r._taps * r.up - 1) / 2 / r.up / rate
    ref = np.sin(2 * np.pi * 1000 * (np.arange(len(y)) / 16000 - delay))
    assert np.abs(y[200:-200] - ref[200:-200]).max() < 1e-3


def test_the_resampler_gives_the_same_samples_whatever_the_block_size():
    x = pink(48000 * 2, seed=3)
    a = Resampler(48000)(x)
    r = Resampler(48000)
    b = np.concatenate([r(x[i:i + 757]) for i in range(0, len(x), 757)])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_resampler_removes_what_16_khz_cannot_hold():
    t = np.arange(48000) / 48000
    y = Resampler(48000)(np.sin(2 * np.pi * 9500 * t).astype(np.float32))
    assert np.sqrt(np.mean(y[300:] ** 2)) < 0.707 * 10 ** (-40 / 20)  # 40 dB down


# ---------------------------------------------------------------------------- segmentation


@pytest.mark.parametrize("block", [480, 12000])
def test_each_sentence_becomes_one_utterance_that_covers_it(vad, timeline, block):
    x, spans = timeline
    vad.reset()
    utts = feed_all(Segmenter(RATE, vad=vad), x, block)
    assert len(utts) == 2, [(u.start, u.end) for u in utts]
    for u, (a, b) in zip(utts, spans):
        assert a - 0.5 <= u.start <= a + 0.05, (u.start, a)
        assert b - 0.05 <= u.end <= b + 0.8, (u.end, b)
        assert abs(len(u.audio) / 16000 - u.duration) < 1e-3
        # the utterance's audio is the timeline's audio at that place
        ref = Resampler(RATE)(x)[int(round(u.start * 16000)):][:len(u.audio)]
        assert np.abs(u.audio - ref).max() < 0.02


def test_an_utterance_is_returned_as_soon_as_a_pause_ends_it(vad, timeline):
    x, spans = timeline
    vad.reset()
    seg = Segmenter(RATE, vad=vad, min_silence=0.6)
    block = RATE // 4
    found_at = []
    for i in range(0, len(x), block):
        for u in seg.feed(x[i:i + block]):
            found_at.append((i + block) / RATE)
    assert len(found_at) == 2
    for t, (_, end) in zip(found_at, spans):
        assert end + 0.5 <= t <= end + 0.6 + 0.25 + 0.1  # the pause, one block, a window


def test_an_utterance_ending_is_heard_before_it_ends_with_the_very_samples_it_ends_with(vad, timeline):
    """ending(): once the padding after the speech was heard, the utterance as feed() will
    return it if no speech follows (what the live transcriber's early final recognises)."""
    x, spans = timeline
    vad.reset()
    seg = Segmenter(RATE, vad=vad, min_silence=0.6, pad=0.3)
    block = RATE // 20
    seen, ended = [], []
    for i in range(0, len(x), block):
        early = seg.ending()
        if early is not None and (not seen or seen[-1][0].start != early.start):
            seen.append((early, (i / RATE)))
        ended += seg.feed(x[i:i + block])
        assert seg.in_speech or seg.ending() is None
    assert len(ended) == 2 and len(seen) == 2
    for (early, at), u, (_, end) in zip(seen, ended, spans):
        assert (early.start, early.end, early.speech_end) == (u.start, u.end, u.speech_end)
        assert np.array_equal(early.audio, u.audio)
        assert at < u.end + 0.3 - 0.1  # heard before the pause ended the utterance (0.6 s)


def test_an_offset_moves_the_utterances_into_the_recordings_time(vad, timeline):
    x, _ = timeline
    vad.reset()
    a = feed_all(Segmenter(RATE, vad=vad), x, 4800)
    vad.reset()
    b = feed_all(Segmenter(RATE, vad=vad, offset=12.5), x, 4800)
    assert [round(u.start + 12.5, 6) for u in a] == [round(u.start, 6) for u in b]


def test_a_long_stretch_of_speech_is_cut_at_its_pauses_into_pieces_that_tile_it(vad, tmp_path):
    parts = []
    for i, text in enumerate(SENTENCES * 2):
        x, _ = audiolab.read_mono(audiolab.make_speech(tmp_path / f"l{i}.wav", text))
        parts += [x, np.zeros(int(0.3 * RATE))]  # pauses too short to end an utterance
    x = np.concatenate(parts).astype(np.float32)
    vad.reset()
    utts = feed_all(Segmenter(RATE, vad=vad, max_duration=4.0), x, 4800)
    assert len(utts) >= 3
    assert all(u.duration <= 4.0 + 0.2 + 0.05 for u in utts)
    for u, v in zip(utts, utts[1:]):
        assert v.start >= u.end - 1e-6  # no audio twice
        assert v.start - u.end < 0.7  # and none lost but a pause


@pytest.mark.parametrize("kind", ["silence", "hum", "pink", "brown"])
def test_silence_hum_and_noise_give_no_utterance(vad, kind):
    n = 8 * RATE
    t = np.arange(n) / RATE
    rng = np.random.default_rng(1)
    x = {"silence": np.zeros(n),
         "hum": 0.3 * np.sin(2 * np.pi * 120 * t) + 0.1 * np.sin(2 * np.pi * 240 * t),
         "pink": 0.3 * pink(n),
         "brown": 0.3 * np.cumsum(rng.standard_normal(n)) / np.sqrt(n)}[kind].astype(np.float32)
    vad.reset()
    assert feed_all(Segmenter(RATE, vad=vad), x, 12000) == []


# ---------------------------------------------------------------------------- the voice gate


def typing(n: int, seed: int = 2) -> np.ndarray:
    """Keyboard clicks: 4 ms decaying noise bursts every 90 to 250 ms, loud."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=np.float32)
    i = int(0.2 * RATE)
    burst = int(0.004 * RATE)
    while i + burst < n:
        y[i:i + burst] += 0.5 * rng.standard_normal(burst) * np.exp(-np.arange(burst) / (burst / 4))
        i += int(rng.uniform(0.09, 0.25) * RATE)
    return y


def gate_written_seconds(detector, x: np.ndarray) -> tuple[float, float | None]:
    """Record ``x`` through a --wait-for-sound --stop-on-silence 1.5 gate: (seconds written,
    where writing began in the input)."""
    gate = VoiceGate(RATE, detector, wait_for_sound=True, stop_on_silence=1.5)
    written, begin, pos = 0, None, 0
    for i in range(0, len(x), 4800):
        for kind, frames in gate.process(x[i:i + 4800, None]):
            if kind == "write":
                if begin is None:
                    begin = (i - len(frames) + 4800) / RATE if written == 0 else begin
                written += len(frames)
        pos = i
        if gate.stopped:
            break
    return written / RATE, begin


def test_silero_in_the_voice_gate_ignores_typing_that_the_level_detector_takes_for_speech(timeline):
    x, spans = timeline
    clicks = typing(len(x))
    # typing all through the recording, speech on top of it
    mixed = (x + clicks).astype(np.float32)
    level_s, level_begin = gate_written_seconds(LevelDetector(), mixed)
    silero_s, silero_begin = gate_written_seconds(SileroDetector(RATE), mixed)
    first_speech = spans[0][0]
    assert level_begin is not None and level_begin < first_speech - 0.5  # started on a click
    assert silero_begin is not None and abs(silero_begin - (first_speech - 0.3)) < 0.35
    # Silero kept the first sentence and stopped in the 2.5 s pause after it
    sentence = spans[0][1] - spans[0][0]
    assert sentence <= silero_s <= sentence + 0.3 + 0.3 + 0.4
    assert level_s > silero_s


def test_the_silero_detector_takes_int16_stereo_blocks_at_any_rate(timeline):
    x, spans = timeline
    stereo = np.repeat((x * 32767).astype(np.int16)[:, None], 2, axis=1)
    det = SileroDetector(RATE)
    verdicts = [det(stereo[i:i + 1440]) for i in range(0, len(stereo) - 1440, 1440)]
    t = (np.arange(len(verdicts)) * 1440 + 1440) / RATE
    speech = t[np.array(verdicts)]
    a, b = spans[0]
    assert speech.min() >= a - 0.1 and np.any((speech > a) & (speech < b))
    assert not np.any((speech > spans[0][1] + 0.5) & (speech < spans[1][0] - 0.1))


def test_a_missing_model_is_one_clear_error_naming_the_extra(monkeypatch):
    monkeypatch.setattr(silero.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(silero.VadMissingError, match=r"pip install 'dictaphone\[transcribe\]'"):
        silero.model_path()


def test_a_corrupt_model_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "silero.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(silero.VadMissingError, match="cannot load the Silero VAD model"):
        SileroVAD(str(bad))


def test_speech_read_back_from_a_16_bit_file_is_still_found(tmp_path, timeline, vad):
    x, spans = timeline
    sf.write(str(tmp_path / "t.wav"), x, RATE, subtype="PCM_16")
    y, _ = sf.read(str(tmp_path / "t.wav"), dtype="int16")
    vad.reset()
    utts = feed_all(Segmenter(RATE, vad=vad), silero.to_mono_float(y[:, None]), 4800)
    assert len(utts) == 2
