"""Sound in and out of devices: input sources (microphone, files), the ring buffer
between the audio callback and the writer, levels, and playback.

See docs/ARCHITECTURE.md for what this room owns and what it may import."""
