"""Speaker labels: the real-time factor, peak memory and accuracy of the speaker step.

    python bench/speakers.py                  # 10 minutes of a 4-voice conversation, 3 runs
    python bench/speakers.py --minutes 2 --repeats 1 --no-write   # a quick look

The conversation: flite's four voices of real speakers (slt, awb, rms, kal), turns of one
or two sentences (2-8 s) in a random order that never repeats a voice, gaps of 0.3-0.8 s,
until ``--minutes`` of audio (16 kHz WAV). Each run is a fresh process that reads it and
does the speaker step alone, as ``transcribe --speakers`` does it after recognition:
Silero VAD, voice embeddings (GE2E in numpy), voice changes, clustering, then labelling a
transcript. Its wall and CPU time, and its peak memory (VmHWM, reset just before the step)
against the process's resident memory before the encoder is loaded (the audio already
decoded, in memory, the engine's modules imported), are reported, medians of ``--repeats`` runs.

Accuracy: diarization error rate (10 ms grid, best label mapping), the number of speakers
found, and (once, with the packaged Whisper tiny.en) the share of recognised words given
their true speaker. Results go to bench/speakers.json and a section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import speech  # noqa: E402
from common import PY, median, save_json  # noqa: E402

RESULTS_JSON = HERE / "speakers.json"
RESULTS_MD = HERE / "RESULTS.md"
SECTION = "speakers"

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[3])
audio = np.load(sys.argv[1])  # decoded by the parent: FFmpeg's own peak stays out of this one
import dictaphone.speech.transcribe, onnxruntime  # imported before the baseline, as transcribe has them
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # the peak (VmHWM) from here on
    f.write("5")
from dictaphone.speech.speakers import Labeller
from dictaphone.library.transcript import Transcript
t0, c0 = time.monotonic(), time.process_time()
lab = Labeller(voices=[]).load()
d = lab.diarize(audio)
wall, cpu = time.monotonic() - t0, time.process_time() - c0
peak = status("VmHWM")
words = None
if sys.argv[2] == "words":
    from dictaphone.speech.transcribe import Transcriber
    import speech
    t = Transcriber(speech.test_model_path(), cpu_threads=2).transcribe_16k(audio)
    from dictaphone.speech.speakers.assign import assign
    from dictaphone.speech.speakers import name_speakers
    out = assign(t, d, name_speakers(d.prints, [], d.encoder))
    words = [(w.start, w.end, w.speaker) for s in out.segments for w in s.words]
print(json.dumps({"wall": wall, "cpu": cpu, "peak_kib": peak, "base_kib": base,
                  "turns": [(x.start, x.end, x.speaker) for x in d.turns], "count": d.count,
                  "words": words}))
"""


def make(path: Path, minutes: float, seed: int = 7) -> speech.Conversation:
    """A conversation of ``minutes``: made a little longer, then cut after the last turn
    that ends in time."""
    per_turn = 4.4  # s, a turn and its gap, on average (measured on these voices)
    turns = speech.conversation_turns(speech.FLITE_VOICES, int(minutes * 60 / per_turn * 1.2) + 4, seed=seed)
    conv = speech.make_conversation(path, turns, seed=seed)
    keep = [t for t in conv.turns if t.end <= minutes * 60 - 0.5] or conv.turns[:1]
    import soundfile as sf

    audio, rate = sf.read(path, dtype="float32")
    end = min(len(audio), int((keep[-1].end + 0.5) * rate))
    speech.write(path, audio[:end], rate)
    return speech.Conversation(path=path, rate=rate, duration=end / rate, turns=keep)


def run_child(path: Path, mode: str) -> dict:
    env = dict(os.environ)
    r = subprocess.run([PY, "-c", CHILD, str(path), mode, str(ROOT / "tests")], env=env,
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"the speaker step failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def word_accuracy(conv, words) -> tuple[float, int]:
    truth = [conv.voice_at((a + b) / 2) for a, b, _ in words]
    found = [s for _, _, s in words]
    mapping = speech.best_mapping(truth, found)
    timed = [(t, f) for t, f in zip(truth, found) if t is not None]
    return sum(mapping.get(f) == t for t, f in timed) / max(len(timed), 1), len(timed)


def markdown(R: dict) -> str:
    m = R["median"]
    lines = [
        f"<!-- section: {SECTION} -->",
        "## Speaker labels (`python bench/speakers.py`)",
        "",
        f"{R['minutes']:g} minutes ({R['duration']:.0f} s) of a conversation of flite's four voices "
        f"(slt, awb, rms, kal; {R['turns']} turns of 2-8 s, gaps 0.3-0.8 s), 16 kHz WAV. The speaker "
        "step alone (Silero VAD, GE2E embeddings in numpy, voice changes, clustering), in a fresh "
        f"process, median of {R['repeats']} runs; load average {R['load'][0]}-{R['load'][1]} "
        f"(2 cores, other work running).",
        "",
        "| measurement | value | goal |",
        "|---|---|---|",
        f"| wall time | {m['wall']:.1f} s (real-time factor {m['rtf']:.3f}) | ≤ 0.05 |",
        f"| CPU time | {m['cpu']:.1f} s | |",
        f"| peak memory of the step (over the process with the audio in memory) | {m['step_mib']:.0f} MiB "
        f"(process peak {m['peak_mib']:.0f} MiB) | |",
        f"| real-time factor of CPU time (what an idle machine's wall time comes to: one thread) | "
        f"{m['cpu'] / R['duration']:.4f} | |",
        f"| speakers found | {R['count']} of 4 | 4 |",
        f"| diarization error rate | {R['der']:.3f} | |",
    ]
    if R.get("words") is not None:
        lines.append(f"| words given their speaker (tiny.en's words, best mapping) | "
                     f"{R['words']:.3f} of {R['word_count']} | ≥ 0.95 |")
    lines += ["", "Runs (wall s, CPU s): " + ", ".join(f"{r['wall']:.1f}/{r['cpu']:.1f}" for r in R["runs"]),
              "", f"<!-- /section: {SECTION} -->"]
    return "\n".join(lines) + "\n"


def write_section(md: str) -> None:
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    pattern = re.compile(rf"<!-- section: {SECTION} -->.*?<!-- /section: {SECTION} -->\n?", re.S)
    text = pattern.sub(lambda _: md, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + md
    RESULTS_MD.write_text(text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-words", action="store_true", help="skip the word accuracy (no Whisper run)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dictaphone-bench-speakers-") as tmp:
        path = Path(tmp) / "conversation.wav"
        conv = make(path, args.minutes)
        import numpy as np

        from dictaphone.speech.transcribe import read_audio

        samples = Path(tmp) / "conversation.npy"
        np.save(samples, read_audio(str(path)))
        load0 = open("/proc/loadavg").read().split()[0]
        runs = []
        for i in range(args.repeats):
            mode = "words" if i == 0 and not args.no_words else "plain"
            r = run_child(samples, mode)
            runs.append(r)
            print(f"run {i + 1}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['count']} speakers",
                  file=sys.stderr)
        load1 = open("/proc/loadavg").read().split()[0]
        der = speech.diarization_error(conv, runs[0]["turns"])
        R = {"minutes": args.minutes, "duration": conv.duration, "turns": len(conv.turns),
             "repeats": args.repeats, "load": [load0, load1], "runs": runs, "der": der,
             "count": runs[0]["count"]}
        R["median"] = {"wall": median([r["wall"] for r in runs]), "cpu": median([r["cpu"] for r in runs]),
                       "peak_mib": median([r["peak_kib"] / 1024 for r in runs]),
                       "step_mib": median([(r["peak_kib"] - r["base_kib"]) / 1024 for r in runs])}
        R["median"]["rtf"] = R["median"]["wall"] / conv.duration
        if runs[0]["words"] is not None:
            R["words"], R["word_count"] = word_accuracy(conv, runs[0]["words"])
        for r in runs:
            r.pop("turns", None)
            r.pop("words", None)
    md = markdown(R)
    print(md)
    if not args.no_write:
        save_json(RESULTS_JSON, R)
        write_section(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
