"""`dictaphone formats|devices|recover|doctor`."""

from __future__ import annotations

import os

import click

from ..errors import DictaphoneError
from .app import EXIT_ERROR, cli, clip_words, say

from ..containers.formats import FORMATS


@cli.command()
def formats():
    """List the formats, their MIME types and limits."""
    from ..containers.formats import is_type_supported

    for fmt in FORMATS.values():
        rates = ", ".join(str(r) for r in fmt.rates) if fmt.rates else f"up to {fmt.max_rate}"
        ok = "" if is_type_supported(fmt.mime_type) else "  (not available: libsndfile lacks it)"
        click.echo(f"{fmt.name:5} {fmt.mime_type:26} {fmt.extension:6} {'/'.join(fmt.subtypes):28} "
                   f"rates: {rates}; up to {fmt.max_channels} ch{ok}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device, in a list.")
def devices(as_json):
    """List the audio devices (* marks the default input, > the default output)."""
    import json

    from ..capture.sources import list_devices

    devs = list_devices()
    if as_json:
        click.echo(json.dumps(devs, indent=2))
    else:
        for d in devs:
            mark = ("*" if d["default_input"] else " ") + (">" if d["default_output"] else " ")
            click.echo(f"{mark} {d['index']:3} {d['name']}  ({d['hostapi']}; {d['inputs']} in, "
                       f"{d['outputs']} out; {d['default_samplerate']:g} Hz)")
    if not any(d["inputs"] for d in devs):
        # Nothing to record from: say so (stdout stays data: [] or the output devices) and
        # exit 1, as `status` does when nothing is recording.
        say(f"dictaphone: no {'audio' if not devs else 'input'} devices found; "
            f"'dictaphone doctor' tells why (no microphone here: 'dictaphone record --input FILE' "
            f"records a file)")
        raise SystemExit(EXIT_ERROR)


@cli.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE|CLIP...")
@click.option("-n", "--dry-run", is_flag=True, help="Say what would be repaired; change nothing.")
def recover(files, dry_run):
    """Repair recordings left by a killed recorder or saved from a pipe.

    A file, or a clip's name (a killed `record --name NAME`). WAV: the header's sizes are
    set to what the file holds (RF64 past 4 GiB). FLAC: the missing total length is
    filled in and a torn last frame cut off. MP3: cut after the last whole frame, its
    length header filled in. Ogg Vorbis and Opus: cut after the last whole page, which is
    marked as the end of the stream.
    """
    from ..containers.recover import recover as repair

    for path in clip_words(files):
        say(repair(_file_or_clip(path), dry_run=dry_run).describe())


def _file_or_clip(arg: str) -> str:
    """``arg`` itself when something is there (a file, or what recover refuses in words);
    else the audio file of the clip called ``arg``, if there is one."""
    if os.path.lexists(arg):
        return arg
    from ..library.clips import find
    from ..errors import InvalidArgumentError

    try:
        clip = find(arg, missing_ok=True)
    except InvalidArgumentError:
        clip = None  # not a clip's name: recover says the file is not there
    if clip is None:
        from ..library.clips import ClipNotFoundError, did_you_mean

        hint = did_you_mean(arg)
        if "did you mean" in hint:  # a typo of a clip's name, more likely than a lost file
            raise ClipNotFoundError(f"{arg}: no such file or clip{hint}")
    return clip.path if clip is not None and not clip.missing else arg




FIXES = {
    "portaudio": ("install PortAudio: Debian/Ubuntu: sudo apt-get install libportaudio2; "
                  "Fedora: sudo dnf install portaudio; Arch: sudo pacman -S portaudio; "
                  "macOS: the sounddevice wheel bundles it (pip install --force-reinstall sounddevice)"),
    "no-input": ("no input device: plug in a microphone, or start the sound server (PulseAudio/"
                 "PipeWire: systemctl --user start pipewire-pulse or pulseaudio --start); on "
                 "Debian/Ubuntu the ALSA-to-PulseAudio bridge is libasound2-plugins"),
    "no-frames": ("the default input opened but delivered no audio: check that the sound server "
                  "runs and the source is not suspended (pactl list sources short), or pick a "
                  "device with -D (dictaphone devices)"),
    "clipdir": "make the clip directory writable, or point DICTAPHONE_HOME at one that is",
    "format": ("this libsndfile lacks an encoder: pip install --upgrade soundfile (its wheels "
               "bundle a full libsndfile); on Debian/Ubuntu with the system library: "
               "sudo apt-get install libsndfile1"),
}


@cli.command()
@click.option("--seconds", type=float, default=3.0, show_default=True,
              help="How long to wait for the first audio from the default input.")
def doctor(seconds):
    """Check the set-up: audio, the clip directory, every format, speech to text.

    \b
    In order:
      PortAudio        the library is found (its version)
      input devices    how many; the default input opens and delivers audio
                       within --seconds (a sound server that runs, a source
                       that is not suspended)
      clip directory   exists or can be made, and is writable
      formats          each of wav, flac, ogg, opus, mp3, raw encodes here
      speech engine    faster-whisper (the optional transcribe extra) imports,
                       with the versions of ctranslate2 and onnxruntime
      speech model     the model 'transcribe' would use ($DICTAPHONE_MODEL or
                       base.en): a directory that holds a model, or one in the
                       Hugging Face cache; every cached Whisper model and its size
      speaker labels   the voice encoder of --speakers (Resemblyzer's weights) reads

    Prints the fix for each problem; exits 1 when something is broken. A missing
    speech engine is no problem (it is optional), and a model not fetched yet is
    fetched on first use.
    """
    import io
    import tempfile

    problems = 0

    def report(ok: bool, what: str, fix: str | None = None) -> None:
        nonlocal problems
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {what}")
        if not ok:
            problems += 1
            if fix:
                click.echo(f"      fix: {fix}")

    from ..errors import PortAudioMissingError

    sd = None
    try:
        from ..capture.sources import import_sounddevice

        sd = import_sounddevice()
        report(True, f"PortAudio found: {sd.get_portaudio_version()[1]}")
    except PortAudioMissingError:
        report(False, "PortAudio library not found", FIXES["portaudio"])
    if sd is not None:
        inputs = [d for d in sd.query_devices() if d["max_input_channels"] > 0]
        report(bool(inputs), f"{len(inputs)} input device(s)", FIXES["no-input"])
        if inputs:
            report(*_check_default_input(sd, seconds))
    from ..library.clips import clip_dir

    directory = clip_dir()
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".doctor-"):
            pass
        report(True, f"clip directory writable: {directory}")
    except OSError as e:
        report(False, f"clip directory {directory}: {e.strerror}", FIXES["clipdir"])
    try:
        import numpy as np

        from ..containers.encoders import VorbisEncoder, make_encoder

        for fmt in FORMATS.values():
            rate = fmt.nearest_rate(48000)
            try:
                enc = make_encoder(io.BytesIO(), fmt, rate, 1)
                enc.write(np.zeros((rate // 10, 1), dtype=enc.dtype))
                size = enc.close().size
                how = ""
                if fmt.name == "ogg" and not isinstance(enc, VorbisEncoder):
                    # works, but a killed recorder may lose more (docs/RELIABILITY.md)
                    how = (" (through libsndfile: install libvorbisenc2 for a page every "
                           "second, so a killed recorder loses at most a second)")
                report(size > 0, f"{fmt.name} ({fmt.mime_type}) encodes{how}", FIXES["format"])
            except DictaphoneError as e:
                report(False, f"{fmt.name} ({fmt.mime_type}): {e}", FIXES["format"])
    except (ImportError, OSError) as e:
        report(False, f"soundfile/libsndfile cannot be loaded: {e}", FIXES["format"])
    _check_speech(report)
    click.echo("all good" if not problems else f"{problems} problem(s)")
    raise SystemExit(EXIT_ERROR if problems else 0)


def _check_speech(report) -> None:
    """The speech engine (optional: its absence is not a problem) and the models present."""
    from ..speech.transcribe import INSTALL_HINT, engine_versions

    versions = engine_versions()
    if versions["faster-whisper"] is None:
        click.echo(f"--    speech engine not installed (optional, for transcripts): {INSTALL_HINT}")
        return
    try:
        from ..speech.transcribe import check_engine

        check_engine()
    except DictaphoneError as e:
        report(False, f"speech engine faster-whisper {versions['faster-whisper']} cannot be imported",
               f"reinstall it: pip install --force-reinstall 'dictaphone[transcribe]' ({e})")
        return
    report(True, f"speech engine: faster-whisper {versions['faster-whisper']} "
                 f"(ctranslate2 {versions['ctranslate2']}, onnxruntime {versions['onnxruntime']})")
    from ..speech.transcribe import DEFAULT_MODEL, _looks_like_path, cached_models, check_model_dir, model_choice

    chosen = model_choice()
    source = "DICTAPHONE_MODEL" if os.environ.get("DICTAPHONE_MODEL") else "default"
    models = cached_models()
    if _looks_like_path(chosen):
        try:
            check_model_dir(os.path.expanduser(chosen))
            report(True, f"model ({source}): {chosen}")
        except DictaphoneError as e:
            report(False, f"model ({source}): {e}",
                   f"point DICTAPHONE_MODEL at a CTranslate2 Whisper model directory, or unset it "
                   f"to use {DEFAULT_MODEL}")
    elif any(m["name"] == chosen for m in models):
        report(True, f"model ({source}): {chosen}, in the cache")
    else:
        click.echo(f"--    model ({source}): {chosen}, not fetched yet: it is downloaded on first use "
                   f"(or point DICTAPHONE_MODEL at a model directory)")
    if models:
        from .text import human_size

        for m in models:
            click.echo(f"      cached model {m['name']}: {human_size(m['size'])}  {m['path']}")
    else:
        click.echo("      no Whisper models in the Hugging Face cache")
    _check_speakers(report)


def _check_speakers(report) -> None:
    """The voice encoder of --speakers (optional: its absence is not a problem)."""
    from ..speech.speakers import model

    if not os.environ.get(model.ENV, "").strip():
        try:
            model.weights_source()
        except model.SpeakerModelError:
            click.echo(f"--    speaker labels' voice encoder not installed (optional, for "
                       f"--speakers): {model.INSTALL_HINT}")
            return
    try:
        from ..speech.speakers.embed import GE2E

        encoder = GE2E()
    except DictaphoneError as e:
        report(False, f"speaker labels: {e}", f"{model.INSTALL_HINT} --force-reinstall, or fix {model.ENV}")
        return
    report(True, f"speaker labels: {encoder.name} from {encoder.source}")


def _check_default_input(sd, seconds: float) -> tuple[bool, str, str]:
    import threading

    got = threading.Event()
    try:
        index = sd.default.device[0]
        info = sd.query_devices(index if index is not None and index >= 0 else None, "input")
        with sd.InputStream(device=info["index"], channels=1, dtype="int16",
                            callback=lambda *a: got.set()):
            ok = got.wait(seconds)
    except (sd.PortAudioError, ValueError) as e:
        from ..capture.sources import portaudio_words

        return False, f"the default input cannot be opened: {portaudio_words(e)}", FIXES["no-input"]
    if not ok:
        return False, f"the default input ({info['name']}) delivered no audio in {seconds:g} s", FIXES["no-frames"]
    return True, f"the default input ({info['name']}) opens and delivers audio", None
