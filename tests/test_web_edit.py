"""The page: an imported M4A plays in Chromium; trim by choosing the start and the end on the
waveform; export in another format (a download read back by soundfile and ffprobe); the
speed and skip-silence controls beside the player.

Uses test_web's server, browser and page fixtures (a real `dictaphone serve` subprocess,
Debian's Chromium through Playwright).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiolab
import cliutil
from test_web import LAPTOP, Server, browser, card, page_at, web_env  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def library(web_env, speech, tmp_path_factory):
    """'memo' (an ffmpeg M4A, imported), 'tone' (a WAV: 1 s tone, 3 s silence, 1 s tone)
    with a marker at 4.5 s and a transcript, and 'steps' (a WAV for trimming)."""
    src = tmp_path_factory.mktemp("src")
    audiolab.require_tool("ffmpeg")
    m4a = src / "memo.m4a"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(speech), "-c:a", "aac", str(m4a)], check=True)
    rate = 48000
    t = np.arange(5 * rate) / rate
    x = 0.4 * np.sin(2 * np.pi * 440 * t)
    x[rate:4 * rate] = 0
    sf.write(src / "tone.wav", x, rate, subtype="PCM_16")
    rng = np.random.default_rng(1)
    sf.write(src / "steps.wav", rng.integers(-8000, 8000, 6 * rate, dtype=np.int16), rate, subtype="PCM_16")
    r = cliutil.run("import", m4a, src / "tone.wav", src / "steps.wav", env=web_env)
    assert r.returncode == 0, r.stderr
    home = Path(web_env["DICTAPHONE_HOME"])
    meta = json.loads((home / "steps.wav.json").read_text())
    meta["markers"] = [{"number": 1, "time": 4.5, "label": "late"}]
    (home / "steps.wav.json").write_text(json.dumps(meta))
    return home


@pytest.fixture(scope="module")
def server(web_env, library):
    s = Server(web_env)
    try:
        yield s
    finally:
        s.stop()


def test_an_imported_m4a_plays_to_its_end(server, page_at):
    page = page_at(server)
    memo = card(page, "memo")
    memo.locator("audio").wait_for(state="attached")
    assert "m4a" in memo.locator(".meta").inner_text()
    result = page.evaluate("""() => new Promise((resolve, reject) => {
        const a = document.querySelector('li.clip[data-name="memo"] audio');
        a.addEventListener('ended', () => resolve({time: a.currentTime, duration: a.duration}));
        a.addEventListener('error', () => reject('media error ' + a.error.code));
        a.play().catch(e => reject(String(e)));
    })""")
    assert result["duration"] == pytest.approx(2.8, abs=0.15)
    assert page.errors == []


def test_trim_by_choosing_start_and_end_on_the_waveform(server, page_at, web_env, library):
    page = page_at(server)
    steps = card(page, "steps")
    canvas = steps.locator("canvas.wave")
    canvas.wait_for(state="visible")
    steps.locator("button.trim").click()
    assert steps.locator(".trim-bar").is_visible()
    assert steps.locator("button.trim-new").is_disabled()
    box = canvas.bounding_box()
    canvas.click(position={"x": box["width"] * 0.5, "y": box["height"] / 2})  # 3 s
    canvas.click(position={"x": box["width"] * 0.9, "y": box["height"] / 2})  # 5.4 s
    text = steps.locator(".trim-range").inner_text()
    assert text.startswith("Keep 0:03") and ("to 0:05.3" in text or "to 0:05.4" in text), text
    steps.locator("button.trim-new").click()
    page.wait_for_selector("li.clip[data-name='steps (trimmed)']")
    clips = {c["name"]: c for c in json.loads(cliutil.run("list", "--json", env=web_env).stdout)}
    new = clips["steps (trimmed)"]
    start = 6.0 * 0.5
    assert new["duration"] == pytest.approx(6.0 * 0.4, abs=6.0 / box["width"] * 2 + 0.01)
    assert [m["label"] for m in new["markers"]] == ["late"]
    assert new["markers"][0]["time"] == pytest.approx(4.5 - start, abs=0.05)
    original, rate = sf.read(library / "steps.wav", dtype="int16")
    got, _ = sf.read(new["path"], dtype="int16")
    offset = int(round((4.5 - new["markers"][0]["time"]) * rate))
    assert np.array_equal(got, original[offset:offset + len(got)])  # exact samples
    assert page.errors == []


def test_export_downloads_another_format_with_its_markers(server, page_at, tmp_path):
    page = page_at(server)
    steps = card(page, "steps")
    steps.locator("select.export").wait_for()
    with page.expect_download() as info:
        steps.locator("select.export").select_option("flac")
    download = info.value
    assert download.suggested_filename == "steps.flac"
    out = tmp_path / "steps.flac"
    download.save_as(out)
    assert sf.info(out).duration == pytest.approx(6.0)
    audiolab.require_tool("ffprobe")
    r = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(out)],
                       capture_output=True, text=True, timeout=60)
    chapters = json.loads(r.stdout)["chapters"]
    assert [(float(c["start_time"]), c["tags"]["title"]) for c in chapters] == [(4.5, "late")]
    status, _, body = server.request("GET", "/api/clips/steps/export?format=aiff")
    assert status == 400


def test_speed_and_skip_silence_beside_the_player(server, page_at):
    page = page_at(server)
    tone = card(page, "tone")
    tone.locator("audio").wait_for(state="attached")
    page.wait_for_function("""() => { const c = document.querySelector('li.clip[data-name="tone"] canvas');
        return !c.hidden && c.width > 0; }""")
    tone.locator("select.speed").select_option("2")
    tone.locator("input.skip-silence").check()
    t0 = time.monotonic()
    result = page.evaluate("""() => new Promise((resolve, reject) => {
        const a = document.querySelector('li.clip[data-name="tone"] audio');
        const start = performance.now();
        a.addEventListener('ended', () => resolve({rate: a.playbackRate, pitch: a.preservesPitch,
                                                    ms: performance.now() - start}));
        a.addEventListener('error', () => reject('media error ' + a.error.code));
        a.play().catch(e => reject(String(e)));
    })""")
    assert result["rate"] == 2 and result["pitch"] is True
    # 5 s at 2x is 2.5 s; with the 3 s silence skipped (0.25 s of it kept) about 1.1 s
    assert result["ms"] / 1000 < 1.9, result
    assert time.monotonic() - t0 < 10


def test_trim_and_export_refuse_hostile_numbers_and_flags_and_leave_the_clip_alone(server, library):
    """in_place "false" (a string, which is true to bool()) must not replace the clip; NaN and
    Infinity (JSON that Python reads), a huge integer, -1: 400 with a sentence, never a 500."""
    tone = library / "tone.wav"
    before = tone.read_bytes()
    clips_before = sorted(p.name for p in library.iterdir())
    for body in ({"from": 1, "to": 2, "in_place": "false"}, {"from": 1, "to": 2, "in_place": 0},
                 {"from": float("nan"), "to": 2}, {"from": 1, "to": float("inf")},
                 {"from": 10 ** 400}, {"from": -1, "to": 2}, {"to": float("-inf")}):
        status, _, text = server.post("/api/clips/tone/trim", body)
        assert status == 400, (body, status, text)
        assert b"Traceback" not in text and json.loads(text)["error"], (body, text)
    for query in ("from=nan", "to=inf", "from=-1", "to=1e400"):
        status, _, text = server.request("GET", f"/api/clips/tone/export?format=wav&{query}")
        assert status == 400, (query, status, text)
    assert tone.read_bytes() == before
    assert sorted(p.name for p in library.iterdir()) == clips_before
