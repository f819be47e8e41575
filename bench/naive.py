"""The naive Python recorder: python-sounddevice's rec_unlimited example pattern.

    python bench/naive.py SECONDS OUT.wav [BLOCKSIZE] [LATENCY]

The callback puts a copy of each block on a queue.Queue; the main thread takes them off and
writes them with soundfile. Records exactly SECONDS of audio (counted in frames, like
``arecord -d`` and ``dictaphone record -d``), 48 kHz mono 16-bit WAV, same stream
parameters as dictaphone (run.py passes them).
"""

import queue
import sys

import sounddevice as sd
import soundfile as sf

seconds = float(sys.argv[1])
path = sys.argv[2]
blocksize = int(sys.argv[3]) if len(sys.argv) > 3 else 0
latency = sys.argv[4] if len(sys.argv) > 4 else "high"
try:
    latency = float(latency)
except ValueError:
    pass

q = queue.Queue()


def callback(indata, frames, time, status):
    if status:
        print(status, file=sys.stderr)
    q.put(indata.copy())


target = int(round(seconds * 48000))
written = 0
with sf.SoundFile(path, mode="x", samplerate=48000, channels=1, subtype="PCM_16") as f:
    with sd.InputStream(samplerate=48000, channels=1, dtype="int16", blocksize=blocksize,
                        latency=latency, callback=callback):
        while written < target:
            data = q.get(timeout=15)
            data = data[:target - written]
            f.write(data)
            written += len(data)
