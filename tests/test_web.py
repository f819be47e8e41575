"""`dictaphone serve`: the page in a real browser, and its guard against other pages.

The server runs as a user would start it (``python -m dictaphone serve --port 0``, a
subprocess whose first stdout line is the address with its token), over a library made
by the CLI from espeak speech. The page is driven by headless Chromium from Debian
(through Playwright); what it does is checked on disk and with the CLI (``list --json``,
``status --json``), and a recording made from the page is compared with what was played
into the virtual microphone. The security tests use a plain HTTP client, as an attacker's
page or script would, and check both the refusal and that nothing changed on disk.

Screenshots (laptop and phone sizes) go to the test's directory; set
``DICTAPHONE_WEB_SCREENSHOT=docs/web.png`` to refresh the one in the README.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import soundfile

import audiolab
import cliutil
import speech as speechlab
from audiolab import speech_score, stop_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
UI_TIMEOUT = 20_000  # ms: the page reacts to a change within 1 s; this is "does not hang"
SERVE_TIMEOUT = 30.0  # s: serve printed its address


# ---------------------------------------------------------------------------------------------
# The server


class Server:
    """``dictaphone serve --port 0`` in the background; ``url`` is the printed address."""

    def __init__(self, env: dict, *args: str, cwd=None):
        self.env = env
        self.home = Path(env["DICTAPHONE_HOME"])
        self.proc = subprocess.Popen([*cliutil.CLI, "serve", "--port", "0", *args], env=env, cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.url = self._read_url()
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port
        self.netloc = parts.netloc
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]
        self.base = f"http://{parts.netloc}"

    def _read_url(self) -> str:
        deadline = time.monotonic() + SERVE_TIMEOUT
        line = b""
        while not line.endswith(b"\n") and time.monotonic() < deadline:
            if not select.select([self.proc.stdout], [], [], 0.2)[0]:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
        if not line.endswith(b"\n"):
            stop_process(self.proc)
            raise AssertionError(f"serve printed no address; stderr:\n{self.proc.stderr.read().decode()}")
        return line.decode().strip()

    def request(self, method: str, path: str, *, token: str | None = "header", headers=None,
                body: bytes | dict | None = None, host: str | None = None):
        """One HTTP request; returns (status, headers dict (lower-case), body bytes)."""
        h = {"Host": self.netloc if host is None else host}
        if token == "header":
            h["X-Dictaphone-Token"] = self.token
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if body is not None:
            h["Content-Length"] = str(len(body))
        h.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def post(self, path: str, data: dict | None = None, **kw):
        return self.request("POST", path, body=data if data is not None else {}, **kw)

    def stop(self, sig=signal.SIGINT) -> int:
        status = stop_process(self.proc, sig, timeout=20)
        self.proc.stdout.close()
        self.stderr = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        return status


def clip_path(home: Path, name: str) -> Path:
    found = [p for p in home.iterdir() if p.stem == name and not p.name.endswith(".json")]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def cli_names(env) -> list[str]:
    r = cliutil.run("list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    return [c["name"] for c in json.loads(r.stdout)]


@pytest.fixture(scope="module")
def web_env(tmp_path_factory):
    """An environment of its own: a library and a private registry (no PulseAudio)."""
    root = tmp_path_factory.mktemp("web")
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DICTAPHONE_"))}
    env.update(DICTAPHONE_HOME=str(root / "library"), XDG_RUNTIME_DIR=str(runtime),
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                         env.get("PYTHONPATH")])))
    return env


@pytest.fixture(scope="module")
def library(web_env, speech):
    """Three clips made by the CLI: 'fox' (WAV), 'fox ogg' (Ogg) and 'raw fox' (raw)."""
    for name, fmt in (("fox", "wav"), ("fox ogg", "ogg"), ("raw fox", "raw")):
        r = cliutil.run("record", "--input", speech, "--name", name, "-f", fmt, "-q", env=web_env)
        assert r.returncode == 0, r.stderr
        time.sleep(1.1)  # distinct creation times, so "newest first" has one answer
    return Path(web_env["DICTAPHONE_HOME"])


@pytest.fixture(scope="module")
def server(web_env, library):
    s = Server(web_env)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = "chromium not found (Debian package: chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed (pip install playwright)", pytrace=False)
        pytest.skip("playwright is not installed")
    # The browser's sound must never reach the virtual microphone that other tests record:
    # no PulseAudio server for it (it plays into a silent sink of its own; `ended` still comes).
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_") and k != "XDG_RUNTIME_DIR"}
    env["PULSE_SERVER"] = "unix:/nonexistent/dictaphone-tests-no-pulse"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page_at(browser):
    """Factory: ``page_at(server, viewport=LAPTOP)`` -> a Playwright page on the server's
    address, loaded and live (its event stream connected). Closed at teardown."""
    contexts = []

    def open_page(server: Server, viewport=LAPTOP):
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.errors = errors
        page.goto(server.url)
        try:
            page.wait_for_selector("#live.on")
        except Exception:
            raise AssertionError(f"the page did not go live; its errors: {errors}") from None
        return page

    yield open_page
    for c in contexts:
        c.close()


def card(page, name: str):
    return page.locator(f"li.clip[data-name={json.dumps(name)}]")


# ---------------------------------------------------------------------------------------------
# The page


def test_the_page_lists_the_clips_newest_first_with_their_details(server, page_at, web_env, tmp_path):
    page = page_at(server)
    page.wait_for_selector("li.clip[data-name='raw fox']")
    shown = page.eval_on_selector_all("li.clip", "els => els.map(e => e.dataset.name)")
    listed = cli_names(web_env)
    assert [n for n in shown if n in ("fox", "fox ogg", "raw fox")] == ["raw fox", "fox ogg", "fox"]
    assert [n for n in listed if n in shown] == shown  # the same order as `dictaphone list`
    meta = card(page, "fox").locator(".meta").inner_text()
    assert "wav" in meta and "0:02.7" in meta, meta  # 2.78 s of speech, cut to the tenth as `list` does
    assert "ogg" in card(page, "fox ogg").locator(".meta").inner_text()
    # The waveform is drawn: some pixels of the canvas are not blank.
    card(page, "fox").locator("canvas.wave").wait_for(state="visible")
    page.wait_for_function("""name => { const c = document.querySelector(`li.clip[data-name="${name}"] canvas`);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }""", arg="fox")
    assert page.errors == []
    page.screenshot(path=str(tmp_path / "laptop.png"), full_page=True)


def test_a_clip_plays_to_its_end_in_the_browser(server, page_at):
    page = page_at(server)
    for name in ("fox", "fox ogg"):
        card(page, name).locator("audio").wait_for(state="attached")
        result = page.evaluate("""name => new Promise((resolve, reject) => {
            const a = document.querySelector(`li.clip[data-name="${name}"] audio`);
            a.addEventListener('ended', () => resolve({time: a.currentTime, duration: a.duration}));
            a.addEventListener('error', () => reject('media error ' + a.error.code));
            a.play().catch(e => reject(String(e)));
        })""", name)
        assert result["duration"] == pytest.approx(2.8, abs=0.1)
        assert result["time"] == pytest.approx(result["duration"], abs=0.05)


def test_raw_clips_are_marked_as_not_playable_in_browsers(server, page_at):
    page = page_at(server)
    raw = card(page, "raw fox")
    raw.wait_for()
    assert raw.locator(".unplayable").is_visible()
    assert not raw.locator("audio").is_visible()
    assert not card(page, "fox").locator(".unplayable").is_visible()


def test_clicking_the_waveform_plays_from_that_point(server, page_at):
    page = page_at(server)
    canvas = card(page, "fox").locator("canvas.wave")
    canvas.wait_for(state="visible")
    box = canvas.bounding_box()
    at = played_from(page, "fox", lambda: canvas.click(position={"x": box["width"] * 0.5,
                                                                   "y": box["height"] / 2}))
    duration = page.evaluate("""() => document.querySelector('li.clip[data-name="fox"] audio').duration""")
    assert at == pytest.approx(duration * 0.5, abs=duration / box["width"] + 0.1)


def test_audio_is_served_with_range_requests(server, library):
    data = clip_path(library, "fox").read_bytes()
    status, headers, body = server.request("GET", "/api/clips/fox/audio", headers={"Range": "bytes=1000-1999"})
    assert status == 206
    assert headers["accept-ranges"] == "bytes"
    assert headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert headers["content-type"] == "audio/wav"
    assert body == data[1000:2000]
    status, headers, body = server.request("GET", "/api/clips/fox/audio")
    assert status == 200 and body == data


def test_renaming_from_the_page_renames_the_files(server, page_at, web_env, speech, library):
    cliutil.run("record", "--input", speech, "--name", "before", "-q", env=web_env)
    page = page_at(server)
    card(page, "before").locator(".rename").click()
    page.fill("#rename-input", "after it")
    page.click("#rename-ok")
    card(page, "after it").wait_for()
    assert card(page, "before").count() == 0
    assert (library / "after it.wav").is_file() and (library / "after it.wav.json").is_file()
    assert not (library / "before.wav").exists() and not (library / "before.wav.json").exists()
    assert "after it" in cli_names(web_env) and "before" not in cli_names(web_env)
    # A name the library refuses is refused here too, with the CLI's reason.
    card(page, "after it").locator(".rename").click()
    page.fill("#rename-input", "../escape")
    page.click("#rename-ok")
    page.locator("#rename-error", has_text="separator").wait_for()
    page.click("#rename-dialog [data-close]")
    assert not (library.parent / "escape.wav").exists()


def test_deleting_from_the_page_asks_first_and_removes_the_files(server, page_at, web_env, speech, library):
    cliutil.run("record", "--input", speech, "--name", "doomed", "-q", env=web_env)
    page = page_at(server)
    card(page, "doomed").locator(".delete").click()
    page.click("#delete-dialog [data-close]")  # "Cancel": nothing happens
    assert (library / "doomed.wav").is_file()
    card(page, "doomed").locator(".delete").click()
    assert "doomed" in page.locator("#delete-dialog h3").inner_text()
    page.click("#delete-ok")
    card(page, "doomed").wait_for(state="detached")
    assert not (library / "doomed.wav").exists() and not (library / "doomed.wav.json").exists()
    assert "doomed" not in cli_names(web_env)


def test_changes_made_with_the_cli_appear_without_a_reload(server, page_at, web_env, speech):
    page = page_at(server)
    page.evaluate("window.notReloaded = true")
    r = cliutil.run("record", "--input", speech, "--name", "from the terminal", "-q", env=web_env)
    assert r.returncode == 0, r.stderr
    card(page, "from the terminal").wait_for()
    cliutil.run("rename", "from the terminal", "renamed in the terminal", env=web_env)
    card(page, "renamed in the terminal").wait_for()
    card(page, "from the terminal").wait_for(state="detached")
    cliutil.run("delete", "--yes", "renamed in the terminal", env=web_env)
    card(page, "renamed in the terminal").wait_for(state="detached")
    assert page.evaluate("window.notReloaded") is True


def test_a_gap_where_the_device_was_lost_is_shown_and_plays_from_there(server, page_at, web_env, speech):
    cliutil.run("record", "--input", speech, "--name", "gappy", "-q", env=web_env)
    page = page_at(server)
    card(page, "gappy").wait_for()
    meta_path = server.home / "gappy.wav.json"
    meta = json.loads(meta_path.read_text())
    meta["gaps"] = [{"time": 1.5, "duration": 2.25, "reason": "device lost"}]
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, meta_path)  # as the recorder writes it
    chip = card(page, "gappy").locator(".marker.gap")
    chip.wait_for()  # a metadata change reaches the open page too
    assert "0:01.5" in chip.inner_text()
    assert "2.2 s missing" in chip.inner_text() or "2.3 s missing" in chip.inner_text()
    assert played_from(page, "gappy", chip.click) == pytest.approx(1.5, abs=0.1)


def test_times_on_the_page_read_as_the_clis_do(server, page_at):
    # A marker made at 4.75 s read 00:04.7 in the terminal, 0:04.8 on the page and
    # 00:00:04.750 in `marks`, and a clip of 59.96 s read "0:60.0": one format now (the
    # core's timecode.clock), cut to each place's precision.
    from dictaphone.timecode import clock

    page = page_at(server)
    for seconds in (0.0, 0.05, 2.78, 4.75, 6.573, 9.99, 59.96, 59.99, 61.05, 599.97, 3599.96,
                    3723.45, 36000.5):
        for places in (0, 1, 3):
            shown = page.evaluate("([s, p]) => clock(s, p)", [seconds, places])
            assert shown == clock(seconds, places), (seconds, places, shown)
        assert page.evaluate("s => clock(s, true)", seconds) == clock(seconds, 1)
        assert page.evaluate("s => clock(s)", seconds) == clock(seconds, 0)  # a transcript line


def test_a_clip_with_many_markers_keeps_them_to_a_few_rows_that_scroll(server, page_at, web_env, speech):
    # 300 markers (a key held down) made a card two screens tall of marker chips.
    r = cliutil.run("record", "--input", speech, "--name", "many marks", "-q", env=web_env)
    assert r.returncode == 0, r.stderr
    meta_path = server.home / "many marks.wav.json"
    meta = json.loads(meta_path.read_text())
    meta["markers"] = [{"number": i + 1, "time": round(i * 0.009, 3), "label": f"Marker {i + 1}"} for i in range(300)]
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, meta_path)  # as the recorder writes it
    try:
        for viewport in (LAPTOP, PHONE):
            page = page_at(server, viewport=viewport)
            chips = card(page, "many marks").locator(".markers")
            chips.locator(".marker").nth(299).wait_for(state="attached")
            box = chips.bounding_box()
            assert box["height"] < 150, box  # a few rows
            assert chips.evaluate("e => e.scrollHeight > e.clientHeight")  # the rest scroll
            assert card(page, "many marks").bounding_box()["height"] < viewport["height"]
    finally:
        r = cliutil.run("delete", "many marks", "--yes", env=web_env)
        assert r.returncode == 0, r.stderr


def test_the_page_is_tidy_on_a_phone_sized_window(server, page_at, tmp_path):
    page = page_at(server, viewport=PHONE)
    card(page, "fox").locator("canvas.wave").wait_for(state="visible")
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for selector in ("#search", "#record", "li.clip[data-name='fox'] .delete", "li.clip[data-name='fox'] audio"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], selector
    page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)


def test_a_long_name_and_a_long_marker_label_do_not_widen_the_page(server, page_at, speech, tmp_path):
    # The CLI takes a 190-character name and a 256-character label, spaces or not: the page
    # made from them must still fit the window (it scrolled sideways on a laptop and a phone).
    name, label = "W" * 190, "Label" * 51 + "X"
    proc = subprocess.Popen([*cliutil.CLI, "record", "--input", speech, "--realtime", "--name", name, "-q"],
                            env=server.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        cliutil.wait_for_status(server.env, lambda entries: any(e.get("started") for e in entries))
        m = cliutil.run("mark", label, env=server.env)
        assert m.returncode == 0, m.stderr
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()
    finally:
        stop_process(proc)
        proc.stderr.close()
    try:
        for size, viewport in (("phone", PHONE), ("laptop", LAPTOP)):
            page = page_at(server, viewport=viewport)
            chip = card(page, name).locator(".markers .marker")
            chip.wait_for()
            page.screenshot(path=str(tmp_path / f"long-{size}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], size
            box, clip_box = chip.bounding_box(), card(page, name).bounding_box()
            assert clip_box["x"] + clip_box["width"] <= viewport["width"], size
            assert box["x"] + box["width"] <= clip_box["x"] + clip_box["width"], size
            assert label in chip.get_attribute("title")  # the whole label, where it was cut
    finally:
        r = cliutil.run("delete", name, "--yes", env=server.env)
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------------------------
# Transcripts


@pytest.fixture(scope="module")
def transcribed(server, transcriber, tmp_path_factory):
    """A clip 'notes' of four sentences with a known timeline, and its saved transcript."""
    from dictaphone import transcript

    script = speechlab.make_script(tmp_path_factory.mktemp("script") / "notes.wav")
    r = cliutil.run("record", "--input", script.path, "--name", "notes", "-q", env=server.env)
    assert r.returncode == 0, r.stderr
    path = clip_path(server.home, "notes")  # the same samples as the script (WAV to WAV)
    t = transcriber.transcribe(str(path))
    transcript.save(path, t)
    return script, t


def played_from(page, name: str, action) -> float:
    """Do ``action`` (a click) and return where the clip's player seeked to; checks that
    it then plays, and pauses it. Read at the ``seeked`` event, so a slow machine's delay
    before the check does not move the answer (playback may have begun a frame or two
    before the event is handled: about 20 ms, measured)."""
    page.evaluate("""name => { const a = document.querySelector(`li.clip[data-name="${name}"] audio`);
        window.seekedTo = null;
        a.addEventListener('seeked', () => { window.seekedTo = a.currentTime; }, {once: true}); }""", name)
    action()
    page.wait_for_function("() => window.seekedTo !== null")
    page.wait_for_function("""name => !document.querySelector(`li.clip[data-name="${name}"] audio`).paused""",
                           arg=name)
    page.evaluate("""name => document.querySelector(`li.clip[data-name="${name}"] audio`).pause()""", name)
    return page.evaluate("window.seekedTo")


def test_a_clip_shows_the_first_words_of_its_transcript(server, page_at, transcribed):
    page = page_at(server)
    preview = card(page, "notes").locator(".preview")
    preview.wait_for()
    assert "remember to buy milk" in preview.inner_text().lower()
    assert not card(page, "fox").locator(".preview").is_visible()  # no transcript, no line


def test_clicking_a_transcript_word_plays_from_when_it_was_said(server, page_at, transcribed, tmp_path):
    script, _ = transcribed
    page = page_at(server)
    c = card(page, "notes")
    c.locator("details.transcript summary").click()
    word = c.locator(".word", has_text="dentist").first
    word.wait_for()
    said = float(word.get_attribute("data-start"))
    sentence = script.sentences[1]  # "The meeting with the dentist is on Friday morning."
    assert sentence.speech_start <= said <= sentence.speech_end, (said, sentence)
    assert played_from(page, "notes", word.click) == pytest.approx(said, abs=0.1)
    # A line's time stamp plays the line from its start.
    line = c.locator(".segment", has_text="plumber").locator(".ts")
    start = float(line.get_attribute("data-start"))
    assert played_from(page, "notes", line.click) == pytest.approx(start, abs=0.1)
    assert script.sentences[2].start - 0.5 <= start <= script.sentences[2].speech_end
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / "laptop-transcript.png"))
    if os.environ.get("DICTAPHONE_WEB_SCREENSHOT"):  # the README's picture
        page.screenshot(path=os.environ["DICTAPHONE_WEB_SCREENSHOT"])


def cli_search(env, *words) -> list[tuple[str, float, float]]:
    r = cliutil.run("search", *words, "--json", env=env)
    assert r.returncode in (0, 1), r.stderr
    return [(h["name"], round(h["start"], 3), round(h["end"], 3)) for h in json.loads(r.stdout or "[]")]


def page_search(server, query: str) -> list[tuple[str, float, float]]:
    status, _, body = server.request("GET", "/api/search?q=" + urllib.parse.quote(query))
    assert status == 200, body
    return [(h["name"], round(h["start"], 3), round(h["end"], 3)) for h in json.loads(body)["hits"]]


@pytest.mark.parametrize("query", ["plumber", "kitchen sink", "THE", "zebra"])
def test_search_gives_the_same_results_as_the_cli(server, transcribed, query):
    assert page_search(server, query) == cli_search(server.env, query)


def test_search_finds_a_spoken_word_and_jumps_to_it(server, page_at, transcribed):
    script, _ = transcribed
    expected = cli_search(server.env, "plumber")
    assert [name for name, _, _ in expected] == ["notes"]
    page = page_at(server)
    page.fill("#search", "Plumber")
    hit = page.locator("#hits .hit", has_text="notes")
    hit.wait_for()
    assert hit.count() == 1 and hit.locator("mark").inner_text().lower() == "plumber"
    at = played_from(page, "notes", hit.click)
    sentence = script.sentences[2]  # "Call the plumber about the kitchen sink."
    assert at == pytest.approx(expected[0][1], abs=0.1)
    assert sentence.speech_start - 0.3 <= at <= sentence.speech_end
    assert card(page, "notes").locator("details.transcript[open] .word", has_text="plumber").is_visible()
    page.fill("#search", "zebra")
    page.locator("#hits .none", has_text="No match").wait_for()


def test_transcribe_from_the_page_saves_the_transcript_and_shows_it(web_env, whisper_model, page_at, tmp_path):
    env = dict(web_env, DICTAPHONE_HOME=str(tmp_path / "library"), DICTAPHONE_MODEL=whisper_model)
    script = speechlab.make_script(tmp_path / "script.wav", speechlab.SENTENCES[2:], pause=1.0)
    r = cliutil.run("record", "--input", script.path, "--name", "untranscribed", "-q", env=env)
    assert r.returncode == 0, r.stderr
    server = Server(env)
    try:
        page = page_at(server)
        c = card(page, "untranscribed")
        assert not c.locator("details.transcript").is_visible()
        c.locator(".transcribe").click()
        c.locator(".preview").wait_for(timeout=60_000)
        assert "plumber" in c.locator(".preview").inner_text().lower()
        assert not c.locator(".transcribe").is_visible()
        assert (server.home / "untranscribed.wav.transcript.json").is_file()
        assert [h[0] for h in cli_search(env, "plumber")] == ["untranscribed"]
        c.locator("details.transcript summary").click()
        c.locator(".word", has_text="Maria").wait_for()
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------
# A big library: the index, pages of clips, changes pushed one clip at a time (issue #19)

BIG = 2000


@pytest.fixture(scope="module")
def big_server(web_env, transcriber, tmp_path_factory):
    """2,000 clips made by librarylab from one clip recorded by the CLI and transcribed."""
    import librarylab
    from dictaphone import transcript

    root = tmp_path_factory.mktemp("big")
    env = dict(web_env, DICTAPHONE_HOME=str(root / "source"))
    script = speechlab.make_script(root / "notes.wav")
    r = cliutil.run("record", "--input", script.path, "--name", "notes", "-q", env=env)
    assert r.returncode == 0, r.stderr
    source = root / "source" / "notes.wav"
    transcript.save(source, transcriber.transcribe(str(source)))
    home = root / "library"
    librarylab.build(home, source, BIG)
    s = Server(dict(web_env, DICTAPHONE_HOME=str(home)))
    try:
        yield s
    finally:
        s.stop()


def shown_names(page) -> list[str]:
    return page.eval_on_selector_all("#clips li.clip", "els => els.map(e => e.dataset.name)")


def test_a_big_library_shows_its_newest_clips_at_once_and_the_rest_as_it_scrolls(big_server, page_at):
    import librarylab

    page = page_at(big_server)
    page.locator("#count", has_text=f"({BIG})").wait_for()
    page.wait_for_function("() => document.querySelectorAll('#clips li.clip').length >= 40")
    first = shown_names(page)
    assert len(first) < 200, len(first)  # not the whole library
    assert first == [librarylab.name_of(i) for i in range(len(first))]
    for _ in range(3):
        before = len(shown_names(page))
        page.locator("#more").scroll_into_view_if_needed()
        page.wait_for_function("n => document.querySelectorAll('#clips li.clip').length > n", arg=before)
    shown = shown_names(page)
    assert shown == [librarylab.name_of(i) for i in range(len(shown))]  # in order, none twice
    status, headers, body = big_server.request("GET", "/api/clips?limit=3&before=" + urllib.parse.quote(
        json.loads(big_server.request("GET", "/api/clips?limit=1")[2])[0]["created"] + "\n" + librarylab.name_of(0)))
    assert status == 200 and headers["x-dictaphone-total"] == str(BIG)
    assert [c["name"] for c in json.loads(body)] == [librarylab.name_of(i) for i in (1, 2, 3)]
    assert page.errors == []


def test_a_hit_in_a_clip_further_down_opens_it_at_the_word_on_a_phone(big_server, page_at, tmp_path):
    import librarylab

    n = 1500
    word = librarylab.number_word(n)
    page = page_at(big_server, viewport=PHONE)
    page.wait_for_function("() => document.querySelectorAll('#clips li.clip').length >= 40")
    page.fill("#search", word)
    hit = page.locator("#hits .hit", has_text=librarylab.name_of(n))
    hit.wait_for()
    assert hit.count() == 1 and hit.locator("mark").inner_text() == word
    box = hit.locator("mark").bounding_box()
    assert box and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"]  # the match is on screen
    expected = [h for h in page_search(big_server, word)][0][1]
    # (media events do not bubble, but a listener on the document sees them going down)
    page.evaluate("""() => { window.seekedTo = null; document.addEventListener('seeked',
        e => { if (window.seekedTo === null) window.seekedTo = e.target.currentTime; }, true); }""")
    hit.click()
    c = card(page, librarylab.name_of(n))
    c.wait_for()
    page.wait_for_function("() => window.seekedTo !== null")
    page.evaluate("() => document.querySelectorAll('audio').forEach(a => a.pause())")
    assert page.evaluate("window.seekedTo") == pytest.approx(expected, abs=0.1)
    assert c.evaluate("e => e.parentElement.id") == "found"  # not in the list's window: opened on its own
    said = c.locator(".word", has_text=word)
    said.wait_for()
    box = said.bounding_box()  # scrolled into view: on the phone's screen
    assert box and 0 <= box["y"] and box["y"] + box["height"] <= PHONE["height"], box
    page.screenshot(path=str(tmp_path / "phone-hit.png"))


def test_search_hits_come_a_page_at_a_time(big_server, page_at):
    page = page_at(big_server)
    page.fill("#search", "dentist")
    more = page.locator("#hits .more-hits")
    more.wait_for()
    assert page.locator("#hits .hit").count() == 20
    assert f"{BIG - 20} more" in more.inner_text()
    more.click()
    page.wait_for_function("() => document.querySelectorAll('#hits .hit').length === 40")
    status, _, body = big_server.request("GET", "/api/search?q=dentist&limit=5&offset=10")
    data = json.loads(body)
    assert status == 200 and data["total"] == BIG and len(data["hits"]) == 5 and data["offset"] == 10
    status, _, body = big_server.request("GET", "/api/search?q=" + urllib.parse.quote('"kitchen'))
    assert status == 400 and "quote" in json.loads(body)["error"]


def test_clips_added_renamed_and_deleted_by_hand_appear_on_the_page(big_server, page_at):
    import librarylab

    home = big_server.home
    page = page_at(big_server)
    page.evaluate("window.notReloaded = true")
    page.wait_for_function("() => document.querySelectorAll('#clips li.clip').length >= 40")
    shutil.copy(home / "memo 00005.wav", home / "copied in.wav")  # no sidecar: a file copied in by hand
    card(page, "copied in").wait_for()
    assert shown_names(page)[0] == "copied in"  # its date is the file's: the newest
    page.locator("#count", has_text=f"({BIG + 1})").wait_for()
    os.rename(home / "copied in.wav", home / "renamed by hand.wav")
    card(page, "renamed by hand").wait_for()
    card(page, "copied in").wait_for(state="detached")
    os.unlink(home / "renamed by hand.wav")
    card(page, "renamed by hand").wait_for(state="detached")
    page.locator("#count", has_text=f"({BIG})").wait_for()
    # a transcript saved by another program: found at once
    sidecar = home / "memo 00003.wav.transcript.json"
    sidecar.write_text(sidecar.read_text().replace("kitchen", "garage"))  # in place
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "memo 00003" not in [n for n, *_ in page_search(big_server, "garage")]:
        time.sleep(0.2)
    assert [n for n, *_ in page_search(big_server, "garage")] == ["memo 00003"]
    assert page.evaluate("window.notReloaded") is True
    assert librarylab.name_of(0) in shown_names(page)


class EventStream:
    """The page's event stream (/api/events) read from a plain socket: http.client buffers
    what comes with the headers, where select() cannot see it (events that came in the
    same packet as the headers were missed until the next one)."""

    def __init__(self, server):
        self.sock = socket.create_connection((server.host, server.port), timeout=30)
        self.sock.sendall((f"GET /api/events HTTP/1.1\r\nHost: {server.netloc}\r\n"
                           f"X-Dictaphone-Token: {server.token}\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the event stream"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert head.split(b"\r\n")[0].split()[1] == b"200", head
        assert b"chunked" in head.lower(), head  # the chunk sizes are taken out below
        self.body = b""

    def _take_chunks(self) -> None:
        while True:
            line_end = self.buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.buf[:line_end].split(b";")[0], 16)
            if len(self.buf) < line_end + 2 + size + 2:
                return
            self.body += self.buf[line_end + 2:line_end + 2 + size]
            self.buf = self.buf[line_end + 2 + size + 2:]

    def read(self, seconds: float, until=None) -> list[tuple[str, str]]:
        """(event, data) pairs that arrive within ``seconds`` (or until ``until(pairs)`` holds:
        a bound on how long the server may take belongs in a benchmark, not here)."""
        out = []
        deadline = time.monotonic() + seconds
        while True:
            self._take_chunks()
            while b"\n\n" in self.body:
                block, self.body = self.body.split(b"\n\n", 1)
                lines = block.decode().splitlines()
                name = next((ln[7:] for ln in lines if ln.startswith("event: ")), None)
                data = next((ln[6:] for ln in lines if ln.startswith("data: ")), None)
                if name:
                    out.append((name, data))
            if (until and until(out)) or time.monotonic() >= deadline:
                return out
            if select.select([self.sock], [], [], min(0.1, max(0.0, deadline - time.monotonic())))[0]:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return out
                self.buf += chunk

    def close(self) -> None:
        self.sock.close()


def test_a_change_sends_the_changed_clip_not_the_library(big_server):
    home = big_server.home
    stream = EventStream(big_server)
    try:
        first = stream.read(30.0, until=lambda got: "recordings" in [n for n, _ in got])
        assert [n for n, _ in first][:1] == ["hello"] and json.loads(first[0][1])["total"] == BIG
        assert all(len(d or "") < 2000 for _, d in first)  # no list of 2,000 clips
        meta = home / "memo 00010.wav.json"
        data = json.loads(meta.read_text())
        tmp = home / ".edit.tmp"
        tmp.write_text(json.dumps(dict(data, device="another microphone")))
        os.replace(tmp, meta)
        events = stream.read(30.0, until=lambda got: "clip" in [n for n, _ in got])
        events += stream.read(1.0)  # and whatever else comes with it
        clips = [json.loads(d)["clip"] for n, d in events if n == "clip"]
        assert [c["name"] for c in clips] == ["memo 00010"] and clips[0]["device"] == "another microphone"
        assert sum(len(d or "") for _, d in events) < 3000, events
        assert stream.read(2.0) == []  # and then nothing, while nothing changes
    finally:
        stream.close()


# ---------------------------------------------------------------------------------------------
# Recording from the page (real audio through the virtual microphone)


@pytest.fixture
def audio_server(pulse, tmp_path):
    """A server whose recordings use the session's virtual microphone."""
    env = dict(pulse.env)
    env["DICTAPHONE_HOME"] = str(tmp_path / "library")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent.parent), env.get("PYTHONPATH")]))
    s = Server(env)
    try:
        yield s
    finally:
        s.stop()


def same_rate(reference: Path, recording: Path, tmp_path: Path):
    """(reference, recording, rate) for speech_score: the page records at the device's
    default rate (44.1 kHz here), so the same espeak sentence is made at that rate."""
    rate = soundfile.info(str(recording)).samplerate
    if rate == audiolab.RATE:
        return reference, recording, rate
    from conftest import SPEECH_TEXT

    return audiolab.make_speech(tmp_path / f"speech-{rate}.wav", SPEECH_TEXT, rate=rate), recording, rate


def row(page, name: str):
    return page.locator(".recording-row", has=page.locator(".rname", has_text=name))


def level_width(page, name: str) -> float:
    return float(row(page, name).locator(".level").evaluate("e => parseFloat(e.style.width) || 0"))


def test_record_and_stop_from_the_page_make_a_clip_of_what_the_microphone_heard(
        audio_server, page_at, pulse, speech, tmp_path):
    page = page_at(audio_server)
    page.fill("#rec-name", "page memo")
    page.click("#record")
    r = row(page, "page memo")
    r.wait_for()
    assert "from this page" in r.locator(".rsource").inner_text()
    # Started once the recorded time moves (the first audio arrived).
    page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtime');
        return t && t.textContent !== '0:00.0' && t.textContent !== '–'; }""")
    # The clip being written is listed, marked as such, without a player yet.
    busy = card(page, "page memo")
    busy.locator(".busy").wait_for()
    assert not busy.locator("audio").is_visible()
    quiet = level_width(page, "page memo")
    widths = []
    player = pulse.play(speech)
    try:
        deadline = time.monotonic() + 15
        while player.poll() is None and time.monotonic() < deadline:
            widths.append(level_width(page, "page memo"))
            page.wait_for_timeout(100)
    finally:
        stop_process(player)
    page.wait_for_timeout(500)  # the tail of the speech reaches the file
    r.locator(".stop").click()
    card(page, "page memo").locator("audio").wait_for()
    r.wait_for(state="detached")
    assert not card(page, "page memo").locator(".busy").is_visible()
    # The meter moved with the speech and was still before it.
    assert quiet < 5, quiet
    assert max(widths) > 50, widths
    path = clip_path(audio_server.home, "page memo")
    assert speech_score(*same_rate(speech, path, tmp_path)) > 0.9
    card(page, "page memo").locator("canvas.wave").wait_for(state="visible")


def test_record_with_transcribe_from_the_page_gives_a_clip_with_its_transcript(
        pulse, whisper_model, page_at, tmp_path):
    env = dict(pulse.env, DICTAPHONE_HOME=str(tmp_path / "library"), DICTAPHONE_MODEL=whisper_model,
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                         os.environ.get("PYTHONPATH")])))
    script = speechlab.make_script(tmp_path / "script.wav", speechlab.SENTENCES[:2], pause=1.0)
    server = Server(env)
    try:
        page = page_at(server)
        assert page.locator("#rec-transcribe-label").is_visible()  # the extra is installed here
        page.fill("#rec-name", "dictated")
        page.check("#rec-transcribe")
        page.click("#record")
        r = row(page, "dictated")
        r.wait_for()
        page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtime');
            return t && t.textContent !== '0:00.0' && t.textContent !== '–'; }""")
        player = pulse.play(script.path)
        try:
            # Words of the recording in progress, in its row and in its card, before the stop
            # (through the page's event stream, as they are recognised).
            page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtext');
                return t && !t.hidden && /please|remember|milk|bread/i.test(t.textContent); }""",
                                   timeout=60_000)
            assert r.is_visible()  # still recording
            live_card = card(page, "dictated").locator(".preview")
            live_card.wait_for(timeout=10_000)
            assert live_card.inner_text().strip()
        finally:
            player.wait(60)
        page.wait_for_timeout(500)
        r.locator(".stop").click()
        # The transcript's tail is recognised after the stop; then the card is a clip (a
        # player) with the saved transcript's first words.
        sidecar = server.home / "dictated.wav.transcript.json"
        deadline = time.monotonic() + 60
        while not sidecar.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        card(page, "dictated").locator("audio").wait_for(timeout=30_000)
        preview = card(page, "dictated").locator(".preview")
        preview.wait_for(timeout=10_000)
        saved = json.loads(sidecar.read_text())["text"].lower()
        said = [w for w in ("milk", "bread", "dentist", "friday") if w in saved]
        assert said, saved
        assert saved.startswith(preview.inner_text().strip("“”…").lower()[:20])
        assert [h[0] for h in cli_search(env, said[0])] == ["dictated"]
        assert [h[0] for h in page_search(server, said[0])] == ["dictated"]
    finally:
        server.stop()


def test_markers_made_from_the_page_and_the_terminal_are_on_the_clip(audio_server, page_at, pulse, speech):
    page = page_at(audio_server)
    page.fill("#rec-name", "marked memo")
    page.click("#record")
    r = row(page, "marked memo")
    r.wait_for()
    page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtime');
        return t && t.textContent !== '0:00.0' && t.textContent !== '–'; }""")
    pulse.play_and_wait(speech)
    before = cliutil.status_entries(audio_server.env)[0]["duration"]
    r.locator(".mark").click()
    page.locator("#toast", has_text="Marker 1").wait_for()
    after = cliutil.status_entries(audio_server.env)[0]["duration"]
    m = cliutil.run("mark", "from the terminal", env=audio_server.env)
    assert m.returncode == 0, m.stderr
    r.locator(".stop").click()
    c = card(page, "marked memo")
    c.locator("audio").wait_for()
    chips = c.locator(".markers .marker:not(.gap)")
    chips.nth(1).wait_for()
    listed = json.loads(cliutil.run("marks", "marked memo", "--json", env=audio_server.env).stdout)
    assert [(x["number"], x["label"]) for x in listed] == [(1, "Marker 1"), (2, "from the terminal")]
    # status counts what was written (in 0.25 s writes), a marker what was captured (up to
    # two 0.25 s paced reads further): the marker lies between the two looks, give or take that.
    assert before - 0.1 <= listed[0]["time"] <= after + 0.75, (before, listed, after)
    texts = chips.all_inner_texts()
    assert "Marker 1" in texts[0] and "from the terminal" in texts[1]
    # The waveform draws them: a line in the marker colour at each one's time.
    for mk in listed:
        rgb = page.evaluate("""([name, t]) => {
            const card = document.querySelector(`li.clip[data-name="${name}"]`);
            const c = card.querySelector('canvas');
            const duration = card.querySelector('audio').duration;
            const x = Math.round(t / duration * c.width);
            const d = c.getContext('2d').getImageData(x, c.height - 1, 1, 1).data;
            return [d[0], d[1], d[2]]; }""", ["marked memo", mk["time"]])
        assert rgb == [0x1f, 0x6f, 0xd1], (mk, rgb)  # --marker in the light theme
    # A marker plays from its time.
    assert played_from(page, "marked memo", chips.nth(0).click) == pytest.approx(listed[0]["time"], abs=0.1)


def test_pause_and_resume_from_the_page_control_the_recording(audio_server, page_at):
    page = page_at(audio_server)
    page.fill("#rec-name", "paused memo")
    page.click("#record")
    r = row(page, "paused memo")
    r.wait_for()
    env = audio_server.env
    r.locator(".pause").click()
    page.wait_for_function("() => document.querySelector('.recording-row').dataset.state === 'paused'")
    (entry,) = cliutil.status_entries(env)
    assert entry["state"] == "paused"
    r.locator(".resume").click()
    page.wait_for_function("() => document.querySelector('.recording-row').dataset.state === 'recording'")
    assert cliutil.status_entries(env)[0]["state"] == "recording"
    r.locator(".stop").click()
    card(page, "paused memo").wait_for()



def test_a_lost_input_shows_on_the_recordings_row_with_its_countdown_and_recording_goes_on(
        page_at, tmp_path):
    # The terminal's meter says "DEVICE LOST — waiting 27 s"; the page showed a frozen
    # time and an empty meter, as if the recording had hung.
    with audiolab.PulseServer() as pulse_server:
        env = dict(pulse_server.env, DICTAPHONE_HOME=str(tmp_path / "library"))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                          env.get("PYTHONPATH")]))
        server = Server(env)
        try:
            page = page_at(server)
            page.fill("#rec-name", "lost memo")
            page.click("#record")
            r = row(page, "lost memo")
            r.wait_for()
            page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtime');
                return t && t.textContent !== '0:00.0' && t.textContent !== '–'; }""")
            pulse_server.kill()
            page.wait_for_function("() => document.querySelector('.recording-row').dataset.state === 'lost'",
                                   timeout=30_000)
            state = r.locator(".rstate").inner_text()
            assert "device lost (the audio server stopped), waiting" in state, state
            assert int(state.split("waiting ", 1)[1].split(" s", 1)[0]) <= 30
            page.screenshot(path=str(tmp_path / "lost.png"))
            pulse_server.restart()
            page.wait_for_function(
                "() => document.querySelector('.recording-row').dataset.state === 'recording'", timeout=30_000)
            r.locator(".stop").click()
            chip = card(page, "lost memo").locator(".marker.gap")
            chip.wait_for()  # the clip lists the gap
            assert "the audio server stopped" in chip.inner_text()
        finally:
            server.stop()


def test_a_recording_started_in_a_terminal_shows_up_and_stops_from_the_page(audio_server, page_at):
    rec = subprocess.Popen([*cliutil.CLI, "record", "-r", "44100", "--name", "terminal memo"], env=audio_server.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = page_at(audio_server)
        r = row(page, "terminal memo")
        r.wait_for()
        assert f"pid {rec.pid}" in r.locator(".rsource").inner_text()
        page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtime');
            return t && t.textContent !== '0:00.0' && t.textContent !== '–'; }""")
        r.locator(".stop").click()
        assert rec.wait(cliutil.EXIT_TIMEOUT) == 0
    finally:
        stop_process(rec)
    card(page, "terminal memo").wait_for()
    path = clip_path(audio_server.home, "terminal memo")
    assert audiolab.assert_complete_wav(path, rate=44100) > 0


def test_recording_under_a_name_that_is_taken_shows_the_clis_error(audio_server, page_at, speech):
    cliutil.run("record", "--input", speech, "--name", "taken", "-q", env=audio_server.env)
    page = page_at(audio_server)
    card(page, "taken").wait_for()
    page.fill("#rec-name", "taken")
    page.click("#record")
    page.locator("#rec-error", has_text="exists already").wait_for()
    assert page.locator(".recording-row").count() == 0
    assert cliutil.run("status", env=audio_server.env).returncode == 1


def test_three_record_starts_at_once_under_one_name_make_one_clip(audio_server, page_at):
    # Three Record clicks (or three pages) at the same moment: one recording gets the name,
    # the others are told it is taken; never two clips called "same".
    results = [None] * 3
    barrier = threading.Barrier(3)

    def start(i):
        barrier.wait()
        results[i] = audio_server.post("/api/record", {"name": "same", "format": ("wav", "flac", "ogg")[i]})

    threads = [threading.Thread(target=start, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(r[0] for r in results)
    assert statuses == [200, 400, 400], results
    for status, _, body in results:
        if status == 400:
            assert b"same" in body and (b"exists already" in body or b"being made" in body), body
    started = json.loads(next(r[2] for r in results if r[0] == 200))
    cliutil.wait_for_status(audio_server.env, lambda es: any(e["duration"] > 0 for e in es))
    status, _, body = audio_server.post(f"/api/recordings/{started['id']}/stop")
    assert status == 200, body
    cliutil.wait_for_status(audio_server.env, lambda es: not es)
    made = [p.name for p in audio_server.home.iterdir() if p.name.startswith("same")
            and not p.name.endswith(".json")]
    assert len(made) == 1, made
    assert cli_names(audio_server.env) == ["same"]


def test_stopping_the_server_saves_the_recording_the_page_started(pulse, tmp_path, speech):
    env = dict(pulse.env, DICTAPHONE_HOME=str(tmp_path / "library"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parent.parent),
                                                         os.environ.get("PYTHONPATH")])))
    server = Server(env)
    try:
        status, _, body = server.post("/api/record", {"name": "left running"})
        assert status == 200, body
        cliutil.wait_for_status(env, lambda entries: any(e["duration"] > 0 for e in entries))
        pulse.play_and_wait(speech)
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert "stopping the recording started from the page" in server.stderr
    assert cliutil.run("status", env=env).returncode == 1
    path = clip_path(server.home, "left running")
    audiolab.assert_complete_wav(path, rate=soundfile.info(str(path)).samplerate)
    assert speech_score(*same_rate(speech, path, tmp_path)) > 0.9


# ---------------------------------------------------------------------------------------------
# The guard


GETS = ["/", "/static/app.js", "/api/clips", "/api/clips/fox/audio", "/api/clips/fox/waveform",
        "/api/search?q=fox", "/api/recordings", "/api/events"]


@pytest.mark.parametrize("path", GETS)
def test_requests_without_the_token_are_refused(server, path):
    status, headers, body = server.request("GET", path, token=None)
    assert status == 403, body
    assert b"token" in body
    assert "set-cookie" not in headers


@pytest.mark.parametrize("how", ["header", "cookie", "query"])
def test_a_wrong_token_is_refused(server, how):
    wrong = server.token[:-1] + ("A" if server.token[-1] != "A" else "B")
    headers = {"header": {"X-Dictaphone-Token": wrong},
               "cookie": {"Cookie": f"dictaphone-token-{server.port}={wrong}"},
               "query": {}}[how]
    path = f"/?token={wrong}" if how == "query" else "/api/clips"
    status, h, _ = server.request("GET", path, token=None, headers=headers)
    assert status == 403
    assert "set-cookie" not in h


def test_the_token_in_the_address_becomes_a_cookie_and_leaves_the_address(server):
    status, headers, _ = server.request("GET", f"/?token={server.token}", token=None)
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"dictaphone-token-{server.port}={server.token};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    status, _, body = server.request("GET", "/api/clips", token=None,
                                     headers={"Cookie": cookie.split(";")[0]})
    assert status == 200 and json.loads(body)
    # The cookie reads; it does not change: a POST needs the header (a form cannot send one).
    status, _, _ = server.post("/api/clips/fox/delete", token=None, headers={"Cookie": cookie.split(";")[0]})
    assert status == 403
    assert clip_path(server.home, "fox").exists()


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
], ids=["other-site", "null-origin", "other-port", "cross-site", "same-site"])
def test_cross_origin_posts_are_refused_even_with_the_token(server, headers):
    status, h, body = server.post("/api/clips/fox/rename", {"name": "stolen"}, headers=headers)
    assert status == 403, body
    assert "access-control-allow-origin" not in h
    assert clip_path(server.home, "fox").exists() and not (server.home / "stolen.wav").exists()


def test_a_same_origin_post_with_the_token_is_accepted(server, speech):
    cliutil.run("record", "--input", speech, "--name", "same origin", "-q", env=server.env)
    status, _, body = server.post("/api/clips/same%20origin/delete",
                                  headers={"Origin": f"http://{server.netloc}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200, body
    assert not (server.home / "same origin.wav").exists()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1", "localhost:1",
                                  "127.0.0.2:{port}", "", "localhost:{port}.evil.example"])
def test_a_forged_host_header_is_refused(server, host):
    status, _, body = server.request("GET", "/api/clips", host=host.format(port=server.port))
    assert status == 403 and b"Host" in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}"])
def test_the_servers_own_addresses_are_accepted_as_host(server, host):
    status, _, _ = server.request("GET", "/api/clips", host=host.format(port=server.port))
    assert status == 200


def test_no_cors_headers_and_no_other_methods(server):
    for method in ("OPTIONS", "PUT", "DELETE", "PATCH"):
        status, headers, _ = server.request(method, "/api/clips/fox/delete",
                                            headers={"Origin": "http://evil.example",
                                                     "Access-Control-Request-Method": "POST"})
        assert status in (403, 405)
        assert not any(k.startswith("access-control-") for k in headers)
    status, headers, _ = server.request("GET", "/api/clips", headers={"Origin": "http://evil.example"})
    assert not any(k.startswith("access-control-") for k in headers)
    assert clip_path(server.home, "fox").exists()


TRAVERSALS = ["..", "...", ".", ".hidden", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a%5Cb",
              "%2E%2E", "fox%00", "..%2Foutside"]


@pytest.mark.parametrize("name", TRAVERSALS)
@pytest.mark.parametrize("what", ["audio", "waveform", "transcript"])
def test_clip_names_that_leave_the_library_are_refused_when_reading(server, name, what):
    status, _, body = server.request("GET", f"/api/clips/{name}/{what}")
    assert status in (400, 404), body
    assert b"root:" not in body and b"secret" not in body


@pytest.mark.parametrize("name", TRAVERSALS)
@pytest.mark.parametrize("what", ["rename", "delete", "transcribe"])
def test_clip_names_that_leave_the_library_are_refused_when_changing(server, name, what, outside):
    status, _, body = server.post(f"/api/clips/{name}/{what}", {"name": "moved"})
    assert status in (400, 404), body
    assert outside.read_text() == "secret"
    assert not (server.home / "moved.wav").exists()


@pytest.mark.parametrize("new", ["../outside", "a/b", "/tmp/x", ".hidden", "..", "a\\b", "x\n", "", " pad"])
def test_new_names_that_leave_the_library_are_refused(server, new, outside):
    status, _, body = server.post("/api/clips/fox/rename", {"name": new})
    assert status == 400, body
    assert b"clip name" in body  # refused by the library's rule, not for a missing field
    assert clip_path(server.home, "fox").exists()
    assert sorted(p.name for p in server.home.parent.iterdir()) == sorted(["library", "run", "outside.txt", "link.wav"])


@pytest.mark.parametrize("name", ["../outside", "a/b", ".hidden", "x\n", 5, ["a"]])
def test_recording_names_that_leave_the_library_are_refused(server, name):
    status, _, body = server.post("/api/record", {"name": name})
    assert status == 400, body
    assert cliutil.run("status", env=server.env).returncode == 1


@pytest.mark.parametrize("fmt", ["../wav", "raw", "wav; rm -rf /", "--force", 3])
def test_recording_formats_outside_the_list_are_refused(server, fmt):
    status, _, body = server.post("/api/record", {"name": "fine", "format": fmt})
    assert status == 400, body
    assert cliutil.run("status", env=server.env).returncode == 1
    assert not (server.home / "fine.wav").exists()


@pytest.mark.parametrize("rid", ["..%2F1", "1%2F..%2F..", "../1", "1;rm", "x"])
def test_recording_ids_that_are_not_running_are_refused(server, rid):
    status, _, body = server.post(f"/api/recordings/{rid}/stop")
    assert status in (400, 404), body


@pytest.mark.parametrize("query", ["columns=../../etc", "columns=1e9", "columns=1000000000", "columns=-5", "columns=",
                                   "download=../../etc/passwd"])
def test_query_parameters_are_numbers_or_flags_and_nothing_else(server, query):
    status, headers, body = server.request("GET", f"/api/clips/fox/waveform?{query}")
    if query.startswith("columns=") and query not in ("columns=1000000000", "columns=-5"):
        assert status == 400, body
    else:  # a number out of range is clamped; an unknown parameter is ignored
        assert status == 200 and 10 <= len(json.loads(body)["peaks"]) <= 2000
    status, headers, body = server.request("GET", f"/api/clips/fox/audio?{query}")
    assert status == 200 and body == clip_path(server.home, "fox").read_bytes()


def test_a_search_longer_than_a_phrase_is_refused(server):
    status, _, body = server.request("GET", "/api/search?q=" + "a%20" * 300)
    assert status == 400, body


def test_a_symlink_in_the_library_is_not_a_clip(server, outside):
    link = server.home / "link.wav"
    assert link.is_symlink()
    status, _, body = server.request("GET", "/api/clips/link/audio")
    assert status == 404 and b"secret" not in body
    status, _, _ = server.post("/api/clips/link/delete")
    assert status == 404
    assert link.is_symlink() and outside.read_text() == "secret"


@pytest.mark.parametrize("path", ["/static/..%2Fserver.py", "/static/../server.py", "/static/index.html",
                                  "/static/%2E%2E%2F__init__.py", "/static/", "/api/clips/fox/audio/../../../server.py"])
def test_only_the_pages_own_files_are_served(server, path):
    status, _, body = server.request("GET", path)
    assert status == 404, body
    assert b"import" not in body


def test_request_bodies_must_be_small_json_objects(server):
    assert server.post("/api/clips/fox/rename", {"name": "x" * 5000})[0] == 413
    status, _, _ = server.request("POST", "/api/clips/fox/rename", body=b"name=x",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415  # what a cross-site form would send
    assert clip_path(server.home, "fox").exists()


@pytest.fixture(scope="module")
def outside(server):
    """A file next to the library (never to be read or touched), and a symlink to it inside."""
    path = server.home.parent / "outside.txt"
    path.write_text("secret")
    (server.home.parent / "link.wav").symlink_to(path)
    (server.home / "link.wav").symlink_to(path)
    return path


# ---------------------------------------------------------------------------------------------
# The command


def test_serve_without_the_web_extra_names_the_package_to_install(web_env, tmp_path):
    fake = tmp_path / "nostarlette"
    fake.mkdir()
    (fake / "starlette.py").write_text("raise ImportError('No module named starlette', name='starlette')\n")
    env = dict(web_env, PYTHONPATH=os.pathsep.join([str(fake), web_env["PYTHONPATH"]]))
    r = cliutil.run("serve", env=env)
    assert r.returncode == 2
    assert cliutil.one_error_line(r.stderr)
    assert "pip install 'dictaphone[web]'" in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_the_server_cleanly_with_an_open_page(web_env, library, page_at, sig):
    s = Server(web_env)
    page = page_at(s)  # an open event stream must not hold the shutdown
    assert s.stop(sig) == 0
    assert "Traceback" not in s.stderr
    page.wait_for_selector("#live.off")


def test_serve_listens_on_loopback_and_warns_for_another_host(web_env):
    s = Server(web_env)
    try:
        # loopback, on an address of the page's own (see test_the_pages_secret_...)
        assert s.host.startswith("127.") and s.host != "127.0.0.1"
        assert s.request("GET", "/api/clips")[0] == 200
    finally:
        s.stop()
    s = Server(web_env, "--host", "0.0.0.0")
    try:
        assert s.request("GET", "/api/clips")[0] == 200
    finally:
        s.stop()
    assert "warning: listening on 0.0.0.0" in s.stderr


def test_a_port_in_use_is_one_error_line(web_env):
    # (another server on every address: serve's own loopback address has that port taken
    # too; a server on another 127.x address would not be in the way)
    import socket

    other = socket.socket()
    other.bind(("0.0.0.0", 0))
    other.listen(1)
    try:
        r = cliutil.run("serve", "--port", str(other.getsockname()[1]), env=web_env)
    finally:
        other.close()
    assert r.returncode == 1
    assert "in use" in cliutil.one_error_line(r.stderr)


# ---------------------------------------------------------------------------------------------
# Core functions the page uses (fast, no server)


def test_a_waveform_as_json_has_the_peaks_where_the_sound_is(tmp_path):
    import numpy as np
    from dictaphone.library.waveform import analyse

    path = tmp_path / "half.wav"
    rate = 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    soundfile.write(str(path), np.concatenate([tone, np.zeros(rate)]), rate, subtype="FLOAT")
    data = analyse(str(path), 20).to_json()
    json.dumps(data, allow_nan=False)  # strict JSON: a browser parses it
    assert data["duration"] == 2.0 and data["frames"] == 2 * rate
    assert len(data["peaks"]) == 20
    assert all(p == pytest.approx(0.5, abs=0.01) for p in data["peaks"][:10])
    assert all(p == 0 for p in data["peaks"][10:])
    assert data["peak_dbfs"] == pytest.approx(-6.0, abs=0.1)
    assert data["silences"] == [[1.0, 2.0]]


def test_a_silent_waveform_is_still_strict_json(tmp_path):
    import numpy as np
    from dictaphone.library.waveform import analyse

    path = tmp_path / "silent.wav"
    soundfile.write(str(path), np.zeros(8000), 8000)
    data = analyse(str(path), 10).to_json()
    assert data["peak_dbfs"] == data["rms_dbfs"] == -120.0  # the floor, never -inf
    json.dumps(data, allow_nan=False)


def test_open_starts_the_browser_on_the_address_with_its_token(web_env, tmp_path):
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    browser.chmod(0o755)
    s = Server(dict(web_env, BROWSER=str(browser)), "--open")
    try:
        deadline = time.monotonic() + 20
        while not (opened.exists() and opened.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert opened.read_text() == s.url
    finally:
        s.stop()


# ---------------------------------------------------------------------------------------------
# Other applications beside the page, damaged sidecars, odd names (issue #20: 3, 5, 11)

OTHER_APPS_COOKIES = ['prefs={"a":1}', "x=a b", "lang=\u00e9", "x", 'q="unterminated', "=bare", ";;"]


@pytest.mark.parametrize("other", OTHER_APPS_COOKIES)
@pytest.mark.parametrize("where", ["before", "after", "own-header"])
def test_other_apps_cookies_do_not_lock_the_page_out(server, other, where):
    ours = f"dictaphone-token-{server.port}={server.token}"
    headers = {"before": {"Cookie": f"{other}; {ours}"},
               "after": {"Cookie": f"{ours}; {other}"},
               "own-header": {}}[where]
    status, _, body = server.request("GET", "/api/clips", token=None, headers=headers)
    if where == "own-header":  # two Cookie headers (HTTP/2 style): the one with ours counts
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        try:
            conn.putrequest("GET", "/api/clips", skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", server.netloc)
            conn.putheader("Cookie", other.encode("utf-8"))
            conn.putheader("Cookie", ours)
            conn.endheaders()
            r = conn.getresponse()
            status, body = r.status, r.read()
        finally:
            conn.close()
    assert status == 200, body
    assert {c["name"] for c in json.loads(body)} >= {"fox", "fox ogg"}
    # ... and an other app's cookie that names ours with the wrong value lets nothing in
    wrong = f"dictaphone-token-{server.port}=nope; {other}"
    assert server.request("GET", "/api/clips", token=None, headers={"Cookie": wrong})[0] == 403


def test_the_page_works_in_a_browser_that_holds_other_apps_cookies(server, browser):
    context = browser.new_context()
    try:
        # what other local apps leave for this host: cookies SimpleCookie cannot read
        context.add_cookies([{"name": "prefs", "value": '{"a":1}', "url": server.base},
                             {"name": "lang", "value": "\u00e9t\u00e9", "url": server.base},
                             {"name": "x", "value": "a b", "url": server.base}])
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT)
        page.goto(server.url)
        page.wait_for_selector("#live.on")
        card(page, "fox").wait_for()
        # the page's own requests (its audio, with the cookie only) still pass
        assert page.evaluate("fetch('/api/clips/fox/audio').then(r => r.status)") == 200
    finally:
        context.close()


DEEP = "[" * 100_000


def test_a_deeply_nested_sidecar_does_not_break_the_page(server, speech, browser):
    r = cliutil.run("record", "--input", speech, "--name", "deep side", "-q", env=server.env)
    assert r.returncode == 0, r.stderr
    audio = server.home / "deep side.wav"
    try:
        for sidecar in ("json", "transcript.json", "markers.json"):
            Path(f"{audio}.{sidecar}").write_text(DEEP)
        status, _, body = server.request("GET", "/api/clips")
        assert status == 200, body
        listed = {c["name"]: c for c in json.loads(body)}
        assert "deep side" in listed and "fox" in listed
        assert server.request("GET", "/api/clips/deep%20side/transcript")[0] == 404
        assert server.request("GET", "/api/search?q=fox")[0] == 200
        assert server.request("GET", "/api/clips/deep%20side/waveform")[0] == 200
    finally:
        assert server.post("/api/clips/deep%20side/delete")[0] == 200
    assert not any(p.name.startswith("deep side") for p in server.home.iterdir())


@pytest.mark.parametrize("body", [b"[" * 4000, b'{"a":' * 800, b"[" * 40 + b"]" * 40,
                                  b'{"name": "\xff"}'],
                         ids=["deep-list", "deep-object", "deeper-than-ours", "not-utf8"])
def test_a_deep_or_undecodable_request_body_is_a_bad_request(server, body):
    for path in ("/api/clips/fox/rename", "/api/record", "/api/recordings/1/mark"):
        status, _, reply = server.request("POST", path, body=body,
                                          headers={"Content-Type": "application/json"})
        assert status == 400, (path, reply)
        assert b"Traceback" not in reply and b"Internal" not in reply
    assert clip_path(server.home, "fox").exists()


@pytest.mark.parametrize("name", ["a\ud800b", "\udcff", "\udc80x"])
def test_a_lone_surrogate_in_a_name_is_a_bad_request(server, name):
    # json.dumps writes them as \\ud800 escapes, as a hostile script would
    for path, data in (("/api/clips/fox/rename", {"name": name}), ("/api/record", {"name": name})):
        status, _, body = server.post(path, data)
        assert status == 400, (path, body)
        assert b"surrogate" in body
    assert clip_path(server.home, "fox").exists()
    assert cliutil.run("status", env=server.env).returncode == 1  # nothing was started


def test_a_marker_label_too_long_is_a_bad_request_not_a_conflict(server):
    status, _, body = server.post("/api/recordings/1/mark", {"label": "x" * 257})
    assert status == 400 and b"at most 256" in body, body
    status, _, body = server.post("/api/recordings/1/mark", {"label": "x" * 256})
    assert status == 404, body  # a fine label: on to "no such recording"


# ---------------------------------------------------------------------------------------------
# The page's secret across ports (issue #20, 2)


class OtherLocalServer:
    """Another program's HTTP server on this machine, on every address (0.0.0.0) and its
    own port: it keeps every request line and header the browser sends it."""

    def __init__(self):
        import http.server

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append((self.requestline, dict(self.headers)))
                body = b"<html><body>another app</body></html>"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_pages_secret_does_not_reach_other_local_servers(server, browser):
    import ipaddress

    # The page is on an address of its own: loopback, but not 127.0.0.1 (which every
    # local server shares, whatever its port).
    address = ipaddress.ip_address(server.host)
    assert address.is_loopback and str(address) != "127.0.0.1", server.url
    other = OtherLocalServer()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT)
        page.goto(server.url)
        page.wait_for_selector("#live.on")
        card(page, "fox").wait_for()
        cookies = context.cookies()
        ours = [c for c in cookies if server.token in c["value"]]
        assert ours and all(c["domain"] == server.host for c in ours), cookies  # it holds the secret
        # The same browser visits other local servers, as a user does (another app's page).
        visits = [f"http://127.0.0.1:{other.port}/", f"http://localhost:{other.port}/",
                  f"http://127.0.0.1:{other.port}/api/clips", f"http://some-app.localhost:{other.port}/"]
        for url in visits:
            page.goto(url)
            assert "another app" in page.content()
        # ... and the dictaphone page itself makes a request there (an image: no CORS)
        page.goto(server.base + "/")
        page.wait_for_selector("#live.on")
        page.evaluate("""port => new Promise(done => { const i = new Image();
            i.onload = i.onerror = done; i.src = `http://127.0.0.1:${port}/pixel`; })""", other.port)
    finally:
        context.close()
        other.close()
    assert len(other.seen) >= len(visits), other.seen  # Chromium resolved *.localhost itself
    for line, headers in other.seen:
        text = line + "\n" + "\n".join(f"{k}: {v}" for k, v in headers.items())
        assert server.token not in text, text
        assert "dictaphone-token" not in text, text


def test_the_token_on_127_0_0_1_leads_to_the_pages_own_address_before_any_cookie(server):
    # Typed by hand at 127.0.0.1 (or localhost): no cookie there (it would reach every other
    # server on 127.0.0.1), only a redirect to the page's own host.
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        status, headers, _ = server.request("GET", f"/?token={server.token}", token=None, host=host)
        assert status == 303 and "set-cookie" not in headers, headers
        assert headers["location"] == f"http://{server.netloc}/?token={server.token}"
        # a cookie sent to another host name is not this page's
        status, _, _ = server.request("GET", "/api/clips", token=None, host=host,
                                      headers={"Cookie": f"dictaphone-token-{server.port}={server.token}"})
        assert status == 403
    status, headers, _ = server.request("GET", f"/?token={server.token}", token=None)
    assert status == 303 and headers["location"] == "/" and server.token in headers["set-cookie"]


# ---------------------------------------------------------------------------------------------
# What surprised a new user (issue #20)


def test_the_live_label_says_in_words_what_it_means(server, page_at):
    page = page_at(server)
    live = page.locator("#live")
    assert live.inner_text() == "live"
    title = live.get_attribute("title")
    assert "connected to dictaphone serve" in title and "without reloading" in title, title
    live.click()  # a phone has no hover: a tap shows the same words
    page.locator("#toast", has_text="without reloading").wait_for()


def _flag_columns(page, name: str) -> dict:
    """Where the marker colour is in the top row of a card's waveform canvas: the
    canvas's width and the marker-coloured columns (the flags and their lines)."""
    return card(page, name).locator("canvas").evaluate("""c => {
        const css = getComputedStyle(document.documentElement).getPropertyValue('--marker').trim();
        const probe = document.createElement('canvas').getContext('2d');
        probe.fillStyle = css; probe.fillRect(0, 0, 1, 1);
        const want = probe.getImageData(0, 0, 1, 1).data;
        const row = c.getContext('2d').getImageData(0, 0, c.width, 1).data;
        const cols = [];
        for (let x = 0; x < c.width; x++) {
            const i = 4 * x;
            if (Math.abs(row[i] - want[0]) + Math.abs(row[i + 1] - want[1]) + Math.abs(row[i + 2] - want[2]) < 30
                && row[i + 3] > 200) cols.push(x);
        }
        return {width: c.width, cols};
    }""")


def test_a_marker_at_the_clips_very_end_shows_its_whole_flag(server, page_at, web_env, speech):
    r = cliutil.run("record", "--input", speech, "--name", "flag at end", "-q", env=web_env)
    assert r.returncode == 0, r.stderr
    meta_path = server.home / "flag at end.wav.json"
    meta = json.loads(meta_path.read_text())
    meta["markers"] = [{"number": 1, "time": 0.0, "label": "start"},
                       {"number": 12, "time": meta["duration"], "label": "the very end"}]
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, meta_path)
    try:
        for viewport in (LAPTOP, PHONE):
            page = page_at(server, viewport=viewport)
            c = card(page, "flag at end")
            c.locator(".marker", has_text="the very end").wait_for()
            page.wait_for_function("""n => { const c = document.querySelector(
                `li.clip[data-name="${n}"] canvas`); return c && !c.hidden && c.width > 50; }""",
                arg="flag at end")
            found = _flag_columns(page, "flag at end")
            width, cols = found["width"], set(found["cols"])
            dpr = page.evaluate("window.devicePixelRatio || 1")
            # "12" is two digits: a flag of at least 10 px, all of it on the canvas, ending
            # at its last column; the one at 0 s starts at the first.
            end = {x for x in cols if x > width - 40}
            assert len(end) >= 10 * dpr and max(end) == width - 1, (width, sorted(end))
            start = {x for x in cols if x < 40}
            assert min(start) == 0 and len(start) >= 6 * dpr, sorted(start)
    finally:
        cliutil.run("delete", "--yes", "flag at end", env=web_env)


def test_the_card_of_a_recording_in_progress_shows_the_time_and_size_its_row_does(
        audio_server, page_at):
    rec = subprocess.Popen([*cliutil.CLI, "record", "-r", "44100", "--name", "growing"],
                           env=audio_server.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = page_at(audio_server)
        row(page, "growing").wait_for()
        c = card(page, "growing")
        c.wait_for()
        page.wait_for_function("""() => { const t = document.querySelector('.recording-row .rtime');
            return t && t.textContent !== '0:00.0' && t.textContent !== '–'; }""")
        seen = []
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            # one look at both, at the same moment (the page updates them together)
            shot = page.evaluate("""() => [
                document.querySelector('.recording-row .rtime').textContent,
                document.querySelector('li.clip[data-name="growing"] .meta').textContent]""")
            if not seen or shot[0] != seen[-1][0]:
                seen.append(shot)
            time.sleep(0.3)
        assert len(seen) >= 4, seen  # the row's time moved at least three times
        sizes = []
        for rtime, meta in seen:
            fields = meta.split(" · ")
            assert fields[1] == rtime, (rtime, meta)  # the card's time is the recording's
            sizes.append(fields[3])
        assert len(set(sizes)) > 1, sizes  # and its size grows with it
        row(page, "growing").locator(".stop").click()
        assert rec.wait(cliutil.EXIT_TIMEOUT) == 0
    finally:
        stop_process(rec)
    # Finished: the card shows the clip's own length, which the file has.
    path = clip_path(audio_server.home, "growing")
    duration = soundfile.info(str(path)).duration
    from dictaphone.timecode import clock

    c.locator(".meta", has_text=clock(duration, 1)).wait_for()
