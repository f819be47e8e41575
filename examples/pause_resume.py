"""Pause and resume from a program: paused audio is left out of the file.

    python examples/pause_resume.py take.flac
"""

import sys
import time

from dictaphone import InvalidStateError, MediaRecorder, Microphone

recorder = MediaRecorder(Microphone(samplerate=48000), "audio/flac",
                         output=sys.argv[1] if len(sys.argv) > 1 else "take.flac")
for kind in ("start", "pause", "resume", "stop"):
    recorder.add_event_listener(kind, lambda e: print(e.type, f"{e.timecode:.2f} s", file=sys.stderr))
recorder.start()
time.sleep(2)
recorder.pause()   # from here on nothing is recorded
time.sleep(1)
recorder.resume()
time.sleep(2)
recorder.stop()    # returns when the file is complete
try:
    recorder.stop()
except InvalidStateError as e:  # as in the browser (MDN): stop() while inactive throws
    print("second stop:", e, file=sys.stderr)
print(f"{recorder.duration:.2f} s recorded", file=sys.stderr)
