"""The floor of the stack: a sounddevice input stream that does nothing with its audio.

    python bench/floor.py SECONDS [BLOCKSIZE [LATENCY]]      # an empty callback
    python bench/floor.py SECONDS paced LATENCY INTERVAL      # paced blocking reads

48 kHz, mono, int16, the default input device; runs SECONDS after the first audio, then
stops. BLOCKSIZE and LATENCY default to 0 and 'high' (run.py passes what dictaphone's
Microphone uses); LATENCY is a name ('low', 'high') or seconds. The paced form opens a
blocking stream and, every INTERVAL seconds, reads whatever ``read_available`` says is
there, so the process never waits inside PortAudio (see capture_modes.py).
"""

import sys
import threading
import time

import sounddevice as sd


def number_or_name(x):
    try:
        return float(x)
    except ValueError:
        return x


seconds = float(sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2] == "paced":
    latency = number_or_name(sys.argv[3])
    interval = float(sys.argv[4])
    with sd.InputStream(samplerate=48000, channels=1, dtype="int16", latency=latency) as s:
        end = None
        deadline = time.monotonic() + 15
        while end is None or time.monotonic() < end:
            n = s.read_available
            if n:
                s.read(n)
                if end is None:
                    end = time.monotonic() + seconds
            elif end is None and time.monotonic() > deadline:
                sys.exit("no audio within 15 s")
            time.sleep(interval)
    sys.exit(0)

blocksize = int(sys.argv[2]) if len(sys.argv) > 2 else 0
latency = number_or_name(sys.argv[3]) if len(sys.argv) > 3 else "high"
first = threading.Event()
pending = [True]


def callback(indata, frames, t, status):
    if pending:  # only the first call does anything
        pending.clear()
        first.set()


with sd.InputStream(samplerate=48000, channels=1, dtype="int16", blocksize=blocksize,
                    latency=latency, callback=callback):
    if not first.wait(15):
        sys.exit("no audio within 15 s")
    time.sleep(seconds)
