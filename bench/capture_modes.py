"""Research: what does capturing through sounddevice/PortAudio cost, and which mode is cheapest?

    python bench/capture_modes.py [--seconds 15] [--repeats 2] [--quick]

Starts its own PulseAudio server (tests/audiolab.PulseServer: a 48 kHz mono null sink whose
monitor is the default source), loops a tone into it, and measures, one fresh process per
configuration, a stream that does nothing with its audio:

- callback streams (``sd.InputStream(callback=...)``, int16, mono, 48 kHz) over a grid of
  ``blocksize`` (0, 1024, 4800, 9600) x ``latency`` ('low', 'high', 0.2, 0.5), on ALSA's
  ``default`` device, plus the ``pulse`` device, RawInputStream, float32,
  ``PaAlsa_SetNumPeriods`` (PortAudio's ALSA extension, called through ctypes on the
  same libportaudio that sounddevice loaded) and libpulse's ``PULSE_LATENCY_MSEC``;
- blocking streams (no callback, a ``stream.read(N)`` loop) with the same parameters;
- ``arecord`` on the same source, and the server alone (no client) as a baseline.

For each it reports the process's CPU (user+sys, all threads, measured inside the process
with getrusage over a steady window that starts ``settle`` s after the first audio, so
imports and start-up are excluded) as % of one core, the PulseAudio server's extra CPU in
the same window, wake-ups (voluntary context switches) per second, callbacks per second and
their sizes, the delay from ``start()`` to the first audio, and how long ``stop()`` took.
Every configuration runs ``--repeats`` times, interleaved, so machine noise shows as spread.

Then three smaller scenarios: a "busy" sink (the player asks for 20 ms latency: every
client is woken every 20 ms; this also shows realistic first-audio delays), both cores
busy with two CPU hogs (input overflows), and an strace syscall profile of three modes.

Results go to bench/capture_modes.json; ``run.py`` puts them in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

JSON_PATH = HERE / "capture_modes.json"


# ---------------------------------------------------------------------------------------------
# The worker: one configuration, in its own process


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Capture:
    """One stream in one of three modes, counting what it delivers.

    - ``callback``: ``sd.InputStream(callback=...)``; the callback only counts.
    - ``read``: a blocking stream and a ``stream.read(N)`` loop (blocks in PortAudio).
    - ``paced``: a blocking stream that is never waited on inside PortAudio: every
      ``interval`` s the loop sleeps, then reads whatever ``read_available`` says is there.
    """

    def __init__(self, sd, cfg: dict):
        self.sd, self.cfg = sd, cfg
        self.mode = cfg.get("mode", "callback")
        self.n_read = int(cfg.get("read", 0))
        self.interval = float(cfg.get("interval", 0.1))
        self.calls = self.frames = self.ovf = 0
        self.fmin, self.fmax = None, 0
        self.t_first: float | None = None
        self.cpu_first: float | None = None
        self.first = threading.Event()
        self.kw = dict(samplerate=48000, channels=1, dtype=cfg.get("dtype", "int16"),
                       device=cfg.get("device"), blocksize=cfg.get("blocksize", 0),
                       latency=cfg.get("latency", "high"))
        self.cls = sd.RawInputStream if cfg.get("raw") else sd.InputStream
        self.stream = None

    def _count(self, frames: int, overflow: bool) -> None:
        if self.t_first is None:
            self.t_first = time.monotonic()
            self.cpu_first = _cpu()
            self.first.set()
        self.calls += 1
        self.frames += frames
        self.ovf += bool(overflow)
        if self.fmin is None or frames < self.fmin:
            self.fmin = frames
        if frames > self.fmax:
            self.fmax = frames

    def _callback(self, indata, frames, t, status):
        self._count(frames, status.input_overflow)

    def open(self) -> None:
        self.t_first = self.cpu_first = None
        self.first.clear()
        if self.mode == "callback":
            self.stream = self.cls(callback=self._callback, **self.kw)
        else:
            self.stream = self.cls(**self.kw)

    def start(self) -> None:
        self.stream.start()

    def step(self) -> None:
        """Blocking modes: one read (or one paced poll). Callback mode: a short sleep."""
        if self.mode == "read":
            _, o = self.stream.read(self.n_read)
            self._count(self.n_read, o)
        elif self.mode == "paced":
            n = self.stream.read_available
            if n:
                _, o = self.stream.read(n)
                self._count(n, o)
            time.sleep(self.interval)
        else:
            time.sleep(0.05)

    def run_until(self, t_end: float) -> None:
        if self.mode == "callback":
            sleep_left = t_end - time.monotonic()
            if sleep_left > 0:
                time.sleep(sleep_left)
            return
        while time.monotonic() < t_end:
            self.step()

    def wait_first(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        if self.mode == "callback":
            if not self.first.wait(timeout):
                raise SystemExit("no audio within 15 s")
            return
        while self.t_first is None:
            if time.monotonic() > deadline:
                raise SystemExit("no audio within 15 s")
            self.step()

    def stop(self, how: str = "stop") -> float:
        """Stop (paced mode first takes what is buffered); returns the seconds it took."""
        ts = time.monotonic()
        if self.mode == "paced" and how != "abort":
            n = self.stream.read_available
            if n:
                _, o = self.stream.read(n)
                self._count(n, o)
        if how == "abort":
            self.stream.abort()
        else:
            self.stream.stop()
        return time.monotonic() - ts


def worker(cfg: dict) -> dict:
    cpu_start = _cpu()
    import sounddevice as sd

    pulse_clk = ((~int(os.environ["BENCH_PULSE_PID"])) << 3) | 2

    def pulse_cpu():
        try:
            return time.clock_gettime(pulse_clk)
        except OSError:
            return float("nan")

    if cfg.get("numperiods"):
        import ctypes

        # The same shared object sounddevice dlopen()ed: the setting applies to its streams.
        lib = ctypes.CDLL(sd._libname)
        lib.PaAlsa_SetNumPeriods.argtypes = [ctypes.c_int]
        err = lib.PaAlsa_SetNumPeriods(int(cfg["numperiods"]))
        if err:
            raise SystemExit(f"PaAlsa_SetNumPeriods failed: {err}")

    cap = Capture(sd, cfg)
    if cfg.get("cycles"):
        return stop_cycles(cap, cfg)
    seconds, settle = float(cfg.get("seconds", 15)), float(cfg.get("settle", 1.0))
    t0 = time.monotonic()
    cap.open()
    t_open = time.monotonic()
    cpu_open = _cpu()
    cap.start()
    t_started = time.monotonic()
    cpu_started = _cpu()
    cap.wait_first()
    cap.run_until(time.monotonic() + settle)
    before = (cap.calls, cap.frames, cap.ovf)
    c0, w0, p0 = resource_snapshot(), time.monotonic(), pulse_cpu()
    cap.run_until(w0 + seconds)
    c1, w1, p1 = resource_snapshot(), time.monotonic(), pulse_cpu()
    after = (cap.calls, cap.frames, cap.ovf)
    stop_s = cap.stop(cfg.get("stop", "stop"))
    tc = time.monotonic()
    latency = cap.stream.latency
    cap.stream.close()
    t_closed = time.monotonic()
    win = w1 - w0
    cpu = (c1[0] - c0[0]) + (c1[1] - c0[1])
    return {
        "window_s": win,
        "cpu_s": cpu,
        "cpu_pct": 100 * cpu / win,
        "user_pct": 100 * (c1[0] - c0[0]) / win,
        "sys_pct": 100 * (c1[1] - c0[1]) / win,
        "pulse_pct": 100 * (p1 - p0) / win,
        "wakeups_per_s": (c1[2] - c0[2]) / win,
        "calls_per_s": (after[0] - before[0]) / win,
        "frames_per_s": (after[1] - before[1]) / win,
        "frames_min": cap.fmin,
        "frames_max": cap.fmax,
        "overflows": after[2] - before[2],
        "first_s": cap.t_first - t_started,
        # CPU burnt between start() and the first audio (PortAudio's thread, or the
        # blocking read, spins on the pulse plugin's poll descriptor meanwhile).
        "pre_audio_cpu_s": cap.cpu_first - cpu_started,
        "setup_cpu_s": cpu_open - cpu_start,  # imports, PortAudio init, opening the stream
        "open_ms": 1000 * (t_open - t0),
        "start_ms": 1000 * (t_started - t_open),
        "stop_ms": 1000 * stop_s,
        "close_ms": 1000 * (t_closed - tc),
        "latency_s": latency,
    }


def resource_snapshot() -> tuple[float, float, int]:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_nvcsw


def stop_cycles(cap: Capture, cfg: dict) -> dict:
    """Open, start, wait for audio, run ~1 s, then time stop() (or abort()): ``cycles`` times.

    Also counts the frames delivered while stop() ran: audio that a stop still hands over
    (and that abort() drops)."""
    stops, after, firsts = [], [], []
    for i in range(int(cfg["cycles"])):
        cap.open()
        t0 = time.monotonic()
        cap.start()
        cap.wait_first()
        firsts.append(cap.t_first - t0)
        cap.run_until(time.monotonic() + 1.0 + 0.0137 * i)  # a different phase each time
        n0 = cap.frames
        stops.append(1000 * cap.stop(cfg.get("stop", "stop")))
        after.append(cap.frames - n0)
        cap.stream.close()
    s = sorted(stops)
    return {"stop_ms_runs": stops, "stop_ms_median": s[len(s) // 2], "stop_ms_max": s[-1],
            "frames_during_stop": after, "first_runs": firsts}


# ---------------------------------------------------------------------------------------------
# Configurations


def label(cfg: dict) -> str:
    if cfg.get("kind") == "arecord":
        return "arecord -D default (its defaults)"
    if cfg.get("kind") == "baseline":
        return "no capture client (server + player only)"
    dev = cfg.get("device") or "default"
    lat = cfg.get("latency", "high")
    lat = repr(lat) if isinstance(lat, str) else f"{lat:g}"
    if cfg.get("mode") == "read":
        bs = f", blocksize={cfg['blocksize']}" if cfg.get("blocksize") else ""
        s = f"read({cfg['read']}) loop, latency={lat}{bs}"
    elif cfg.get("mode") == "paced":
        s = f"paced read every {cfg.get('interval', 0.1):g} s, latency={lat}"
    else:
        s = f"callback, blocksize={cfg.get('blocksize', 0)}, latency={lat}"
    extras = []
    if dev != "default":
        extras.append(f"device={dev}")
    if cfg.get("raw"):
        extras.append("RawInputStream")
    if cfg.get("dtype", "int16") != "int16":
        extras.append(cfg["dtype"])
    if cfg.get("numperiods"):
        extras.append(f"PaAlsa_SetNumPeriods({cfg['numperiods']})")
    for k, v in (cfg.get("env") or {}).items():
        extras.append(f"{k}={v}")
    if cfg.get("stop") == "abort":
        extras.append("abort()")
    elif cfg.get("cycles"):
        extras.append("stop()")
    return s + ("; " + ", ".join(extras) if extras else "")


def grid(quick: bool = False) -> list[dict]:
    cfgs: list[dict] = [{"kind": "baseline"}, {"kind": "arecord"}]
    blocks = [0, 4800] if quick else [0, 1024, 2400, 4800, 9600]
    lats = ["high", 0.5] if quick else ["low", "high", 0.2, 0.5]
    for b in blocks:
        for lat in lats:
            cfgs.append({"blocksize": b, "latency": lat})
    cfgs += [
        {"blocksize": 0, "latency": 0.4},
        {"blocksize": 0, "latency": "high", "device": "pulse"},
        {"blocksize": 4800, "latency": 0.5, "device": "pulse"},
        {"blocksize": 0, "latency": "high", "raw": True},
        {"blocksize": 4800, "latency": 0.5, "raw": True},
        {"blocksize": 0, "latency": "high", "dtype": "float32"},
        {"blocksize": 0, "latency": "high", "numperiods": 2},
        {"blocksize": 0, "latency": 0.5, "numperiods": 2},
        {"blocksize": 0, "latency": "high", "env": {"PULSE_LATENCY_MSEC": "100"}},
    ]
    reads = [4800] if quick else [1024, 4800, 9600]
    for n in reads:
        for lat in ("high", 0.5):
            cfgs.append({"mode": "read", "read": n, "latency": lat})
    cfgs.append({"mode": "read", "read": 4800, "latency": 0.5, "blocksize": 4800})
    for lat, iv in ((0.5, 0.1), (0.5, 0.05), (0.2, 0.05)):
        cfgs.append({"mode": "paced", "interval": iv, "latency": lat})
    return cfgs


PACED = {"mode": "paced", "interval": 0.1, "latency": 0.5}

BUSY = [
    {"kind": "baseline"},
    {"kind": "arecord"},
    PACED,
    {"blocksize": 0, "latency": "high"},
    {"blocksize": 0, "latency": 0.4},
    {"blocksize": 4800, "latency": "high"},
    {"blocksize": 4800, "latency": 0.5},
    {"blocksize": 9600, "latency": 0.5},
    {"mode": "read", "read": 4800, "latency": 0.5},
]

LOAD = [
    PACED,
    {"blocksize": 0, "latency": "high"},
    {"blocksize": 0, "latency": 0.4},
    {"blocksize": 4800, "latency": "high"},
    {"blocksize": 4800, "latency": 0.5},
    {"mode": "read", "read": 4800, "latency": 0.5},
]

STOPS = [dict(c, stop=how, cycles=5)
         for c in ({"blocksize": 0, "latency": "high"}, {"blocksize": 0, "latency": 0.2},
                   {"blocksize": 0, "latency": 0.4}, {"blocksize": 0, "latency": 0.5},
                   {"blocksize": 2400, "latency": 0.5}, {"blocksize": 4800, "latency": 0.5},
                   {"blocksize": 9600, "latency": 0.5})
         for how in ("stop", "abort")] + [dict(PACED, cycles=5)]

STRACE = [
    {"blocksize": 0, "latency": "high"},
    {"blocksize": 4800, "latency": 0.5},
    {"mode": "read", "read": 4800, "latency": "high"},
]


# ---------------------------------------------------------------------------------------------
# Running configurations


def run_worker(lab, cfg: dict, seconds: float, settle: float = 1.0) -> dict:
    from common import kill_tree, wait4

    cfg = dict(cfg, seconds=seconds, settle=settle)
    env = dict(lab.env, BENCH_PULSE_PID=str(lab.pulse_pid), **(cfg.get("env") or {}))
    out, err = lab.path("worker.out"), lab.path("worker.err")
    with open(out, "w") as fo, open(err, "w") as fe:
        p = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(cfg)], env=env,
                             stdin=subprocess.DEVNULL, stdout=fo, stderr=fe)
        try:
            code, ru = wait4(p, seconds + settle + 60)
        finally:
            kill_tree(p)
    lines = [ln for ln in open(out).read().splitlines() if ln.startswith("{")]
    if code != 0 or not lines:
        return {"error": (open(err).read().strip().splitlines() or [f"exit {code}"])[-1]}
    r = json.loads(lines[-1])
    r["total_cpu_s"] = ru.ru_utime + ru.ru_stime  # the whole process: imports, spin, stream
    return r


def run_arecord(lab, seconds: float, settle: float = 1.0) -> dict:
    from common import cpu_clock, kill_tree

    argv = ["arecord", "-q", "-D", "default", "-f", "S16_LE", "-r", "48000", "-c", "1",
            "-t", "raw", "-d", str(int(seconds + settle + 20))]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=lab.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        r, _, _ = select.select([p.stdout], [], [], 15)
        if not r:
            return {"error": "arecord gave no audio within 15 s"}
        first = time.monotonic() - t0
        c_first = cpu_clock(p.pid)
        drain = threading.Thread(target=lambda: [None for _ in iter(lambda: p.stdout.read(65536), b"")],
                                 daemon=True)
        drain.start()
        time.sleep(settle)
        c0, p0, w0 = cpu_clock(p.pid), cpu_clock(lab.pulse_pid), time.monotonic()
        ctx0 = _ctx(p.pid)
        time.sleep(seconds)
        c1, p1, w1 = cpu_clock(p.pid), cpu_clock(lab.pulse_pid), time.monotonic()
        ctx1 = _ctx(p.pid)
        win = w1 - w0
        return {"window_s": win, "cpu_s": c1 - c0, "cpu_pct": 100 * (c1 - c0) / win,
                "pulse_pct": 100 * (p1 - p0) / win, "wakeups_per_s": (ctx1 - ctx0) / win,
                "first_s": first, "pre_audio_cpu_s": c_first, "total_cpu_s": c1,
                "note": "first_s counts from launch; total_cpu_s until the end of the window"}
    finally:
        kill_tree(p)


def _ctx(pid: int) -> int:
    """Voluntary context switches of all threads of ``pid``."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
    except OSError:
        pass
    return total


def run_baseline(lab, seconds: float) -> dict:
    from common import cpu_clock

    p0, w0 = cpu_clock(lab.pulse_pid), time.monotonic()
    time.sleep(seconds)
    p1, w1 = cpu_clock(lab.pulse_pid), time.monotonic()
    return {"window_s": w1 - w0, "cpu_pct": 0.0, "pulse_pct": 100 * (p1 - p0) / (w1 - w0)}


def run_one(lab, cfg: dict, seconds: float) -> dict:
    kind = cfg.get("kind")
    try:
        if kind == "arecord":
            return run_arecord(lab, seconds)
        if kind == "baseline":
            return run_baseline(lab, seconds)
        return run_worker(lab, cfg, seconds)
    except Exception as e:  # keep going: one broken configuration must not sink the study
        return {"error": f"{type(e).__name__}: {e}"}


def run_strace(lab, cfg: dict, seconds: float = 8.0) -> dict:
    """Syscall counts per second of a running worker (strace -f -c attached for ``seconds``)."""
    import shutil

    from common import kill_tree

    if not shutil.which("strace"):
        return {"error": "strace not installed (apt-get install strace)"}
    out = os.path.join(lab.tmp, "strace.txt")
    env = dict(lab.env, BENCH_PULSE_PID=str(lab.pulse_pid))
    wcfg = dict(cfg, seconds=seconds + 6, settle=0.5)
    w = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(wcfg)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(4.5)  # past start-up and the first audio
        s = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(w.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        s.send_signal(2)
        s.wait(timeout=20)
        counts = {}
        for line in open(out):
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
        return {"per_s": {k: v / seconds for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}}
    except Exception as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        kill_tree(w)


def study(lab, seconds: float = 15.0, repeats: int = 2, quick: bool = False,
          log=print) -> dict:
    from common import Hogs, machine_busy

    res: dict = {"seconds": seconds, "repeats": repeats, "idle": [], "busy": [], "load": [],
                 "stops": [], "strace": []}
    cfgs = grid(quick)
    runs: dict[int, list] = {i: [] for i in range(len(cfgs))}
    lab.start_player("idle")
    for rep in range(repeats):
        for i, cfg in enumerate(cfgs):
            b0 = machine_busy()
            r = run_one(lab, cfg, seconds)
            b1 = machine_busy()
            r["machine_busy_pct"] = 100 * os.cpu_count() * (b1[0] - b0[0]) / max(1, b1[1] - b0[1])
            runs[i].append(r)
            log(f"  [idle {rep + 1}/{repeats}] {label(cfg):70} " + _brief(r))
    for i, cfg in enumerate(cfgs):
        res["idle"].append({"cfg": cfg, "label": label(cfg), "runs": runs[i]})
    for cfg in STOPS:
        r = run_one(lab, cfg, 30)
        res["stops"].append({"cfg": cfg, "label": label(cfg), "runs": [r]})
        log(f"  [stop] {label(cfg):70} " + _brief(r))
    for cfg in STRACE:
        r = run_strace(lab, cfg)
        res["strace"].append({"cfg": cfg, "label": label(cfg), "result": r})
        log(f"  [strace] {label(cfg):70} {json.dumps(r)[:200]}")
    with Hogs(2, limit=len(LOAD) * (seconds + 40)):
        for cfg in LOAD:
            r = run_one(lab, cfg, seconds)
            res["load"].append({"cfg": cfg, "label": label(cfg), "runs": [r]})
            log(f"  [2 hogs] {label(cfg):70} " + _brief(r))
    lab.start_player("busy")
    for cfg in BUSY:
        r = run_one(lab, cfg, seconds)
        res["busy"].append({"cfg": cfg, "label": label(cfg), "runs": [r]})
        log(f"  [busy sink] {label(cfg):70} " + _brief(r))
    lab.start_player("idle")
    return res


def _brief(r: dict) -> str:
    if "error" in r:
        return "ERROR " + r["error"]
    if "stop_ms_runs" in r:
        return f"stop ms {r['stop_ms_runs']}  frames during stop {r['frames_during_stop']}"
    s = f"cpu {r['cpu_pct']:.3f}%  pulse {r.get('pulse_pct', float('nan')):.2f}%"
    if "calls_per_s" in r:
        s += f"  calls/s {r['calls_per_s']:.1f}  frames {r['frames_min']}-{r['frames_max']}"
    if "wakeups_per_s" in r:
        s += f"  wakeups/s {r['wakeups_per_s']:.0f}"
    if "first_s" in r:
        s += f"  first {r['first_s']:.3f}s"
    if "stop_ms" in r:
        s += f"  stop {r['stop_ms']:.1f}ms"
    if r.get("overflows"):
        s += f"  OVERFLOWS {r['overflows']}"
    return s


# ---------------------------------------------------------------------------------------------
# Report


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def summarize(entry: dict, baseline_pulse: float | None) -> dict:
    runs = [r for r in entry["runs"] if "error" not in r]
    if not runs:
        return {"error": entry["runs"][0].get("error", "?") if entry["runs"] else "no runs"}
    cpu = [r["cpu_pct"] for r in runs]
    s = {"cpu_pct": _mean(cpu), "cpu_runs": cpu,
         "pulse_extra_pct": (_mean([r["pulse_pct"] for r in runs]) - baseline_pulse)
         if baseline_pulse is not None and entry["cfg"].get("kind") != "baseline" else None}
    for k in ("wakeups_per_s", "calls_per_s", "first_s", "stop_ms", "latency_s", "overflows",
              "machine_busy_pct", "pre_audio_cpu_s", "setup_cpu_s", "total_cpu_s"):
        vals = [r.get(k) for r in runs if r.get(k) is not None]
        s[k] = _mean(vals) if vals else None
    s["frames"] = (f"{runs[0]['frames_min']}–{runs[0]['frames_max']}"
                   if runs[0].get("frames_max") else "")
    s["first_runs"] = [r.get("first_s") for r in runs]
    return s


def _f(x, fmt="{:.2f}", none="–"):
    return none if x is None else fmt.format(x)


def markdown(res: dict) -> tuple[str, dict]:
    """The research section's tables, and a dict of key numbers for the conclusions."""
    out = []
    base = next((summarize(e, None) for e in res["idle"] if e["cfg"].get("kind") == "baseline"), None)
    bpulse = None
    if base and "error" not in base:
        bpulse = _mean([r["pulse_pct"] for e in res["idle"] if e["cfg"].get("kind") == "baseline"
                        for r in e["runs"] if "error" not in r])
    rows = []
    for e in res["idle"]:
        s = summarize(e, bpulse)
        rows.append((e, s))
    out.append(f"Idle sink (the recorder is the only client asking for a latency), steady window "
               f"{res['seconds']:g} s after 1 s of settling, {res['repeats']} runs each "
               f"(interleaved). CPU is the capture process (all threads) in % of one core; "
               f"\"server +\" is the PulseAudio server's CPU above the no-client baseline "
               f"({_f(bpulse)} %).\n")
    out.append("| configuration | steady CPU % of a core (runs) | server + % | wake-ups/s | callbacks or reads/s | frames per call | reported latency s | first audio s | CPU s before first audio | whole process CPU s | stop() ms | machine busy % of 200 |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ranked = []
    for e, s in rows:
        if "error" in s:
            out.append(f"| {e['label']} | error: {s['error']} |||||||||||")
            continue
        runs = " / ".join(f"{x:.3f}" for x in s["cpu_runs"])
        out.append(f"| {e['label']} | **{s['cpu_pct']:.3f}** ({runs}) | {_f(s['pulse_extra_pct'])} | "
                   f"{_f(s['wakeups_per_s'], '{:.0f}')} | {_f(s['calls_per_s'], '{:.1f}')} | {s['frames']} | "
                   f"{_f(s['latency_s'], '{:.3f}')} | {_f(s['first_s'])} | {_f(s['pre_audio_cpu_s'])} | "
                   f"{_f(s['total_cpu_s'])} | {_f(s['stop_ms'], '{:.1f}')} | "
                   f"{_f(s['machine_busy_pct'], '{:.0f}')} |")
        if e["cfg"].get("kind") is None:
            ranked.append((s["cpu_pct"], e, s))
    ranked.sort(key=lambda x: x[0])
    key: dict = {"ranked": [(round(c, 4), e["label"]) for c, e, s in ranked], "seconds": res["seconds"]}
    # Noise: relative spread between the repeats.
    spreads = [abs(s["cpu_runs"][0] - s["cpu_runs"][1]) / max(1e-9, s["cpu_pct"])
               for e, s in rows if "error" not in s and len(s.get("cpu_runs", [])) >= 2 and s["cpu_pct"] > 0]
    if spreads:
        spreads.sort()
        key["noise_median_rel"] = spreads[len(spreads) // 2]
        key["noise_max_rel"] = spreads[-1]
    busy_all = [s["machine_busy_pct"] for e, s in rows if "error" not in s and s.get("machine_busy_pct") is not None]
    if busy_all:
        key["machine_busy_range"] = (min(busy_all), max(busy_all))
    key["by_label"] = {e["label"]: s for e, s in rows}

    if res.get("stops"):
        out.append("\nStopping: `stop()` waits for PortAudio's thread to leave its poll (up to one "
                   "ALSA period), `abort()` cancels it. 5 cycles each (open, start, first audio, "
                   "1 s, stop at a different phase of the period), idle sink:\n")
        out.append("| configuration | median ms | max ms | all runs ms | frames delivered during the call |")
        out.append("|---|---|---|---|---|")
        for e in res["stops"]:
            r = e["runs"][0]
            if "error" in r or "stop_ms_runs" not in r:
                out.append(f"| {e['label']} | error: {r.get('error', 'no data')} | | | |")
                continue
            out.append(f"| {e['label']} | {r['stop_ms_median']:.1f} | {r['stop_ms_max']:.1f} | "
                       + ", ".join(f"{x:.0f}" for x in r["stop_ms_runs"]) + " | "
                       + ", ".join(str(x) for x in r["frames_during_stop"]) + " |")
            key.setdefault("stops", {})[e["label"]] = r

    if res.get("strace"):
        out.append("\nWhere the time goes: system calls per second of the capture process "
                   "(strace -f -c attached for 8 s to a running stream; strace slows the "
                   "process, the counts are what matters):\n")
        names = ["poll", "read", "write", "futex", "getpid", "ioctl", "clock_nanosleep"]
        out.append("| configuration | " + " | ".join(names) + " | all |")
        out.append("|---|" + "---|" * (len(names) + 1))
        for e in res["strace"]:
            r = e["result"]
            if "error" in r:
                out.append(f"| {e['label']} | error: {r['error']} |" + " |" * len(names))
                continue
            per = r["per_s"]
            out.append(f"| {e['label']} | " + " | ".join(f"{per.get(n, 0):.0f}" for n in names)
                       + f" | {sum(per.values()):.0f} |")
            key.setdefault("strace", {})[e["label"]] = per

    if res.get("load"):
        out.append("\nBoth cores busy (two `while True: pass` processes), idle sink, one run each:\n")
        out.append("| configuration | steady CPU % | overflowed callbacks/reads | first audio s | CPU s before first audio |")
        out.append("|---|---|---|---|---|")
        for e in res["load"]:
            r = e["runs"][0]
            if "error" in r:
                out.append(f"| {e['label']} | error: {r['error']} | | | |")
                continue
            out.append(f"| {e['label']} | {r['cpu_pct']:.3f} | {r.get('overflows', 0)} | {r['first_s']:.2f} | "
                       f"{_f(r.get('pre_audio_cpu_s'))} |")
            key.setdefault("load", {})[e["label"]] = r

    if res.get("busy"):
        bb = [r["pulse_pct"] for e in res["busy"] if e["cfg"].get("kind") == "baseline"
              for r in e["runs"] if "error" not in r]
        bbp = bb[0] if bb else None
        out.append("\nBusy sink (the player asks for 20 ms: the server wakes every client every "
                   "20 ms, whatever it asked for; first-audio times here are those of a device "
                   "that is already running), one run each; the server's own cost varies by "
                   "about a percent from run to run here, so only the client column compares:\n")
        out.append("| configuration | steady CPU % of a core | server % (no-client baseline: "
                   f"{_f(bbp)}) | wake-ups/s | calls/s | first audio s | CPU s before first audio |")
        out.append("|---|---|---|---|---|---|---|")
        for e in res["busy"]:
            r = e["runs"][0]
            if "error" in r:
                out.append(f"| {e['label']} | error: {r['error']} | | | | | |")
                continue
            out.append(f"| {e['label']} | {r['cpu_pct']:.3f} | {_f(r.get('pulse_pct'))} | {_f(r.get('wakeups_per_s'), '{:.0f}')} | "
                       f"{_f(r.get('calls_per_s'), '{:.1f}')} | {_f(r.get('first_s'), '{:.3f}')} | {_f(r.get('pre_audio_cpu_s'), '{:.3f}')} |")
            key.setdefault("busy", {})[e["label"]] = r
    return "\n".join(out), key


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=15.0, help="steady window per run (default 15)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration (default 2)")
    ap.add_argument("--quick", action="store_true", help="a smaller grid")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    from common import Lab, machine, save_json

    info = machine()
    with Lab() as lab:
        res = study(lab, args.seconds, args.repeats, args.quick)
    res["machine"] = info
    save_json(JSON_PATH, res)
    md, _ = markdown(res)
    print(md)
    print(f"\nwrote {JSON_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
