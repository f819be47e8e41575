"""Subtitle cues a person can read, cut from a transcript's word times.

A Whisper segment is a sentence or two: as one cue it is a 110-character line on the
screen for 6 or 7 s. The usual rules for subtitles (BBC, Netflix and EBU guidelines
agree on them) are at most two lines of at most 42 characters and at most 7 s a cue. A
segment is cut into cues that keep them, from its words' own times, so that each cue is
shown while its words are said:

- a cue ends, in this order of preference, after a sentence's end (. ? !), after a
  clause (, ; : and dashes), at a pause in the voice (the gap to the next word), and only
  then between any two words; a cue of one or two short words left over is avoided;
- its two lines break at the same kinds of places, as evenly as they can;
- a cue never spans two segments, so never two speakers (segments are split where the
  speaker changes); the speaker's label, ``[Anna] `` in SRT, counts in the line's length.

A single word longer than a line (a URL) gets a line of its own; a single word said for
more than 7 s a cue of its own. A segment without word times (old transcripts) has them
spread over its time by characters. Pure Python, no engine.
"""

from __future__ import annotations

import dataclasses

#: the longest line, in characters, and the most lines a cue has
MAX_LINE = 42
MAX_LINES = 2
#: the longest a cue is shown (seconds)
MAX_CUE = 7.0
#: a gap this long between two words (seconds) is a pause: a good place for a cue to end
PAUSE = 0.3

_SENTENCE_END = ".?!…"
_CLAUSE_END = ",;:–—"


@dataclasses.dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclasses.dataclass(frozen=True)
class _Token:
    text: str
    start: float
    end: float
    speaker: str | None = None


def cues(segments, prefix=lambda segment: "", max_line: int = MAX_LINE,
         max_lines: int = MAX_LINES, max_duration: float = MAX_CUE) -> list[tuple[object, Cue]]:
    """(segment, cue) for every cue of ``segments`` (Segment objects with ``text``,
    ``start``, ``end``, ``words``), in order. ``prefix(segment)`` is the visible text put
    before each cue's first line (``[Anna] ``), counted in its length."""
    out = []
    for seg in segments:
        if not seg.text:
            continue
        for part, tokens in _by_speaker(seg):
            for cue in cut(tokens, len(prefix(part)), max_line, max_lines, max_duration):
                out.append((part, cue))
    return out


def _by_speaker(seg):
    """The segment's words in runs of one speaker: (the segment as that speaker's, its
    tokens). Segments are split where the speaker changes; a segment whose words say
    otherwise (edited by hand, another program) is cut there too, never mixed in a cue."""
    tokens = _tokens(seg)
    runs: list[tuple[str | None, list[_Token]]] = []
    for t in tokens:
        who = t.speaker if t.speaker is not None else seg.speaker
        if runs and runs[-1][0] == who:
            runs[-1][1].append(t)
        else:
            runs.append((who, [t]))
    if len(runs) <= 1:
        return [(seg, tokens)] if tokens else []
    return [(dataclasses.replace(seg, speaker=who) if who != seg.speaker else seg, run)
            for who, run in runs]


def _tokens(seg) -> list[_Token]:
    words = [w for w in seg.words if w.word.strip()]
    if words:
        return [_Token(w.word.strip(), w.start, max(w.end, w.start), getattr(w, "speaker", None))
                for w in words]
    # No word times: the segment's text spread over its time by characters.
    parts = seg.text.split()
    total = max(1, sum(len(p) for p in parts) + len(parts) - 1)
    start, end = seg.start, max(seg.end, seg.start)
    out, at = [], 0
    for p in parts:
        a = start + (end - start) * at / total
        at += len(p)
        out.append(_Token(p, a, start + (end - start) * at / total))
        at += 1
    return out


def _break_cost(tokens: list[_Token], i: int) -> float:
    """How bad it is to end a cue (or a line) after ``tokens[i]``: 0 at a sentence's end,
    more at a clause, more at a pause, most between two words said together."""
    word = tokens[i].text.rstrip("\"')]}»”’")
    gap = tokens[i + 1].start - tokens[i].end if i + 1 < len(tokens) else 10.0
    if word.endswith(tuple(_SENTENCE_END)):
        cost = 0.0
    elif word.endswith(tuple(_CLAUSE_END)) or (i + 1 < len(tokens) and tokens[i + 1].text in "–—-"):
        cost = 1.0
    else:
        cost = 4.0
    if gap >= 2 * PAUSE:
        cost = min(cost, 0.5)
    elif gap >= PAUSE:
        cost = min(cost, 1.5)
    return cost


def _layout(words: list[str], first_indent: int, max_line: int, max_lines: int,
            costs: list[float]) -> tuple[float, tuple[str, ...]] | None:
    """The best way to put ``words`` on at most ``max_lines`` lines of ``max_line``
    characters (the first one ``first_indent`` shorter), or None if they do not fit.
    ``costs[k]``: the break cost after word k. Returns (cost, lines)."""
    text = " ".join(words)
    if first_indent + len(text) <= max_line or len(words) == 1:
        return 0.0, (text,)
    if max_lines < 2:
        return None
    best = None
    for k in range(1, len(words)):
        top, bottom = " ".join(words[:k]), " ".join(words[k:])
        if first_indent + len(top) > max_line and k > 1:
            break
        if len(bottom) > max_line and len(words) - k > 1:
            continue
        # a break at punctuation, then lines of even length (a longer bottom line reads
        # better than a longer top one: the eye goes down)
        cost = costs[k - 1] + abs(first_indent + len(top) - len(bottom)) / max_line
        if first_indent + len(top) > len(bottom):
            cost += 0.1
        if best is None or cost < best[0]:
            best = (cost, (top, bottom))
    return best


def cut(tokens: list[_Token], indent: int = 0, max_line: int = MAX_LINE,
        max_lines: int = MAX_LINES, max_duration: float = MAX_CUE) -> list[Cue]:
    """Cues of ``tokens`` (one segment's words): the fewest, best-broken cues that keep the
    limits, by dynamic programming over where each cue ends."""
    n = len(tokens)
    costs = [_break_cost(tokens, i) for i in range(n)]
    inf = float("inf")
    best = [inf] * (n + 1)
    choice: list[tuple[int, tuple[str, ...]] | None] = [None] * (n + 1)
    best[0] = 0.0
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            if best[i] == inf:
                continue
            span = tokens[j - 1].end - tokens[i].start
            if span > max_duration and j - i > 1:
                break  # longer still for any earlier i
            laid = _layout([t.text for t in tokens[i:j]], indent, max_line, max_lines, costs[i:j])
            if laid is None:
                if j - i > 1:
                    break  # more words fit even less
                continue
            chars = sum(len(t.text) + 1 for t in tokens[i:j])
            cost = (best[i] + 2.0  # each cue costs: the fewest that keep the rules
                    + (costs[j - 1] if j < n else 0.0) * 1.5
                    + laid[0]
                    + (3.0 if chars < 12 and n > j - i else 0.0))  # no orphan scraps
            if cost < best[j]:
                best[j] = cost
                choice[j] = (i, laid[1])
    out: list[Cue] = []
    j = n
    while j > 0:
        i, lines = choice[j]
        out.append(Cue(tokens[i].start, max(tokens[j - 1].end, tokens[i].start), lines))
        j = i
    out.reverse()
    return out
