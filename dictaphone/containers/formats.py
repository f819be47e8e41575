"""Containers and codecs: MIME types, file extensions, libsndfile names and their limits.

Pure data and checks; nothing here opens a file or a device. ``is_type_supported`` asks
libsndfile (through soundfile) only when it is called, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import os

from ..errors import InvalidArgumentError, NotSupportedError

#: Rates and channel counts any recording may use (the device may narrow them further).
MIN_RATE, MAX_RATE = 1000, 768000
MAX_CHANNELS = 32


@dataclasses.dataclass(frozen=True)
class Format:
    """One container/codec that dictaphone can write."""

    name: str  #: the CLI's name (``-f``)
    mime_type: str  #: the canonical MIME type
    extension: str  #: the preferred file extension, with the dot
    sf_format: str | None  #: libsndfile major format; None when dictaphone writes it itself
    subtypes: tuple[str, ...]  #: sample encodings, the default first
    rates: tuple[int, ...] | None = None  #: the only rates the codec accepts; None: any
    max_rate: int = MAX_RATE
    max_channels: int = MAX_CHANNELS
    lossless: bool = False
    streams: str = "full"  #: what a reader gets from a stream (pipe) copy, for the docs
    aliases: tuple[str, ...] = ()  #: other MIME types that mean the same
    extensions: tuple[str, ...] = ()  #: other extensions

    @property
    def default_subtype(self) -> str:
        return self.subtypes[0]

    def check_subtype(self, subtype: str | None) -> str:
        """The subtype to use for ``subtype`` (None: the default). A lossy codec has no
        sample encodings to choose: its one subtype may be named by the codec (``vorbis``,
        ``opus``, ``mp3``), and anything else is refused saying so."""
        if subtype is None:
            return self.default_subtype
        if not isinstance(subtype, str) or not subtype.strip():
            raise InvalidArgumentError(f"a subtype must be a name such as PCM_16, not {subtype!r}")
        wanted = subtype.strip().upper()
        wanted = _SUBTYPE_ALIASES.get(wanted, wanted)
        if wanted in self.subtypes:
            return wanted
        shown = subtype if subtype.isprintable() else repr(subtype)
        if self.lossless:
            raise NotSupportedError(
                f"{self.name} cannot store {shown}; choose one of {', '.join(self.subtypes)}")
        codec = _CODEC_NAMES[self.default_subtype]
        raise NotSupportedError(
            f"{self.name} is always {codec}-coded and has no sample encodings to choose "
            f"({shown} is for wav, flac and raw); drop --subtype, or give {codec.lower()}")

    def check(self, samplerate: int, channels: int, subtype: str | None = None) -> str:
        """Validate a rate, a channel count and a subtype; return the subtype to use."""
        subtype = self.check_subtype(subtype)
        check_rate_and_channels(samplerate, channels)
        if self.rates is not None and samplerate not in self.rates:
            rates = ", ".join(str(r) for r in self.rates)
            raise NotSupportedError(f"{self.name} cannot take {samplerate} Hz; it takes {rates} Hz")
        if samplerate > self.max_rate:
            raise NotSupportedError(f"{self.name} takes at most {self.max_rate} Hz, not {samplerate}")
        if channels > self.max_channels:
            raise NotSupportedError(
                f"{self.name} takes at most {self.max_channels} channels, not {channels}"
            )
        return subtype

    def nearest_rate(self, samplerate: int) -> int:
        """The rate this codec takes that is closest to ``samplerate`` (higher on a tie)."""
        if self.rates is None:
            return min(samplerate, self.max_rate)
        return min(self.rates, key=lambda r: (abs(r - samplerate), -r))


#: Sample encodings and the numpy dtype dictaphone captures for each, so that lossless
#: paths never convert through float (and stay sample-exact).
SUBTYPE_DTYPES = {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32", "FLOAT": "float32"}

#: other names of the lossy codecs' one subtype, and the codec's name for messages
_SUBTYPE_ALIASES = {"MP3": "MPEG_LAYER_III", "MPEG": "MPEG_LAYER_III", "LAYER_III": "MPEG_LAYER_III"}
_CODEC_NAMES = {"VORBIS": "Vorbis", "OPUS": "Opus", "MPEG_LAYER_III": "MP3"}

MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("wav", "audio/wav", ".wav", None, ("PCM_16", "PCM_24", "PCM_32", "FLOAT"),
               max_rate=MAX_RATE, lossless=True,
               streams="full (real sizes when the length is known in advance, else 0xFFFFFFFF: sox and libsndfile read to the end)",
               aliases=("audio/wave", "audio/x-wav", "audio/vnd.wave"), extensions=(".wave",)),
        Format("flac", "audio/flac", ".flac", "FLAC", ("PCM_16", "PCM_24"), max_rate=655350,
               max_channels=8, lossless=True,
               streams="full for sox/ffmpeg; no total length in STREAMINFO (libsndfile refuses it; `dictaphone recover` fills it in)",
               aliases=("audio/x-flac",)),
        Format("ogg", "audio/ogg; codecs=vorbis", ".ogg", "OGG", ("VORBIS",), max_rate=192000, aliases=("audio/ogg", "audio/vorbis", "application/ogg"),
               extensions=(".oga",)),
        Format("opus", "audio/ogg; codecs=opus", ".opus", "OGG", ("OPUS",), rates=OPUS_RATES,
               max_channels=8, aliases=("audio/opus",)),
        Format("mp3", "audio/mpeg", ".mp3", "MP3", ("MPEG_LAYER_III",), rates=MP3_RATES,
               max_channels=2, streams="constant bitrate, no Info tag: readers count whole frames (up to 3 frames more)",
               aliases=("audio/mp3",)),
        Format("raw", "audio/x-raw", ".raw", None, ("PCM_16", "PCM_24", "PCM_32", "FLOAT"),
               lossless=True, streams="full (headerless little-endian interleaved PCM)",
               aliases=("audio/pcm",), extensions=(".pcm",)),
    )
}

_BY_EXTENSION = {ext: f for f in FORMATS.values() for ext in (f.extension, *f.extensions)}


def _normalise_mime(mime: str) -> str:
    """Lower-case, one space after each ';', so that equal MIME types compare equal."""
    parts = [p.strip() for p in mime.strip().lower().split(";")]
    # Quotes dropped too: a parameter value may be quoted (RFC 2045), and browsers take
    # 'audio/ogg; codecs="opus"' as 'audio/ogg; codecs=opus'.
    return "; ".join(p.replace(" ", "").replace('"', "") for p in parts if p)


_BY_MIME = {
    _normalise_mime(m): f for f in FORMATS.values() for m in (f.mime_type, *f.aliases)
}


def format_for_mime(mime_type: str) -> Format:
    """The Format for a MIME type; NotSupportedError when dictaphone cannot write it."""
    if not isinstance(mime_type, str):
        raise NotSupportedError(
            f"the MIME type must be a string such as 'audio/wav', not {mime_type!r}")
    fmt = _BY_MIME.get(_normalise_mime(mime_type))
    if fmt is None:
        raise NotSupportedError(f"unsupported MIME type: {mime_type!r}")
    return fmt


def format_by_name(name: str) -> Format:
    """The Format for a CLI name (wav, flac, ogg, opus, mp3, raw) or a MIME type."""
    if not isinstance(name, str):
        raise NotSupportedError(f"a format must be a name such as 'wav', not {name!r}")
    fmt = FORMATS.get(name.strip().lower())
    if fmt is not None:
        return fmt
    if "/" in name:
        return format_for_mime(name)
    raise NotSupportedError(f"unknown format {name!r}; choose one of {', '.join(FORMATS)}")


def format_for_path(path: str | os.PathLike) -> Format | None:
    """The Format a file name's extension names, or None."""
    return _BY_EXTENSION.get(os.path.splitext(os.fspath(path))[1].lower())


#: Containers the library keeps as they came (``dictaphone import``) though dictaphone does
#: not write them: a phone's M4A (AAC), a browser's WebM (Opus), raw AAC (ADTS). Browsers
#: play them; dictaphone reads them through PyAV (dictaphone.containers.decode).
IMPORTED: dict[str, tuple[str, str]] = {".m4a": ("m4a", "audio/mp4"), ".webm": ("webm", "audio/webm"),
                                        ".aac": ("aac", "audio/aac")}


def library_extensions() -> set[str]:
    """Every extension a clip's audio file may have: the written formats' and IMPORTED's."""
    return set(_BY_EXTENSION) | set(IMPORTED)


def is_library_audio(path: str | os.PathLike) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in library_extensions()


def mime_for_path(path: str | os.PathLike) -> str | None:
    """The MIME type of any audio file the library holds (None: not one)."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = _BY_EXTENSION.get(ext)
    if fmt is not None:
        return fmt.mime_type
    return IMPORTED[ext][1] if ext in IMPORTED else None


def format_name_for_path(path: str | os.PathLike) -> str | None:
    """``wav``, ``flac``, ..., ``m4a``, ``webm``: the name of a library file's container."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    fmt = _BY_EXTENSION.get(ext)
    if fmt is not None:
        return fmt.name
    return IMPORTED[ext][0] if ext in IMPORTED else None


#: extensions of audio formats dictaphone does not write (what each is, for messages):
#: a recording is never given one of these names, so that no reader is misled
OTHER_AUDIO_EXTENSIONS = {
    ".m4a": "M4A/AAC", ".m4b": "M4B/AAC", ".mp4": "MP4", ".aac": "AAC", ".webm": "WebM",
    ".weba": "WebM", ".mka": "Matroska", ".mkv": "Matroska", ".aif": "AIFF", ".aiff": "AIFF",
    ".aifc": "AIFF-C", ".caf": "CAF", ".wma": "WMA", ".amr": "AMR", ".ac3": "AC-3",
    ".au": "Sun audio", ".snd": "Sun audio", ".w64": "Wave64", ".spx": "Speex", ".mp2": "MP2",
    ".ape": "Monkey's Audio", ".wv": "WavPack", ".3gp": "3GP", ".alac": "ALAC",
}


def audio_extension(ext: str) -> str | None:
    """What audio format an extension dictaphone does not write names (``.m4a``:
    "M4A/AAC"), or None for one that names no audio format (``.bin``, ``.part``)."""
    return OTHER_AUDIO_EXTENSIONS.get(ext.lower())


def check_rate_and_channels(samplerate: int, channels: int) -> None:
    if not _is_int(samplerate) or not MIN_RATE <= samplerate <= MAX_RATE:
        raise InvalidArgumentError(
            f"sample rate {samplerate} is out of range ({MIN_RATE} to {MAX_RATE} Hz)"
        )
    if not _is_int(channels) or not 1 <= channels <= MAX_CHANNELS:
        raise InvalidArgumentError(f"channel count {channels} is out of range (1 to {MAX_CHANNELS})")


def _is_int(value) -> bool:
    """A whole number (numpy's too), but not a bool: True is no sample rate."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_type_supported(mime_type: str) -> bool:
    """True when a MediaRecorder can record to this MIME type on this machine. Anything
    that is not a MIME type (None, a number) is simply not supported, as in the browser."""
    if not isinstance(mime_type, str):
        return False
    try:
        fmt = format_for_mime(mime_type)
    except NotSupportedError:
        return False
    if fmt.sf_format is None:
        return True
    try:
        import soundfile
    except (ImportError, OSError):
        return False
    return soundfile.check_format(fmt.sf_format, fmt.default_subtype)
