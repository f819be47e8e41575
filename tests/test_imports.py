"""Imports point down and never go round (docs/ARCHITECTURE.md): every import statement of
every module of the package, at module level and inside functions alike, read with ``ast``
(nothing is imported to check it).

LAYERS below is the one table of which room stands on which; a room may import its own
modules and those of the rooms below it, never one above it or beside it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dictaphone"

#: the rooms from the bottom up: a module may import its own room and every room of a
#: lower layer. "ground" is the package's top-level modules (errors, events, args, atomic,
#: stopsignals, jsontext) and the package's front door (dictaphone/__init__.py, which loads
#: rooms only when a name is first used); "entry" is ``python -m dictaphone``.
LAYERS: list[tuple[str, ...]] = [
    ("ground",),
    ("containers",),  # formats, encoders, recovery, libsndfile words, marker files
    ("capture",),  # devices, microphone, file sources, ring, levels, player
    ("recording",),  # MediaRecorder and its parts, the voice gate
    ("library",),  # clips, transcripts on disk, waveforms, import, trim/export
    ("speech",),  # transcription (live and whole-file), silero; makes library Transcripts
    ("control",),  # the control socket of running recordings, hooks
    ("cli", "web"),  # the two faces: neither imports the other (but see FACE_TO_FACE)
    ("entry",),
]

#: the one import from a face into the other: `dictaphone serve` starts the web page
FACE_TO_FACE = {("dictaphone.cli.serve_cmd", "dictaphone.web")}

LAYER = {room: n for n, rooms in enumerate(LAYERS) for room in rooms}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def room_of(module: str) -> str:
    parts = module.split(".")
    if module == "dictaphone.__main__":
        return "entry"
    if len(parts) == 2 and not MODULES[module].name == "__init__.py":
        return "ground"  # dictaphone.errors, dictaphone.events...
    return parts[1] if len(parts) > 1 else "ground"


def imports_of(module: str) -> list[tuple[str, int]]:
    """(the package module imported, line) for every import in ``module``, wherever it is."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            # `from . import clips` imports the module dictaphone.library.clips
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            name = node.args[0].value  # importlib.import_module(".registry", __name__)
            targets = [f"{package}{name}" if name.startswith(".") else name]
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]  # a name inside a module
            if target in MODULES and target != module:
                found.append((target, node.lineno))
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_walk_sees_imports_inside_functions_and_relative_ones():
    # (a check of the checker: these imports are known to exist)
    found = {t for t, _ in GRAPH["dictaphone.recording.recorder"]}
    assert {"dictaphone.recording.writer", "dictaphone.capture.sources",
            "dictaphone.errors"} <= found
    inner = {t for t, _ in GRAPH["dictaphone.cli.serve_cmd"]}
    assert "dictaphone.web" in inner  # imported inside the command's function


def test_every_room_is_in_the_layer_table():
    assert {room_of(m) for m in MODULES} <= set(LAYER)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_room_and_the_rooms_below(module):
    here = room_of(module)
    wrong = [f"{module} imports {target} (line {line}): {here} may not import {room_of(target)}"
             for target, line in GRAPH[module]
             if room_of(target) != here and LAYER[room_of(target)] >= LAYER[here]
             and (module, target) not in FACE_TO_FACE]
    assert not wrong, "\n".join(wrong)


def test_no_modules_import_each_other_round_in_a_circle():
    edges = {m: {t for t, _ in targets} for m, targets in GRAPH.items()}
    # Tarjan's strongly connected components: any with two or more modules is a circle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    shown = [" <-> ".join(c) + ": " + "; ".join(
        f"{a} -> {b} (line {line})" for a in c for b, line in GRAPH[a] if b in c)
        for c in circles]
    assert not circles, "\n".join(shown)


def test_the_core_never_imports_click_or_rich():
    faces = {"cli", "entry"}
    wrong = []
    for module, path in MODULES.items():
        if room_of(module) in faces:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            wrong += [f"{module}: {n}" for n in names if n.split(".")[0] in ("click", "rich")]
    assert not wrong, "\n".join(wrong)
