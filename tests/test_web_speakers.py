"""Speaker labels on the page: a labelled transcript shows who speaks, and clicking a
speaker's label names that speaker in the clip's transcript (and can keep the voice).

Uses test_web's server, browser and page fixtures (a real `dictaphone serve` subprocess,
Debian's Chromium through Playwright); the clip is recorded and labelled by the CLI, with
the packaged Whisper tiny.en and flite's voices."""

from __future__ import annotations

import json

import pytest

import cliutil
import speech as speechlab
from test_web import Server, browser, card, page_at  # noqa: F401 (fixtures)

speechlab.require_extra("faster_whisper")


@pytest.fixture(scope="module")
def web_env(tmp_path_factory, whisper_model):
    import os

    root = tmp_path_factory.mktemp("web-speakers")
    runtime = root / "run"
    runtime.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "DICTAPHONE_"))}
    env.update(DICTAPHONE_HOME=str(root / "library"), XDG_RUNTIME_DIR=str(runtime),
               DICTAPHONE_MODEL=whisper_model, HF_HUB_OFFLINE="1")
    return env


@pytest.fixture(scope="module")
def conversation(tmp_path_factory):
    turns = speechlab.conversation_turns(speechlab.FLITE_VOICES[:2], 4, seed=5)
    return speechlab.make_conversation(tmp_path_factory.mktemp("conv") / "talk.wav", turns, seed=5)


@pytest.fixture(scope="module")
def server(web_env, conversation):
    from dictaphone.speech.speakers import model

    try:
        model.weights_source()
    except model.SpeakerModelError as e:
        import os

        if os.environ.get("CI") == "true":
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))
    r = cliutil.run("record", "-q", "--input", conversation.path, "--name", "interview", "--transcribe",
                    "--speakers", env=web_env, timeout=240)
    assert r.returncode == 0, r.stderr
    s = Server(web_env)
    try:
        yield s
    finally:
        s.stop()


def _speakers(env) -> list[str]:
    t = json.loads(cliutil.run("transcribe", "interview", "-f", "json", env=env).stdout)
    return list(dict.fromkeys(s["speaker"] for s in t["segments"]))


def test_the_page_shows_who_speaks_and_a_click_names_a_speaker(server, page_at, web_env, conversation):
    page = page_at(server)
    c = card(page, "interview")
    c.locator("details.transcript summary").click()
    labels = c.locator(".segments .speaker")
    labels.first.wait_for()
    assert labels.all_inner_texts() == ["Speaker 1", "Speaker 2", "Speaker 1", "Speaker 2"]
    # The label opens a dialog; the new name, with "remember", renames that speaker
    # everywhere in this clip's transcript and keeps the voice.
    labels.nth(1).click()
    dialog = page.locator("#speaker-dialog")
    dialog.wait_for()
    assert "Speaker 2" in dialog.locator(".which").inner_text()
    page.fill("#speaker-input", "Ben")
    page.check("#speaker-remember")
    page.click("#speaker-ok")
    page.wait_for_function("""() => [...document.querySelectorAll('li.clip[data-name="interview"] .speaker')]
        .map(b => b.textContent).join('|') === 'Speaker 1|Ben|Speaker 1|Ben'""")
    assert not page.errors
    assert _speakers(web_env) == ["Speaker 1", "Ben"]
    known = json.loads(cliutil.run("speakers", "list", "--json", env=web_env).stdout)
    assert [v["name"] for v in known] == ["Ben"]
    # Search results carry the speaker, as the CLI's do.
    status, _, body = server.request("GET", "/api/search?q=dentist")
    voice = [t for t in conversation.turns if "dentist" in t.text][0].voice
    said = "Speaker 1" if voice == conversation.voices[0] else "Ben"
    assert status == 200 and [h["speaker"] for h in json.loads(body)["hits"]] == [said]


def test_naming_an_unknown_speaker_is_refused_in_words(server, page_at):
    status, _, body = server.post("/api/clips/interview/speakers", {"old": "Speaker 9", "new": "X"})
    assert status == 400 and "no speaker 'Speaker 9' in interview" in json.loads(body)["error"]
    status, _, body = server.post("/api/clips/interview/speakers", {"old": "Speaker 1", "new": " "})
    assert status == 400 and "cannot be empty" in json.loads(body)["error"]
    status, _, body = server.post("/api/clips/interview/speakers", {"old": "Speaker 1"})
    assert status == 400
