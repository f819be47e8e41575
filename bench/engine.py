"""dictaphone's engine through its Python API, with chosen capture parameters.

    python bench/engine.py SECONDS OUT.wav BLOCKSIZE|default LATENCY|default

``MediaRecorder(Microphone(samplerate=48000, blocksize=..., latency=...), "audio/wav",
output=OUT, max_duration=SECONDS)``: the same recorder as ``dictaphone record -q -d``
without the CLI, so run.py can show what dictaphone would cost with other stream
parameters without changing dictaphone. ``default`` leaves a parameter to Microphone; a
BLOCKSIZE of 0 is passed on as 0 (PortAudio's variable blocks).
"""

import sys

from dictaphone import MediaRecorder, Microphone

seconds, out = float(sys.argv[1]), sys.argv[2]
kw = {}
if sys.argv[3] != "default":
    kw["blocksize"] = int(sys.argv[3])
if sys.argv[4] != "default":
    try:
        kw["latency"] = float(sys.argv[4])
    except ValueError:
        kw["latency"] = sys.argv[4]

rec = MediaRecorder(Microphone(samplerate=48000, **kw),
                    "audio/wav", output=out, max_duration=seconds)
rec.start()
if not rec.wait(seconds + 30):
    rec.stop()
    sys.exit("the recording did not end by itself")
sys.exit(1 if rec.error else 0)
