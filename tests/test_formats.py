"""Formats: MIME types, names, extensions, and the rates and channels each codec takes."""

from __future__ import annotations

import pytest

from dictaphone.errors import InvalidArgumentError, NotSupportedError
from dictaphone.containers.formats import (FORMATS, OPUS_RATES, SUBTYPE_DTYPES, format_by_name,
                                format_for_mime, format_for_path, is_type_supported)

CANONICAL = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg; codecs=vorbis",
    "opus": "audio/ogg; codecs=opus",
    "mp3": "audio/mpeg",
    "raw": "audio/x-raw",
}


def test_there_are_exactly_six_formats_with_their_canonical_mime_types():
    assert {name: f.mime_type for name, f in FORMATS.items()} == CANONICAL


@pytest.mark.parametrize("name, mime", CANONICAL.items())
def test_each_canonical_mime_type_names_its_format(name, mime):
    assert format_for_mime(mime).name == name


@pytest.mark.parametrize("mime, name", [
    ("AUDIO/WAV", "wav"),
    ("  audio/flac  ", "flac"),
    ("audio/ogg;codecs=vorbis", "ogg"),
    ("Audio/Ogg ;  Codecs = Vorbis", "ogg"),
    ("audio/ogg; codecs=opus", "opus"),
    ("AUDIO/OGG;CODECS=OPUS", "opus"),
    ('audio/ogg; codecs="opus"', "opus"),  # a quoted parameter value (RFC 2045)
    ('audio/ogg; codecs="vorbis"', "ogg"),
    ("audio/wav;", "wav"),
])
def test_mime_types_are_matched_whatever_their_case_spaces_and_quotes(mime, name):
    assert format_for_mime(mime).name == name


@pytest.mark.parametrize("alias, name", [
    ("audio/ogg", "ogg"),
    ("audio/vorbis", "ogg"),
    ("application/ogg", "ogg"),
    ("audio/opus", "opus"),
    ("audio/wave", "wav"),
    ("audio/x-wav", "wav"),
    ("audio/vnd.wave", "wav"),
    ("audio/x-flac", "flac"),
    ("audio/mp3", "mp3"),
    ("audio/pcm", "raw"),
])
def test_aliases_name_the_same_format(alias, name):
    assert format_for_mime(alias).name == name


@pytest.mark.parametrize("mime", ["video/webm", "audio/webm; codecs=opus", "audio/aac",
                                  "audio/ogg; codecs=flac", "", "audio"])
def test_an_unknown_mime_type_is_not_supported(mime):
    with pytest.raises(NotSupportedError, match="unsupported MIME type"):
        format_for_mime(mime)


@pytest.mark.parametrize("name", list(FORMATS))
def test_format_by_name_takes_the_cli_names_in_any_case(name):
    assert format_by_name(name.upper()) is FORMATS[name]
    assert format_by_name(f" {name} ") is FORMATS[name]


def test_format_by_name_takes_mime_types_too():
    assert format_by_name("audio/ogg") is FORMATS["ogg"]
    assert format_by_name("audio/ogg; codecs=opus") is FORMATS["opus"]


@pytest.mark.parametrize("name", ["aiff", "vorbis", "", "video/webm"])
def test_format_by_name_refuses_unknown_names(name):
    with pytest.raises(NotSupportedError):
        format_by_name(name)


@pytest.mark.parametrize("path, name", [
    ("memo.wav", "wav"), ("MEMO.WAV", "wav"), ("a/b.wave", "wav"), ("x.flac", "flac"),
    ("x.ogg", "ogg"), ("x.oga", "ogg"), ("x.opus", "opus"), ("x.mp3", "mp3"),
    ("x.raw", "raw"), ("x.pcm", "raw"), ("dir.d/take.Flac", "flac"),
])
def test_format_for_path_follows_the_extension(path, name):
    assert format_for_path(path).name == name


@pytest.mark.parametrize("path", ["memo", "memo.txt", "memo.wav.bak", "dir.wav/memo", ".wav"])
def test_format_for_path_is_none_without_a_known_extension(path):
    assert format_for_path(path) is None


def test_format_for_path_takes_path_objects(tmp_path):
    assert format_for_path(tmp_path / "x.opus").name == "opus"


def test_opus_refuses_44100_hz():
    with pytest.raises(NotSupportedError, match="44100"):
        FORMATS["opus"].check(44100, 1)


@pytest.mark.parametrize("rate", OPUS_RATES)
def test_opus_takes_its_five_rates(rate):
    assert FORMATS["opus"].check(rate, 2) == "OPUS"


def test_mp3_refuses_three_channels():
    with pytest.raises(NotSupportedError, match="channels"):
        FORMATS["mp3"].check(44100, 3)


def test_mp3_takes_stereo_at_44100():
    assert FORMATS["mp3"].check(44100, 2) == "MPEG_LAYER_III"


def test_flac_refuses_nine_channels_and_rates_above_its_maximum():
    with pytest.raises(NotSupportedError):
        FORMATS["flac"].check(48000, 9)
    with pytest.raises(NotSupportedError):
        FORMATS["flac"].check(700000, 1)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "pcm_24"])
def test_wav_takes_every_pcm_subtype_in_any_case(subtype):
    assert FORMATS["wav"].check(48000, 2, subtype) == subtype.upper()


def test_each_format_defaults_to_its_first_subtype():
    assert FORMATS["wav"].check(48000, 1) == "PCM_16"
    assert FORMATS["flac"].check(48000, 1) == "PCM_16"
    assert FORMATS["ogg"].check(48000, 1) == "VORBIS"


@pytest.mark.parametrize("fmt, subtype", [("wav", "PCM_8"), ("wav", "VORBIS"),
                                          ("flac", "FLOAT"), ("flac", "PCM_32"),
                                          ("ogg", "OPUS"), ("raw", "ULAW")])
def test_an_unknown_subtype_is_not_supported(fmt, subtype):
    with pytest.raises(NotSupportedError, match=subtype):
        FORMATS[fmt].check(48000, 1, subtype)


@pytest.mark.parametrize("rate, channels", [(999, 1), (768001, 1), (48000, 0), (48000, 33),
                                            (48000.0, 1), (48000, 1.0)])
def test_rates_and_channels_out_of_range_are_invalid_arguments(rate, channels):
    with pytest.raises(InvalidArgumentError):
        FORMATS["wav"].check(rate, channels)


def test_invalid_arguments_are_value_errors_and_usage_errors():
    assert issubclass(InvalidArgumentError, ValueError)
    assert InvalidArgumentError.usage and NotSupportedError.usage


@pytest.mark.parametrize("fmt, asked, nearest", [
    ("opus", 44100, 48000),
    ("opus", 48000, 48000),
    ("opus", 22050, 24000),
    ("opus", 10000, 12000),  # a tie between 8000 and 12000 goes to the higher rate
    ("opus", 1000, 8000),
    ("mp3", 44100, 44100),
    ("mp3", 46000, 44100),
    ("mp3", 96000, 48000),
    ("wav", 96000, 96000),
    ("wav", 1_000_000, 768000),
    ("flac", 700000, 655350),
    ("ogg", 384000, 192000),
])
def test_nearest_rate_is_the_closest_rate_the_codec_takes(fmt, asked, nearest):
    assert FORMATS[fmt].nearest_rate(asked) == nearest


@pytest.mark.parametrize("mime", CANONICAL.values())
def test_is_type_supported_is_true_for_every_canonical_mime_type(mime):
    assert is_type_supported(mime) is True


@pytest.mark.parametrize("mime", ["video/webm", "audio/webm;codecs=opus", "text/plain", ""])
def test_is_type_supported_is_false_for_what_dictaphone_cannot_write(mime):
    assert is_type_supported(mime) is False


def test_is_type_supported_accepts_aliases():
    assert is_type_supported("audio/ogg") is True
    assert is_type_supported("AUDIO/X-WAV") is True


def test_lossless_formats_are_wav_flac_and_raw():
    assert {n for n, f in FORMATS.items() if f.lossless} == {"wav", "flac", "raw"}


def test_every_pcm_subtype_is_captured_in_an_integer_or_float_dtype_that_keeps_it_exact():
    assert SUBTYPE_DTYPES == {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32",
                              "FLOAT": "float32"}
