"""Big clip libraries made quickly from one real recorded clip (tests and bench/library.py).

``build(directory, source, n)`` makes ``n`` clips from the clip whose audio is ``source``
(a clip recorded by ``dictaphone record`` and transcribed: its ``.json`` and
``.transcript.json`` sidecars beside it): the audio is hard-linked (no extra disk), the
sidecars are the real ones with the clip's own name and date, one clip an hour back from
now, newest first. Each clip's transcript keeps every real segment and gains one more
sentence of its own, so searches have something to tell the clips apart by:

- ``"This is note <number>."``: ``number_word(i)`` spelled out is unique to the clip;
- a topic from ``TOPICS`` (``TOPICS[i % len(TOPICS)]``): a word shared by every
  ``len(TOPICS)``-th clip;
- ``RARE`` in one clip in a thousand (``i % 1000 == 7``).
"""

from __future__ import annotations

import datetime
import json
import os

TOPICS = ["budget", "garden", "holiday", "invoice", "kitchen", "library", "meeting", "parking",
          "planning", "recipe", "school", "tennis", "ticket", "train", "weather", "window",
          "birthday", "doctor", "harvest", "lecture"]
RARE = "zanzibar"

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def number_word(i: int) -> str:
    """A spelled-out number that is one word (no spaces): 1234 -> 'onetwothreefour'."""
    return "".join(_ONES[int(c)] for c in str(i))


def name_of(i: int) -> str:
    return f"memo {i:05d}"


def build(directory, source, n: int, start: int = 0, now: datetime.datetime | None = None) -> list[str]:
    """Make clips ``start`` .. ``start + n - 1`` in ``directory`` from ``source``; the names."""
    directory = os.fspath(directory)
    source = os.fspath(source)
    os.makedirs(directory, exist_ok=True)
    ext = os.path.splitext(source)[1]
    with open(source + ".json", encoding="utf-8") as f:
        meta = json.load(f)
    with open(source + ".transcript.json", encoding="utf-8") as f:
        transcript = json.load(f)
    duration = float(meta.get("duration") or transcript.get("duration") or 1.0)
    now = now or datetime.datetime.now().astimezone().replace(microsecond=0)
    names = []
    for i in range(start, start + n):
        name = name_of(i)
        path = os.path.join(directory, name + ext)
        os.link(source, path)
        created = (now - datetime.timedelta(hours=i)).isoformat(timespec="seconds")
        m = dict(meta, name=name, created=created, size=os.path.getsize(source))
        with open(path + ".json", "w", encoding="utf-8") as f:
            json.dump(m, f)
        words = ["This", "is", "note", number_word(i) + ",", "about", TOPICS[i % len(TOPICS)]]
        if i % 1000 == 7:
            words += ["and", RARE]
        words[-1] += "."
        t0 = max(0.0, duration - 0.5)
        step = 0.5 / len(words)
        extra = {"start": round(t0, 3), "end": round(duration, 3), "text": " ".join(words),
                 "words": [{"word": " " + w, "start": round(t0 + k * step, 3),
                            "end": round(t0 + (k + 1) * step, 3), "probability": 0.9}
                           for k, w in enumerate(words)]}
        t = dict(transcript, segments=list(transcript["segments"]) + [extra])
        t["text"] = " ".join(s["text"].strip() for s in t["segments"])
        with open(path + ".transcript.json", "w", encoding="utf-8") as f:
            json.dump(t, f)
        names.append(name)
    return names
