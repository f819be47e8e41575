"""Audio files and their bytes: formats and their limits, encoders (crash-safe headers,
pipe-safe WAV), Ogg Vorbis through libvorbis, repair after a crash, markers inside containers,
and libsndfile's messages in words.

See docs/ARCHITECTURE.md for what this room owns and what it may import."""
