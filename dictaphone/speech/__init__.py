"""Speech to text: the file transcriber, live transcription, Silero speech detection.
Imported only when used (faster-whisper and onnxruntime are the `transcribe` extra).

See docs/ARCHITECTURE.md for what this room owns and what it may import."""
