"""The Python API refuses bad arguments with dictaphone's own errors, saying what was
expected: never AttributeError, TypeError or OverflowError from deep inside, and never a
zero, an empty string or NaN quietly taken for "not given"."""

from __future__ import annotations

import math

import pytest

import audiolab
from dictaphone import FileSource, MediaRecorder, Microphone, is_type_supported
from dictaphone.errors import InvalidArgumentError, NotSupportedError, OutputError
from dictaphone.recording.vad import VoiceGate


@pytest.fixture
def tone(tmp_path):
    return audiolab.make_tone(tmp_path / "in.wav", 0.5, 440.0)


@pytest.mark.parametrize("mime", [None, 3, b"audio/wav", ["audio/wav"], "", "audio/x-nothing"])
def test_is_type_supported_answers_false_for_anything_that_is_not_a_supported_type(mime):
    # The browser's isTypeSupported(undefined) is false, not an exception.
    assert is_type_supported(mime) is False
    assert MediaRecorder.is_type_supported(mime) is False


@pytest.mark.parametrize("mime", [None, 3, b"audio/wav"])
def test_a_mime_type_that_is_not_a_string_is_not_supported_with_a_clear_message(tone, mime):
    with pytest.raises(NotSupportedError, match="must be a string such as 'audio/wav'"):
        MediaRecorder(FileSource(tone), mime)


@pytest.mark.parametrize("timeslice,words", [
    ("1", "number of seconds"), (b"1", "number of seconds"), (True, "number of seconds"),
    (float("inf"), "finite"), (float("nan"), "positive"), (0, "positive"), (-1, "positive"),
    (1e-4, "at least 0.01 s"), pytest.param(10**400, "finite", id="an-int-beyond-floats"),
])
def test_start_refuses_a_bad_timeslice_with_an_invalid_argument_error(tone, timeslice, words):
    rec = MediaRecorder(FileSource(tone))
    with pytest.raises(InvalidArgumentError, match=words):
        rec.start(timeslice=timeslice)
    assert rec.state == "inactive"


@pytest.mark.parametrize("kwargs,words", [
    ({"max_duration": 0}, "positive"), ({"max_duration": "5"}, "number of seconds"),
    ({"max_duration": math.inf}, "finite"), ({"max_duration": 1e-9}, "less than one frame"),
    ({"split": 0, "output": "o.wav"}, "positive"), ({"split": 1e-3, "output": "o.wav"}, "at least 0.1 s"),
    ({"split": True, "output": "o.wav"}, "number of seconds"),
    ({"stall_timeout": 0}, "positive"), ({"start_timeout": "15"}, "number of seconds"),
    ({"output": ""}, "empty path"), ({"output": 12}, "path or a binary stream"),
])
def test_media_recorder_refuses_bad_keyword_arguments(tone, tmp_path, monkeypatch, kwargs, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidArgumentError, match=words):
        MediaRecorder(FileSource(tone), "audio/wav", **kwargs)
    assert not (tmp_path / "o.wav").exists()


def test_a_source_that_is_not_a_source_is_refused(tone):
    with pytest.raises(InvalidArgumentError, match="source must be"):
        MediaRecorder(None)
    with pytest.raises(InvalidArgumentError, match="source must be"):
        MediaRecorder(str(tone))


@pytest.mark.parametrize("channels", [0, -1, 1.5, "2", True])
def test_a_file_source_refuses_a_bad_channel_count(tone, channels):
    with pytest.raises(InvalidArgumentError, match="channel count"):
        FileSource(tone, channels=channels)


@pytest.mark.parametrize("samplerate", [0, -48000, 44100.5, "48000", True])
def test_a_microphone_refuses_a_bad_rate_instead_of_taking_the_default(pulse, samplerate):
    # Microphone(samplerate=0) used to record at the device's default rate.
    with pytest.raises(InvalidArgumentError, match="sample rate"):
        Microphone(samplerate=samplerate)


@pytest.mark.parametrize("pace", [0, "0.1", float("nan"), 1.0])
def test_a_microphone_refuses_a_bad_pace(pulse, pace):
    with pytest.raises(InvalidArgumentError, match="pace"):
        Microphone(pace=pace)


@pytest.mark.parametrize("kwargs", [{"stop_on_silence": "3"}, {"skip_silence": float("nan")},
                                    {"stop_on_silence": -1}, {"skip_silence": math.inf}])
def test_a_voice_gate_refuses_bad_durations(kwargs):
    with pytest.raises(InvalidArgumentError, match="duration"):
        VoiceGate(48000, **kwargs)


def test_recording_into_the_input_file_is_refused_even_with_force(tone, tmp_path):
    before = tone.read_bytes()
    link = tmp_path / "link.wav"
    link.symlink_to(tone.name)
    for out in (tone, str(tone), link):
        with pytest.raises(OutputError, match="is the input file"):
            MediaRecorder(FileSource(tone), output=out, force=True)
    # a split piece that would be the input is refused when it is reached
    piece = tmp_path / "take-001.wav"
    piece.write_bytes(before)
    with pytest.raises(OutputError, match="is the input file"):
        MediaRecorder(FileSource(piece), output=tmp_path / "take.wav", split=0.2,
                      force=True).start()
    assert tone.read_bytes() == before and piece.read_bytes() == before


def test_an_output_stream_that_is_the_input_file_is_refused(tone):
    before = tone.read_bytes()
    with open(tone, "r+b") as stream:
        with pytest.raises(OutputError, match="is the input file"):
            MediaRecorder(FileSource(tone), output=stream)
    assert tone.read_bytes() == before


@pytest.mark.parametrize("kwargs", [{"threshold_dbfs": float("nan")}, {"threshold_dbfs": "-40"},
                                    {"margin_db": float("inf")}])
def test_a_level_detector_refuses_a_level_that_is_not_a_finite_number(kwargs):
    from dictaphone.recording.vad import LevelDetector

    with pytest.raises(InvalidArgumentError, match="finite number of dB"):
        LevelDetector(**kwargs)


@pytest.mark.parametrize("device", ["", "   ", True, 2.5])
def test_a_microphone_refuses_a_device_that_names_nothing(pulse, device):
    # "" used to match every device ("matches several input devices").
    from dictaphone.errors import DeviceNotFoundError

    with pytest.raises(DeviceNotFoundError, match="a device must be an index or part of a name"):
        Microphone(device=device)
