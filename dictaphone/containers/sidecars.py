"""The files kept beside a recording, named after it: ``<audio>.markers.json`` (its
markers, containers/markers.py) and ``<audio>.transcript.json`` (its transcript,
library/transcript.py). Clip metadata (``<audio>.json``) is the library's own.

The names live here, below the recorder, so that the recorder, which makes new audio, can
clear what describes audio that is gone without knowing the library that writes it."""

from __future__ import annotations

import os

MARKERS = ".markers.json"
TRANSCRIPT = ".transcript.json"

#: the sidecars that describe a file's audio: wrong once the file is recorded over
DESCRIBING = (MARKERS, TRANSCRIPT)


def remove_stale(audio: str | os.PathLike) -> None:
    """Remove the sidecars that describe ``audio``'s audio (a file recorded anew). One
    that cannot be removed is left: it must not cost the recording."""
    for suffix in DESCRIBING:
        try:
            os.unlink(os.fspath(audio) + suffix)
        except OSError:
            pass
