"""libsndfile's error messages, said in words a user can act on. The one place that maps
them: every reader of audio files (an --input, play, show, the library) goes through
:func:`explain`, so no "SF_INFO struct incomplete" or "System error" reaches a user.

Pure Python; soundfile is not imported here.
"""

from __future__ import annotations

import os
import stat

RECOVER_HINT = "if a recorder was killed while writing it, 'dictaphone recover FILE' may repair it"

#: (words in libsndfile's message, what to tell the user); the first that matches wins
_KNOWN = (
    ("format not recognised",
     "not a readable audio file: its contents are in none of the formats libsndfile knows "
     "(WAV, FLAC, Ogg Vorbis/Opus, MP3, ...); check the file, or convert it with sox or ffmpeg"),
    ("sf_info struct incomplete",
     "its header gives no usable sample rate or channel count (a rate of 0 Hz, or 0 channels): "
     "the header is damaged; " + RECOVER_HINT),
    ("no 'data' chunk",
     "its WAV header has no data chunk (the file was cut short before any audio); " + RECOVER_HINT),
    ("'fmt ' chunk",
     "its WAV header is damaged (the 'fmt ' chunk that gives the rate and encoding is malformed); "
     + RECOVER_HINT),
    ("chunk",
     "its header is damaged (a chunk is malformed); " + RECOVER_HINT),
    ("unexpected end of file",
     "it ends in the middle of its header (cut short); " + RECOVER_HINT),
    ("unimplemented format",  # a header cut off inside a chunk, or an encoding it lacks
     "its header is cut short or names an encoding libsndfile cannot read; " + RECOVER_HINT
     + ", else convert it with sox or ffmpeg"),
    ("system error",
     "it cannot be read as a file (libsndfile needs a regular file it can seek in)"),
    ("unsupported encoding",
     "its audio is in an encoding libsndfile cannot decode; convert it with sox or ffmpeg"),
    ("bad sample rate", "its header gives an impossible sample rate: the header is damaged; "
     + RECOVER_HINT),
)


def raw_text(error: BaseException) -> str:
    """libsndfile's own words, without soundfile's "Error opening 'x': " prefix."""
    text = getattr(error, "error_string", None) or str(error).strip() or type(error).__name__
    if text.startswith("Error opening") and ": " in text:
        text = text.split(": ", 1)[1]
    return text.strip().rstrip(".")


def explain(error: BaseException, path: str | os.PathLike | None = None) -> str:
    """What is wrong with the file (no "path:" prefix): a reason and, where there is
    one, what to do. Looks at the file itself for the cases libsndfile words badly."""
    if path is not None:
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                return "is a directory, not an audio file"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                return "is a device, not an audio file"
            if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                return "is empty (0 bytes): there is no audio in it"
            if stat.S_ISREG(st.st_mode) and "not a regular file" in raw_text(error).lower():
                # libsndfile's words for an .mp3 (or other) file whose bytes are no audio:
                # "File does not exist or is not a regular file (possibly a pipe?)"
                return _KNOWN[0][1]
    if isinstance(error, PermissionError):
        return "cannot be read: permission denied"
    if isinstance(error, FileNotFoundError):
        return "no such file"
    text = raw_text(error)
    low = text.lower()
    for words, meaning in _KNOWN:
        if words in low:
            return meaning
    return f"cannot be read as audio ({text})"
