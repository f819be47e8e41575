"""Speech to text on this machine: faster-whisper (CTranslate2) behind a small API.

::

    from dictaphone.speech.transcribe import Transcriber
    t = Transcriber()                        # model: option > $DICTAPHONE_MODEL > base.en
    transcript = t.transcribe("memo.ogg")    # a dictaphone.library.transcript.Transcript
    print(transcript.text, transcript.to_srt())
    t.transcribe(frames, samplerate=48000)   # float32 numpy frames at any rate

faster-whisper is an optional extra (``pip install 'dictaphone[transcribe]'``) and is imported
only here, inside the functions that need it: ``import dictaphone`` and ``dictaphone record``
never load it.

A model is a Whisper size that faster-whisper knows (``tiny.en``, ``base.en``, ``small``, ...),
a Hugging Face repository of a CTranslate2 Whisper model (``Systran/faster-whisper-small``) or
the path of a CTranslate2 model directory. Names are looked up in the standard Hugging Face
cache (``HF_HOME``/``HF_HUB_CACHE``, else ``~/.cache/huggingface/hub``) and fetched there on
first use. ``HF_HUB_OFFLINE=1`` forbids fetching.

Recognition only hears what Silero VAD (shipped with faster-whisper as ONNX) marks as speech
(``vad_filter=True``), so silence, hum and noise give no words instead of Whisper's invented
"Thank you." and "You".
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import threading
from typing import Callable

from ..errors import DictaphoneError, InvalidArgumentError, SourceError
from ..library.transcript import Segment, Transcript, Word

#: The default model. base.en: about 145 MB, roughly two to three times tiny.en's compute
#: (still several times faster than real time on two laptop cores, so live transcription
#: keeps up) and clearly fewer errors on real voices than tiny.en; small.en is about three
#: times slower again. English only: use ``--model small`` (or ``base``) for other languages.
DEFAULT_MODEL = "base.en"
SAMPLE_RATE = 16000  # what Whisper hears
INSTALL_HINT = "pip install 'dictaphone[transcribe]'"
_MODEL_FILES = ("config.json", "model.bin")
_HF_FILES = ["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"]


class EngineMissingError(DictaphoneError):
    """The speech engine (the 'transcribe' extra) is not installed."""

    usage = True


class ModelError(DictaphoneError):
    """A model that cannot be used: unknown name, missing or corrupt directory."""

    usage = True


class ModelDamagedError(ModelError):
    """A model that loads but answers audio with what is not text (a damaged model.bin)."""

    usage = False  # exit 1: the command was right, the model on disk is not


#: faster-whisper's last fallback temperature and its compression-ratio threshold (the
#: defaults Transcriber keeps): a segment that still compresses more than this at the last
#: temperature is one the decoder could not make anything but repetition of
LAST_TEMPERATURE = 1.0
COMPRESSION_RATIO_THRESHOLD = 2.4


def looks_damaged(text: str, temperature: float | None, compression_ratio: float | None) -> bool:
    """Whether a segment says the model is damaged, not the audio odd.

    Both must hold: (1) the decoder gave up, i.e. the segment still repeats itself
    (compression ratio over faster-whisper's 2.4) after every temperature fallback; and
    (2) its text is not text: a run of 10 or more of one symbol ("%%%%…", "Please!!!!…"),
    a run of 20 of any one character, or fewer than half of its visible characters
    letters or digits. Measured: a tiny.en model.bin with 20 bytes of its first 4 KB
    flipped, 40 seeds: 22 load, and the 18 that gave a first segment within 60 s all gave
    such segments ('%', '!', '$' repeated, compression ratio 6.5 to 18.6 at temperature
    1.0, log probability about 0); the sound
    model on speech, silence, noise and tones gives none (tests/test_model_damage.py). A
    sound model's repetition loops on noise are words ("you you you"), not flagged: only
    (1) and (2) together are. Whisper's music marks ("♪ ♪ ♪") count as text.
    """
    if temperature is None or compression_ratio is None:
        return False
    if temperature < LAST_TEMPERATURE - 1e-6 or compression_ratio <= COMPRESSION_RATIO_THRESHOLD:
        return False
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return False
    run, longest, worst = 1, 1, text[0]
    for a, b in zip(text, text[1:]):  # runs in the text itself: "♪ ♪ ♪" is no run
        run = run + 1 if a == b and not b.isspace() else 1
        if run > longest:
            longest, worst = run, b
    if longest >= 20 or longest >= 10 and not worst.isalnum() and worst not in MUSIC:
        return True
    symbols = sum(not c.isalnum() and c not in MUSIC for c in visible)
    return len(visible) >= 8 and symbols > len(visible) / 2


#: the marks Whisper writes for music: text, for looks_damaged
MUSIC = "♪♫♬♩"


class ModelUnavailableError(ModelError):
    """A model that is not on this machine and cannot be fetched (offline, network down)."""

    usage = False


def check_engine() -> None:
    """Raise EngineMissingError unless faster-whisper can be imported."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        raise EngineMissingError(f"speech recognition needs the 'transcribe' extra: {INSTALL_HINT}") from None


def engine_versions() -> dict[str, str | None]:
    """Installed versions of the engine's packages (None: missing), without importing them."""
    out = {}
    for dist in ("faster-whisper", "ctranslate2", "onnxruntime"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def model_choice(model: str | os.PathLike | None = None) -> str:
    """The model asked for: ``model``, else ``$DICTAPHONE_MODEL``, else DEFAULT_MODEL."""
    if model is not None:
        if not os.fspath(model).strip():
            raise InvalidArgumentError("the model cannot be empty: give a name such as "
                                       f"{DEFAULT_MODEL} or a model directory")
        return os.fspath(model)
    return os.environ.get("DICTAPHONE_MODEL", "").strip() or DEFAULT_MODEL


def known_names() -> list[str]:
    from faster_whisper.utils import _MODELS

    return list(_MODELS)


def _looks_like_path(spec: str) -> bool:
    return (os.path.isdir(spec) or spec.startswith((".", "~", os.sep)) or
            (os.altsep is not None and os.altsep in spec) or spec.count("/") > 1 or
            os.path.exists(spec))


def check_model_dir(directory: str, label: str | None = None) -> str:
    """Return ``directory`` if it holds a CTranslate2 Whisper model; ModelError otherwise."""
    label = label or directory
    if not os.path.exists(directory):
        raise ModelError(f"model directory {label} does not exist (give a model name such as "
                         f"{DEFAULT_MODEL}, or the path of a CTranslate2 Whisper model)")
    if not os.path.isdir(directory):
        raise ModelError(f"model {label} is not a directory (a CTranslate2 Whisper model is a "
                         f"directory with {' and '.join(_MODEL_FILES)})")
    missing = [f for f in _MODEL_FILES if not os.path.isfile(os.path.join(directory, f))]
    if missing:
        raise ModelError(f"{label} is not a CTranslate2 Whisper model: no {' or '.join(missing)} "
                         f"(convert one with ct2-transformers-converter, or give a name such as "
                         f"{DEFAULT_MODEL})")
    return directory


def _repo_id(spec: str) -> str:
    from faster_whisper.utils import _MODELS

    if spec in _MODELS:
        return _MODELS[spec]
    if spec.count("/") == 1 and all(spec.split("/")):
        return spec
    names = ", ".join(n for n in _MODELS if not n.startswith("distil"))
    raise ModelError(f"unknown model {spec!r}: give a Whisper size ({names}) or the path of a "
                     f"CTranslate2 model directory")


def find_cached(spec: str) -> str | None:
    """The cache directory of the model named ``spec``, or None if it is not fetched yet."""
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(_repo_id(spec), allow_patterns=_HF_FILES, local_files_only=True)
    except ModelError:
        raise
    except Exception:  # LocalEntryNotFoundError and friends: not (completely) in the cache
        return None


def fetch_model(spec: str, progress: bool = False) -> str:
    """The local directory of model ``spec`` (a name or a path), fetching a name if needed.

    ``progress`` shows Hugging Face's download bars on stderr while fetching.
    """
    if _looks_like_path(spec):
        return check_model_dir(os.path.expanduser(spec), spec)
    repo = _repo_id(spec)
    cached = find_cached(spec)
    if cached is not None:
        return check_model_dir(cached, f"the cached model {spec} ({cached})")
    how = (f"fetch it once while online (dictaphone transcribe --model {spec} FILE), or point "
           f"--model or DICTAPHONE_MODEL at a CTranslate2 model directory")
    from huggingface_hub import constants, snapshot_download

    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailableError(f"model {spec} is not on this machine and HF_HUB_OFFLINE is set: {how}")
    kwargs = {} if progress else {"tqdm_class": _silent_tqdm()}
    try:
        path = snapshot_download(repo, allow_patterns=_HF_FILES, **kwargs)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "404" in reason or "RepositoryNotFound" in type(e).__name__:
            raise ModelError(f"no model {spec!r} on Hugging Face ({repo}): give a Whisper size "
                             f"such as {DEFAULT_MODEL} or a model directory") from None
        raise ModelUnavailableError(f"model {spec} is not on this machine and could not be "
                                    f"downloaded ({_download_failure(e)}): {how}") from None
    return check_model_dir(path, f"the downloaded model {spec} ({path})")


def _load_failure(directory: str, error: BaseException) -> str:
    """What is wrong with a model directory CTranslate2 refused, in words."""
    import json

    for name in ("config.json", "preprocessor_config.json", "tokenizer.json"):
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                json.load(f)
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return f"its {name} is damaged (not valid JSON)"
    text = str(error).lower()
    if isinstance(error, MemoryError) or "memory" in text:
        return "there is not enough memory for it"
    if "payload" in text or "model.bin" in text or "end of file" in text or "read" in text:
        return "its model.bin is damaged or cut short"
    return "its files are damaged, or it is not a CTranslate2 Whisper model"


def _download_failure(error: BaseException) -> str:
    """Why a download failed, in words (the HTTP stack's own text is no help to a user)."""
    import errno
    import socket

    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    names = " ".join(type(c).__name__ for c in chain)
    text = " ".join(str(c) for c in chain).lower()
    for c in chain:
        if isinstance(c, socket.gaierror) or "name or service not known" in text or \
                "name resolution" in text:
            return "no network: huggingface.co cannot be found"
        if isinstance(c, OSError) and c.errno == errno.ENOSPC:
            return "the disk is full"
        if isinstance(c, PermissionError):
            return "the model cache cannot be written: permission denied"
    if "Timeout" in names or "timed out" in text:
        return "huggingface.co did not answer in time"
    if "Connect" in names or "connection" in text:
        return "huggingface.co cannot be reached"
    if "401" in text or "403" in text or "Gated" in names:
        return "huggingface.co refused access to it"
    return "the download failed"


def _silent_tqdm():
    from faster_whisper.utils import disabled_tqdm

    return disabled_tqdm


def cached_models() -> list[dict]:
    """Whisper models in the Hugging Face cache: ``name``, ``repo``, ``path``, ``size`` (bytes)."""
    try:
        from huggingface_hub import scan_cache_dir
        from faster_whisper.utils import _MODELS

        info = scan_cache_dir()
    except Exception:  # no cache yet, or no engine
        return []
    names = {repo: name for name, repo in _MODELS.items()}
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not (repo.repo_id in names or "whisper" in repo.repo_id.lower()):
            continue
        for rev in repo.revisions:
            complete = all(any(f.file_name == want for f in rev.files) for want in _MODEL_FILES)
            if complete:
                out.append({"name": names.get(repo.repo_id, repo.repo_id), "repo": repo.repo_id,
                            "path": str(rev.snapshot_path), "size": rev.size_on_disk})
                break
    return out


def check_language(language: str | None) -> str | None:
    """``language`` as a Whisper language code (``en``, ``de``, ...), or None for "detect"."""
    if language is None:
        return None
    code = str(language).strip().lower()
    if not code:
        raise InvalidArgumentError("the language cannot be empty: give a code such as en, or leave it out to detect it")
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if code not in _LANGUAGE_CODES:
        raise InvalidArgumentError(f"unknown language {language!r}: use a code such as en, de, fr, es, ja")
    return code


def to_mono_16k(frames, samplerate: int):
    """float32 mono at 16 kHz from frames ``(n,)`` or ``(n, channels)`` at ``samplerate``.

    Integer frames are scaled to [-1, 1]. Resampling is libswresample's (PyAV, which
    faster-whisper brings): a proper low-pass, and about 1 ms per second of audio.
    """
    import numpy as np

    x = np.asarray(frames)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        x = (x.astype(np.float32) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise InvalidArgumentError(f"frames must be (n,) or (n, channels), not {x.shape}")
    if samplerate is None:
        raise InvalidArgumentError("frames need their samplerate")
    if not samplerate > 0 or samplerate == float("inf"):
        raise InvalidArgumentError(f"samplerate must be more than 0 Hz, not {samplerate!r}")
    samplerate = int(samplerate)
    if samplerate == SAMPLE_RATE or x.size == 0:
        return np.ascontiguousarray(x)
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x)[None, :], format="flt", layout="mono")
    frame.sample_rate = samplerate
    parts = [f.to_ndarray().reshape(-1) for f in (*resampler.resample(frame), *resampler.resample(None))]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def read_audio(path: str, samplerate: int | None = None, channels: int | None = None,
               subtype: str | None = None):
    """A file as float32 mono 16 kHz. Raw (``.raw``/``.pcm``, headerless, little-endian)
    files need ``samplerate``; ``channels`` (default 1) and ``subtype`` (default PCM_16) too
    when they differ. Everything else is read by PyAV (FFmpeg)."""
    path = os.fspath(path)
    _check_readable_file(path)
    raw = _raw_layout(path, samplerate, channels, subtype)
    if raw is not None:
        import soundfile as sf

        try:
            data, _ = sf.read(path, **raw, dtype="float32", always_2d=True)
        except Exception as e:
            raise SourceError(f"cannot read {path} as raw audio: {e}") from None
        return to_mono_16k(data, int(samplerate))
    return _decode(path, path)


def _raw_layout(path: str, samplerate, channels, subtype) -> dict | None:
    """For a raw (``.raw``/``.pcm``: headerless, little-endian) file, what libsndfile needs
    to read it (its rate must be given; mono PCM_16 unless said); None for any other file."""
    if not path.lower().endswith((".raw", ".pcm")):
        return None
    if samplerate is None:
        raise InvalidArgumentError(f"{path} is raw audio (no header): give its rate "
                                   "(-r, and -c and --subtype if not mono PCM_16)")
    return dict(samplerate=int(samplerate), channels=int(channels or 1), subtype=subtype or "PCM_16",
                format="RAW", endian="LITTLE")


def read_stdin():
    """What comes through stdin (a WAV from ``dictaphone record -``, any file FFmpeg reads),
    read to its end, as float32 mono 16 kHz."""
    import io
    import sys

    stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None or stream.isatty():
        raise SourceError("- reads audio from stdin, which is a terminal: pipe audio into it "
                          "(dictaphone record - -f wav | dictaphone transcribe -) or give a file")
    data = stream.read()
    if not data:
        raise SourceError("stdin is empty: nothing came through the pipe")
    return _decode(io.BytesIO(data), "what came through stdin")


def _check_readable_file(path: str) -> None:
    """SourceError, in words, unless ``path`` is a regular file with something in it.

    FFmpeg would read a device such as /dev/zero for ever and block on a FIFO; a size of
    0 says nothing about either, so the kind of file is looked at first."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file") from None
    except OSError as e:
        raise SourceError(f"{path} cannot be read: {(e.strerror or str(e)).lower()}") from None
    if stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{path} is a directory, not an audio file")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise SourceError(f"{path} is a device, not an audio file")
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        raise SourceError(f"{path} is a pipe, not an audio file: save what comes through it to a "
                          "file first, or pipe it into stdin (-)")
    if st.st_size == 0:
        raise SourceError(f"{path} is empty (0 bytes)")


def _decode(source, name: str):
    """Decode ``source`` (a path or a binary file object) to float32 mono 16 kHz with the
    engine's reader (PyAV, FFmpeg); its failures said in words, never FFmpeg's own."""
    check_engine()
    from faster_whisper import decode_audio

    try:
        return decode_audio(source, sampling_rate=SAMPLE_RATE)
    except Exception as e:  # PyAV's InvalidDataError, IndexError for no audio stream, ...
        reason = _why_not_audio(source, e)
        raise SourceError(f"{name}{reason}" if reason.startswith(":") else f"{name} {reason}") from None


def _magic(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def _why_not_audio(source, error: BaseException) -> str:
    """Why FFmpeg could not decode ``source``: what is wrong and what to do, in words."""
    if isinstance(error, PermissionError):
        return "cannot be read: permission denied"
    if isinstance(error, MemoryError):
        return "is too long to be read into memory at once: cut it into pieces (sox, ffmpeg)"
    import av

    try:
        if hasattr(source, "seek"):
            source.seek(0)
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            kinds = sorted({s.type for s in container.streams})
            if not container.streams.audio:
                found = f"only {' and '.join(kinds)}" if kinds else "nothing"
                return f"has no audio in it (FFmpeg finds {found} there)"
    except Exception:
        pass
    if isinstance(source, str) and _magic(source) in (b"RIFF", b"RF64", b"FORM"):
        # libsndfile says better what is wrong with a WAV or AIFF header (a rate of 0 Hz, a
        # cut-off chunk); it is not asked about other files: its MP3 decoder prints notes
        # on stderr while it looks.
        from ..containers import sfmessages

        try:
            import soundfile as sf

            sf.info(source)
        except Exception as sf_error:
            reason = sfmessages.explain(sf_error, source)
            if not reason.startswith(("not a readable audio file", "cannot be read as audio")):
                return ": " + reason
    what = ("is not audio FFmpeg can decode: its contents are in no audio format it knows, or "
            "damaged")
    if not isinstance(source, str):
        return what
    return f"{what}; check the file (if a recorder was killed while writing it, 'dictaphone recover FILE' may repair it)"


_FRAME = 320  # 20 ms at 16 kHz: the grain of fit_to_voice
_VOICE_PAD = 0.1  # s kept around the voiced part of a word


def fit_to_voice(segments: list[Segment], audio) -> None:
    """Pull word (and so segment) times in to where the voice is.

    Whisper stretches a sentence's last word into the pause after it (by up to a second
    here, and its first word's start runs early by as much): a subtitle then stays up
    after the speaker has stopped, and a search hit starts in silence. A word's time is cut
    to its frames that are voiced (within 35 dB of its loudest frame and 6 dB over the
    file's noise floor), with 0.1 s around them; a word with no voiced frame is left as it
    is, and times are only ever moved inwards, so their order is kept.
    """
    import numpy as np

    n = len(audio) // _FRAME
    if n == 0 or not segments:
        return
    x = np.asarray(audio[:n * _FRAME], dtype=np.float32).reshape(n, _FRAME)
    db = 10 * np.log10(np.einsum("ij,ij->i", x, x) / _FRAME + 1e-12)
    floor = float(np.percentile(db, 10))
    step = _FRAME / SAMPLE_RATE
    for seg in segments:
        for w in seg.words:
            a, b = int(w.start / step), min(n, int(np.ceil(w.end / step)))
            if b <= a:
                continue
            part = db[a:b]
            voiced = np.flatnonzero(part >= max(part.max() - 35.0, floor + 6.0))
            if voiced.size == 0 or part.max() < floor + 6.0:
                continue
            start = max(w.start, (a + voiced[0]) * step - _VOICE_PAD)
            end = min(w.end, (a + voiced[-1] + 1) * step + _VOICE_PAD)
            if start < end:
                w.start, w.end = round(start, 3), round(end, 3)
        if seg.words:
            seg.start, seg.end = seg.words[0].start, seg.words[-1].end


def _audio_of(what, samplerate=None, channels=None, subtype=None):
    """float32 mono 16 kHz from a path, an encoded recording in memory or frames."""
    import io

    if isinstance(what, (str, os.PathLike)):
        return read_audio(os.fspath(what), samplerate, channels, subtype)
    if callable(getattr(what, "bytes", None)) and isinstance(getattr(what, "type", None), str):
        if what.type.startswith("audio/x-raw"):  # a Blob of raw PCM has no header to decode
            raise InvalidArgumentError("a raw blob (audio/x-raw) has no header: give its samples "
                                       "as numpy frames with their samplerate")
        what = what.bytes()  # a Blob: its bytes are a whole file (or the blobs joined are)
    if isinstance(what, (bytes, bytearray, memoryview)):
        if len(what) == 0:
            raise SourceError("the recording is empty (0 bytes)")
        return _decode(io.BytesIO(bytes(what)), "the recording in memory")
    if callable(getattr(what, "read", None)):
        return _decode(what, getattr(what, "name", None) or "the recording in memory")
    import numpy as np

    try:
        frames = np.asarray(what)
    except Exception:
        frames = None
    if frames is None or frames.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"cannot transcribe a {type(what).__name__}: give a file path, "
                                   "an encoded recording (a Blob, bytes, a binary file) or numpy frames")
    if samplerate is not None and (isinstance(samplerate, bool) or
                                   not isinstance(samplerate, (int, float, np.integer, np.floating))):
        raise InvalidArgumentError(f"samplerate must be a number of Hz, not {samplerate!r}")
    return to_mono_16k(frames, samplerate)


_WIDTHS = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "PCM_U8": 1, "PCM_S8": 1, "DOUBLE": 8}


@dataclasses.dataclass
class AudioInput:
    """One thing to transcribe: a clip or a file, with what a raw file needs to be read."""

    path: str
    name: str  #: the clip's name, or the path as given
    clip: bool = False
    samplerate: int | None = None  #: raw files only
    channels: int | None = None
    subtype: str | None = None

    @property
    def raw(self) -> bool:
        return self.path.lower().endswith((".raw", ".pcm"))

    @property
    def stdin(self) -> bool:
        return self.path == "-"

    def duration(self) -> float | None:
        """Seconds of audio, from the header (or a raw file's size); None if unknown."""
        try:
            if self.raw:
                if not self.samplerate:
                    return None
                width = _WIDTHS.get(self.subtype or "PCM_16", 2)
                return os.path.getsize(self.path) / (width * (self.channels or 1) * self.samplerate)
            import soundfile as sf

            info = sf.info(self.path)
            if info.format in ("WAV", "WAVEX", "RF64") and info.subtype in _WIDTHS:
                # A WAV saved from a pipe says 0xFFFFFFFF: trust the header only if the file holds it.
                if info.frames * info.channels * _WIDTHS[info.subtype] > os.path.getsize(self.path):
                    return None
            if 0 < info.frames < 2**62 and info.samplerate:
                return info.frames / info.samplerate
        except Exception:  # unreadable here: the engine's reader says why, later
            pass
        return None


def audio_input(name_or_path: str, samplerate: int | None = None, channels: int | None = None,
                subtype: str | None = None) -> AudioInput:
    """A clip name or a file path, resolved (ClipNotFoundError when it is neither).

    A raw clip's rate and channels come from its metadata unless given.
    """
    from ..library import clips

    if name_or_path == "-":  # stdin: a stream, read once; nothing is saved beside it
        return AudioInput(path="-", name="stdin")
    clip = None
    try:
        clip = clips.find(name_or_path, missing_ok=True)
    except InvalidArgumentError:
        pass  # not a valid clip name: maybe a path
    if clip is None:
        if os.path.isdir(name_or_path):
            raise SourceError(f"{name_or_path} is a directory, not an audio file")
        if not os.path.exists(name_or_path):
            raise clips.ClipNotFoundError(f"no clip or file named {name_or_path!r}"
                                          f"{clips.did_you_mean(name_or_path)}")
        clip = clips.clip_at(name_or_path)
        name = name_or_path
    else:
        name = clip.name
    item = AudioInput(path=clip.path if clip else name_or_path, name=name, clip=clip is not None,
                      samplerate=samplerate, channels=channels, subtype=subtype)
    if item.raw and clip is not None:
        item.samplerate = item.samplerate or clip.samplerate
        item.channels = item.channels or clip.channels
    return item


class Transcriber:
    """Speech to text with one model, loaded once (on first use, or by :meth:`load`).

    ``model``: a name (``base.en``), a repository id or a model directory; default
    ``$DICTAPHONE_MODEL``, else :data:`DEFAULT_MODEL`. ``language``: a code (``en``) or None
    to detect (English for ``.en`` models). The rest are faster-whisper's settings; the
    defaults suit a laptop CPU (int8, beam 5, Silero VAD on, word times on).

    :meth:`transcribe` may be called from several threads; calls run one at a time.
    """

    def __init__(self, model: str | os.PathLike | None = None, language: str | None = None, *,
                 compute_type: str = "int8", cpu_threads: int = 0, beam_size: int = 5,
                 vad_filter: bool = True, word_timestamps: bool = True,
                 download_progress: bool = False):
        check_engine()
        self.model_name = model_choice(model)
        self.language = check_language(language)
        if self.language not in (None, "en") and not _looks_like_path(self.model_name) and \
                self.model_name.endswith(".en"):
            raise InvalidArgumentError(f"model {self.model_name} is English only: use a "
                                       f"multilingual model (e.g. --model small) for {self.language!r}")
        if not _looks_like_path(self.model_name):
            _repo_id(self.model_name)  # an unknown name fails now, not at the first utterance
        self.compute_type = compute_type
        self.cpu_threads = int(cpu_threads)
        self.beam_size = int(beam_size)
        self.vad_filter = bool(vad_filter)
        self.word_timestamps = bool(word_timestamps)
        self.download_progress = download_progress
        self.model_path: str | None = None
        self._model = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> "Transcriber":
        """Find (or fetch) and load the model now; later calls do nothing. Returns self."""
        with self._load_lock:
            if self._model is not None:
                return self
            path = fetch_model(self.model_name, progress=self.download_progress)
            from faster_whisper import WhisperModel

            try:
                model = WhisperModel(path, device="cpu", compute_type=self.compute_type,
                                     cpu_threads=self.cpu_threads)
            except Exception as e:  # CTranslate2 says RuntimeError for a damaged model.bin
                raise ModelError(f"cannot load model {self.model_name} from {path}: "
                                 f"{_load_failure(path, e)} (fetch it again, or point --model at "
                                 f"another model)") from None
            if self.language not in (None, "en") and not model.model.is_multilingual:
                raise InvalidArgumentError(f"model {self.model_name} is English only: use a "
                                           f"multilingual model for {self.language!r}")
            self._model = model
            self.model_path = path
        return self

    def transcribe(self, path_or_frames, samplerate: int | None = None, *,
                   channels: int | None = None, subtype: str | None = None,
                   progress: Callable[[float, float], None] | None = None) -> Transcript:
        """The transcript of a file (any format dictaphone writes), of an encoded recording
        in memory (a ``Blob``, bytes or a binary file object, as an in-memory ``MediaRecorder``
        makes) or of numpy frames.

        Frames: float32 (or integer) ``(n,)`` or ``(n, channels)`` at ``samplerate``. A raw
        file needs ``samplerate`` (and ``channels``/``subtype`` when not mono PCM_16).
        ``progress(done_seconds, total_seconds)`` is called as segments are recognised.
        Times in the transcript are seconds of the given audio.
        """
        if isinstance(path_or_frames, (str, os.PathLike)) and not os.fspath(path_or_frames) == "-":
            audio = open_16k(os.fspath(path_or_frames), samplerate, channels, subtype)
            if isinstance(audio, Audio16k):
                with audio:
                    return self.transcribe_long(audio, progress=progress)
            return self.transcribe_16k(audio, progress=progress)
        audio = _audio_of(path_or_frames, samplerate, channels, subtype)
        return self.transcribe_16k(audio, progress=progress)

    def transcribe_long(self, audio: Audio16k, progress=None, window_seconds: float | None = None) -> Transcript:
        """The transcript of a file of any length, recognised window by window (see
        WINDOW_SECONDS): peak memory does not grow with the file. ``progress(done, total)``
        after each window (total: the file's duration, or what has been read so far)."""
        window = int((window_seconds or WINDOW_SECONDS) * SAMPLE_RATE)
        search = min(int(SEARCH_SECONDS * SAMPLE_RATE), window // 2)
        self.load()
        result = Transcript(model=self.model_name, language=self.language or "", duration=0.0)
        done = 0
        languages: dict[str, float] = {}
        for offset, piece in _windows(audio.blocks(), window, search):
            start = offset / SAMPLE_RATE
            done = offset + len(piece)
            if len(piece) and float(abs(piece).max()) >= SILENT_PEAK:
                within = None
                if progress is not None:
                    def within(done_s, _total, _start=start):
                        total = audio.duration if audio.duration else _start + _total
                        progress(min(_start + done_s, total), total)
                part = self.transcribe_16k(piece, progress=within)
                if part.language and part.segments:
                    languages[part.language] = languages.get(part.language, 0.0) + len(piece)
                for seg in part.segments:
                    seg.start, seg.end = round(seg.start + start, 3), round(seg.end + start, 3)
                    for w in seg.words:
                        w.start, w.end = round(w.start + start, 3), round(w.end + start, 3)
                    result.segments.append(seg)
            if progress is not None:
                total = audio.duration if audio.duration else done / SAMPLE_RATE
                progress(min(done / SAMPLE_RATE, total), total)
        result.duration = done / SAMPLE_RATE
        if languages:
            result.language = max(languages, key=languages.get)
        return result

    def transcribe_16k(self, audio, progress: Callable[[float, float], None] | None = None) -> Transcript:
        """The transcript of float32 mono 16 kHz samples."""
        return self._run(audio, progress, beam_size=self.beam_size, vad_filter=self.vad_filter,
                         word_timestamps=self.word_timestamps)

    def recognise_16k(self, audio, *, beam_size: int | None = None,
                      word_timestamps: bool = True) -> Transcript:
        """Recognise float32 mono 16 kHz samples that are already speech (the live
        transcriber's utterances, which Silero gated): no second speech detection.
        ``beam_size`` None: this transcriber's (1: greedy, for hypotheses that are only
        shown)."""
        return self._run(audio, None, beam_size=beam_size or self.beam_size, vad_filter=False,
                         word_timestamps=word_timestamps)

    def _run(self, audio, progress, *, beam_size: int, vad_filter: bool,
             word_timestamps: bool) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        self.load()
        result = Transcript(model=self.model_name, language=self.language or "", duration=duration)
        if len(audio) == 0:
            return result
        with self._run_lock:
            segments, info = self._model.transcribe(
                audio, language=self.language, beam_size=beam_size,
                vad_filter=vad_filter, word_timestamps=word_timestamps)
            result.language = info.language or result.language
            for seg in segments:  # a generator: recognition happens while we iterate
                text = seg.text.strip()
                if looks_damaged(text, seg.temperature, seg.compression_ratio):
                    # (at once: such a model decodes every segment to its longest, at
                    # every temperature, and would take minutes to say nothing)
                    sample = text if len(text) <= 24 else text[:10] + "…" + text[-10:]
                    where = ("" if os.path.abspath(self.model_name) == os.path.abspath(self.model_path)
                             else f" ({self.model_path})")
                    raise ModelDamagedError(
                        f"model {self.model_name}{where} looks damaged: it gave "
                        f"{sample!r} for audio, not text (fetch it again, or point --model at "
                        f"another model)")
                if text:
                    words = [Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                             for w in (seg.words or ()) if w.word.strip()]
                    result.segments.append(Segment(float(seg.start), float(seg.end), text, words))
                if progress is not None:
                    progress(min(float(seg.end), duration), duration)
        if word_timestamps:
            fit_to_voice(result.segments, audio)
        if progress is not None:
            progress(duration, duration)
        return result


# -- long files: decoded and recognised in windows -------------------------------------------

#: seconds of audio recognised at once. Memory is bounded by it (samples, Whisper's features
#: and its intermediate results for one window), not by the file's length: 5 min is ~19 MB of
#: 16 kHz samples.
WINDOW_SECONDS = 300.0
#: a window is cut at the quietest moment of its last SEARCH_SECONDS (a pause, so that no
#: word is split), the rest carried into the next one
SEARCH_SECONDS = 30.0
#: a window whose loudest sample is below this (-60 dBFS) holds no speech: not even given
#: to the speech detector (hours of a quiet room cost next to nothing)
SILENT_PEAK = 10 ** (-60 / 20)


class Audio16k:
    """A file read as float32 mono 16 kHz in blocks: libsndfile or PyAV, resampled on the
    way (libswresample, its state kept across blocks). Raw files need ``samplerate``."""

    BLOCK = 1 << 16

    def __init__(self, path: str, samplerate: int | None = None, channels: int | None = None,
                 subtype: str | None = None):
        path = os.fspath(path)
        _check_readable_file(path)
        raw = _raw_layout(path, samplerate, channels, subtype)
        if raw is not None:
            import soundfile as sf

            try:
                self._reader = sf.SoundFile(path, **raw)
            except Exception as e:
                raise SourceError(f"cannot read {path} as raw audio: {e}") from None
        else:
            from ..containers.decode import open_audio

            try:
                self._reader = open_audio(path)
            except SourceError:
                check_engine()
                raise
        self.path = path
        self.rate = int(self._reader.samplerate)
        frames = self._reader.frames
        self.duration = frames / self.rate if 0 < frames < 2**62 else None
        self._resampler = None
        if self.rate != SAMPLE_RATE:
            import av

            self._av = av
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def blocks(self):
        """float32 mono 16 kHz arrays to the end; SourceError (in words) for a file that is
        damaged past its header."""
        read = 0
        try:
            for block in self._blocks():
                read += len(block)
                yield block
        except DictaphoneError:
            raise
        except Exception as e:
            raise SourceError(f"{self.path}: the audio is damaged after {read / SAMPLE_RATE:.1f} s "
                              f"({str(e).strip() or type(e).__name__}); if a recorder was killed while "
                              "writing it, 'dictaphone recover FILE' may repair it") from None

    def _blocks(self):
        import numpy as np

        for block in self._reader.blocks(self.BLOCK, dtype="float32", always_2d=True):
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if self._resampler is None:
                yield np.ascontiguousarray(mono)
                continue
            frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(mono)[None, :], format="flt",
                                                     layout="mono")
            frame.sample_rate = self.rate
            for out in self._resampler.resample(frame):
                yield out.to_ndarray().reshape(-1)
        if self._resampler is not None:
            for out in self._resampler.resample(None):
                yield out.to_ndarray().reshape(-1)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_16k(path: str, samplerate: int | None = None, channels: int | None = None,
             subtype: str | None = None):
    """An :class:`Audio16k` of ``path`` to recognise in windows; for a file only the
    engine's own reader decodes, its samples read whole (``read_audio``), and for one
    neither reads, read_audio's error in words."""
    try:
        return Audio16k(path, samplerate, channels, subtype)
    except (SourceError, InvalidArgumentError):
        return read_audio(path, samplerate, channels, subtype)


def _quietest_cut(audio, search: int) -> int:
    """Where to end a window: the middle of the quietest 0.4 s within its last ``search``
    samples (20 ms frames' energy, summed over 0.4 s)."""
    import numpy as np

    frame = 320
    tail = audio[len(audio) - search:]
    n = len(tail) // frame
    if n < 20:
        return len(audio)
    x = tail[:n * frame].reshape(n, frame)
    energy = np.einsum("ij,ij->i", x, x)
    run = np.convolve(energy, np.ones(20), mode="valid")
    best = int(np.argmin(run)) + 10
    return len(audio) - search + best * frame


def _windows(blocks, window: int, search: int):
    """(offset in samples, samples) pieces of at most ``window`` samples, each cut at a
    pause (see _quietest_cut); memory: one window and one block."""
    import numpy as np

    parts, have, offset = [], 0, 0
    for block in blocks:
        parts.append(np.asarray(block, np.float32))
        have += len(block)
        if have < window:
            continue
        buf = np.concatenate(parts)
        while len(buf) >= window:
            cut = _quietest_cut(buf[:window], search)
            yield offset, buf[:cut]
            offset += cut
            buf = buf[cut:]
        parts, have = [buf.copy()], len(buf)
    if have:
        yield offset, np.concatenate(parts)
