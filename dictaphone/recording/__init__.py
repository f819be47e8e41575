"""The recorder: MediaRecorder (state machine and public API) and the parts it drives.

See docs/ARCHITECTURE.md for what this room owns and what it may import."""
