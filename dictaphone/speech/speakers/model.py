"""Where the voice encoder's weights come from, and reading them without torch.

The encoder is Resemblyzer's GE2E model (Apache-2.0; 3 LSTM layers of 256, a 256-d
projection): the only speaker-embedding weights that a package registry ships. They are
``resemblyzer/pretrained.pt`` in Resemblyzer's wheel, saved by torch in its older pickle
format, which :func:`read_legacy_torch` reads with :mod:`pickle` alone, into numpy arrays.

Resemblyzer's own code needs torch, librosa and webrtcvad; dictaphone uses none of it, only
the weights file. So it is installed without its dependencies::

    pip install --no-deps resemblyzer

and found through the installed distribution's file list (:mod:`importlib.metadata`: the
package is never imported). ``DICTAPHONE_SPEAKER_MODEL`` may name the weights instead: a
``pretrained.pt`` or a Resemblyzer wheel (``.whl``) lying anywhere.
"""

from __future__ import annotations

import collections
import importlib.metadata
import io
import os
import pickle
import struct
import zipfile

from ...errors import DictaphoneError

INSTALL_HINT = "pip install --no-deps resemblyzer"
ENV = "DICTAPHONE_SPEAKER_MODEL"
_WEIGHTS = "resemblyzer/pretrained.pt"
_MAGIC = 0x1950A86A20F9469CFC6C  # torch's legacy serialisation magic number


class SpeakerModelError(DictaphoneError):
    """The voice encoder's weights are missing or cannot be read (a runtime failure: the
    command asked for was fine; exit 1)."""


def _missing() -> SpeakerModelError:
    return SpeakerModelError(
        f"speaker labels need the voice encoder of Resemblyzer (17 MB, no torch): {INSTALL_HINT}"
        f" (or set {ENV} to its pretrained.pt)")


def weights_source() -> str:
    """Where the weights are: ``$DICTAPHONE_SPEAKER_MODEL``, else the installed Resemblyzer
    distribution's ``pretrained.pt``. SpeakerModelError when there are none."""
    env = os.environ.get(ENV, "").strip()
    if env:
        path = os.path.expanduser(env)
        if not os.path.isfile(path):
            raise SpeakerModelError(f"{ENV}={env}: no such file (give Resemblyzer's "
                                    f"pretrained.pt or its wheel, or unset it and {INSTALL_HINT})")
        return path
    for dist in ("resemblyzer", "Resemblyzer"):
        try:
            files = importlib.metadata.distribution(dist).files or ()
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in files:
            if str(f).replace("\\", "/").endswith(_WEIGHTS):
                path = str(f.locate())
                if os.path.isfile(path):
                    return path
    raise _missing()


def read_bytes(source: str) -> bytes:
    """The weights file's bytes (from inside a wheel when ``source`` is one)."""
    try:
        if source.lower().endswith((".whl", ".zip")):
            with zipfile.ZipFile(source) as z:
                try:
                    return z.read(_WEIGHTS)
                except KeyError:
                    raise SpeakerModelError(f"{source} holds no {_WEIGHTS}: it is not "
                                            f"Resemblyzer's wheel") from None
        with open(source, "rb") as f:
            return f.read()
    except zipfile.BadZipFile:
        raise SpeakerModelError(f"the voice encoder's wheel {source} is damaged; reinstall: "
                                f"{INSTALL_HINT}") from None
    except OSError as e:
        raise SpeakerModelError(f"cannot read the voice encoder's weights {source}: "
                                f"{(e.strerror or str(e)).lower()}") from None


_DTYPES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
           "LongStorage": "int64", "IntStorage": "int32"}


class _Tensor(tuple):
    """(storage key, offset, size, stride) until the storages are read."""


def read_legacy_torch(data: bytes) -> dict:
    """A checkpoint saved by ``torch.save`` in its legacy (non-zip) format, with its tensors
    as numpy arrays. ValueError when ``data`` is not one (or is cut short)."""
    import numpy as np

    f = io.BytesIO(data)
    storages: dict[str, str] = {}

    class Reader(pickle.Unpickler):
        def find_class(self, module, name):  # nothing but plain data and tensors is built
            if module == "torch._utils" and name == "_rebuild_tensor_v2":
                return lambda storage, offset, size, stride, *_: _Tensor(
                    (storage, int(offset), tuple(size), tuple(stride)))
            if module == "torch" and name in _DTYPES:
                return name
            if module == "collections" and name == "OrderedDict":
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"unexpected {module}.{name} in the weights")

        def persistent_load(self, pid):
            if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
                raise pickle.UnpicklingError("unexpected persistent id")
            storages.setdefault(str(pid[2]), _DTYPES[pid[1]])
            return str(pid[2])

    try:
        if pickle.load(f) != _MAGIC:
            raise ValueError("not a torch checkpoint (no magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info
        obj = Reader(f).load()
        keys = pickle.load(f)
        arrays = {}
        for key in keys:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("cut short")
            (count,) = struct.unpack("<q", head)
            dtype = np.dtype(storages[str(key)])
            raw = f.read(count * dtype.itemsize)
            if len(raw) < count * dtype.itemsize:
                raise ValueError("cut short")
            arrays[str(key)] = np.frombuffer(raw, dtype=dtype)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, IndexError, struct.error,
            AttributeError, ImportError) as e:
        raise ValueError(f"not a readable torch checkpoint ({e})") from None

    def build(x):
        if isinstance(x, _Tensor):
            key, offset, size, stride = x
            flat = arrays[key]
            need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if size else offset + 1
            if need > len(flat):
                raise ValueError("a tensor runs past its storage")
            return np.lib.stride_tricks.as_strided(
                flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]).copy()
        if isinstance(x, dict):
            return {k: build(v) for k, v in x.items()}
        return x

    return build(obj)


def load_state(source: str | None = None) -> tuple[dict, str]:
    """The encoder's weights (name -> numpy array) and where they came from."""
    source = source or weights_source()
    try:
        checkpoint = read_legacy_torch(read_bytes(source))
        state = checkpoint["model_state"]
    except (ValueError, KeyError, TypeError) as e:
        raise SpeakerModelError(f"the voice encoder's weights {source} are damaged or not "
                                f"Resemblyzer's ({e}); reinstall: {INSTALL_HINT}") from None
    return state, source
