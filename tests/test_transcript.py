"""The transcript model without an engine: formats, the sidecar, search."""

from __future__ import annotations

import json
import os
import re

import pytest

from dictaphone import transcript as tr
from dictaphone.library.transcript import Segment, Transcript, Word


def _sample() -> Transcript:
    return Transcript(
        model="tiny.en", language="en", duration=3725.5,
        segments=[
            Segment(0.5, 2.25, "Buy milk and bread.",
                    [Word("Buy", 0.5, 0.8, 0.9), Word("milk", 0.9, 1.2, 0.95),
                     Word("and", 1.3, 1.4, 0.99), Word("bread.", 1.5, 2.25, 0.97)]),
            Segment(3661.001, 3662.999, "The dentist's on Friday.", []),
        ])


def test_text_joins_segments_and_txt_gives_one_segment_a_line():
    t = _sample()
    assert t.text == "Buy milk and bread. The dentist's on Friday."
    assert t.to_txt() == "Buy milk and bread.\nThe dentist's on Friday.\n"


def test_srt_numbers_cues_and_uses_commas_in_hour_times():
    assert _sample().to_srt() == (
        "1\n00:00:00,500 --> 00:00:02,250\nBuy milk and bread.\n\n"
        "2\n01:01:01,001 --> 01:01:02,999\nThe dentist's on Friday.\n")


def test_vtt_has_its_header_and_uses_dots():
    assert _sample().to_vtt() == (
        "WEBVTT\n\n00:00:00.500 --> 00:00:02.250\nBuy milk and bread.\n"
        "\n01:01:01.001 --> 01:01:02.999\nThe dentist's on Friday.\n")


def test_an_empty_transcript_gives_empty_text_and_cue_files():
    t = Transcript(model="m", language="en", duration=4.0)
    assert t.empty and t.text == "" and t.to_txt() == "" and t.to_srt() == ""
    assert t.to_vtt() == "WEBVTT\n"
    assert json.loads(t.to_json())["segments"] == []


def test_json_has_the_sidecar_fields_and_round_trips():
    t = _sample()
    data = json.loads(t.to_json())
    assert set(data) == {"version", "model", "language", "duration", "text", "segments"}
    assert data["version"] == 1 and data["text"] == t.text
    assert data["segments"][0]["words"][1] == {"word": "milk", "start": 0.9, "end": 1.2, "probability": 0.95}
    assert Transcript.from_json(t.to_json()) == t
    assert Transcript.from_json(data) == t


@pytest.mark.parametrize("bad", ["[]", "{}", '{"segments": [{"start": "x"}]}', "not json"])
def test_from_json_refuses_what_is_not_a_transcript(bad):
    with pytest.raises(ValueError):
        Transcript.from_json(bad)


def test_first_words_cut_at_a_word_boundary():
    t = Transcript(segments=[Segment(0, 1, "one two three four five six seven")])
    assert t.first_words(14) == "one two three…"
    assert t.first_words(100) == "one two three four five six seven"


def test_save_writes_the_sidecar_beside_the_audio_and_load_reads_it(tmp_path):
    audio = tmp_path / "memo.wav"
    audio.write_bytes(b"")
    path = tr.save(audio, _sample())
    assert path == str(audio) + ".transcript.json" == tr.sidecar_path(audio)
    assert tr.load(audio) == _sample()
    assert sorted(os.listdir(tmp_path)) == ["memo.wav", "memo.wav.transcript.json"]


def test_save_replaces_atomically_and_a_failed_save_keeps_the_old_sidecar(tmp_path, monkeypatch):
    audio = tmp_path / "memo.wav"
    tr.save(audio, _sample())

    class Boom(Exception):
        pass

    def broken_json(self, indent=2):
        raise Boom()

    monkeypatch.setattr(Transcript, "to_json", broken_json)
    with pytest.raises(Boom):
        tr.save(audio, Transcript())
    monkeypatch.undo()
    assert tr.load(audio) == _sample()  # the old one, whole
    assert sorted(os.listdir(tmp_path)) == ["memo.wav.transcript.json"]  # no temp file left


def test_load_gives_none_for_no_sidecar_or_a_damaged_one(tmp_path):
    audio = tmp_path / "memo.wav"
    assert tr.load(audio) is None
    (tmp_path / "memo.wav.transcript.json").write_text('{"segments": [')
    assert tr.load(audio) is None


def test_a_transcript_is_stale_when_the_audio_duration_differs():
    t = Transcript(duration=10.0)
    assert not tr.is_stale(t, 10.4)
    assert tr.is_stale(t, 12.0)
    assert not tr.is_stale(t, None)


def test_find_in_uses_word_times_and_marks_the_match():
    hits = tr.find_in(_sample(), ["MILK", "and"], name="list", path="/x/list.wav")
    assert len(hits) == 1
    h = hits[0]
    assert (h.name, h.path, h.start, h.end) == ("list", "/x/list.wav", 0.9, 1.4)
    assert h.text[h.span[0]:h.span[1]] == "milk and"
    assert h.to_json() == {"name": "list", "path": "/x/list.wav", "start": 0.9, "end": 1.4,
                           "text": "Buy milk and bread."}


def test_find_in_falls_back_to_segment_times_and_takes_possessives():
    [h] = tr.find_in(_sample(), ["dentist"])
    assert (h.start, h.end) == (3661.001, 3662.999)
    assert h.text[h.span[0]:h.span[1]] == "dentist's"


def test_find_in_matches_whole_words_only_and_phrases_in_order():
    t = _sample()
    assert tr.find_in(t, ["mil"]) == []
    assert tr.find_in(t, ["bread", "milk"]) == []
    assert tr.find_in(t, [""]) == [] and tr.find_in(t, ["..."]) == []


def test_a_phrase_can_run_across_two_segments():
    [h] = tr.find_in(_sample(), ["bread the dentist"])
    assert h.start == 1.5 and h.end == 3662.999
    assert re.sub(r"\s+", " ", h.text[h.span[0]:h.span[1]]) == "bread. The dentist's"


def test_search_looks_through_the_saved_transcripts_of_the_library(tmp_path, monkeypatch):
    monkeypatch.setenv("DICTAPHONE_HOME", str(tmp_path))
    from dictaphone import clips

    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.wav").write_bytes(b"RIFF")
    tr.save(tmp_path / "a.wav", _sample())
    tr.save(tmp_path / "b.wav", Transcript(segments=[Segment(1, 2, "More milk please.")]))
    hits = tr.search(["milk"])
    assert sorted((h.name, h.start) for h in hits) == [("a", 0.9), ("b", 1.0)]
    assert tr.search(["plumber"]) == []
    assert [h.name for h in tr.search(["milk"], clips=[clips.find("b")])] == ["b"]


def test_a_clip_carries_the_first_words_of_its_transcript(tmp_path, monkeypatch):
    monkeypatch.setenv("DICTAPHONE_HOME", str(tmp_path))
    from dictaphone import clips

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "b.wav").write_bytes(b"RIFF")
    tr.save(tmp_path / "a.wav", _sample())
    assert clips.find("a").transcript == "Buy milk and bread. The dentist's on Friday."
    assert clips.find("a").to_json()["transcript"] == clips.find("a").transcript
    assert clips.find("b").transcript is None
    assert sorted(c.name for c in clips.clips()) == ["a", "b"]  # the sidecar is not a clip


def test_renaming_or_deleting_a_clip_takes_its_transcript_along(tmp_path, monkeypatch):
    monkeypatch.setenv("DICTAPHONE_HOME", str(tmp_path))
    from dictaphone import clips

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    tr.save(tmp_path / "a.wav", _sample())
    clips.rename("a", "groceries")
    assert tr.load(tmp_path / "groceries.wav") == _sample()
    assert not (tmp_path / "a.wav.transcript.json").exists()
    assert [h.name for h in tr.search(["milk"])] == ["groceries"]
    clips.delete("groceries")
    assert os.listdir(tmp_path) == []


# -- speaker labels ------------------------------------------------------------------------


def _labelled() -> Transcript:
    return Transcript(
        model="tiny.en", language="en", duration=9.0,
        segments=[
            Segment(0.5, 1.4, "Buy milk.", [Word("Buy", 0.5, 0.8, 0.9, "Anna"),
                                            Word("milk.", 0.9, 1.4, 0.95, "Anna")], "Anna"),
            Segment(2.0, 3.0, "And bread?", [Word("And", 2.0, 2.3, 0.9, "Anna"),
                                             Word("bread?", 2.4, 3.0, 0.9, "Anna")], "Anna"),
            Segment(3.5, 5.0, "Yes, <both>.", [Word("Yes,", 3.5, 3.9, 0.9, "Speaker 2"),
                                               Word("<both>.", 4.0, 5.0, 0.9, "Speaker 2")],
                    "Speaker 2"),
            Segment(6.0, 7.0, "Good.", [Word("Good.", 6.0, 7.0, 0.9, "Anna")], "Anna"),
        ])


def test_speaker_labels_round_trip_through_json_on_segments_and_words():
    t = _labelled()
    data = json.loads(t.to_json())
    assert [s["speaker"] for s in data["segments"]] == ["Anna", "Anna", "Speaker 2", "Anna"]
    assert data["segments"][2]["words"][0] == {"word": "Yes,", "start": 3.5, "end": 3.9,
                                               "probability": 0.9, "speaker": "Speaker 2"}
    assert Transcript.from_json(t.to_json()) == t
    assert t.speakers == ["Anna", "Speaker 2"] and t.labelled
    # Unlabelled transcripts keep their JSON as it was: no "speaker" keys at all.
    assert "speaker" not in _sample().to_json() and not _sample().labelled
    with pytest.raises(ValueError):
        Transcript.from_json({"segments": [{"start": 0, "end": 1, "text": "x", "speaker": 3}]})


def test_txt_shows_a_speaker_line_where_the_speaker_changes():
    assert _labelled().to_txt() == ("Anna:\nBuy milk.\nAnd bread?\n\nSpeaker 2:\nYes, <both>.\n"
                                    "\nAnna:\nGood.\n")


def test_srt_prefixes_the_speaker_and_vtt_uses_voice_spans():
    srt = _labelled().to_srt()
    assert "1\n00:00:00,500 --> 00:00:01,400\n[Anna] Buy milk.\n" in srt
    assert "3\n00:00:03,500 --> 00:00:05,000\n[Speaker 2] Yes, <both>.\n" in srt
    vtt = _labelled().to_vtt()
    assert "\n00:00:00.500 --> 00:00:01.400\n<v Anna>Buy milk.\n" in vtt
    assert "\n00:00:03.500 --> 00:00:05.000\n<v Speaker 2>Yes, <both>.\n" in vtt
    t = _labelled()
    t.rename_speaker("Anna", "A<&>")
    assert "<v A&lt;&amp;&gt;>Buy milk." in t.to_vtt()


def test_rename_speaker_changes_segments_and_words():
    t = _labelled()
    assert t.rename_speaker("Speaker 2", "Ben") == 1
    assert t.speakers == ["Anna", "Ben"]
    assert {w.speaker for w in t.segments[2].words} == {"Ben"}
    assert t.rename_speaker("Nobody", "X") == 0


def test_search_hits_carry_the_speaker():
    hits = tr.find_in(_labelled(), ["yes"], name="c", path="p")
    assert [(h.speaker, h.start) for h in hits] == [("Speaker 2", 3.5)]
    assert hits[0].to_json()["speaker"] == "Speaker 2"
    assert "speaker" not in tr.find_in(_sample(), ["milk"])[0].to_json()
