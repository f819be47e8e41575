"""Speaker labels, the engine: the voice encoder's weights read without torch, voice
changes and speakers found in conversations of real voices (flite's CMU Arctic speakers,
espeak-ng variants), words labelled, known voices named. The CLI is tested in
test_speakers_cli.py."""

from __future__ import annotations

import os
import shutil
import sys
import zipfile

import numpy as np
import pytest

import speech

speech.require_extra("onnxruntime")

from dictaphone.library.transcript import Segment, Transcript, Word  # noqa: E402
from dictaphone.speech.speakers import Labeller, check_count, name_speakers  # noqa: E402
from dictaphone.speech.speakers import model as spk_model  # noqa: E402
from dictaphone.speech.speakers.assign import assign  # noqa: E402
from dictaphone.speech.speakers.diarize import Diarization, Turn, diarize  # noqa: E402
from dictaphone.speech.transcribe import read_audio  # noqa: E402


def _weights() -> str:
    try:
        return spk_model.weights_source()
    except spk_model.SpeakerModelError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def encoder():
    _weights()
    from dictaphone.speech.speakers.embed import GE2E

    return GE2E()


@pytest.fixture(scope="module")
def labeller(encoder):
    return Labeller(encoder=encoder, voices=[])


def _conversation(tmp_path, voices, turns, seed=0, name="conv.wav"):
    return speech.make_conversation(tmp_path / name, speech.conversation_turns(voices, turns, seed=seed),
                                    seed=seed)


# -- the weights ---------------------------------------------------------------------------


def test_the_weights_are_read_without_torch(encoder):
    assert "torch" not in sys.modules
    state, source = spk_model.load_state()
    assert source.endswith(os.path.join("resemblyzer", "pretrained.pt"))
    assert state["lstm.weight_ih_l0"].shape == (1024, 40) and state["linear.weight"].shape == (256, 256)
    assert state["lstm.weight_hh_l2"].dtype == np.float32 and np.isfinite(state["linear.bias"]).all()


def test_the_weights_are_read_from_a_wheel_named_by_the_environment(tmp_path, monkeypatch):
    wheel = tmp_path / "Resemblyzer-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(_weights(), "resemblyzer/pretrained.pt")
    monkeypatch.setenv(spk_model.ENV, str(wheel))
    state, source = spk_model.load_state()
    assert source == str(wheel) and len(state) == 16


@pytest.mark.parametrize("damage", ["cut", "garbage", "empty", "nowheel"])
def test_a_damaged_or_missing_model_is_one_clear_error(tmp_path, monkeypatch, damage):
    bad = tmp_path / "pretrained.pt"
    data = open(_weights(), "rb").read()
    if damage == "cut":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(os.urandom(4096))
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad = tmp_path / "nothing-here.pt"
    monkeypatch.setenv(spk_model.ENV, str(bad))
    with pytest.raises(spk_model.SpeakerModelError) as e:
        from dictaphone.speech.speakers.embed import GE2E

        GE2E()
    message = str(e.value)
    assert "\n" not in message and str(bad) in message
    assert ("no such file" in message) if damage == "nowheel" else ("damaged" in message)


def test_check_count_refuses_what_is_no_number_of_speakers():
    assert check_count(None) is None and check_count(3) == 3
    for bad in (0, -1, 21, 2.5, True, "2"):
        with pytest.raises(ValueError):
            check_count(bad)


# -- conversations ---------------------------------------------------------------------------


@pytest.mark.parametrize("voices", [speech.FLITE_VOICES[:2], speech.FLITE_VOICES[1:],
                                    speech.FLITE_VOICES,
                                    ("flite:slt", "espeak:en+m7", "flite:kal", "espeak:en+f2"),
                                    speech.ESPEAK_VOICES[:3]],
                         ids=["2-flite", "3-flite", "4-flite", "4-mixed", "3-espeak"])
def test_the_speakers_of_a_conversation_are_found_and_counted(tmp_path, encoder, voices):
    conv = _conversation(tmp_path, voices, 2 * len(voices) + 1)
    d = diarize(read_audio(str(conv.path)), encoder)
    assert d.count == len(voices)
    der = speech.diarization_error(conv, [(t.start, t.end, t.speaker) for t in d.turns])
    assert der < 0.08, der  # mostly where a turn's edge is drawn (a pause's 50 ms pad)


def test_one_voice_is_one_speaker(tmp_path, encoder):
    for voice in ("flite:rms", "espeak:en+m7"):
        conv = _conversation(tmp_path, (voice,), 5, name=voice.replace(":", "-") + ".wav")
        d = diarize(read_audio(str(conv.path)), encoder)
        assert d.count == 1, voice
        assert {t.speaker for t in d.turns} == {0}


def test_num_speakers_fixes_the_count(tmp_path, encoder):
    conv = _conversation(tmp_path, speech.FLITE_VOICES[:3], 6)
    audio = read_audio(str(conv.path))
    assert diarize(audio, encoder, num_speakers=2).count == 2
    assert diarize(audio, encoder, num_speakers=3).count == 3


def test_a_voice_change_without_a_pause_is_found(tmp_path, encoder):
    # Two voices back to back (no gap at all): one Silero stretch, cut by the change detector.
    a = speech.say("flite:slt", " ".join(speech.PARAGRAPH[:2]))
    b = speech.say("flite:awb", " ".join(speech.PARAGRAPH[2:4]))
    change = len(a) / 16000
    path = speech.write(tmp_path / "backtoback.wav", np.concatenate([a, b]), 16000)
    d = diarize(read_audio(str(path)), encoder)
    assert d.count == 2
    cuts = [t.start for t in d.turns[1:]]
    assert len(cuts) == 1 and abs(cuts[0] - change) < 0.5, (cuts, change)


def test_silence_and_noise_have_no_speakers(tmp_path, encoder):
    for path in (speech.make_silence(tmp_path / "s.wav", 4), speech.make_hum(tmp_path / "h.wav", 4),
                 speech.make_brown_noise(tmp_path / "n.wav", 4)):
        d = diarize(read_audio(str(path)), encoder)
        assert d.count == 0 and d.turns == []
    assert diarize(np.zeros(0, np.float32), encoder).count == 0


# -- words ---------------------------------------------------------------------------------


def _words(*spec):
    return [Word(w, a, b, 0.9) for w, a, b in spec]


def test_words_take_the_speaker_of_their_time_and_segments_split_at_changes():
    t = Transcript(model="m", language="en", duration=10, segments=[
        Segment(0.0, 4.0, "Hello there. Hi.", _words(("Hello", 0.1, 0.5), ("there.", 0.6, 1.0),
                                                     ("Hi.", 3.0, 3.4))),
        Segment(5.0, 6.0, "Fine.", _words(("Fine.", 5.0, 6.0))),
        Segment(8.0, 9.0, "(no words)", []),
    ])
    d = Diarization([Turn(0.0, 1.2, 0), Turn(2.9, 6.1, 1), Turn(7.9, 9.0, 0)], np.eye(2, 256))
    out = assign(t, d, ["Anna", "Speaker 2"])
    assert [(s.text, s.speaker) for s in out.segments] == [
        ("Hello there.", "Anna"), ("Hi.", "Speaker 2"), ("Fine.", "Speaker 2"), ("(no words)", "Anna")]
    assert [w.speaker for w in out.segments[0].words] == ["Anna", "Anna"]
    assert out.segments[1].start == 3.0 and out.segments[1].end == 3.4
    assert t.segments[0].speaker is None  # the input is left as it was
    empty = assign(t, Diarization([], np.zeros((0, 256))), [])
    assert not empty.labelled


def test_known_voices_name_the_speakers_they_match():
    from dictaphone.library.voices import Voice

    rng = np.random.default_rng(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.standard_normal((3, 256)))
    prints = np.stack([a, b, (c + 0.05 * a) / np.linalg.norm(c + 0.05 * a)])
    known = [Voice("Ben", "enc", list(b)), Voice("Speaker 3", "enc", list(a)),
             Voice("Other model", "enc2", list(c))]
    assert name_speakers(prints, known, "enc") == ["Speaker 3", "Ben", "Speaker 3 (unknown)"]
    assert name_speakers(prints, [], "enc") == ["Speaker 1", "Speaker 2", "Speaker 3"]


def test_a_known_voice_is_recognised_in_a_later_recording(tmp_path, encoder):
    from dictaphone.library.voices import Voice

    # The voice print is made from one recording of rms...
    first = speech.make_conversation(tmp_path / "intro.wav", [("flite:rms", " ".join(speech.PARAGRAPH[10:13]))])
    vector, seconds = Labeller(encoder=encoder, voices=[]).voice_print(read_audio(str(first.path)))
    assert seconds > 4 and vector.shape == (256,)
    known = [Voice("Rita", encoder.name, list(vector))]
    # ...and names rms, not slt, in a later conversation of other sentences.
    conv = _conversation(tmp_path, ("flite:slt", "flite:rms"), 5, seed=2)
    audio = read_audio(str(conv.path))
    t = Transcript(duration=conv.duration, segments=[
        Segment(turn.speech_start, turn.speech_end, turn.text,
                [Word(turn.text, turn.speech_start, turn.speech_end)]) for turn in conv.turns])
    labelled = Labeller(encoder=encoder, voices=known).label(t, audio)
    assert [s.speaker for s in labelled.segments] == [
        "Rita" if turn.voice == "flite:rms" else "Speaker 1" for turn in conv.turns]
