"""Subtitle cues a person can read: at most 2 lines of at most 42 characters, at most 7 s,
cut from the words' own times, at punctuation and pauses first, never across speakers.

The rules are checked on hand-made transcripts (exact), on random ones (hypothesis: every
word kept once and in order, every limit kept), and end to end on real speech: espeak-ng
reading a long sentence, recognised by Whisper tiny.en, written by `transcribe -f srt/vtt`.
"""

from __future__ import annotations

import re
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import speech
from cliutil import no_device_env, run
from dictaphone.library.subtitles import MAX_CUE, MAX_LINE
from dictaphone.library.transcript import Segment, Transcript, Word


def said(text: str, start: float = 0.0, pace: float = 0.07, pauses: dict | None = None,
         speaker: str | None = None) -> Segment:
    """A segment whose words are said one after another: ``pace`` s a character, 0.05 s
    between words, more after the words in ``pauses`` ({word index: seconds})."""
    words, t = [], start
    for i, w in enumerate(text.split()):
        d = pace * len(w) + 0.05
        words.append(Word(w, round(t, 3), round(t + d, 3), 0.9, speaker))
        t += d + (pauses or {}).get(i, 0.05)
    return Segment(words[0].start, words[-1].end, text, words, speaker)


def srt_cues(srt: str) -> list[tuple[float, float, list[str]]]:
    out = []
    for block in srt.strip().split("\n\n"):
        lines = block.split("\n")
        a, b = lines[1].split(" --> ")
        out.append((_seconds(a), _seconds(b), lines[2:]))
    return out


def vtt_cues(vtt: str) -> list[tuple[float, float, list[str]]]:
    assert vtt.startswith("WEBVTT\n")
    out = []
    for block in vtt.split("\n\n")[1:]:
        lines = block.strip("\n").split("\n")
        a, b = lines[0].split(" --> ")
        out.append((_seconds(a), _seconds(b), lines[1:]))
    return out


def _seconds(stamp: str) -> float:
    h, m, s = re.split(r":", stamp.replace(",", "."))
    return int(h) * 3600 + int(m) * 60 + float(s)


def assert_readable(cues, prefix_len: int = 0):
    for start, end, lines in cues:
        assert 1 <= len(lines) <= 2, lines
        assert all(len(line) <= MAX_LINE for line in lines), lines
        assert end - start <= MAX_CUE + 1e-9, (start, end, lines)
        assert end >= start


LONG = ("So the plan for next week is that we ship the new recorder on Tuesday, and then, if "
        "the tests pass, we move the web page to the new index. Does anyone object? Good.")


def test_a_long_segment_becomes_cues_of_two_short_lines_and_seven_seconds_at_most():
    seg = said(LONG, start=0.3)
    assert len(LONG) > 110 and seg.end - seg.start > 10
    t = Transcript([seg])
    for cues in (srt_cues(t.to_srt()), vtt_cues(t.to_vtt())):
        assert len(cues) >= 3
        assert_readable(cues)
        # every word once, in order
        assert " ".join(" ".join(lines) for _, _, lines in cues) == LONG
        # cue times are the words' own times
        assert cues[0][0] == pytest.approx(seg.words[0].start, abs=0.001)
        assert cues[-1][1] == pytest.approx(seg.words[-1].end, abs=0.001)
        starts = {w.start for w in seg.words}
        assert all(any(abs(c[0] - s) < 0.0015 for s in starts) for c in cues)


def test_a_cue_ends_at_a_sentences_end_rather_than_inside_a_phrase():
    text = ("The meeting moved to the big room on the third floor. "
            "Bring the printed agenda and your laptop charger.")
    cues = srt_cues(Transcript([said(text)]).to_srt())
    assert [" ".join(c[2]) for c in cues] == [
        "The meeting moved to the big room on the third floor.",
        "Bring the printed agenda and your laptop charger."]


def test_a_cue_ends_at_a_pause_when_there_is_no_punctuation():
    text = "we tried the first microphone and it hummed so we took the second one from the shelf"
    words = text.split()
    pause_after = words.index("hummed")
    cues = srt_cues(Transcript([said(text, pauses={pause_after: 0.8})]).to_srt())
    assert len(cues) == 2
    assert " ".join(cues[0][2]).endswith("it hummed")


def test_the_two_lines_of_a_cue_break_at_a_comma_and_evenly():
    text = "If the disk fills up, the recorder keeps all it has."
    (cue,) = srt_cues(Transcript([said(text, pace=0.05)]).to_srt())
    assert cue[2] == ["If the disk fills up,", "the recorder keeps all it has."]
    text = "We recorded the whole meeting in the small room upstairs today."
    (cue,) = srt_cues(Transcript([said(text, pace=0.05)]).to_srt())
    assert cue[2] == ["We recorded the whole meeting", "in the small room upstairs today."]


def test_a_short_segment_stays_one_cue_on_one_line():
    t = Transcript([Segment(0.5, 2.25, "Buy milk and bread.",
                            [Word("Buy", 0.5, 0.8), Word("milk", 0.9, 1.2),
                             Word("and", 1.3, 1.4), Word("bread.", 1.5, 2.25)])])
    assert t.to_srt() == "1\n00:00:00,500 --> 00:00:02,250\nBuy milk and bread.\n"


def test_a_cue_never_spans_two_speakers_and_the_label_counts_in_the_line():
    a = said("Did you bring the recorder to the meeting room this morning?", speaker="Speaker 12")
    b = said("Yes.", start=a.end + 0.2, speaker="Anna")
    c = said(LONG, start=b.end + 0.3, speaker="Speaker 12")
    t = Transcript([a, b, c])
    srt = srt_cues(t.to_srt())
    for start, end, lines in srt:
        assert lines[0].startswith(("[Speaker 12] ", "[Anna] ")), lines
    assert_readable(srt)
    assert srt[1][2] == ["[Anna] Yes."]
    vtt = vtt_cues(t.to_vtt())
    assert [c[2][0].split(">")[0] for c in vtt] == [
        "<v " + ("Anna" if "Yes." in " ".join(c[2]) else "Speaker 12") for c in vtt]
    assert [(s, e) for s, e, _ in vtt] == [(s, e) for s, e, _ in srt]
    # the text of each speaker's cues is that speaker's words only
    anna = [" ".join(c[2]) for c in vtt if c[2][0].startswith("<v Anna>")]
    assert anna == ["<v Anna>Yes."]


def test_a_segment_whose_words_change_speaker_is_cut_there():
    seg = said("Are you ready? Yes I am.")
    for w in seg.words[:3]:
        w.speaker = "Anna"
    for w in seg.words[3:]:
        w.speaker = "Ben"
    seg.speaker = "Anna"
    srt = srt_cues(Transcript([seg]).to_srt())
    assert [c[2] for c in srt] == [["[Anna] Are you ready?"], ["[Ben] Yes I am."]]


def test_a_word_longer_than_a_line_gets_a_line_of_its_own():
    url = "https://example.org/a/very/long/path/to/the/agenda/of/the/meeting"
    cues = srt_cues(Transcript([said(f"the agenda is at {url} today", pace=0.02)]).to_srt())
    assert any(lines == [url] or url in lines for _, _, lines in cues)
    assert " ".join(" ".join(c[2]) for c in cues) == f"the agenda is at {url} today"


def test_slow_speech_is_cut_at_seven_seconds_even_in_few_characters():
    seg = said("one two three four five six seven", pace=0.5, pauses={i: 0.6 for i in range(7)})
    assert seg.end - seg.start > 14
    cues = srt_cues(Transcript([seg]).to_srt())
    assert len(cues) >= 3
    assert_readable(cues)


def test_a_segment_without_word_times_is_spread_over_its_time():
    seg = Segment(10.0, 20.0, LONG, [])
    cues = srt_cues(Transcript([seg]).to_srt())
    assert_readable(cues)
    assert cues[0][0] == 10.0 and cues[-1][1] == 20.0
    assert " ".join(" ".join(c[2]) for c in cues) == LONG


def test_an_arrow_in_the_text_cannot_end_a_vtt_cues_timing_line():
    t = Transcript([said("a --> b")])
    assert "-->" not in t.to_vtt().split("\n", 3)[3]


word = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x24F,
                                      blacklist_categories=("Cs", "Zs", "Cc")),
               min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(word, st.floats(0.01, 9.0), st.floats(0.0, 2.0)), min_size=1,
                max_size=60),
       st.sampled_from([None, "A", "Speaker 10"]))
def test_any_transcript_keeps_every_word_once_in_order_within_the_limits(spec, speaker):
    words, t = [], 0.0
    for text, length, gap in spec:
        words.append(Word(text, t, t + length, None, speaker))
        t += length + gap
    seg = Segment(words[0].start, words[-1].end, " ".join(w.word for w in words), words, speaker)
    from dictaphone.library.subtitles import cues as make_cues

    label = f"[{speaker}] " if speaker else ""
    got = make_cues([seg], prefix=lambda s: label)
    assert " ".join(c.text.replace("\n", " ") for _, c in got) == seg.text
    for _, c in got:
        n_words = len(c.text.split())
        assert len(c.lines) <= 2
        if n_words > 1:
            assert c.end - c.start <= MAX_CUE + 1e-9
            for i, line in enumerate(c.lines):
                if len(line.split()) > 1:
                    assert len(line) + (len(label) if i == 0 else 0) <= MAX_LINE, c


# --- end to end: espeak-ng, Whisper tiny.en, `dictaphone transcribe -f srt` ------------------


SPOKEN = ("The recorder writes every second to the disk, so a power cut loses almost nothing "
          "of what was said, and the transcript is made again from the file.")


@pytest.fixture(scope="module")
def long_sentence(tmp_path_factory):
    return speech.make_script(tmp_path_factory.mktemp("subtitles") / "long.wav", [SPOKEN])


def test_transcribe_writes_readable_cues_of_real_speech(tmp_path, whisper_model, long_sentence):
    path = tmp_path / "long.wav"
    shutil.copy(long_sentence.path, path)
    env = no_device_env(tmp_path)
    env.update(DICTAPHONE_MODEL=whisper_model, HF_HUB_OFFLINE="1")
    r = run("transcribe", "-f", "json", path, env=env)
    assert r.returncode == 0, r.stderr
    import json

    data = json.loads(r.stdout)
    assert speech.wer(SPOKEN, data["text"]) <= 0.3, data["text"]
    assert max(len(s["text"]) for s in data["segments"]) > 2 * MAX_LINE  # one long segment
    for fmt, parse in (("srt", srt_cues), ("vtt", vtt_cues)):
        r = run("transcribe", "-f", fmt, path, env=env)
        assert r.returncode == 0, r.stderr
        cues = parse(r.stdout)
        assert len(cues) >= 2
        assert_readable(cues)
        spoken = long_sentence.sentences[0]
        assert cues[0][0] >= spoken.start - 0.3 and cues[-1][1] <= spoken.end + 0.5
        assert speech.wer(data["text"], " ".join(" ".join(c[2]) for c in cues)) == 0
