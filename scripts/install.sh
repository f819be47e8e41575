#!/bin/sh
# Set dictaphone up on this machine: system packages (when missing), a virtualenv in
# .venv, and the package in it. Safe to run again: it installs only what is missing.
#   --transcribe   speech to text (faster-whisper; models are fetched on first use)
#   --web          `dictaphone serve`, the library in a browser
#   --speakers     speaker labels (transcribe --speakers): the transcribe extra, and the
#                  voice encoder's weights from Resemblyzer's wheel, without its torch
#   --test         everything the test suite needs (both extras and the speakers' weights)
# Flags combine: sh scripts/install.sh --transcribe --web
set -eu
cd "$(dirname "$0")/.."

# libvorbisenc2: Ogg Vorbis written with a page at every sync (dictaphone/containers/vorbis.py)
packages="libportaudio2 libvorbisenc2"
extras=""
speakers=""
for arg in "$@"; do
    case "$arg" in
        --transcribe) extras="$extras,transcribe" ;;
        --web) extras="$extras,web" ;;
        --speakers) extras="$extras,transcribe"; speakers=1 ;;
        --test)
            extras="$extras,transcribe,web,test"; speakers=1
            # flite: four voices of real speakers (CMU Arctic) for the speaker-label tests
            packages="$packages pulseaudio pulseaudio-utils libasound2-plugins espeak-ng sox tmux chromium ffmpeg flite" ;;
        *) echo "install.sh: unknown option $arg (use --transcribe, --web, --speakers or --test)" >&2; exit 2 ;;
    esac
done

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
    for p in $packages; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || missing="$missing python3-venv"
fi

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="none"; fi
    if [ "$sudo" = none ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "install.sh: please install these packages first:$missing" >&2
        echo "  (Debian/Ubuntu: sudo apt-get install$missing)" >&2
        exit 1
    fi
    echo "install.sh: installing$missing" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
elif ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install.sh: not a Debian/Ubuntu system; make sure PortAudio is installed" >&2
    echo "  (Fedora: dnf install portaudio; Arch: pacman -S portaudio; macOS: nothing to do)" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
spec="."
[ -n "$extras" ] && spec=".[${extras#,}]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$spec"
# Resemblyzer's wheel holds the GE2E voice encoder's weights (pretrained.pt, 17 MB,
# Apache-2.0); dictaphone reads that file alone, so none of its dependencies (torch,
# librosa, webrtcvad) is installed.
if [ -n "$speakers" ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "resemblyzer==0.1.4"
fi
