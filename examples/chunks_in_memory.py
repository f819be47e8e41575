"""The browser's way: keep the recording in memory and collect the blobs.

Every `dataavailable` blob is a piece of one WAV file; joined, they are the whole file.

    python examples/chunks_in_memory.py speech.wav out.wav
"""

import sys

from dictaphone import FileSource, MediaRecorder

source = FileSource(sys.argv[1] if len(sys.argv) > 1 else "speech.wav")
chunks = []
recorder = MediaRecorder(source, "audio/wav")  # no output: in memory
recorder.ondataavailable = lambda e: chunks.append(e.data.bytes())
recorder.start(timeslice=0.5)  # a blob every half second of audio
recorder.wait()  # a file source ends by itself at its end

out = sys.argv[2] if len(sys.argv) > 2 else "out.wav"
with open(out, "wb") as f:
    f.write(b"".join(chunks))
print(f"{len(chunks)} blobs, {sum(map(len, chunks))} bytes -> {out}", file=sys.stderr)
