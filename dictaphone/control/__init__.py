"""Running recordings seen from other processes: the registry and its control socket
(stop/pause/resume/mark/status from any shell), and the hooks a recording runs.

See docs/ARCHITECTURE.md for what this room owns and what it may import."""


def __getattr__(name: str):
    # `dictaphone.control` was the registry module itself before the rooms existed:
    # `from dictaphone.control import ControlServer` keeps working (loaded on first use).
    if name.startswith("__") or name in ("registry", "hooks"):
        raise AttributeError(name)  # submodules: let the import system load them
    import importlib

    registry = importlib.import_module(".registry", __name__)
    try:
        return getattr(registry, name)
    except AttributeError:
        raise AttributeError(f"module 'dictaphone.control' has no attribute {name!r}") from None
