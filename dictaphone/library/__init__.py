"""The clip directory: clips and their metadata, transcripts on disk, waveforms, named
voices, import, trim and export.

See docs/ARCHITECTURE.md for what this room owns and what it may import."""

from . import clips, transcript

# A transcript search with no clips given looks through the whole library. The listing
# imports transcript (each clip shows its first words), so it is passed in here rather
# than imported by transcript: no import circle.
transcript.library_clips = clips.clips

from . import index as _index  # noqa: F401,E402  (keeps the index current: it listens to changes)
