"""Options given as "" are given (issue #20, minor): `transcribe -o ""` and `serve --host ""`
are usage errors, one line, exit 2, nothing made. ("" reached the atomic writer as a path,
and getaddrinfo as "any address", i.e. every interface.)"""

from __future__ import annotations

import pytest

import audiolab
import cliutil


@pytest.mark.parametrize("value", ["", " "])
def test_transcribe_with_an_empty_output_is_a_usage_error(tmp_path, value):
    audiolab.make_noise(tmp_path / "n.wav", 0.5)
    env = cliutil.no_device_env(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cliutil.run("transcribe", "n.wav", "-o", value, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert cliutil.one_error_line(r.stderr) == ("dictaphone: error: -o is empty; give a file or a "
                                                "directory, or leave -o out to print to stdout")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("value", ["", " ", "[]"])
def test_serve_with_an_empty_host_is_a_usage_error(tmp_path, value):
    r = cliutil.run("serve", "--host", value, env=cliutil.no_device_env(tmp_path), cwd=tmp_path,
                    timeout=30)
    assert r.returncode == 2 and r.stdout == ""
    assert cliutil.one_error_line(r.stderr) == ("dictaphone: error: --host is empty; give an "
                                                "address to listen on, or leave --host out for "
                                                "127.0.0.1")
