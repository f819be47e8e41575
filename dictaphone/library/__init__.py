"""The clip directory: clips and their metadata, transcripts on disk, waveforms.

See docs/ARCHITECTURE.md for what this room owns and what it may import."""
