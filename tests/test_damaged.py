"""Damaged sidecars are damaged, whatever the damage (issue #20, 5).

A clip's metadata, transcript and markers are JSON files anyone can edit, truncate or
replace. The README promises that a damaged one is treated as missing. "Damaged" used to
mean "not JSON": a file of 100,000 ``[`` is JSON too deep to parse, which raised
RecursionError (not a ValueError) and broke ``list``, ``search``, ``show``, ``transcribe``
and the page. Driven as a user would: the CLI in subprocesses over a real library.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

import audiolab
from cliutil import no_device_env, run

DEEP = "[" * 100_000  # nested too deep for any recursive parser
DEEP_OBJECT = '{"a":' * 100_000


@pytest.fixture
def env(tmp_path, whisper_model):
    e = no_device_env(tmp_path)
    e["DICTAPHONE_MODEL"] = whisper_model
    e["HF_HUB_OFFLINE"] = "1"
    return e


def _clip(env, speech, name: str):
    r = run("record", "--input", speech, "--name", name, "-q", env=env)
    assert r.returncode == 0, r.stderr
    return os.path.join(env["DICTAPHONE_HOME"], name + ".wav")


@pytest.mark.parametrize("damage", [DEEP, DEEP_OBJECT])
@pytest.mark.parametrize("sidecar", ["json", "transcript.json", "markers.json"])
def test_a_deeply_nested_sidecar_is_damaged_not_fatal(env, speech, damage, sidecar):
    audio = _clip(env, speech, "deep")
    good = _clip(env, speech, "good")
    r = run("transcribe", "good", env=env)
    assert r.returncode == 0, r.stderr
    with open(f"{audio}.{sidecar}", "w") as f:
        f.write(damage)

    for args in (["list"], ["list", "--json"], ["show", "deep"], ["search", "fox"], ["marks", "deep"]):
        r = run(*args, env=env)
        assert r.returncode == 0, (args, r.stderr[-2000:])
        assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr, (args, r.stderr[-2000:])
    listed = {c["name"]: c for c in json.loads(run("list", "--json", env=env).stdout)}
    assert set(listed) == {"deep", "good"}
    assert listed["deep"]["duration"] == pytest.approx(listed["good"]["duration"], abs=0.01)
    # The healthy clip's transcript is still searchable beside the damaged one.
    r = run("search", "fox", env=env)
    assert "good" in r.stdout
    # transcribe treats a damaged transcript as none and makes a new one.
    r = run("transcribe", "deep", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "fox" in r.stdout.lower()
    assert os.path.exists(good)


def test_a_deep_transcript_outside_the_library_is_transcribed_again(env, speech, tmp_path):
    plain = tmp_path / "talk.wav"
    shutil.copy(speech, plain)
    (tmp_path / "talk.wav.transcript.json").write_text(DEEP)
    r = run("transcribe", plain, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "fox" in r.stdout.lower()


def test_the_reader_bounds_nesting_without_recursion():
    from dictaphone import jsontext

    for text in (DEEP, DEEP_OBJECT, "[" * 50 + "]" * 50):
        with pytest.raises(ValueError):
            jsontext.loads(text, max_depth=32)
    with pytest.raises(ValueError):
        jsontext.loads(DEEP)  # no max_depth: still a ValueError, never RecursionError
    assert jsontext.depth('[{"a": "[[[[\\"[[", "b": [1]}]') == 3
    assert jsontext.loads(b'{"a": [1, {"b": "\xc3\xa9"}]}', max_depth=3) == {"a": [1, {"b": "é"}]}
    with pytest.raises(ValueError):
        jsontext.loads(b'"\xff"')
