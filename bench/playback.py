"""`play --speed`: the two time-stretchers (FFmpeg's atempo through PyAV, and dictaphone's
numpy WSOLA) on a tone and on espeak speech, at 0.5x to 2x.

For each: CPU time per second of input (process time, repeated, the best of three), the
length out against the length asked for, the pitch of a 440 Hz tone after stretching (the
spectrum's peak), the tone's envelope ripple (RMS over 10 ms windows, max/min: 1.0 is a
steady tone; a stretcher that does not line periods up beats), and for speech the
correlation of its spectrogram with the original's stretched in time (1.0 is the same
sounds at the new pace).

    .venv/bin/python bench/playback.py          # prints a table; writes bench/playback.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from dictaphone.capture.stretch import make_stretcher  # noqa: E402

RATE = 48000
SPEEDS = (0.5, 0.75, 1.25, 1.5, 2.0)


def stretch(x, speed, kind):
    s = make_stretcher(RATE, 1, speed, prefer=kind)
    best = None
    for _ in range(3):
        s = make_stretcher(RATE, 1, speed, prefer=kind)
        t0 = time.process_time()
        out = [s.process(x[i:i + 8192]) for i in range(0, len(x), 8192)] + [s.flush()]
        cpu = time.process_time() - t0
        best = cpu if best is None else min(best, cpu)
    return np.concatenate(out)[:, 0], best, s.name


def peak_hz(y):
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * RATE / len(y))


def ripple(y):
    w = RATE // 100
    n = len(y) // w
    rms = np.sqrt((y[:n * w].reshape(n, w) ** 2).mean(axis=1))
    return float(rms.max() / max(rms.min(), 1e-9))


def spectrogram(y, hop):
    n = 1024
    frames = [np.abs(np.fft.rfft(y[i:i + n] * np.hanning(n)))[:256] for i in range(0, len(y) - n, hop)]
    return np.log1p(np.array(frames))


def speech_match(x, y, speed):
    a = spectrogram(x, int(512 * speed))
    b = spectrogram(y, 512)
    m = min(len(a), len(b))
    a, b = a[:m].ravel(), b[:m].ravel()
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    t = np.arange(RATE * 10) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "s.wav")
        subprocess.run(["espeak-ng", "-w", os.path.join(tmp, "e.wav"),
                        "The quick brown fox jumps over the lazy dog. Call the dentist tomorrow morning."],
                       check=True, capture_output=True)
        subprocess.run(["sox", os.path.join(tmp, "e.wav"), "-b", "16", wav, "channels", "1", "rate",
                        str(RATE)], check=True, capture_output=True)
        import soundfile as sf

        speech = sf.read(wav, dtype="float32", always_2d=True)[0]
    rows = []
    for kind in ("atempo", "wsola"):
        for speed in SPEEDS:
            y, cpu, name = stretch(tone, speed, kind)
            ys, _, _ = stretch(speech, speed, kind)
            mid = y[RATE // 2: -RATE // 2]
            rows.append({"stretcher": name, "speed": speed,
                         "cpu_ms_per_s": round(cpu / 10 * 1000, 2),
                         "length_ratio": round(len(y) / (len(tone) / speed), 4),
                         "tone_hz": round(peak_hz(mid), 1), "ripple": round(ripple(mid), 3),
                         "speech_match": round(speech_match(speech[:, 0], ys, speed), 3)})
    print(f"load: {os.getloadavg()[0]:.2f}")
    print(f"{'stretcher':9} {'speed':>5} {'CPU ms/s':>8} {'length':>7} {'440 Hz ->':>9} {'ripple':>6} {'speech':>6}")
    for r in rows:
        print(f"{r['stretcher']:9} {r['speed']:5} {r['cpu_ms_per_s']:8} {r['length_ratio']:7} "
              f"{r['tone_hz']:9} {r['ripple']:6} {r['speech_match']:6}")
    with open(os.path.join(HERE, "playback.json"), "w") as f:
        json.dump({"load": os.getloadavg()[0], "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
