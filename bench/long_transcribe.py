"""`dictaphone transcribe` of long recordings: peak memory must not grow with the length.

Files of 10 minutes, 1 hour and 3 hours (16 kHz mono FLAC, made cheaply: digital silence
with three espeak sentences at the start, the middle and the end) are transcribed with the
packaged tiny.en model in a subprocess; its peak RSS (wait4's ru_maxrss) and wall time are
recorded, beside "today's way" before windows (the whole file decoded into memory, then
recognised: faster-whisper's decode_audio + Transcriber.transcribe_16k) for 10 min and 1 h.

Target: the 3-hour file's peak RSS within 10 % (+ 30 MB) of the 10-minute file's, and every
sentence found at its time (±1 s).

    .venv/bin/python bench/long_transcribe.py     # ~2 min; writes bench/long_transcribe.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import audiolab  # noqa: E402

RATE = 16000
SENTENCES = ["Call the dentist tomorrow morning.", "The quick brown fox jumps over the lazy dog.",
             "Remember to buy milk and bread."]


def make_long(path: str, seconds: float, sentences, rate: int = RATE) -> None:
    """A FLAC of ``seconds`` of digital silence with the (time, text) sentences spoken."""
    clips = []
    for i, (at, text) in enumerate(sentences):
        p = audiolab.make_speech(os.path.join(os.path.dirname(path), f"s{i}.wav"), text, rate=rate)
        clips.append((int(at * rate), sf.read(p, dtype="int16")[0]))
    total, block = int(seconds * rate), rate * 60
    with sf.SoundFile(path, "w", rate, 1, "PCM_16", format="FLAC") as f:
        pos = 0
        while pos < total:
            n = min(block, total - pos)
            buf = np.zeros(n, np.int16)
            for at, x in clips:
                a, b = max(at, pos), min(at + len(x), pos + n)
                if a < b:
                    buf[a - pos:b - pos] = x[a - at:b - at]
            f.write(buf)
            pos += n


def placed(seconds: float):
    return [(5.0, SENTENCES[0]), (seconds / 2, SENTENCES[1]), (seconds - 20.0, SENTENCES[2])]


def peak_rss(argv, env) -> dict:
    """Run argv; its own peak RSS (MB) from wait4, wall time, output."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return {"wall_s": round(time.monotonic() - t0, 1), "status": os.waitstatus_to_exitcode(status),
            "peak_mb": round(usage.ru_maxrss / 1024, 1), "stdout": out.decode(), "stderr": err.decode()[-300:]}


OLD_WAY = """
import sys
from faster_whisper import decode_audio
from dictaphone.speech.transcribe import Transcriber
t = Transcriber(sys.argv[2]).load()
r = t.transcribe_16k(decode_audio(sys.argv[1], sampling_rate=16000))
print(r.to_srt())
"""


def found(srt: str, sentences) -> bool:
    import re

    starts = [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
              for h, m, s, ms in re.findall(r"(\d+):(\d+):(\d+),(\d+) -->", srt)]
    return len(starts) >= len(sentences) and all(
        any(abs(s - at) < 1.5 for s in starts) for at, _ in sentences)


def main() -> None:
    import speech

    model = speech.test_model_path()
    rows = []
    with tempfile.TemporaryDirectory(prefix="dictaphone-long-") as tmp:
        env = dict(os.environ, DICTAPHONE_MODEL=model, DICTAPHONE_HOME=os.path.join(tmp, "home"))
        for label, seconds in (("10 min", 600), ("1 h", 3600), ("3 h", 10800)):
            path = os.path.join(tmp, f"{seconds}.flac")
            make_long(path, seconds, placed(seconds))
            r = peak_rss([sys.executable, "-m", "dictaphone", "transcribe", path, "-f", "srt", "-q"], env)
            rows.append({"way": "windows", "length": label, "peak_mb": r["peak_mb"], "wall_s": r["wall_s"],
                         "found": found(r["stdout"], placed(seconds)), "status": r["status"]})
            if seconds <= 3600:
                r = peak_rss([sys.executable, "-c", OLD_WAY, path, model], env)
                rows.append({"way": "whole file (before)", "length": label, "peak_mb": r["peak_mb"],
                             "wall_s": r["wall_s"], "found": found(r["stdout"], placed(seconds)),
                             "status": r["status"]})
    short = next(r for r in rows if r["way"] == "windows" and r["length"] == "10 min")["peak_mb"]
    long = next(r for r in rows if r["way"] == "windows" and r["length"] == "3 h")
    ok = long["peak_mb"] <= short * 1.10 + 30 and all(r["found"] for r in rows if r["way"] == "windows")
    print(f"load: {os.getloadavg()[0]:.2f}")
    print(f"{'way':22} {'length':7} {'peak MB':>8} {'wall s':>7}  words at their times")
    for r in rows:
        print(f"{r['way']:22} {r['length']:7} {r['peak_mb']:8} {r['wall_s']:7}  {r['found']}")
    print(f"target (3 h peak <= 10 min peak x 1.10 + 30 MB, every sentence found): {'PASS' if ok else 'FAIL'}")
    with open(os.path.join(HERE, "long_transcribe.json"), "w") as f:
        json.dump({"load": os.getloadavg()[0], "rows": rows, "pass": ok}, f, indent=2)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
