"""What a new user meets first: --help, error lines, clip names typed the way people type
them, a machine without a microphone, a file name whose extension says what it holds.

Every case runs the real CLI in a subprocess, in an environment without audio devices
(``no_device_env``) unless it needs the session's virtual microphone.
"""

from __future__ import annotations

import os
import re

import pytest
import soundfile as sf

import audiolab
import cliutil
from cliutil import no_device_env, one_error_line

PREFIX = "dictaphone: error: "


def help_of(*command, columns: int = 80, env=None) -> str:
    env = dict(env or os.environ, COLUMNS=str(columns))
    r = cliutil.run(*command, "--help", env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


# --- one error prefix ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["record", "--no-such-option"],  # click's own usage error, in a subcommand
    ["record", "-r", "5", "x.wav"],  # a parameter type's refusal
    ["record", "-c", "many", "x.wav"],
    ["no-such-command"],  # the group's
    ["transcribe", "--subtype", "pcm_12", "x.raw"],
    ["record", "--input", "missing.wav", "out.wav"],  # the library's DictaphoneError
    ["play", "no such clip"],
    ["rename", "a", "b", "c"],
], ids=lambda a: "-".join(a)[:40])
def test_every_error_line_starts_with_the_same_prefix_whoever_raised_it(tmp_path, args):
    r = cliutil.run(*args, env=no_device_env(tmp_path), cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert line.startswith(PREFIX), line
    assert not re.match(r"dictaphone \w+: error", line)


def test_a_usage_error_points_at_the_commands_own_help(tmp_path):
    r = cliutil.run("record", "--no-such-option", env=no_device_env(tmp_path))
    assert one_error_line(r.stderr) == (
        "dictaphone: error: No such option '--no-such-option' (see 'dictaphone record --help')")


def test_extra_words_after_a_name_say_to_quote_a_name_with_spaces(tmp_path):
    r = cliutil.run("rename", "old", "new", "name", env=no_device_env(tmp_path))
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert "a name with spaces is one argument: quote it" in line


# --- --help --------------------------------------------------------------------------------------


def test_record_help_groups_its_options_in_the_order_a_user_looks_for_them():
    text = help_of("record")
    headings = re.findall(r"^([A-Z][\w -]*):$", text, re.M)
    assert headings[:1] == ["Examples"] or "Examples" not in headings
    sections = [h for h in headings if h != "Examples"]
    assert sections == ["Output", "Device or input", "Length", "Stopping", "Hands-free",
                        "Transcripts", "Markers", "Scripting", "Other options"]

    def section(title):
        m = re.search(rf"^{title}:\n(.*?)(?:\n\n|\Z)", text, re.M | re.S)
        return m.group(1)

    assert "--format" in section("Output") and "--name" in section("Output")
    assert "--device" in section("Device or input") and "--input" in section("Device or input")
    assert "--duration" in section("Length")
    assert "--stop-on-silence" in section("Stopping")
    assert "--wait-for-sound" in section("Hands-free") and "--vad" in section("Hands-free")
    assert "--model" in section("Transcripts") and "--on-text" in section("Transcripts")
    assert "--split-on-mark" in section("Markers") and "--on-mark" in section("Markers")
    assert "--events" in section("Scripting") and "--on-stop" in section("Scripting")
    # every option is shown exactly once
    assert len(re.findall(r"^\s+(?:-\w, )?--[\w-]+", text, re.M)) == len(set(
        re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", text, re.M)))


def test_record_shows_the_ranges_of_rate_and_channels_as_transcribe_does():
    for command in (("record",), ("transcribe",)):
        text = " ".join(help_of(*command, columns=200).split())
        assert "[1000<=x<=768000]" in text, command
        assert "[1<=x<=32]" in text, command


def test_record_refuses_a_rate_out_of_range_in_the_words_of_the_range(tmp_path):
    r = cliutil.run("record", "-r", "5", "-d", "1", "x.wav", env=no_device_env(tmp_path))
    assert "sample rate 5 is out of range (1000 to 768000 Hz)" in one_error_line(r.stderr)
    assert r.returncode == 2


def test_subtypes_are_written_in_one_case_everywhere():
    for command in (("record",), ("transcribe",)):
        text = help_of(*command, columns=200)
        assert "PCM_16" in text, command
        assert not re.search(r"pcm_\d+", text), command


def test_transcribe_takes_a_subtype_in_any_case_and_refuses_in_libsndfiles(tmp_path):
    r = cliutil.run("transcribe", "--subtype", "pcm_12", "x.raw", env=no_device_env(tmp_path))
    assert "'pcm_12' is not one of PCM_16, PCM_24, PCM_32, FLOAT" in one_error_line(r.stderr)
    # lower case is accepted (it gets as far as the missing file)
    r = cliutil.run("transcribe", "--subtype", "pcm_24", "x.raw", env=no_device_env(tmp_path))
    assert "x.raw" in one_error_line(r.stderr) and "subtype" not in r.stderr


@pytest.mark.parametrize("columns", [80, 60])
def test_the_command_list_shows_each_commands_first_sentence_whole(columns):
    text = help_of(columns=columns)
    listing = text.split("Commands:\n", 1)[1]
    assert "..." not in listing
    rows: dict[str, str] = {}
    name = None
    for line in listing.splitlines():
        m = re.match(r"^  (\w+)\s+(.*)$", line)
        if m:
            name = m.group(1)
            rows[name] = m.group(2).strip()
        elif name and line.strip():
            rows[name] += " " + line.strip()
    assert {"record", "transcribe", "doctor", "devices", "show", "search"} <= set(rows)
    for name, description in rows.items():
        assert description.endswith((".", ")")), (name, description)
        assert len(line) <= columns


def test_doctor_help_names_the_speech_checks():
    text = " ".join(help_of("doctor").split())
    for words in ("speech engine", "faster-whisper", "speech model", "$DICTAPHONE_MODEL",
                  "Hugging Face cache", "optional"):
        assert words in text, words


# --- clip names as people type them -------------------------------------------------------------


@pytest.fixture
def library(tmp_path):
    """A library with the clips 'live test' and 'shopping list' (0.3 s tones)."""
    env = no_device_env(tmp_path)
    tone = audiolab.make_tone(tmp_path / "tone.wav", 0.3, 440.0)
    for name in ("live test", "shopping list"):
        r = cliutil.run("record", "-q", "--input", tone, "--name", name, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    return env


@pytest.mark.parametrize("command", ["play", "show", "marks", "transcribe", "recover", "delete"])
def test_a_misspelt_clip_name_suggests_the_closest_one(tmp_path, library, command):
    r = cliutil.run(command, "live tset", env=library, cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert line.startswith(PREFIX)
    assert "did you mean 'live test'?" in line, line


def test_a_name_close_to_nothing_points_at_the_list(tmp_path, library):
    r = cliutil.run("play", "zebra crossing", env=library, cwd=tmp_path)
    assert one_error_line(r.stderr).endswith("('dictaphone list' shows them)")


def test_several_unquoted_words_that_are_a_clips_name_are_that_clip(tmp_path, library):
    r = cliutil.run("marks", "live", "test", env=library, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no markers in" in r.stderr and "live test.wav" in r.stderr
    r = cliutil.run("show", "shopping", "list", "-w", "40", env=library, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = cliutil.run("delete", "--yes", "live", "test", env=library, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "deleted 'live test'"
    names = [c["name"] for c in __import__("json").loads(
        cliutil.run("list", "--json", env=library).stdout)]
    assert names == ["shopping list"]


def test_unquoted_words_that_are_no_name_say_to_quote_it(tmp_path, library):
    r = cliutil.run("delete", "--yes", "live", "tset", env=library, cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 2
    assert "if 'live tset' is one name, quote it; did you mean 'live test'?" in line
    assert len(__import__("json").loads(cliutil.run("list", "--json", env=library).stdout)) == 2


# --- no microphone ------------------------------------------------------------------------------


def test_devices_on_a_machine_without_any_says_so_and_points_at_doctor(tmp_path):
    env = no_device_env(tmp_path)
    r = cliutil.run("devices", env=env)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "no audio devices found; 'dictaphone doctor' tells why" in one_error_line(r.stderr)
    r = cliutil.run("devices", "--json", env=env)
    assert r.returncode == 1 and r.stdout.strip() == "[]"


@pytest.mark.parametrize("device", [[], ["-D", "usb"]], ids=["default", "named"])
def test_record_without_any_input_device_points_at_doctor(tmp_path, device):
    r = cliutil.run("record", *device, "-d", "1", "x.wav", env=no_device_env(tmp_path),
                    cwd=tmp_path)
    assert one_error_line(r.stderr) == ("dictaphone: error: no input devices found; "
                                        "'dictaphone doctor' tells why")
    assert r.returncode == 1  # nothing wrong with the command: the machine has no input
    assert not (tmp_path / "x.wav").exists()


def test_devices_with_a_microphone_lists_it_and_exits_0(pulse):
    r = cliutil.run("devices", env=cliutil.pulse_env(pulse))
    assert r.returncode == 0, r.stderr
    assert "*" in r.stdout and r.stderr == ""


# --- an extension says what the file holds ------------------------------------------------------


@pytest.mark.parametrize("name,fmt,sf_format", [("take.bin", "raw", None), ("take", "flac", "FLAC"),
                                                ("take.part", "wav", "WAV"), ("take.WAV", None, "WAV")])
def test_f_names_the_format_of_a_file_whose_name_has_no_audio_extension(
        tmp_path, name, fmt, sf_format):
    tone = audiolab.make_tone(tmp_path / "tone.wav", 0.3, 440.0)
    r = cliutil.run("record", "-q", "--input", tone, *(["-f", fmt] if fmt else []), name,
                    env=no_device_env(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / name
    if sf_format is None:
        assert out.stat().st_size == 0.3 * audiolab.RATE * 2
    else:
        assert sf.info(str(out)).format == sf_format


# --- the examples of `record --help` run as written -------------------------------------------


def _examples(text: str) -> list[str]:
    block = text.split("Examples:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("dictaphone ")]


def _programs(example: str) -> set[str]:
    """The programs an example runs: each stage of its pipeline, and its hooks' first words."""
    import shlex

    words = shlex.split(example)
    stages, current = [], []
    for w in words:
        if w == "|":
            stages.append(current)
            current = []
        else:
            current.append(w)
    stages.append(current)
    progs = {s[0] for s in stages if s}
    for i, w in enumerate(words[:-1]):
        if w in ("--on-data", "--on-stop", "--on-text", "--on-mark"):
            progs.add(shlex.split(words[i + 1])[0])
    return progs


def test_every_record_help_example_that_can_run_here_runs(pulse, tmp_path, whisper_model):
    """Each example as written, in bash, with `dictaphone` on PATH; one that records until it
    is stopped gets Ctrl-C (SIGINT to its process group) a second after it started recording,
    as a user stops it.
    Examples that need a program this machine lacks (my-transcriber, wtype) are left out,
    and there must be no more than those two."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    examples = _examples(help_of("record", columns=200))
    assert len(examples) >= 8
    env = cliutil.pulse_env(pulse)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(DICTAPHONE_MODEL=whisper_model, HF_HUB_OFFLINE="1",
               DICTAPHONE_HOME=str(tmp_path / "clips"))
    assert shutil.which("dictaphone", path=env["PATH"]), "no dictaphone console script"
    runnable = [e for e in examples if all(shutil.which(p, path=env["PATH"]) for p in _programs(e))]
    assert len(examples) - len(runnable) <= 2, sorted(set(examples) - set(runnable))
    for n, example in enumerate(runnable):
        cwd = tmp_path / f"ex{n}"
        cwd.mkdir()
        audiolab.make_tone(cwd / "talk.wav", 0.5, 440.0)
        proc = subprocess.Popen(["bash", "-c", "set -o pipefail; " + example], env=env, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            if " -d " not in example:  # it records until it is stopped: once it records
                cliutil.wait_for_status(env, lambda es: proc.poll() is not None or any(
                    e.get("started") for e in es), timeout=30, what=example)
                time.sleep(1.0)
            out, err = proc.communicate(timeout=30 if " -d " in example else 0.1)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError(f"{example!r} did not stop on Ctrl-C")
        assert proc.returncode == 0, f"{example!r} exited {proc.returncode}:\n{err}"
        assert "Traceback" not in err and "error:" not in err, (example, err)
        made = [p for p in cwd.rglob("*") if p.is_file() and p.name != "talk.wav"]
        made += list((tmp_path / "clips").glob("*")) if (tmp_path / "clips").exists() else []
        if "| sox" not in example:
            assert made, f"{example!r} made no file"
        time.sleep(0.1)


def test_every_transcribe_help_example_that_can_run_here_runs(pulse, tmp_path, whisper_model):
    """`transcribe --help`'s examples in bash, on a memo.ogg and clips 'shopping list' and
    'interview' of espeak-ng speech (--speakers needs Resemblyzer's weights, which
    scripts/install.sh --test installs); the one that asks for --model small (not on this
    machine, no network) is left out, and only that one."""
    import shlex
    import subprocess
    import sys

    import speech

    env = cliutil.pulse_env(pulse)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(DICTAPHONE_MODEL=whisper_model, HF_HUB_OFFLINE="1",
               DICTAPHONE_HOME=str(tmp_path / "clips"))
    talk = speech.make_script(tmp_path / "talk.wav", speech.SENTENCES[:1])
    for args in (["-f", "ogg", "memo.ogg"], ["--name", "shopping list"], ["--name", "interview"]):
        r = cliutil.run("record", "-q", "--input", talk.path, *args, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    text = help_of("transcribe", columns=200)
    examples = [line.strip() for line in text.splitlines() if line.startswith("    dictaphone ")]
    left_out = [e for e in examples if "--model small" in e]
    assert len(left_out) == 1 and len(examples) >= 4, examples
    for example in examples:
        if example in left_out:
            continue
        r = subprocess.run(["bash", "-c", "set -o pipefail; " + example], env=env, cwd=tmp_path,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{example!r} exited {r.returncode}:\n{r.stderr}"
        assert "Traceback" not in r.stderr and "error:" not in r.stderr, (example, r.stderr)
        words = shlex.split(example)
        if "-o" in words:
            out = tmp_path / words[words.index("-o") + 1]
            assert out.read_text().startswith("1\n0"), example  # an SRT file
        elif "memo.ogg" in words:
            assert speech.wer(talk.text, r.stdout) <= 0.3, r.stdout
