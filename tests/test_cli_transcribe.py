"""`dictaphone transcribe`, `search`, and transcripts in `list`/`show`/`doctor`, driven as a user
would (subprocesses), with real recognition by the packaged Whisper tiny.en model."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys

import numpy as np
import pytest

import speech
import audiolab
from cliutil import no_device_env, one_error_line, run

MAX_WER = 0.25
CUE_SLACK, END_SLACK = 0.6, 1.0  # s: see test_transcribe.py


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    return speech.make_script(tmp_path_factory.mktemp("cli-script") / "script.wav")


@pytest.fixture
def env(tmp_path, whisper_model):
    e = no_device_env(tmp_path)
    e["DICTAPHONE_MODEL"] = whisper_model
    e["HF_HUB_OFFLINE"] = "1"  # nothing in these tests may try the network
    return e


@pytest.fixture
def plain(script, tmp_path):
    """A copy of the script outside the library, with no transcript saved yet."""
    path = tmp_path / "talk.wav"
    shutil.copy(script.path, path)
    return path


def _clip(env, source, name, *args):
    """Record ``source`` into the library as clip ``name`` (the recorder's --input path)."""
    r = run("record", "-q", "--input", source, "--name", name, *args, env=env)
    assert r.returncode == 0, r.stderr


def _cues(text: str, sep: str) -> list[tuple[float, float, str]]:
    stamp = r"(\d\d):(\d\d):(\d\d)" + re.escape(sep) + r"(\d\d\d)"
    out = []
    # a cue's text is one or two lines (subtitles are cut to two lines of 42 characters)
    for m in re.finditer(stamp + " --> " + stamp + r"\n(.+(?:\n.+)*)", text):
        g = [int(x) for x in m.groups()[:8]]
        out.append((g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000,
                    g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000, m.group(9).replace("\n", " ")))
    return out


def _check_cues(cues, script):
    assert len(cues) == len(script.sentences), cues
    for (start, end, text), sent in zip(cues, script.sentences):
        assert abs(start - sent.speech_start) < CUE_SLACK, (start, sent)
        assert abs(end - sent.speech_end) < END_SLACK, (end, sent)
        assert speech.wer(sent.text, text) <= 0.4, (text, sent.text)


def test_transcribe_prints_what_was_said_and_saves_it_beside_the_file(env, plain, script):
    r = run("transcribe", plain, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress bar when stderr is not a terminal
    assert speech.wer(script.text, r.stdout) <= MAX_WER, r.stdout
    assert len(r.stdout.splitlines()) == len(script.sentences)  # a segment a line
    saved = json.loads((plain.parent / "talk.wav.transcript.json").read_text())
    assert saved["version"] == 1 and saved["language"] == "en"
    assert saved["model"] == env["DICTAPHONE_MODEL"]
    assert saved["duration"] == pytest.approx(script.duration, abs=0.01)


def test_srt_vtt_and_json_put_each_sentence_where_it_is_said(env, plain, script):
    srt = run("transcribe", "-f", "srt", plain, env=env)
    assert srt.returncode == 0, srt.stderr
    assert srt.stdout.startswith("1\n")
    _check_cues(_cues(srt.stdout, ","), script)

    vtt = run("transcribe", "--format", "vtt", plain, env=env)
    assert vtt.stdout.startswith("WEBVTT\n\n")
    _check_cues(_cues(vtt.stdout, "."), script)

    data = json.loads(run("transcribe", "-f", "json", plain, env=env).stdout)
    assert speech.wer(script.text, data["text"]) <= MAX_WER
    _check_cues([(s["start"], s["end"], s["text"]) for s in data["segments"]], script)
    for seg, sent in zip(data["segments"], script.sentences):
        assert seg["words"] and set(seg["words"][0]) == {"word", "start", "end", "probability"}
        assert abs(seg["words"][0]["start"] - sent.speech_start) < CUE_SLACK
        assert all(sent.start - CUE_SLACK < w["start"] <= w["end"] < sent.speech_end + END_SLACK
                   for w in seg["words"])


def test_output_goes_to_a_file_which_is_never_clobbered(env, plain, tmp_path):
    out = tmp_path / "talk.srt"
    r = run("transcribe", plain, "-f", "srt", "-o", out, env=env)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    first = out.read_text()
    assert first.startswith("1\n00:00:")
    r = run("transcribe", plain, "-o", out, env=env)
    assert r.returncode == 2
    assert "exists" in one_error_line(r.stderr) and out.read_text() == first
    r = run("transcribe", plain, "-o", out, "--force", env=env)
    assert r.returncode == 0 and out.read_text().startswith("Please")
    audio = plain.read_bytes()
    r = run("transcribe", plain, "-o", plain, "--force", env=env)
    assert r.returncode == 2 and "is the recording itself" in one_error_line(r.stderr)
    assert plain.read_bytes() == audio


def test_a_clip_is_transcribed_by_name_saved_with_it_and_shown_everywhere(env, script):
    _clip(env, script.path, "errands")
    r = run("transcribe", "errands", env=env)
    assert r.returncode == 0, r.stderr
    assert speech.wer(script.text, r.stdout) <= MAX_WER
    library = os.path.join(env["DICTAPHONE_HOME"])
    assert os.path.exists(os.path.join(library, "errands.wav.transcript.json"))

    [item] = json.loads(run("list", "--json", env=env).stdout)
    assert item["transcript"].startswith(r.stdout.split()[0]) and len(item["transcript"]) <= 61
    table = run("list", env={**env, "COLUMNS": "160"}).stdout
    assert "errands" in table and item["transcript"][:20] in table

    show = run("show", "errands", "-w", "80", env=env)
    assert show.returncode == 0, show.stderr
    below = show.stdout.split("transcript", 1)[1]
    assert "0:04  " + r.stdout.splitlines()[1] in below  # the second sentence, at its time


def test_a_saved_transcript_is_printed_without_loading_any_model(env, plain):
    first = run("transcribe", plain, "-f", "json", env=env)
    assert first.returncode == 0, first.stderr
    nowhere = {**env, "DICTAPHONE_MODEL": str(plain.parent / "no-such-model")}
    again = run("transcribe", plain, "-f", "json", env=nowhere)
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr
    redo = run("transcribe", plain, "--redo", env=nowhere)
    assert redo.returncode == 2
    assert "no-such-model does not exist" in one_error_line(redo.stderr)


def test_asking_for_another_model_recognises_again(env, plain, whisper_model, tmp_path):
    assert run("transcribe", plain, env=env).returncode == 0
    copy = tmp_path / "tiny-copy"
    shutil.copytree(whisper_model, copy)
    r = run("transcribe", plain, "-f", "json", "--model", copy, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["model"] == str(copy)


def test_a_recording_over_the_file_makes_its_saved_transcript_stale(env, plain, tmp_path):
    assert run("transcribe", plain, env=env).returncode == 0
    speech.make_script(plain, speech.SENTENCES[2:3])  # the same name, other speech
    r = run("transcribe", plain, env=env)
    assert r.returncode == 0, r.stderr
    # the new speech, not the old (tiny.en hears this sentence alone less well: key words)
    assert "kitchen sink" in r.stdout and "dentist" not in r.stdout, r.stdout


def test_every_format_dictaphone_writes_is_read_clips_and_files(env, script, tmp_path):
    one = speech.make_script(tmp_path / "one.wav", speech.SENTENCES[1:2], lead=0.3, tail=0.3)
    for fmt in ("flac", "ogg", "opus", "mp3", "raw"):
        _clip(env, one.path, f"c-{fmt}", "-f", fmt)
    raw_file = tmp_path / "plain.raw"
    one16 = speech.make_script(tmp_path / "one16.wav", speech.SENTENCES[1:2], lead=0.3, tail=0.3, rate=16000)
    r = run("record", "-q", "--input", one16.path, raw_file, env=env)
    assert r.returncode == 0, r.stderr

    r = run("transcribe", "-f", "json", *(f"c-{f}" for f in ("flac", "ogg", "opus", "mp3", "raw")),
            env=env)  # a raw clip's rate and channels come from its metadata
    assert r.returncode == 0, r.stderr
    results = json.loads(r.stdout)
    assert [x["name"] for x in results] == ["c-flac", "c-ogg", "c-opus", "c-mp3", "c-raw"]
    r = run("transcribe", "-f", "json", raw_file, "-r", "16000", env=env)
    assert r.returncode == 0, r.stderr
    results.append(json.loads(r.stdout))
    # A WAV streamed to a pipe, of a length not known in advance (a stream as the input):
    # its sizes say 0xFFFFFFFF (one of a known length declares it: test_pipe_lengths.py)
    piped = tmp_path / "piped.wav"
    with open(one.path, "rb") as stdin:
        r = run("record", "-q", "--input", "-", "-", "-f", "wav", env=env, text=False, stdin=stdin)
    assert r.returncode == 0, r.stderr
    piped.write_bytes(r.stdout)
    assert piped.read_bytes()[4:8] == b"\xff\xff\xff\xff"
    for again in (False, True):  # the second time from the saved transcript
        r = run("transcribe", "-f", "json", piped,
                env=env if not again else {**env, "DICTAPHONE_MODEL": str(tmp_path / "none")})
        assert r.returncode == 0, r.stderr
    results.append(json.loads(r.stdout))
    for x in results:
        assert speech.wer(one.text, x["text"]) <= 0.3, x
        assert x["duration"] == pytest.approx(one.duration, abs=0.1), x
        assert abs(x["segments"][0]["start"] - one.sentences[0].speech_start) < CUE_SLACK


def test_several_inputs_as_text_are_headed_by_their_names(env, script, tmp_path):
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    speech.make_script(a, speech.SENTENCES[:1])
    speech.make_script(b, speech.SENTENCES[3:])
    r = run("transcribe", a, b, env=env)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.split("\n\n")
    assert first.startswith(f"==> {a} <==\n") and second.startswith(f"==> {b} <==\n")
    assert speech.wer(speech.SENTENCES[0], first.split("\n", 1)[1]) <= 0.3
    r = run("transcribe", a, b, "-f", "srt", env=env)
    assert r.returncode == 2 and "-o DIRECTORY" in one_error_line(r.stderr)
    out = tmp_path / "subs"
    out.mkdir()
    assert run("transcribe", a, b, "-f", "vtt", "-o", out, env=env).returncode == 0
    assert sorted(os.listdir(out)) == ["a.wav.vtt", "b.wav.vtt"]


def test_search_finds_a_word_with_its_clip_and_time_and_exits_1_on_a_miss(env, script):
    _clip(env, script.path, "errands")
    assert run("transcribe", "errands", env=env).returncode == 0
    r = run("search", "dentist", env=env)
    assert r.returncode == 0, r.stderr
    [line] = r.stdout.splitlines()
    second = script.sentences[1]
    m = re.fullmatch(r"errands  (\d+):(\d\d)  (.*)", line)
    assert m, line
    at = int(m.group(1)) * 60 + int(m.group(2))  # the word's start, whole seconds
    assert int(second.speech_start) <= at <= second.speech_end
    assert "dentist" in m.group(3)

    hits = json.loads(run("search", "KITCHEN", "sink", "--json", env=env).stdout)
    assert [set(h) >= {"name", "path", "start", "end", "text", "spans", "speaker", "created"} for h in hits] == [True]
    third = script.sentences[2]
    assert hits[0]["name"] == "errands"
    assert third.speech_start < hits[0]["start"] < hits[0]["end"] < third.speech_end + END_SLACK

    miss = run("search", "zebra", env=env)
    assert miss.returncode == 1 and miss.stdout == ""
    assert "no match for 'zebra'" in one_error_line(miss.stderr)
    miss = run("search", "zebra", "--json", env=env)
    assert miss.returncode == 1 and json.loads(miss.stdout) == []


@pytest.mark.parametrize("kind", ["silence", "hum", "brown-noise"])
def test_a_recording_with_no_speech_gives_no_text_and_says_so(env, tmp_path, kind):
    maker = {"silence": speech.make_silence, "hum": speech.make_hum,
             "brown-noise": speech.make_brown_noise}[kind]
    path = maker(tmp_path / "quiet.wav")
    r = run("transcribe", path, env=env)
    assert r.returncode == 0 and r.stdout == ""
    assert one_error_line(r.stderr) == f"dictaphone: no speech in {path}"
    assert json.loads((tmp_path / "quiet.wav.transcript.json").read_text())["segments"] == []


def _bad_model(tmp_path, whisper_model):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for name in os.listdir(whisper_model):
        if name != "model.bin":
            shutil.copy(os.path.join(whisper_model, name), broken / name)
    (broken / "model.bin").write_bytes(b"\0" * 4096)
    return broken


@pytest.mark.parametrize("case", ["missing-dir", "not-a-model", "corrupt", "unknown-name",
                                  "not-fetched-offline", "english-only"])
def test_a_model_that_cannot_be_used_gets_one_line_naming_it(env, plain, tmp_path, whisper_model, case):
    args, code, expect = {
        "missing-dir": (["--model", tmp_path / "nope"], 2, "nope does not exist"),
        "not-a-model": (["--model", tmp_path], 2, "is not a CTranslate2 Whisper model: no config.json"),
        "corrupt": (["--model", None], 2, "cannot load model"),
        "unknown-name": (["--model", "enormous"], 2, "unknown model 'enormous'"),
        "not-fetched-offline": (["--model", "base.en"], 1, "model base.en is not on this machine"),
        "english-only": (["--language", "de"], 2, "English only"),
    }[case]
    if case == "corrupt":
        args = ["--model", _bad_model(tmp_path, whisper_model)]
    e = {**env, "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    r = run("transcribe", plain, *args, env=e)
    assert r.returncode == code, r.stderr
    line = one_error_line(r.stderr)
    assert line.startswith("dictaphone: error: ") and expect in line, line
    assert r.stdout == "" and not os.path.exists(str(plain) + ".transcript.json")
    if case == "not-fetched-offline":
        assert "--model or DICTAPHONE_MODEL" in line


def test_the_model_option_wins_over_the_environment(env, plain, whisper_model):
    r = run("transcribe", plain, "-f", "json", "--model", whisper_model,
            env={**env, "DICTAPHONE_MODEL": "enormous"})
    assert r.returncode == 0, r.stderr
    r = run("transcribe", plain, "--redo", env={**env, "DICTAPHONE_MODEL": "enormous"})
    assert r.returncode == 2 and "unknown model 'enormous'" in one_error_line(r.stderr)


@pytest.mark.parametrize("args,expect", [(["--model", ""], "the model cannot be empty"),
                                         (["--language", " "], "--language cannot be empty"),
                                         (["--language", "klingon"], "unknown language 'klingon'")])
def test_an_empty_or_unknown_model_or_language_is_refused(env, plain, args, expect):
    r = run("transcribe", plain, *args, env=env)
    assert r.returncode == 2 and expect in one_error_line(r.stderr) and r.stdout == ""


@pytest.mark.parametrize("words", [[""], ["..."], [" ", "?"]])
def test_search_without_a_word_is_a_usage_error(env, words):
    r = run("search", *words, env=env)
    assert r.returncode == 2 and "nothing to search for" in one_error_line(r.stderr)


@pytest.mark.parametrize("case", ["empty", "text", "noise-as-mp3", "missing", "directory",
                                  "raw-without-rate", "rate-for-a-wav"])
def test_bad_input_gets_one_line_and_no_output(env, tmp_path, plain, case):
    path = tmp_path / {"empty": "e.wav", "text": "notes.wav", "noise-as-mp3": "n.mp3", "missing": "gone.wav",
                       "directory": "dir", "raw-without-rate": "x.raw", "rate-for-a-wav": "talk.wav"}[case]
    extra = []
    if case == "empty":
        path.write_bytes(b"")
    elif case == "noise-as-mp3":
        path.write_bytes(np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif case == "text":
        path.write_text("these are notes, not audio\n" * 40)
    elif case == "directory":
        path.mkdir()
    elif case == "raw-without-rate":
        path.write_bytes(b"\0" * 9600)
    elif case == "rate-for-a-wav":
        extra = ["-r", "16000"]
    expect = {"empty": "is empty", "text": "is not audio", "noise-as-mp3": "is not audio", "missing": "no clip or file named",
              "directory": "is a directory", "raw-without-rate": "give its rate with -r",
              "rate-for-a-wav": "raw (headerless) files only"}[case]
    r = run("transcribe", path, *extra, env=env)
    assert r.returncode == 2, r.stderr
    assert expect in one_error_line(r.stderr) and r.stdout == ""


def _no_engine_env(env, tmp_path):
    site = tmp_path / "no-engine"
    site.mkdir()
    # What a machine without the extra looks like to Python: the import fails.
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['faster_whisper'] = None\n")
    return {**env, "PYTHONPATH": os.pathsep.join([str(site), env.get("PYTHONPATH", "")])}


def test_without_the_engine_transcribing_names_the_install_command(env, plain, tmp_path):
    e = _no_engine_env(env, tmp_path)
    for args in ([plain], [plain, "-f", "srt"], [plain, "--model", "tiny.en"], [plain, "--redo"]):
        r = run("transcribe", *args, env=e)
        assert r.returncode == 2, r.stderr
        assert one_error_line(r.stderr) == ("dictaphone: error: speech recognition needs the "
                                            "'transcribe' extra: pip install 'dictaphone[transcribe]'")
        assert r.stdout == ""


def test_without_the_engine_saved_transcripts_still_print_and_search(env, script, tmp_path):
    _clip(env, script.path, "errands")
    assert run("transcribe", "errands", env=env).returncode == 0
    e = _no_engine_env(env, tmp_path)
    r = run("transcribe", "errands", env=e)
    assert r.returncode == 0 and "dentist" in r.stdout, r.stderr
    assert run("search", "dentist", env=e).returncode == 0
    doctor = run("doctor", "--seconds", "0.1", env=e)
    # Here the package is there but cannot be imported (a broken install): a problem, and the fix.
    assert re.search(r"^FAIL +speech engine faster-whisper .* cannot be imported\n +fix: .*"
                     r"pip install .*'dictaphone\[transcribe\]'", doctor.stdout, re.M), doctor.stdout


def test_doctor_reports_the_engine_and_the_model(env, tmp_path):
    r = run("doctor", "--seconds", "0.1", env=env)
    assert re.search(r"^ok +speech engine: faster-whisper \d", r.stdout, re.M), r.stdout
    assert f"ok    model (DICTAPHONE_MODEL): {env['DICTAPHONE_MODEL']}" in r.stdout
    r = run("doctor", "--seconds", "0.1", env={**env, "DICTAPHONE_MODEL": str(tmp_path / "nope")})
    assert re.search(r"^FAIL +model \(DICTAPHONE_MODEL\): model directory .*nope does not exist", r.stdout, re.M)
    e = {k: v for k, v in env.items() if k != "DICTAPHONE_MODEL"}
    r = run("doctor", "--seconds", "0.1", env={**e, "HF_HUB_CACHE": str(tmp_path / "cache")})
    assert "model (default): base.en, not fetched yet" in r.stdout


@pytest.mark.parametrize("args", [["--help"], ["transcribe", "--help"], ["search", "--help"],
                                  ["record", "-q", "-d", "0.2", "--input", "IN", "out.wav"]])
def test_help_and_record_do_not_import_the_engine(env, tmp_path, script, args):
    args = [str(script.path) if a == "IN" else a for a in args]
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "dictaphone", *args], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines() if "|" in line}
    assert not imported & {"faster_whisper", "ctranslate2", "onnxruntime", "av", "huggingface_hub"}


def test_a_terminal_shows_a_progress_bar_that_goes_away(env, tmp_path, terminal):
    import sys

    path = speech.make_script(tmp_path / "long.wav", speech.PARAGRAPH[:16], pause=1.0).path
    out = tmp_path / "out.txt"
    t = terminal([sys.executable, "-m", "dictaphone", "transcribe", path, "-o", out], env=env, cwd=tmp_path)
    # The bar: the input's name, a bar and a percentage, redrawn as segments are recognised.
    t.wait_for(lambda screen: re.search(r"long\.wav .*\d+%", screen) is not None, timeout=60, interval=0.02)
    assert t.wait_exit(timeout=120) == 0
    assert not re.search(r"\d+%", t.capture())  # transient: gone when done
    assert speech.wer(" ".join(speech.PARAGRAPH[:16]), out.read_text()) <= MAX_WER


@pytest.fixture
def hf_cache(tmp_path, whisper_model):
    """A Hugging Face cache holding tiny.en as the hub would leave it (a snapshot of
    Systran/faster-whisper-tiny.en, its files linked to the packaged model)."""
    repo = tmp_path / "hf-cache" / "models--Systran--faster-whisper-tiny.en"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    for name in os.listdir(whisper_model):
        os.symlink(os.path.join(whisper_model, name), snapshot / name)
    return repo.parent


def test_a_model_name_is_found_in_the_hugging_face_cache_and_doctor_lists_it(env, plain, hf_cache, script):
    e = {k: v for k, v in env.items() if k != "DICTAPHONE_MODEL"}
    e.update(HF_HUB_CACHE=str(hf_cache), DICTAPHONE_MODEL="tiny.en")
    r = run("transcribe", plain, "-f", "json", env=e)  # HF_HUB_OFFLINE=1: the cache or nothing
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"] == "tiny.en" and speech.wer(script.text, data["text"]) <= MAX_WER
    doctor = run("doctor", "--seconds", "0.1", env=e).stdout
    assert "ok    model (DICTAPHONE_MODEL): tiny.en, in the cache" in doctor
    assert re.search(r"cached model tiny\.en: \d+\.\d MB  .*0123abcd", doctor), doctor
    r = run("transcribe", plain, "--redo", "--model", "base.en", env=e)
    assert r.returncode == 1 and "base.en is not on this machine" in one_error_line(r.stderr)


# -- found by trying it as a new and a hostile user (qa-tr) ---------------------------------

def test_two_inputs_of_one_name_into_one_directory_are_refused_before_anything_is_written(
        env, script, tmp_path):
    # a/talk.wav and b/talk.wav both make OUT/talk.wav.txt: the second used to overwrite the
    # first with --force, and to fail half-way ("File exists", exit 1) without.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = speech.make_script(tmp_path / "b" / "talk.wav", speech.SENTENCES[1:2], lead=0.3, tail=0.3)
    shutil.copy(script.path, tmp_path / "a" / "talk.wav")
    out = tmp_path / "out"
    out.mkdir()
    for force in ([], ["--force"]):
        r = run("transcribe", tmp_path / "a" / "talk.wav", one.path, "-o", out, *force, env=env)
        assert r.returncode == 2, r.stderr
        assert "would both be written to" in one_error_line(r.stderr)
        assert os.listdir(out) == []
    # the same file named twice is one file, written once
    r = run("transcribe", one.path, str(one.path).replace("/b/", "/b/./"), "-o", out, env=env)
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) == ["talk.wav.txt"]
    assert "dentist" in (out / "talk.wav.txt").read_text()


def test_output_onto_the_saved_transcript_or_the_clip_metadata_is_refused(env, plain):
    assert run("transcribe", plain, env=env).returncode == 0
    sidecar = plain.parent / (plain.name + ".transcript.json")
    saved = sidecar.read_text()
    r = run("transcribe", plain, "-o", sidecar, "--force", env=env)
    assert r.returncode == 2 and "kept with the recording" in one_error_line(r.stderr)
    assert sidecar.read_text() == saved
    _clip(env, plain, "memo")
    meta = os.path.join(env["DICTAPHONE_HOME"], "memo.wav.json")
    before = open(meta).read()
    r = run("transcribe", "memo", "-f", "json", "-o", meta, "--force", env=env)
    assert r.returncode == 2 and "kept with the recording" in one_error_line(r.stderr)
    assert open(meta).read() == before


def test_saved_transcripts_and_output_files_get_the_usual_permissions(env, plain, tmp_path):
    # mkstemp's 0600 made a transcript unreadable to anyone its audio (0644) is readable by.
    old = os.umask(0o022)
    try:
        r = run("transcribe", plain, "-o", tmp_path / "talk.srt", "-f", "srt", env=env)
    finally:
        os.umask(old)
    assert r.returncode == 0, r.stderr
    sidecar = plain.parent / (plain.name + ".transcript.json")
    assert oct(os.stat(sidecar).st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "talk.srt").st_mode & 0o777) == oct(0o644)


def test_recording_over_a_file_drops_its_old_transcript(env, plain, script, tmp_path):
    # The same sentences in the other order: the same duration, so only removing the old
    # sidecar (not the staleness check) keeps the old words from being printed as the new.
    assert run("transcribe", plain, env=env).returncode == 0
    other = speech.make_script(tmp_path / "other.wav", speech.SENTENCES[::-1])
    assert abs(other.duration - script.duration) < 0.01
    r = run("record", "-q", "--force", "--input", other.path, plain, env=env)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(str(plain) + ".transcript.json")
    r = run("transcribe", plain, env=env)
    assert r.returncode == 0, r.stderr
    assert speech.wer(other.text, r.stdout) <= MAX_WER, r.stdout  # word order counts
    assert r.stdout.lower().startswith("send the report"), r.stdout


@pytest.mark.parametrize("case", ["device", "fifo", "picture"])
def test_what_is_not_an_audio_file_is_said_in_words(env, tmp_path, case):
    if case == "device":
        path = "/dev/zero"
        expect = "/dev/zero is a device, not an audio file"
    elif case == "fifo":
        path = tmp_path / "pipe.wav"
        os.mkfifo(path)
        expect = "pipe.wav is a pipe, not an audio file"
    else:
        import av

        path = tmp_path / "still.png"
        with av.open(str(path), "w", format="image2") as out:
            stream = out.add_stream("png", rate=1)
            stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
            frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
            for packet in [*stream.encode(frame), *stream.encode()]:
                out.mux(packet)
        expect = "still.png has no audio in it (FFmpeg finds only video there)"
    r = run("transcribe", path, env=env, timeout=30)  # a device or FIFO read would never end
    assert r.returncode == 2 and r.stdout == ""
    line = one_error_line(r.stderr)
    assert expect in line and "tuple index" not in line and "(0 bytes)" not in line


def test_audio_piped_in_is_transcribed_and_nothing_is_saved(env, script, tmp_path):
    # The pipe partner of `record -`: a WAV stream whose sizes say "read to the end".
    rec = run("record", "-q", "--input", script.path, "-", "-f", "wav", env=env, text=False)
    assert rec.returncode == 0 and rec.stdout[:4] == b"RIFF"
    stream = tmp_path / "stream.wav"
    stream.write_bytes(rec.stdout)
    before = sorted(os.listdir(tmp_path))
    with open(stream, "rb") as f:
        r = run("transcribe", "-", "-f", "srt", env=env, cwd=tmp_path, stdin=f)
    assert r.returncode == 0, r.stderr
    _check_cues(_cues(r.stdout, ","), script)
    assert sorted(os.listdir(tmp_path)) == before  # no sidecar for a stream, none named "-"


@pytest.mark.parametrize("stdin,args,expect", [
    (b"", ["-"], "stdin is empty"),
    (b"these are notes\n" * 30, ["-"], "what came through stdin is not audio"),
    (b"", ["-", "-"], "can be given once"),
])
def test_bad_input_on_stdin_gets_one_line(env, tmp_path, stdin, args, expect):
    src = tmp_path / "in.bin"
    src.write_bytes(stdin)
    with open(src, "rb") as f:
        r = run("transcribe", *args, env=env, stdin=f)
    assert r.returncode == 2 and r.stdout == ""
    assert expect in one_error_line(r.stderr)


def test_stdin_that_is_the_terminal_is_refused_at_once(env, tmp_path, terminal):
    t = terminal([sys.executable, "-m", "dictaphone", "transcribe", "-"], env=env, cwd=tmp_path,
                 width=200)
    assert t.wait_exit(timeout=30) == 2  # not waiting for keyboard input that is not audio
    assert "dictaphone: error: - reads audio from stdin, which is a terminal" in t.capture()


def test_a_raw_files_saved_transcript_prints_without_its_rate(env, script, tmp_path):
    # Its rate is needed to recognise it, not to print what was saved beside it.
    r = run("record", "-q", "--transcribe", "--input", script.path, "talk.raw", env=env, cwd=tmp_path,
            timeout=120)
    assert r.returncode == 0, r.stderr
    nowhere = {**env, "DICTAPHONE_MODEL": str(tmp_path / "no-such-model")}  # proves no model loads
    r = run("transcribe", "talk.raw", env=nowhere, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert speech.wer(script.text, r.stdout) <= 0.3, r.stdout
    r = run("transcribe", "talk.raw", "--redo", env=env, cwd=tmp_path)
    assert r.returncode == 2 and "give its rate with -r" in one_error_line(r.stderr)


def test_output_to_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(env, plain, tmp_path):
    # It said only "No space left on device", not which file could not be written.
    import subprocess

    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run as root to mount a tmpfs")
        pytest.skip("mounting a tmpfs needs root")
    assert run("transcribe", plain, env=env).returncode == 0  # saved: no recognition below
    disk = tmp_path / "full"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs: {r.stderr}"
    try:
        (disk / "filler").write_bytes(b"\0" * 8192)
        r = run("transcribe", plain, "-f", "json", "-o", disk / "talk.json", env=env)
        assert r.returncode == 1 and r.stdout == ""
        line = one_error_line(r.stderr)
        assert f"cannot write {disk / 'talk.json'}: no space left on device" in line
        assert sorted(os.listdir(disk)) == ["filler"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_clip_whose_audio_was_removed_keeps_its_words_and_says_what_is_missing(env, script):
    _clip(env, script.path, "gone")
    assert run("transcribe", "gone", env=env).returncode == 0
    os.unlink(os.path.join(env["DICTAPHONE_HOME"], "gone.wav"))
    r = run("transcribe", "gone", env=env)  # the saved words are still the clip's
    assert r.returncode == 0 and speech.wer(script.text, r.stdout) <= MAX_WER, r.stderr
    r = run("transcribe", "gone", "--redo", env=env)
    assert r.returncode == 2
    assert "the audio file of clip 'gone' is missing" in one_error_line(r.stderr)


# -- a library that cannot take the transcript (issue #20 item 9) ----------------------------

_mount_tmpfs = audiolab.mount_tmpfs


def _fill(directory) -> None:
    """Fill the file system of ``directory`` to the last byte."""
    fd = os.open(os.path.join(directory, ".filler"), os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["read-only", "full"])
def test_a_clip_transcribed_in_a_library_that_cannot_save_it_still_prints_its_text(
        env, script, tmp_path, how):
    """It printed nothing and exited 1: the text recognised was thrown away. Now the text
    reaches stdout whole, one line says it was not saved, exit 1, and the library is left
    as it was (no sidecar, no temporary file)."""
    import subprocess

    library = env["DICTAPHONE_HOME"]
    _mount_tmpfs(library, "4m")
    try:
        _clip(env, script.path, "talk")
        if how == "read-only":
            r = subprocess.run(["mount", "-o", "remount,ro", library], capture_output=True,
                               text=True)
            assert r.returncode == 0, r.stderr
        else:
            _fill(library)
        before = sorted(os.listdir(library))
        assert "talk.wav.transcript.json" not in before
        for args in ([], ["-f", "srt"]):
            r = run("transcribe", "talk", *args, env=env, timeout=180)
            assert r.returncode == 1, r.stderr
            reason = "read-only file system" if how == "read-only" else "no space left on device"
            assert one_error_line(r.stderr) == (
                f"dictaphone: warning: the transcript of clip 'talk' was not saved ({reason}); "
                "it is printed, but 'dictaphone search' will not find it")
            text = r.stdout if not args else " ".join(
                c[2] for c in _cues(r.stdout, ","))
            assert speech.wer(script.text, text) <= MAX_WER, r.stdout
            assert sorted(os.listdir(library)) == before
    finally:
        subprocess.run(["umount", "-l", library], capture_output=True)
