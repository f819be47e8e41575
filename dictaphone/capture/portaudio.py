"""PortAudio in words: loading it (sounddevice), and what its errors mean.

Every PortAudio failure a user can meet is said here, in words: no message shows
PortAudio's own text ("Unanticipated host error [PaErrorCode -9999]"). sounddevice is
imported by :func:`import_sounddevice`, when a device is first needed.
"""

from __future__ import annotations

from ..errors import PortAudioMissingError


def import_sounddevice():
    """sounddevice, or PortAudioMissingError with the fix when PortAudio is not installed."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise PortAudioMissingError(
            "the PortAudio library was not found (on Debian/Ubuntu: sudo apt-get install "
            "libportaudio2; run 'dictaphone doctor' for other systems)"
        ) from e
    return sounddevice


#: PortAudio's error codes (portaudio.h) that can reach a recording or a playback
_PA_WORDS = {
    -10000: "the audio library is not initialised",
    -9999: "the audio system reported a failure",  # paUnanticipatedHostError; see below
    -9998: "it does not take that many channels",
    -9997: "it does not take that sample rate",
    -9996: "the device does not exist (any more)",
    -9994: "it does not take that sample format",
    -9993: "the device cannot be opened (is its audio server running?)",
    -9992: "out of memory",
    -9987: "the audio system did not answer in time",
    -9986: "the audio library failed internally",
    -9985: "the device is busy or unavailable",
    -9983: "the stream was stopped",
    -9981: "input was lost (the buffer overflowed)",
}

#: what an errno from the host API (ALSA, CoreAudio...) means for an input device
HOST_ERRNO_WORDS = {
    5: "the device or its audio server went away",  # EIO
    19: "the device was unplugged",  # ENODEV
    16: "the device is busy (another program may be using it)",  # EBUSY
    2: "the device does not exist (any more)",  # ENOENT
    32: "the device stopped delivering audio",  # EPIPE
    77: "the device is in a bad state",  # EBADFD
}


def portaudio_words(e: BaseException) -> str:
    """What a PortAudio error (sounddevice.PortAudioError) means, in words."""
    args = getattr(e, "args", ())
    code = args[1] if len(args) > 1 and isinstance(args[1], int) else None
    if code == -9999 and len(args) > 2 and isinstance(args[2], tuple) and len(args[2]) > 1:
        host_errno = args[2][1]
        if isinstance(host_errno, int) and abs(host_errno) in HOST_ERRNO_WORDS:
            return HOST_ERRNO_WORDS[abs(host_errno)]
    if code in _PA_WORDS:
        return _PA_WORDS[code]
    text = str(args[0]) if args else ""
    if text.startswith("Error querying device") or "No input device" in text:
        return "the device does not exist (any more)"
    if code is None and isinstance(e, ValueError) and text:
        return text  # sounddevice's own argument checks are in words already
    return "the audio system failed"
