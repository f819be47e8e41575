"""Transcripts: what was said and when, saved beside the audio, and searched across the library.

Pure Python (no speech engine): the engine (``dictaphone.speech.transcribe``) makes a
:class:`Transcript`; this module formats it (plain text, SRT, WebVTT, JSON), saves it and
finds words in it.

A transcript is saved in a sidecar ``<audio path>.transcript.json`` beside the audio file
(clips and plain files alike), written atomically (a temp file renamed over it)::

    {"version": 1, "model": "base.en", "language": "en", "duration": 12.3, "text": "...",
     "segments": [{"start": 0.5, "end": 2.1, "text": "Hello there.",
                   "words": [{"word": "Hello", "start": 0.5, "end": 0.9, "probability": 0.98},
                             ...]}]}

A transcript labelled with speakers (``transcribe --speakers``) has ``"speaker"`` on every
segment and word (a name such as ``"Anna"``, or ``"Speaker 2"`` for a voice not known), and
its segments are split where the speaker changes; a transcript without labels has no
``"speaker"`` keys at all.

Times are seconds of that audio file. ``duration`` is the audio's duration; a saved
transcript whose duration is far from the file's (the file was re-recorded over) is stale
(:func:`is_stale`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import unicodedata

from .. import jsontext
from ..atomic import write_text
from ..containers import sidecars
from .changes import changed

VERSION = 1
SUFFIX = sidecars.TRANSCRIPT  # ".transcript.json"


@dataclasses.dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float | None = None
    speaker: str | None = None  #: who said it (None: not labelled)

    def to_dict(self) -> dict:
        out = {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
               "probability": None if self.probability is None else round(self.probability, 4)}
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out


@dataclasses.dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = dataclasses.field(default_factory=list)
    speaker: str | None = None  #: who said it (None: not labelled)

    def to_dict(self) -> dict:
        out = {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text}
        if self.speaker is not None:
            out["speaker"] = self.speaker
        out["words"] = [w.to_dict() for w in self.words]
        return out

    @property
    def cue_text(self) -> str:
        """The text as a subtitle shows it: ``[Speaker 1] text`` when labelled."""
        return f"[{self.speaker}] {self.text}" if self.speaker else self.text


@dataclasses.dataclass
class Transcript:
    """What was said in one recording: segments (about a sentence each) with word times."""

    segments: list[Segment] = dataclasses.field(default_factory=list)
    model: str = ""
    language: str = ""
    duration: float = 0.0  #: seconds of audio transcribed

    @property
    def text(self) -> str:
        """The whole text, segments joined by a space ("" when nothing was said)."""
        return " ".join(s.text for s in self.segments if s.text).strip()

    @property
    def empty(self) -> bool:
        return not self.text

    @property
    def speakers(self) -> list[str]:
        """The speakers' labels in the order they first speak ([] when not labelled)."""
        seen: dict[str, None] = {}
        for s in self.segments:
            if s.speaker is not None and s.text:
                seen.setdefault(s.speaker, None)
        return list(seen)

    @property
    def labelled(self) -> bool:
        """True when the transcript carries speaker labels."""
        return any(s.speaker is not None for s in self.segments)

    def rename_speaker(self, old: str, new: str) -> int:
        """Call speaker ``old`` ``new`` in every segment and word; the segments changed."""
        n = 0
        for s in self.segments:
            if s.speaker == old:
                s.speaker = new
                n += 1
            for w in s.words:
                if w.speaker == old:
                    w.speaker = new
        return n

    def first_words(self, limit: int = 60) -> str:
        """The start of the text, cut at a word boundary near ``limit`` characters."""
        text = self.text
        if len(text) <= limit:
            return text
        cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
        return cut.rstrip(",;:.") + "…"

    # -- formats -----------------------------------------------------------------------

    def to_txt(self) -> str:
        """One segment a line (empty when nothing was said); with speaker labels, a line
        ``Speaker 1:`` (or the name) where the speaker changes, a blank line before it."""
        out, current = [], None
        for s in self.segments:
            if not s.text:
                continue
            if s.speaker is not None and s.speaker != current:
                out.append(("\n" if out else "") + s.speaker + ":\n")
                current = s.speaker
            out.append(s.text + "\n")
        return "".join(out)

    def cues(self):
        """The subtitle cues: (segment, Cue) with at most 2 lines of 42 characters and 7 s
        each, cut from the word times (see dictaphone/library/subtitles.py)."""
        from .subtitles import cues

        return cues(self.segments, prefix=_label)

    def to_srt(self) -> str:
        """SubRip: numbered cues ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, blank line between cues;
        each cue of a labelled segment starts ``[Speaker 1] ``."""
        out = []
        for n, (s, cue) in enumerate(self.cues(), 1):
            out.append(f"{n}\n{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}\n"
                       f"{_label(s)}{cue.text}\n")
        return "\n".join(out)

    def to_vtt(self) -> str:
        """WebVTT: the ``WEBVTT`` header, then cues ``HH:MM:SS.mmm --> HH:MM:SS.mmm``; each
        cue of a labelled segment opens a voice span, ``<v Speaker 1>``."""
        out = ["WEBVTT\n"]
        for s, cue in self.cues():
            text = "\n".join(_vtt_text(line) for line in cue.lines)
            out.append(f"\n{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}\n{_voice(s)}{text}\n")
        return "".join(out)

    def to_dict(self) -> dict:
        return {"version": VERSION, "model": self.model, "language": self.language,
                "duration": round(self.duration, 3), "text": self.text,
                "segments": [s.to_dict() for s in self.segments]}

    def to_json(self, indent: int | None = 2) -> str:
        """The sidecar's JSON text (see the module's docstring)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes | dict) -> "Transcript":
        """A transcript from :meth:`to_json`'s text (or its dict); ValueError if malformed."""
        if isinstance(data, (str, bytes)):
            data = jsontext.loads(data)
        if not isinstance(data, dict) or not isinstance(data.get("segments"), list):
            raise ValueError("not a transcript: no 'segments' list")
        try:
            segments = [
                Segment(start=float(s["start"]), end=float(s["end"]), text=str(s["text"]).strip(),
                        words=[Word(word=str(w["word"]), start=float(w["start"]), end=float(w["end"]),
                                    probability=None if w.get("probability") is None
                                    else float(w["probability"]), speaker=_speaker(w))
                               for w in s.get("words") or ()],
                        speaker=_speaker(s))
                for s in data["segments"]
            ]
            return cls(segments=segments, model=str(data.get("model") or ""),
                       language=str(data.get("language") or ""),
                       duration=float(data.get("duration") or 0.0))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"not a transcript: {e}") from None


def _speaker(d: dict) -> str | None:
    name = d.get("speaker")
    if name is None:
        return None
    if not isinstance(name, str):
        raise ValueError(f"a speaker is a name, not {name!r}")
    return name


def _label(s: Segment) -> str:
    """What SRT shows before a labelled segment's text (its length counts in a line)."""
    return f"[{s.speaker}] " if s.speaker else ""


def _vtt_text(line: str) -> str:
    """A line of cue text as WebVTT needs it: '-->' cannot appear in a cue's text."""
    return line.replace("-->", "--&gt;")


def _voice(s: Segment) -> str:
    """WebVTT's voice span that opens a cue of a labelled segment: ``<v Speaker 1>``."""
    if not s.speaker:
        return ""
    name = s.speaker.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<v {name}>"


def _end(s: Segment) -> float:
    return max(s.end, s.start)


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


# -- the sidecar ---------------------------------------------------------------------------


def sidecar_path(audio: str | os.PathLike) -> str:
    return os.fspath(audio) + SUFFIX


def save(audio: str | os.PathLike, transcript: Transcript) -> str:
    """Write ``audio``'s sidecar atomically; return its path. OSError if it cannot be written."""
    path = sidecar_path(audio)
    write_text(path, transcript.to_json() + "\n")
    changed(audio)
    return path


def remove(audio: str | os.PathLike) -> None:
    """Remove ``audio``'s saved transcript, if it has one."""
    try:
        os.unlink(sidecar_path(audio))
    except FileNotFoundError:
        return
    changed(audio)


def load(audio: str | os.PathLike) -> Transcript | None:
    """``audio``'s saved transcript, or None when there is none (or it cannot be read)."""
    try:
        with open(sidecar_path(audio), encoding="utf-8") as f:
            return Transcript.from_json(f.read())
    except (OSError, ValueError):
        return None


def saved(audio: str | os.PathLike, model: str | None = None, language: str | None = None,
          duration: float | None = None) -> Transcript | None:
    """``audio``'s saved transcript if it can stand for a new one, else None.

    It cannot when it was made with another ``model`` or ``language`` than the ones asked for
    (None: any), or for audio of another ``duration`` (the file was recorded over).
    """
    t = load(audio)
    if t is None or is_stale(t, duration):
        return None
    if model is not None and t.model != model:
        return None
    if language is not None and t.language != language:
        return None
    return t


def is_stale(transcript: Transcript, audio_duration: float | None, tolerance: float = 1.0) -> bool:
    """True when the audio is not the one transcribed (its duration differs by > tolerance)."""
    if audio_duration is None:
        return False
    return abs(transcript.duration - audio_duration) > tolerance


# -- search --------------------------------------------------------------------------------

_TOKEN = re.compile(r"[\w']+")


def _norm(token: str) -> str:
    token = unicodedata.normalize("NFKD", token.lower())
    token = "".join(c for c in token if not unicodedata.combining(c))
    return token.replace("\u2019", "'").strip("'")


def _matches(query: str, word: str) -> bool:
    # Whole words, with plain plural and possessive endings: "dentist" finds "dentist's".
    return word == query or (word.startswith(query) and word[len(query):] in ("s", "es", "'s"))


@dataclasses.dataclass
class Hit:
    """One match: the clip, when (seconds of its file) and the segment text it is in."""

    name: str
    path: str
    start: float
    end: float
    text: str
    #: where the match is in ``text``: (first character, one past the last)
    span: tuple[int, int] = (0, 0)
    speaker: str | None = None  #: who said it (the segment's label; None: not labelled)

    def to_json(self) -> dict:
        out = {"name": self.name, "path": self.path, "start": round(self.start, 3),
               "end": round(self.end, 3), "text": self.text}
        if self.speaker is not None:
            out["speaker"] = self.speaker
        return out


def _tokens(transcript: Transcript):
    """(normalized token, segment index, char start, char end, time start, time end)."""
    out = []
    for i, seg in enumerate(transcript.segments):
        toks = [(m.start(), m.end(), _norm(m.group())) for m in _TOKEN.finditer(seg.text)]
        toks = [t for t in toks if t[2]]
        words = [w for w in seg.words if _norm("".join(_TOKEN.findall(w.word)))]
        timed = len(words) == len(toks)  # word times only when words and tokens line up
        for k, (a, b, tok) in enumerate(toks):
            t0, t1 = (words[k].start, words[k].end) if timed else (seg.start, seg.end)
            out.append((tok, i, a, b, t0, t1))
    return out


def find_in(transcript: Transcript, words, name: str = "", path: str = "") -> list[Hit]:
    """Every place the phrase ``words`` (whole words, in order, any case) is said."""
    query = [_norm(t) for w in words for t in _TOKEN.findall(str(w))]
    query = [q for q in query if q]
    if not query:
        return []
    toks = _tokens(transcript)
    hits = []
    for i in range(len(toks) - len(query) + 1):
        if all(_matches(q, toks[i + k][0]) for k, q in enumerate(query)):
            first, last = toks[i], toks[i + len(query) - 1]
            seg = transcript.segments[first[1]]
            if last[1] == first[1]:
                text, span = seg.text, (first[2], last[3])
            else:  # the phrase runs on into the next segment(s)
                segs = transcript.segments[first[1]:last[1] + 1]
                text = " ".join(s.text for s in segs)
                offset = len(text) - len(segs[-1].text)
                span = (first[2], offset + last[3])
            hits.append(Hit(name=name, path=path, start=first[4], end=last[5], text=text, span=span,
                            speaker=seg.speaker))
    return hits


def library_clips() -> list:
    """The whole library, newest clip first: where :func:`search` looks by default. The
    library room (library/__init__.py) passes in clips.clips here: the clip listing stands
    on this module (a clip shows its transcript's first words), not the other way round."""
    raise RuntimeError("dictaphone.library did not pass in its clip listing")


def search(words, clips=None) -> list[Hit]:
    """Every match of the phrase ``words`` in the saved transcripts of ``clips``.

    ``clips`` defaults to the whole library (newest clip first); matches within a clip are
    in the order they are said.
    """
    if clips is None:
        clips = library_clips()
    hits = []
    for clip in clips:
        transcript = load(clip.path)
        if transcript is not None:
            hits.extend(find_in(transcript, words, name=clip.name, path=clip.path))
    return hits
