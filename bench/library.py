"""The library at scale: list, search and the page on 100 / 2,000 / 10,000 clips, with the
index, side by side with the scan that came before it (every sidecar read by every command,
and the page's event stream re-scanning the directory each second), in one run.

    python bench/library.py            # 100, 2,000 and 10,000 clips (~10 min)
    python bench/library.py --quick    # fewer repeats, shorter CPU windows (~5 min)
    python bench/library.py --sizes 100 2000

The libraries are made by tests/librarylab.py from one real clip: espeak-ng speech recorded
with `dictaphone record --input` and transcribed by `dictaphone transcribe` with the packaged
tiny.en (the test model), then hard-linked N times with real sidecars (own name, date, and
one sentence of its own). "Before" is the code of the commit before the index (the parent of
the commit that added it, or --baseline REV), unpacked with `git archive` into the temporary
directory and run from there with the same Python; "index" is this checkout.

Measured, each command a fresh process (median of the repeats after one warm-up; the
commands take turns, before and index alike, so a change of load falls on all of them):
- `list --json`; with the index, "warm" (the directory unchanged since the last command:
  the listing of every file is skipped) and "changed" (the directory's mtime changed just
  before, so every file is stat'ed and compared, as after any change);
- `search zanzibar` (a word in one clip of a thousand), `search dentist --limit 20` (a word
  in every clip) and `search dentist --json` (all of them);
- the page: GET /api/clips?limit=40 (what it loads first), /api/clips (everything), and
  /api/search for both words, on a running `serve` (median of 5 requests);
- the server's CPU with 1 and 5 pages' event streams open (each read as a browser reads
  it) and nothing happening (10 s; 5 s with --quick), from its POSIX CPU-time clock.

Writes bench/library.json and the "Library" section of bench/RESULTS.md (between
``<!-- section: library -->`` markers: run.py keeps it); ``--report-only`` rewrites the
section from library.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import io
import socket
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

from common import PY, cpu_clock, machine_busy, save_json, stop_process  # noqa: E402

import librarylab  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
SECTION = "## Library (index vs scan)"
START, END = "<!-- section: library -->", "<!-- /section: library -->"


def git(*args) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def baseline_rev(given: str | None) -> str:
    if given:
        return git("rev-parse", given)
    added = git("log", "--format=%H", "-1", "--diff-filter=A", "--", "dictaphone/library/index.py")
    return git("rev-parse", f"{added}^")


def unpack(rev: str, where: Path) -> Path:
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "dictaphone"],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(where)
    return where


#: where every command runs: not the checkout (`python -m` puts the current directory first
#: on sys.path, which would run this checkout's code whatever PYTHONPATH says)
CWD: Path | None = None


def env_for(code: Path, home: Path, runtime: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DICTAPHONE_"))}
    env.update(DICTAPHONE_HOME=str(home), XDG_RUNTIME_DIR=str(runtime), PYTHONPATH=str(code),
               COLUMNS="120", HF_HUB_OFFLINE="1")
    return env


def make_source(tmp: Path) -> Path:
    import speech

    home = tmp / "source-library"
    env = env_for(ROOT, home, tmp / "run")
    env["DICTAPHONE_MODEL"] = speech.test_model_path()
    script = speech.make_script(tmp / "script.wav")
    for argv in (["record", "-q", "--input", str(script.path), "--name", "source"], ["transcribe", "source"]):
        r = subprocess.run([PY, "-m", "dictaphone", *argv], env=env, capture_output=True, text=True, timeout=300,
                           cwd=CWD)
        if r.returncode != 0:
            raise RuntimeError(f"{argv}: {r.stderr}")
    return home / "source.wav"


class Server:
    def __init__(self, env: dict):
        self.proc = subprocess.Popen([PY, "-m", "dictaphone", "serve", "--port", "0"], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, cwd=CWD)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("http"):
            raise RuntimeError(f"serve printed {line!r}")
        parts = urllib.parse.urlsplit(line)
        self.host, self.port, self.netloc = parts.hostname, parts.port, parts.netloc
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]
        self.streams = []

    def get(self, path: str, timeout=300) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Host": self.netloc, "X-Dictaphone-Token": self.token})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def wait_ready(self, total: int, timeout=600) -> None:
        """Until the whole library is listed (a new index is built in the background)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.get("/api/clips")
            if status == 200 and len(json.loads(body)) >= total:
                return
            time.sleep(0.5)
        raise RuntimeError("the server never listed the whole library")

    def open_streams(self, n: int) -> None:
        """``n`` event streams, each read to the end as a browser would (a stream nobody
        reads would stall the server's sending and hide its work)."""
        for _ in range(n):
            conn = http.client.HTTPConnection(self.host, self.port, timeout=None)
            conn.request("GET", "/api/events", headers={"Host": self.netloc, "X-Dictaphone-Token": self.token})
            r = conn.getresponse()

            def drain(r=r):
                try:
                    while r.fp.read1(65536):
                        pass
                except (OSError, ValueError, AttributeError):
                    pass

            threading.Thread(target=drain, daemon=True).start()
            self.streams.append(conn)

    def close_streams(self) -> None:
        for c in self.streams:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass
            c.close()
        self.streams = []

    def stop(self) -> None:
        self.close_streams()
        stop_process(self.proc, timeout=20)
        self.proc.stdout.close()


def page_timings(server: Server, repeats: int) -> dict:
    out = {}
    for label, path in (("first page (limit=40)", "/api/clips?limit=40"), ("whole list", "/api/clips"),
                        ("search rare word", f"/api/search?q={librarylab.RARE}"),
                        ("search word in every clip", "/api/search?q=dentist")):
        times = []
        for i in range(repeats + 1):
            t = time.perf_counter()
            status, body = server.get(path)
            took = time.perf_counter() - t
            if status != 200:
                raise RuntimeError(f"{path}: {status} {body[:200]!r}")
            if i:
                times.append(took)
        out[label] = {"median": statistics.median(times), "bytes": len(body)}
    return out


def idle_cpu(server: Server, pages: int, seconds: float) -> float:
    """% of one core the server uses with ``pages`` event streams open and nothing changing."""
    server.open_streams(pages)
    time.sleep(2.0)  # past the first events
    c0, t0 = cpu_clock(server.proc.pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_clock(server.proc.pid), time.monotonic()
    server.close_streams()
    return 100.0 * (c1 - c0) / (t1 - t0)


def touch_directory(home: Path):
    def touch():
        p = home / ".bench-touch"
        p.write_text("x")
        p.unlink()  # the directory's mtime changed: the next command lists every file
    return touch


def interleaved(pairs, repeats: int) -> dict:
    """Time several commands in turns (one run of each, then again), so that a change of the
    machine's load falls on all of them alike. ``pairs``: {label: (argv, env, before)}."""
    times = {label: [] for label in pairs}
    for i in range(repeats + 1):
        for label, (argv, env, before) in pairs.items():
            if before is not None:
                before()
            t = time.perf_counter()
            r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=600, cwd=CWD)
            took = time.perf_counter() - t
            if r.returncode not in (0, 1):
                raise RuntimeError(f"{argv}: exit {r.returncode}: {r.stderr.decode()[-500:]}")
            if i:
                times[label].append(took)
    return {label: {"median": statistics.median(t), "min": min(t), "max": max(t), "runs": t}
            for label, t in times.items()}


def run_size(n: int, source: Path, tmp: Path, before_code: Path, repeats: int, cpu_seconds: float) -> dict:
    home = tmp / f"library-{n}"
    librarylab.build(home, source, n)
    runtime = tmp / "run"
    cli = [PY, "-m", "dictaphone"]
    old, new = env_for(before_code, home, runtime), env_for(ROOT, home, runtime)
    result = {"clips": n, "before": {}, "index": {}}
    t = time.perf_counter()
    subprocess.run([*cli, "index", "--rebuild"], env=new, capture_output=True, check=True, timeout=900, cwd=CWD)
    result["index"]["index rebuild"] = {"median": time.perf_counter() - t}
    touch = touch_directory(home)
    rare = librarylab.RARE
    runs = interleaved({
        ("before", "list --json"): ([*cli, "list", "--json"], old, None),
        ("index", "list --json (warm)"): ([*cli, "list", "--json"], new, None),
        ("index", "list --json (directory changed)"): ([*cli, "list", "--json"], new, touch),
        ("before", f"search {rare}"): ([*cli, "search", rare], old, None),
        ("index", f"search {rare}"): ([*cli, "search", rare], new, None),
        ("before", "search dentist --json (every clip)"): ([*cli, "search", "dentist", "--json"], old, None),
        ("index", "search dentist --json (every clip)"): ([*cli, "search", "dentist", "--json"], new, None),
        ("index", "search dentist --limit 20"): ([*cli, "search", "dentist", "--limit", "20"], new, None),
    }, repeats)
    for (which, label), value in runs.items():
        result[which][label] = value
    for which, env in (("before", old), ("index", new)):
        r = result[which]
        server = Server(env)
        try:
            server.wait_ready(n)
            r["page"] = page_timings(server, 5) if which == "index" else page_timings_before(server)
            r["server CPU idle, 1 page"] = idle_cpu(server, 1, cpu_seconds)
            r["server CPU idle, 5 pages"] = idle_cpu(server, 5, cpu_seconds)
        finally:
            server.stop()
        print(f"  {n} clips, {which}: " + ", ".join(
            f"{k} {v['median']:.3f} s" if isinstance(v, dict) and "median" in v else
            f"{k} {v:.1f} %" if isinstance(v, float) else "" for k, v in r.items() if k != "page"),
            flush=True)
    shutil.rmtree(home)
    return result


def page_timings_before(server: Server) -> dict:
    """The page before the index had one list (no paging) and the same search route."""
    out = {}
    for label, path in (("whole list", "/api/clips"), ("search rare word", f"/api/search?q={librarylab.RARE}"),
                        ("search word in every clip", "/api/search?q=dentist")):
        times = []
        for i in range(3):
            t = time.perf_counter()
            status, body = server.get(path)
            if i:
                times.append(time.perf_counter() - t)
        out[label] = {"median": statistics.median(times), "bytes": len(body)}
    return out


def fmt_s(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def report(data: dict) -> str:
    sizes = data["sizes"]
    by = {r["clips"]: r for r in data["results"]}
    small = min(sizes)
    lines = [SECTION, "",
             f"Generated by `python bench/library.py{' --quick' if data['quick'] else ''}` on {data['date']} "
             f"(load average at start {' '.join(data['load_start'])}, at end {' '.join(data['load_end'])}; "
             f"2 cores shared with other work: wall times are noisy, compare within one row). "
             f"\"Before\" is {data['baseline'][:10]} (the scan); \"index\" is {data['head'][:10]}.",
             "", "Commands (a fresh process each, median):", "",
             "| command | " + " | ".join(f"{n:,} clips" for n in sizes) + f" | {max(sizes):,} / {small:,} |",
             "|---|" + "---|" * (len(sizes) + 1)]

    def row(label, which, key):
        vals = [by[n][which].get(key, {}).get("median") for n in sizes]
        if any(v is None for v in vals):
            return
        lines.append(f"| {label} | " + " | ".join(fmt_s(v) for v in vals) + f" | {vals[-1] / vals[0]:.1f}× |")

    row("before: list --json", "before", "list --json")
    row("index: list --json (directory unchanged)", "index", "list --json (warm)")
    row("index: list --json (directory changed: every file stat'ed)", "index", "list --json (directory changed)")
    row(f"before: search {librarylab.RARE}", "before", f"search {librarylab.RARE}")
    row(f"index: search {librarylab.RARE}", "index", f"search {librarylab.RARE}")
    row("before: search dentist --json (a hit in every clip)", "before", "search dentist --json (every clip)")
    row("index: search dentist --json (a hit in every clip)", "index", "search dentist --json (every clip)")
    row("index: search dentist --limit 20", "index", "search dentist --limit 20")
    row("index: index --rebuild", "index", "index rebuild")
    lines += ["", "The page (a running `serve`, median of the requests; before, the page loaded the whole list):", "",
              "| request | " + " | ".join(f"{n:,} clips" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for which in ("before", "index"):
        for label in ("first page (limit=40)", "whole list", "search rare word", "search word in every clip"):
            vals = [by[n][which]["page"].get(label) for n in sizes]
            if any(v is None for v in vals):
                continue
            lines.append(f"| {which}: {label} | " + " | ".join(
                f"{fmt_s(v['median'])} ({v['bytes'] / 1000:.0f} kB)" for v in vals) + " |")
    lines += ["", "The server's CPU with pages open and nothing happening (% of one core):", "",
              "| pages open | " + " | ".join(f"{n:,} clips" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for which in ("before", "index"):
        for pages in (1, 5):
            key = f"server CPU idle, {pages} page{'s' if pages > 1 else ''}"
            lines.append(f"| {which}: {pages} | " + " | ".join(f"{by[n][which][key]:.1f} %" for n in sizes) + " |")
    lines += ["", "Targets (issue #19): at 10,000 clips `search` within 2× and `list --json` within 3× of their "
              "time at 100 clips; an open page ~0 % CPU when nothing changes.", ""]
    checks = []
    if 100 in by and 10_000 in by:
        for label, key, target in ((f"search {librarylab.RARE}", f"search {librarylab.RARE}", 2),
                                   ("search dentist --limit 20", "search dentist --limit 20", 2),
                                   ("list --json (directory unchanged)", "list --json (warm)", 3),
                                   ("list --json (directory changed)", "list --json (directory changed)", 3)):
            a, b = by[100]["index"][key]["median"], by[10_000]["index"][key]["median"]
            checks.append(f"- {label}: {fmt_s(b)} / {fmt_s(a)} = {b / a:.2f}× (target ≤ {target}×): "
                          f"**{'pass' if b / a <= target else 'FAIL'}**")
        cpu = by[10_000]["index"]["server CPU idle, 5 pages"]
        checks.append(f"- server CPU, 5 pages open, 10,000 clips: {cpu:.1f} % (target ~0 %): "
                      f"**{'pass' if cpu < 2 else 'FAIL'}**")
    lines += checks + [""]
    return "\n".join(lines)


def write_results(text: str) -> None:
    """Put the section into RESULTS.md between its markers (bench/run.py keeps it)."""
    old = RESULTS.read_text() if RESULTS.exists() else "# dictaphone benchmarks\n"
    block = f"{START}\n\n{text.rstrip()}\n\n{END}"
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda m: block, old)
    else:
        if SECTION in old:  # an unmarked section from before
            start = old.index(SECTION)
            nxt = old.find("\n## ", start + len(SECTION))
            old = old[:start].rstrip() + "\n\n" + (old[nxt + 1:] if nxt != -1 else "")
        new = old.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(new)


def report_only() -> None:
    write_results(report(json.loads((BENCH / "library.json").read_text())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 2000, 10_000])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baseline", metavar="REV", help="the code to compare with (default: before the index)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the RESULTS.md section from library.json")
    args = ap.parse_args()
    if args.report_only:
        return report_only()
    repeats, cpu_seconds = (3, 5.0) if args.quick else (5, 10.0)
    base = baseline_rev(args.baseline)
    data = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": args.quick, "sizes": sorted(args.sizes),
            "baseline": base, "head": git("rev-parse", "HEAD"), "load_start": open("/proc/loadavg").read().split()[:3],
            "results": []}
    global CWD
    with tempfile.TemporaryDirectory(prefix="dictaphone-bench-library-") as t:
        tmp = Path(t)
        CWD = tmp
        (tmp / "run").mkdir(mode=0o700)
        before_code = unpack(base, tmp / "before")
        for code in (before_code, ROOT):  # each runs its own code (not the checkout's by accident)
            out = subprocess.run([PY, "-c", "import dictaphone; print(dictaphone.__file__)"], cwd=CWD,
                                 env=env_for(code, tmp / "none", tmp / "run"), capture_output=True,
                                 text=True, check=True).stdout.strip()
            assert out.startswith(str(code)), (code, out)
        print("recording and transcribing the source clip…", flush=True)
        source = make_source(tmp)
        for n in sorted(args.sizes):
            print(f"{n} clips…", flush=True)
            data["results"].append(run_size(n, source, tmp, before_code, repeats, cpu_seconds))
    data["load_end"] = open("/proc/loadavg").read().split()[:3]
    save_json(BENCH / "library.json", data)
    text = report(data)
    write_results(text)
    print(text)


if __name__ == "__main__":
    main()
