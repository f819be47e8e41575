"""Record a voice memo from the default microphone for a few seconds, with events.

    python examples/memo.py memo.ogg 5
"""

import sys

from dictaphone import MediaRecorder, Microphone

path = sys.argv[1] if len(sys.argv) > 1 else "memo.ogg"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0

recorder = MediaRecorder(Microphone(samplerate=48000), "audio/ogg; codecs=vorbis",
                         output=path, max_duration=seconds)
recorder.onstart = lambda e: print("recording…", file=sys.stderr)
recorder.ondataavailable = lambda e: print(f"{e.data.size} bytes at {e.timecode:.1f} s", file=sys.stderr)
recorder.onstop = lambda e: print(f"saved {e.path}: {e.frames} frames, "
                                  f"{e.dropped_frames} dropped", file=sys.stderr)
recorder.onerror = lambda e: print(f"error: {e.error}", file=sys.stderr)
recorder.start(timeslice=1.0)
recorder.wait()  # max_duration stops it; call recorder.stop() to stop earlier
