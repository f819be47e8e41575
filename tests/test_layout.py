"""The package's rooms (docs/ARCHITECTURE.md): old import paths keep working, and the
public surface stays where users import it from."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import dictaphone

MOVED = sorted(dictaphone._MOVED.items())


@pytest.mark.parametrize("old,new", MOVED, ids=[old for old, _ in MOVED])
def test_an_old_module_path_gives_the_very_module_of_its_new_room(old, new):
    before = importlib.import_module(f"dictaphone.{old}")
    after = importlib.import_module(f"dictaphone.{new}")
    assert before is after


def test_from_dictaphone_import_a_moved_module_works():
    from dictaphone import clips, transcript  # noqa: F401  (the form the README's examples use)

    assert clips.__name__ == "dictaphone.library.clips"
    assert transcript.__name__ == "dictaphone.library.transcript"


def test_the_old_control_module_names_are_still_reached_through_the_control_room():
    from dictaphone.control import ControlServer, statuses
    from dictaphone.control.registry import ControlServer as direct

    assert ControlServer is direct and callable(statuses)
    with pytest.raises(ImportError):
        from dictaphone.control import no_such_name  # noqa: F401


def test_an_attribute_set_through_an_old_path_is_seen_through_the_new_one(monkeypatch):
    import dictaphone.recording.recorder as new
    old = importlib.import_module("dictaphone.recorder")
    monkeypatch.setattr(old, "_layout_probe", 1, raising=False)
    assert new._layout_probe == 1


def test_every_public_name_resolves():
    for name in dictaphone.__all__:
        assert getattr(dictaphone, name) is not None


def test_an_unknown_module_under_dictaphone_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("dictaphone.no_such_module")


def test_importing_dictaphone_loads_no_room_and_no_audio_library():
    code = ("import sys, dictaphone; "
            "print(sorted(m for m in sys.modules if m.startswith(('dictaphone.', 'numpy', "
            "'sounddevice', 'soundfile'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_sources_module_still_offers_every_name_it_did_from_the_modules_that_hold_them():
    from dictaphone.capture import base, devices, files, microphone, portaudio, sources

    homes = {"Capture": base, "Source": base, "Microphone": microphone, "FileSource": files,
             "check_reconnect": microphone, "list_devices": devices, "find_device": devices,
             "find_input_device": devices, "is_server_device": devices,
             "rates_in_words": devices, "STANDARD_RATES": devices,
             "import_sounddevice": portaudio, "portaudio_words": portaudio}
    assert sorted(sources.__all__) == sorted(homes)
    for name, home in homes.items():
        assert getattr(sources, name) is getattr(home, name), name
    assert importlib.import_module("dictaphone.sources") is sources
