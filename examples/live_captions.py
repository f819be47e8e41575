"""Captions while recording: each utterance's text as soon as it has been said.

Records the microphone (or, with --input FILE, a file in real time) to OUTPUT, prints
"[mm:ss.s] text" on stdout for each utterance while recording (on a terminal, stderr shows
the words while they are spoken, the tentative ones in brackets), and saves the whole
transcript beside the recording. Needs the transcribe extra. Stop with Ctrl-C.

    python examples/live_captions.py memo.flac
    python examples/live_captions.py --input talk.wav copy.wav
    DICTAPHONE_MODEL=tiny.en python examples/live_captions.py memo.flac
"""

import argparse
import signal
import sys
import threading

from dictaphone import FileSource, MediaRecorder, Microphone, transcript
from dictaphone.speech.live import LiveTranscriber

ap = argparse.ArgumentParser()
ap.add_argument("output")
ap.add_argument("--input", help="a file to record in real time instead of the microphone")
args = ap.parse_args()

source = FileSource(args.input, realtime=True) if args.input else Microphone()
rec = MediaRecorder(source, "audio/flac" if args.output.endswith(".flac") else "audio/wav",
                    output=args.output)
live = LiveTranscriber(rec)  # the model from $DICTAPHONE_MODEL, else base.en; loaded now


def caption(e):
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr, flush=True)  # the words being said go
    m, s = divmod(e.start, 60)
    print(f"[{int(m):02d}:{s:04.1f}] {e.text}", flush=True)


def being_said(e):
    if sys.stderr.isatty():
        rest = e.text[len(e.committed):].strip()
        line = f"… {e.committed} [{rest}]" if rest else f"… {e.committed}"
        print(f"\r\033[K{line[-200:]}", end="", file=sys.stderr, flush=True)


rec.ontranscript = caption
rec.onpartial = being_said
done = threading.Event()
rec.onstop = lambda e: done.set()
signal.signal(signal.SIGINT, lambda *a: done.set())
rec.start()
done.wait()  # the end of the file, or Ctrl-C
if rec.state != "inactive":
    rec.stop()  # the file is complete when this returns
rec.wait()
t = live.close()  # the last utterance's caption comes now
transcript.save(args.output, t)
print(f"saved {args.output} and its transcript ({len(t.segments)} segments)", file=sys.stderr)
