"""The two speech detectors of the hands-free options, measured on speech in noise.

    python bench/vad.py            # writes the tables into docs/VAD.md (between its markers)
    python bench/vad.py --print    # only prints them

A 60 s timeline of espeak-ng sentences (10 of them, pauses of 1 to 4 s) is mixed with each
of: pink noise, babble (six other espeak-ng voices talking at once, continuously), keyboard
typing (4 ms clicks every 90 to 250 ms, in bursts) and music (sox-synthesised plucked
chords and a bass line with a kick drum), each at speech-to-noise ratios of 20, 10 and 0 dB
(speech RMS over its voiced stretches against the noise's RMS). Everything is 48 kHz mono and
reproducible (fixed seeds, no dither).

Two measures:

- *windows*: each 30 ms window the detector judges, against the truth (a window is speech
  when it lies inside a sentence, from its first to its last voiced sample): precision and
  recall of the speech windows.
- *gate*: what `record --skip-silence 1` keeps of the timeline through the real VoiceGate
  (pre-roll, tail and hangover included): seconds of speech kept (of the total) and seconds
  of non-speech kept. A good detector keeps all the speech and little else.

Needs the transcribe extra (onnxruntime and faster-whisper's Silero model), espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import speech  # noqa: E402  (tests/speech.py: espeak-ng with a known timeline)

from dictaphone.speech.silero import SileroDetector, SileroVAD  # noqa: E402
from dictaphone.recording.vad import LevelDetector, VoiceGate  # noqa: E402

RATE = 48000
WINDOW = int(0.03 * RATE)
SECONDS = 60.0
SNRS = (20, 10, 0)
DOC = ROOT / "docs" / "VAD.md"
BEGIN, END = "<!-- bench/vad.py: begin -->", "<!-- bench/vad.py: end -->"

TIMELINE = [
    "Please remember to buy milk and bread.",
    "The meeting with the dentist is on Friday morning.",
    "Call the plumber about the kitchen sink.",
    "Send the report to Maria before lunch.",
    "The train to the airport leaves at seven.",
    "Water the plants on the balcony every evening.",
    "We need new batteries for the smoke alarm.",
    "Book a table for four at the Italian place.",
    "The invoice number is written on the back.",
    "Ask the neighbours to feed the cat on Sunday.",
]
BABBLE = [
    "I think we should paint the fence green this summer and then sell the old car.",
    "Nobody told me that the shop on the corner had closed down for good last week.",
    "My brother keeps a small boat at the harbour and sails it every weekend.",
    "The library has a new section for children with comfortable chairs and games.",
    "If the weather stays like this we can have the party in the garden after all.",
    "She said the concert started late because the drummer missed his flight.",
]


def timeline(rng) -> tuple[np.ndarray, np.ndarray]:
    """The speech timeline and its truth (a bool per sample)."""
    n = int(SECONDS * RATE)
    x = np.zeros(n)
    truth = np.zeros(n, dtype=bool)
    t = 1.5
    for text in TIMELINE:
        s = speech.espeak(text, RATE)
        loud = np.flatnonzero(np.abs(s) > 10 ** (-50 / 20))
        a = int(t * RATE)
        if a + len(s) > n:
            break
        x[a:a + len(s)] += s
        truth[a + loud[0]:a + loud[-1] + 1] = True
        t += len(s) / RATE + rng.uniform(1.0, 4.0)
    return x, truth


def pink(n: int, rng) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    return np.fft.irfft(spec, n)


def babble(n: int, rng) -> np.ndarray:
    out = np.zeros(n)
    for i, text in enumerate(BABBLE):
        with tempfile.TemporaryDirectory() as d:
            wav = os.path.join(d, "b.wav")
            subprocess.run(["espeak-ng", "-p", str(20 + 12 * i), "-s", str(150 + 8 * i), "-v",
                            ["en", "en-us", "en+f3", "en+m3", "en+f2", "en+m7"][i], "-w", wav, text],
                           check=True, capture_output=True, timeout=60)
            raw = os.path.join(d, "r.wav")
            subprocess.run(["sox", "-D", wav, "-b", "16", raw, "channels", "1", "rate", str(RATE)],
                           check=True, capture_output=True, timeout=60)
            import soundfile as sf

            v, _ = sf.read(raw, dtype="float64")
        loop = np.tile(v, int(np.ceil(n / len(v))) + 1)
        start = int(rng.integers(0, len(v)))
        out += loop[start:start + n]
    return out


def typing(n: int, rng) -> np.ndarray:
    y = np.zeros(n)
    burst = int(0.004 * RATE)
    i = int(0.2 * RATE)
    while i + burst < n:
        y[i:i + burst] += rng.standard_normal(burst) * np.exp(-np.arange(burst) / (burst / 4))
        i += int(rng.uniform(0.09, 0.25) * RATE)
        if rng.random() < 0.05:  # a pause in the typing
            i += int(rng.uniform(0.5, 2.0) * RATE)
    return y


def music(n: int, rng) -> np.ndarray:
    """Plucked chords (sox synth), a bass line and a kick drum, 120 bpm."""
    chords = [("C4", "E4", "G4"), ("A3", "C4", "E4"), ("F3", "A3", "C4"), ("G3", "B3", "D4")]
    with tempfile.TemporaryDirectory() as d:
        parts = []
        for k, chord in enumerate(chords):
            p = os.path.join(d, f"c{k}.wav")
            cmd = ["sox", "-D", "-n", "-r", str(RATE), "-b", "16", "-c", "1", p, "synth", "2"]
            for note in chord:
                cmd += ["pluck", note]
            cmd += ["vol", "0.3"]
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            parts.append(p)
        bar = os.path.join(d, "bar.wav")
        subprocess.run(["sox", "-D", *parts, bar], check=True, capture_output=True, timeout=60)
        import soundfile as sf

        chordloop, _ = sf.read(bar, dtype="float64")
    y = np.tile(chordloop, int(np.ceil(n / len(chordloop))) + 1)[:n]
    t = np.arange(n) / RATE
    bass_notes = np.repeat([65.4, 55.0, 43.7, 49.0], 2)  # C2 A1 F1 G1, a note a second
    f = bass_notes[(t.astype(int)) % len(bass_notes)]
    y += 0.3 * np.sin(2 * np.pi * np.cumsum(f) / RATE)
    beat = int(0.5 * RATE)
    kick = np.sin(2 * np.pi * 55 * np.arange(int(0.15 * RATE)) / RATE) * np.exp(-np.arange(int(0.15 * RATE)) / (0.04 * RATE))
    for i in range(0, n - len(kick), beat):
        y[i:i + len(kick)] += 0.8 * kick
    return y


NOISES = {"pink noise": pink, "babble": babble, "keyboard typing": typing, "music": music}


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0


def mix(sp: np.ndarray, truth: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = rms(sp[truth]) / (rms(noise) * 10 ** (snr_db / 20))
    y = sp + gain * noise
    peak = np.abs(y).max()
    if peak > 0.99:
        y *= 0.99 / peak
    return (np.round(y * 32767) / 32767).astype(np.float32)  # as a 16-bit recording would


def window_scores(detector, x: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    n = len(x) // WINDOW
    said = np.zeros(n, dtype=bool)
    for i in range(n):
        said[i] = bool(detector(x[i * WINDOW:(i + 1) * WINDOW, None]))
    real = truth[:n * WINDOW].reshape(n, WINDOW).mean(axis=1) >= 0.5
    tp = np.sum(said & real)
    precision = tp / max(1, np.sum(said))
    recall = tp / max(1, np.sum(real))
    return float(precision), float(recall)


def gate_kept(detector, x: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(speech seconds kept, non-speech seconds kept) by a --skip-silence 1 gate."""
    gate = VoiceGate(RATE, detector, skip_silence=1.0)
    # The gate returns arrays of frames; track positions with an index channel.
    idx = np.arange(len(x), dtype=np.float64)
    frames = np.stack([x.astype(np.float64), idx], axis=1)
    kept = np.zeros(len(x), dtype=bool)

    class Channel0:
        """The detector hears channel 0 only (the index channel rides along)."""

        def __init__(self, d):
            self.d = d

        def __call__(self, w):
            return self.d(w[:, :1].astype(np.float32))

    gate.detector = Channel0(detector)
    for i in range(0, len(x), 12000):
        for kind, data in gate.process(frames[i:i + 12000]):
            if kind == "write":
                kept[data[:, 1].astype(np.int64)] = True
    for kind, data in gate.flush():
        if kind == "write":
            kept[data[:, 1].astype(np.int64)] = True
    return float(np.sum(kept & truth) / RATE), float(np.sum(kept & ~truth) / RATE)


class Oracle:
    """A detector that knows the truth: what the gate itself keeps around perfect verdicts."""

    def __init__(self, truth: np.ndarray):
        self.truth, self.pos = truth, 0

    def __call__(self, w) -> bool:
        a, self.pos = self.pos, self.pos + len(w)
        return bool(self.truth[a:self.pos].mean() >= 0.5)


def run() -> tuple[str, dict]:
    rng = np.random.default_rng(11)
    sp, truth = timeline(rng)
    total_speech = truth.sum() / RATE
    global IDEAL
    IDEAL = gate_kept(Oracle(truth), sp.astype(np.float32), truth)
    vad = SileroVAD()
    results = {}
    t0 = time.monotonic()
    for name, make in NOISES.items():
        noise = make(len(sp), np.random.default_rng(list(NOISES).index(name)))
        for snr in SNRS:
            x = mix(sp, truth, noise, snr)
            for det_name in ("level", "silero"):
                def detector():
                    if det_name == "level":
                        return LevelDetector()
                    vad.reset()
                    return SileroDetector(RATE, vad=vad)
                p, r = window_scores(detector(), x, truth)
                ks, kn = gate_kept(detector(), x, truth)
                results[(name, snr, det_name)] = (p, r, ks, kn)
                print(f"{name:16s} {snr:3d} dB {det_name:6s} precision {p:.2f} recall {r:.2f} "
                      f"kept speech {ks:5.1f}/{total_speech:.1f} s, kept other {kn:5.1f} s",
                      file=sys.stderr, flush=True)
    # the noise alone: what each keeps of 60 s without any speech
    alone = {}
    for name, make in NOISES.items():
        noise = make(len(sp), np.random.default_rng(list(NOISES).index(name)))
        y = (noise * (rms(sp[truth]) / (rms(noise) * 10 ** (10 / 20)))).astype(np.float32)
        for det_name in ("level", "silero"):
            vad.reset()
            d = LevelDetector() if det_name == "level" else SileroDetector(RATE, vad=vad)
            _, kn = gate_kept(d, y, np.zeros(len(y), dtype=bool))
            alone[(name, det_name)] = kn
    elapsed = time.monotonic() - t0
    return table(results, alone, total_speech, elapsed), results


def table(results, alone, total_speech, elapsed) -> str:
    lines = [BEGIN, "",
             f"Generated by `python bench/vad.py` ({elapsed:.0f} s): a {SECONDS:.0f} s timeline with "
             f"{total_speech:.1f} s of speech in {len(TIMELINE)} sentences; noise mixed at each "
             "speech-to-noise ratio. *P/R*: precision and recall of the 30 ms speech windows. "
             "*kept*: seconds of speech / of everything else that `--skip-silence 1` writes "
             f"(of {total_speech:.1f} s / {SECONDS - total_speech:.1f} s; a detector that knew the "
             f"truth would keep {IDEAL[0]:.1f} s / {IDEAL[1]:.1f} s: the gate's pre-roll, tail and "
             "hangover around each sentence).", "",
             "| noise | SNR | level P/R | silero P/R | level kept speech / other | silero kept speech / other |",
             "|---|---|---|---|---|---|"]
    for name in NOISES:
        for snr in SNRS:
            lp, lr, lks, lkn = results[(name, snr, "level")]
            sp_, sr, sks, skn = results[(name, snr, "silero")]
            lines.append(f"| {name} | {snr} dB | {lp:.2f} / {lr:.2f} | {sp_:.2f} / {sr:.2f} | "
                         f"{lks:.1f} s / {lkn:.1f} s | {sks:.1f} s / {skn:.1f} s |")
    lines += ["", "The noise alone (60 s, at the level it has at 10 dB SNR above), what "
              "`--skip-silence 1` keeps:", "",
              "| noise | level | silero |", "|---|---|---|"]
    for name in NOISES:
        lines.append(f"| {name} | {alone[(name, 'level')]:.1f} s | {alone[(name, 'silero')]:.1f} s |")
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--print", action="store_true", help="print the tables; leave docs/VAD.md alone")
    args = ap.parse_args()
    text, _ = run()
    if args.print:
        print(text)
        return
    doc = DOC.read_text()
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: text, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(doc)
    print(f"wrote the tables into {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
