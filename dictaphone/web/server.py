"""The routes: the page, the clips (list, audio, waveform, transcript, rename, delete),
search, recording and its control, and one event stream that pushes changes.

Every piece of logic lives in the core (clips, control, waveform, transcript, markers);
this module translates requests to calls and results to JSON, and holds no state but
the token, a small waveform cache and the children it started.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import secrets
import threading
import time
from importlib import resources

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import jsontext
from ..library import clips as library
from ..control import registry as control
from ..errors import DictaphoneError, InvalidArgumentError
from ..containers.formats import format_name_for_path, mime_for_path
from .recordings import Launcher, Notices, StartError, Transcriptions
from .security import Guard, host_names

BODY_LIMIT = 4096  # bytes: every request body is a small JSON object
PREVIEW_WORDS = 12
RECORD_FORMATS = ("wav", "flac", "ogg", "opus", "mp3")
TICK_RECORDING = 0.25  # s between two status reads while something records (the meter)
TICK_IDLE = 0.5  # s between two looks at the registry while nothing records
PAGE_MAX = 500  # clips or hits in one page of /api/clips or /api/search
SEARCH_PAGE = 50  # hits in a page of /api/search when the page does not say
SNIPPET = 110  # characters of a hit's snippet, centred on the match
PING_EVERY = 15.0  # s: a comment line keeps proxies and the browser from timing out

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


# -- optional parts of the core (landing from other work; the page works without them) -----

def _transcripts():
    try:
        from ..library import transcript
    except ImportError:
        return None
    return transcript


def _markers_module():
    try:
        from ..containers import markers
    except ImportError:
        return None
    return markers


def _plain(obj):
    """A dataclass, an object with to_json() or a dict, as plain JSON data."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        data = to_json()
        return json.loads(data) if isinstance(data, str) else _plain(data)
    import dataclasses

    if dataclasses.is_dataclass(obj):
        return _plain(dataclasses.asdict(obj))
    return str(obj)


def _load_transcript(path: str):
    mod = _transcripts()
    if mod is None:
        return None
    try:
        return mod.load(path)
    except (DictaphoneError, OSError, ValueError, AttributeError):
        return None


def _preview(clip) -> str | None:
    if hasattr(clip, "transcript"):  # the library reads the sidecar's first words itself
        return clip.transcript or None
    t = _load_transcript(clip.path)
    text = getattr(t, "text", None) if t is not None else None
    if not text:
        return None
    words = str(text).split()
    return " ".join(words[:PREVIEW_WORDS]) + ("…" if len(words) > PREVIEW_WORDS else "")


def _clip_markers(clip) -> list[dict]:
    found = getattr(clip, "markers", None)
    if found is None:
        mod = _markers_module()
        if mod is not None:
            try:
                found = mod.load(clip.path)
            except (DictaphoneError, OSError, ValueError, AttributeError):
                found = None
    result = []
    for m in _plain(found) or []:
        if isinstance(m, dict) and isinstance(m.get("time"), (int, float)):
            result.append({"number": m.get("number"), "time": float(m["time"]),
                           "label": str(m.get("label") or f"Marker {m.get('number', '')}".strip())})
    return result


def _has_transcript(path: str) -> bool:
    mod = _transcripts()
    sidecar = getattr(mod, "sidecar_path", None) if mod else None
    return mod is not None and os.path.isfile(sidecar(path) if sidecar else path + ".transcript.json")


def _version(stamp: str) -> str:
    """The audio's part of an index stamp ("size:mtime_ns|...") as the page's version."""
    audio = stamp.split("|", 1)[0]
    if audio == "-":
        return "0"
    size, mtime = audio.split(":")
    return f"{int(mtime):x}-{int(size):x}"


def clip_json(clip, recording: set[str], transcribing: dict[str, str] | None = None) -> dict:
    stamp = getattr(clip, "stamp", None)  # a clip from the index: no need to look at the files
    if stamp:
        version = _version(stamp)
        has_transcript = stamp.split("|")[2] != "-"
    else:
        try:
            st = os.stat(clip.path)
            version = f"{st.st_mtime_ns:x}-{st.st_size:x}"
        except OSError:
            version = "0"
        has_transcript = _has_transcript(clip.path)
    mime = mime_for_path(clip.path)
    gaps = [g for g in (_plain(getattr(clip, "gaps", None)) or []) if isinstance(g, dict)]
    return {"name": clip.name, "file": os.path.basename(clip.path), "created": clip.created,
            "duration": clip.duration, "format": clip.format, "samplerate": clip.samplerate,
            "channels": clip.channels, "size": clip.size, "device": clip.device,
            "dropped_frames": clip.dropped_frames, "version": version,
            "mime": mime,
            # Browsers play WAV, FLAC, Ogg (Vorbis, Opus), MP3, M4A (AAC) and WebM;
            # headerless PCM they cannot.
            "playable": mime is not None and format_name_for_path(clip.path) != "raw",
            "recording": os.path.realpath(clip.path) in recording,
            "transcript": _preview(clip), "has_transcript": has_transcript,
            "markers": _clip_markers(clip), "gaps": gaps,
            "transcribing": (transcribing or {}).get(os.path.realpath(clip.path))}


# -- requests -------------------------------------------------------------------------------

class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error_response(request, exc: HTTPError):
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def _find(name: str):
    """The clip called ``name``, by the library's own rules (no paths, no dot files,
    no symlinks, nothing outside the clip directory)."""
    try:
        return library.find(name)
    except library.ClipNotFoundError as e:
        raise HTTPError(404, str(e)) from None
    except InvalidArgumentError as e:
        raise HTTPError(400, str(e)) from None


def _seconds(v) -> bool:
    """A number of seconds from JSON: not a bool, not NaN or Infinity (which Python's JSON
    reads), not an integer too large for a float."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


async def _json_body(request: Request) -> dict:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPError(415, "send JSON (Content-Type: application/json)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_LIMIT:
            raise HTTPError(413, "request too large")
    try:
        data = jsontext.loads(body or b"{}", jsontext.MAX_DEPTH)
    except ValueError:
        raise HTTPError(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "the body must be a JSON object")
    return data


class WaveformCache:
    def __init__(self, size: int = 128):
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.size = size

    def get(self, path: str, columns: int) -> dict:
        from ..library.waveform import analyse

        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size, columns)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = analyse(path, columns).to_json()
        with self._lock:
            self._items[key] = data
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return data


class LibraryFeed:
    """The library as the pages see it: the index, kept current as the clip directory
    changes (``library.watch``: inotify, else a cheap poll), shared by every request and
    event stream of this server."""

    def __init__(self):
        from ..library.index import open_index
        from ..library.watch import Watcher

        try:
            library.clip_dir(create=True)  # so that it can be watched from the start
        except DictaphoneError:
            pass  # (not writable: the index works from memory, and says so)
        self.index = open_index()
        self.watcher = Watcher(self.index, lambda changes: None).start()

    def close(self) -> None:
        self.watcher.close()


class Page:
    """The application's state and handlers."""

    def __init__(self, token: str, transcribe: bool, launcher: Launcher, notices: Notices):
        self.token = token
        self.transcribe = transcribe
        self.launcher = launcher
        self.notices = notices
        self.transcriptions = Transcriptions(notices)
        self.stopping = threading.Event()
        self.waveforms = WaveformCache()
        self.feed = LibraryFeed()

    # the page and its files

    def index(self, request: Request):
        html = resources.files(__package__).joinpath("static/index.html").read_text("utf-8")
        html = html.replace("{{TOKEN}}", self.token).replace(
            "{{TRANSCRIBE}}", "1" if self.transcribe else "0").replace(
            "{{MARK}}", "1" if "mark" in control.COMMANDS else "0")
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"cache-control": "no-store"})

    STATIC = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
              "icon.svg": "image/svg+xml"}

    def static(self, request: Request):
        name = request.path_params["file"]
        if name not in self.STATIC:  # a fixed set of files: nothing else can be named
            raise HTTPError(404, "not found")
        data = resources.files(__package__).joinpath("static", name).read_bytes()
        return Response(data, media_type=self.STATIC[name], headers={"cache-control": "no-cache"})

    # clips

    def recording_paths(self, statuses: list[dict] | None = None) -> set[str]:
        if statuses is None:
            statuses = _statuses()
        return {os.path.realpath(p) for s in statuses for p in (s.get("paths") or [s.get("path")]) if p}

    def clip_list(self, clips, statuses: list[dict] | None = None) -> list[dict]:
        recording = self.recording_paths(statuses)
        transcribing = self.transcriptions.busy()
        return [clip_json(c, recording, transcribing) for c in clips]

    def list_clips(self, request: Request):
        """The clips, newest first: all of them, or ``limit`` of them after the clip whose
        key (``created`` + newline + ``name``, as ``key`` in each clip) is ``before``. The
        header x-dictaphone-total counts them all."""
        limit = request.query_params.get("limit")
        before = request.query_params.get("before")
        if limit is not None:
            try:
                limit = min(PAGE_MAX, max(1, int(limit)))
            except ValueError:
                raise HTTPError(400, "limit must be a number") from None
        cursor = None
        if before:
            created, sep, name = before.partition("\n")
            if not sep:
                raise HTTPError(400, "before is a clip's key (created, a new line, name)")
            cursor = (created, name)

        def do():
            index = self.feed.index
            clips = index.clips(limit=limit, before=cursor, sync=False)
            return self.clip_list(clips), index.count(sync=False)

        # (sync=False: the watcher keeps the index current, so a page costs no listing)
        clips, total = do()
        return JSONResponse(clips, headers={"x-dictaphone-total": str(total)})

    def one_clip(self, request: Request):
        name = request.path_params["name"]
        try:
            library.check_name(name)
        except InvalidArgumentError as e:
            raise HTTPError(400, str(e)) from None
        clip = self.feed.index.find(name, sync=False)
        if clip is None:
            clip = _find(name)  # not indexed yet (a moment ago): from its files, or 404
        return JSONResponse(self.clip_list([clip])[0])

    def audio(self, request: Request):
        clip = _find(request.path_params["name"])
        mime = mime_for_path(clip.path)
        download = request.query_params.get("download") == "1"
        return FileResponse(clip.path, media_type=mime or "application/octet-stream",
                            filename=os.path.basename(clip.path),
                            content_disposition_type="attachment" if download else "inline",
                            headers={"cache-control": "no-cache"})

    def waveform(self, request: Request):
        clip = _find(request.path_params["name"])
        try:
            columns = min(2000, max(10, int(request.query_params.get("columns", "600"))))
        except ValueError:
            raise HTTPError(400, "columns must be a number") from None
        try:
            return JSONResponse(self.waveforms.get(clip.path, columns))
        except DictaphoneError as e:  # raw, or damaged
            raise HTTPError(422, str(e)) from None

    def transcript(self, request: Request):
        clip = _find(request.path_params["name"])
        t = _load_transcript(clip.path)
        if t is None:
            raise HTTPError(404, f"{clip.name!r} has no transcript")
        return JSONResponse(_plain(t))

    def search(self, request: Request):
        from ..library.index import QueryError, snippet

        query = request.query_params.get("q", "").strip()
        if len(query) > 200:
            raise HTTPError(400, "the search is too long")
        if not query:
            return JSONResponse({"available": True, "hits": [], "total": 0, "offset": 0})
        try:
            limit = min(PAGE_MAX, max(1, int(request.query_params.get("limit", SEARCH_PAGE))))
            offset = max(0, int(request.query_params.get("offset", 0)))
        except ValueError:
            raise HTTPError(400, "limit and offset must be numbers") from None
        try:
            results = self.feed.index.search(query, limit=limit, offset=offset, sync=False)
        except QueryError as e:
            raise HTTPError(400, str(e)) from None
        hits = []
        for h in results.hits:
            cut, spans = snippet(h.text, h.spans, width=SNIPPET)
            hits.append({"name": h.name, "start": h.start, "end": h.end, "text": h.text,
                         "span": list(h.span), "spans": [list(x) for x in h.spans],
                         "snippet": cut, "snippet_spans": [list(x) for x in spans],
                         "speaker": h.speaker, "created": h.created})
        return JSONResponse({"available": True, "hits": hits, "total": results.total, "offset": offset})

    def _not_recording(self, clip) -> None:
        if os.path.realpath(clip.path) in self.recording_paths():
            raise HTTPError(409, f"{clip.name!r} is being recorded; stop it first")
        if os.path.realpath(clip.path) in self.transcriptions.busy():
            raise HTTPError(409, f"{clip.name!r} is being transcribed; wait until it is done")

    async def transcribe_clip(self, request: Request):
        await _json_body(request)
        if not self.transcribe:
            raise HTTPError(400, "transcription is not installed: pip install 'dictaphone[transcribe]'")

        def do():
            clip = _find(request.path_params["name"])
            if os.path.realpath(clip.path) in self.recording_paths():
                raise HTTPError(409, f"{clip.name!r} is being recorded; stop it first")
            if format_name_for_path(clip.path) in (None, "raw"):
                raise HTTPError(400, "raw clips need their sample format: use 'dictaphone transcribe -r RATE'")
            self.transcriptions.add(os.path.realpath(clip.path), clip.name)
            return {"name": clip.name, "state": self.transcriptions.busy().get(os.path.realpath(clip.path))}

        return JSONResponse(await run_in_threadpool(do))

    async def rename(self, request: Request):
        data = await _json_body(request)
        new = data.get("name")
        if not isinstance(new, str):
            raise HTTPError(400, "give the new name")

        def do():
            clip = _find(request.path_params["name"])
            self._not_recording(clip)
            try:
                renamed = library.rename(clip.name, new)
            except library.ClipExistsError as e:
                raise HTTPError(409, str(e)) from None
            except InvalidArgumentError as e:
                raise HTTPError(400, str(e)) from None
            except DictaphoneError as e:  # a full disk: what was (not) changed, in words
                raise HTTPError(507 if "disk full" in str(e) else 500, str(e)) from None
            return clip_json(renamed, set())

        return JSONResponse(await run_in_threadpool(do))

    async def rename_speaker(self, request: Request):
        """A speaker of one clip's transcript named (``old`` -> ``new``); with ``remember``
        the voice is kept as a known one (dictaphone speakers rename-in)."""
        data = await _json_body(request)
        old, new, remember = data.get("old"), data.get("new"), data.get("remember", False)
        if not isinstance(old, str) or not isinstance(new, str) or not isinstance(remember, bool):
            raise HTTPError(400, "give the speaker (old), the new name (new) and remember (true/false)")

        def do():
            from ..speech.speakers import rename_in

            clip = _find(request.path_params["name"])
            self._not_recording(clip)
            try:
                t, voice = rename_in(clip.path, old, new, remember=remember, source=clip.name)
            except InvalidArgumentError as e:  # no such speaker, an empty name, too little speech
                raise HTTPError(400, str(e)) from None
            except DictaphoneError as e:  # the voice model missing, a disk that refused
                raise HTTPError(500, str(e)) from None
            except OSError as e:
                raise HTTPError(500, f"cannot save the transcript of {clip.name}: {e.strerror or e}") from None
            return {"name": clip.name, "speakers": t.speakers, "remembered": voice.name if voice else None}

        return JSONResponse(await run_in_threadpool(do))

    async def delete(self, request: Request):
        await _json_body(request)

        def do():
            clip = _find(request.path_params["name"])
            self._not_recording(clip)
            library.delete(clip.name)
            return {"deleted": clip.name}

        return JSONResponse(await run_in_threadpool(do))

    # trim and export

    async def trim(self, request: Request):
        data = await _json_body(request)
        start, end = data.get("from"), data.get("to")
        for label, v in (("from", start), ("to", end)):
            if v is not None and not _seconds(v):
                raise HTTPError(400, f"{label} must be a number of seconds")
        new_name, in_place = data.get("name"), data.get("in_place", False)
        if new_name is not None and not isinstance(new_name, str):
            raise HTTPError(400, "name must be text")
        if not isinstance(in_place, bool):  # "false" is not false: an in-place trim replaces the clip
            raise HTTPError(400, "in_place must be true or false")

        def do():
            from ..library.edit import trim

            clip = _find(request.path_params["name"])
            self._not_recording(clip)
            try:
                result = trim(clip.name, start, end, new_name=new_name or None, in_place=in_place)
            except library.ClipExistsError as e:
                raise HTTPError(409, str(e)) from None
            except DictaphoneError as e:
                raise HTTPError(400 if e.usage else 500, str(e)) from None
            return {"clip": clip_json(result.clip, set()), "notes": result.notes}

        return JSONResponse(await run_in_threadpool(do))

    async def export(self, request: Request):
        fmt = request.query_params.get("format", "wav")
        params = {}
        for key in ("from", "to"):
            if request.query_params.get(key):
                try:
                    params[key] = float(request.query_params[key])
                except ValueError:
                    raise HTTPError(400, f"{key} must be a number of seconds") from None
                if not math.isfinite(params[key]):
                    raise HTTPError(400, f"{key} must be a number of seconds")

        def do():
            import tempfile

            from ..containers.formats import format_by_name
            from ..library.edit import export

            clip = _find(request.path_params["name"])
            self._not_recording(clip)
            try:
                f = format_by_name(fmt)
            except DictaphoneError as e:
                raise HTTPError(400, str(e)) from None
            directory = tempfile.mkdtemp(prefix="dictaphone-export-")
            out = os.path.join(directory, clip.name + f.extension)
            try:
                export(clip.name, out, f.name, start=params.get("from"), end=params.get("to"))
            except DictaphoneError as e:
                _remove_tree(directory)
                raise HTTPError(400 if e.usage else 500, str(e)) from None
            except BaseException:
                _remove_tree(directory)
                raise
            return out, f, directory

        out, f, directory = await run_in_threadpool(do)
        from starlette.background import BackgroundTask

        return FileResponse(out, media_type=f.mime_type, filename=os.path.basename(out),
                            content_disposition_type="attachment",
                            background=BackgroundTask(_remove_tree, directory))

    # recording

    def recordings(self, request: Request):
        return JSONResponse(self.recording_list(_statuses()))

    def recording_list(self, statuses: list[dict]) -> list[dict]:
        mine = self.launcher.pids()
        result = []
        for s in statuses:
            path = s.get("path") or ""
            result.append({"id": s.get("id"), "pid": s.get("pid"), "state": s.get("state"),
                           "file": os.path.basename(path),
                           "name": os.path.splitext(os.path.basename(path))[0],
                           "in_library": bool(path) and library.is_clip_path(path),
                           "duration": s.get("duration"), "bytes": s.get("bytes"),
                           "peak_dbfs": s.get("peak_dbfs"),
                           "rms_dbfs": s.get("rms_dbfs"), "format": s.get("format"),
                           "device_lost": s.get("device_lost"),  # {"reason", "lost", "left"} or None
                           # --transcribe: {"utterances": [{"start", "text"}], "partial": {...} or None}
                           "transcript": s.get("transcript"),
                           "from_page": s.get("pid") in mine})
        return result

    async def record(self, request: Request):
        data = await _json_body(request)
        name = data.get("name") or None
        format_name = data.get("format") or None
        transcribe = data.get("transcribe") is True
        if name is not None:
            if not isinstance(name, str):
                raise HTTPError(400, "the name must be text")
            try:
                library.check_name(name)
            except InvalidArgumentError as e:
                raise HTTPError(400, str(e)) from None
        if format_name is not None and format_name not in RECORD_FORMATS:
            raise HTTPError(400, f"format must be one of {', '.join(RECORD_FORMATS)}")
        if transcribe and not self.transcribe:
            raise HTTPError(400, "transcription is not installed: pip install 'dictaphone[transcribe]'")
        try:
            started = await run_in_threadpool(self.launcher.start, name, format_name, transcribe)
        except StartError as e:
            raise HTTPError(400 if e.usage else 500, str(e)) from None
        return JSONResponse(started)

    async def command(self, request: Request):
        data = await _json_body(request)
        rid, command = request.path_params["id"], request.path_params["command"]
        if command not in ("pause", "resume", "stop", "mark") or command not in control.COMMANDS:
            raise HTTPError(404, "not found")
        params = {}
        if command == "mark" and data.get("label") is not None:
            label = data["label"]
            if not isinstance(label, str) or not label.strip():
                raise HTTPError(400, "a marker label must be text")
            try:
                # the recorder's own rule (one line, at most MAX_LABEL characters), here:
                # a label it would refuse is the request's fault (400), not a conflict (409)
                from ..containers.markers import clean_label

                clean_label(label, 1)
            except InvalidArgumentError as e:
                raise HTTPError(400, str(e)) from None
            params["label"] = label.strip()

        def do():
            try:
                entries = control.running()
            except DictaphoneError as e:
                raise HTTPError(409, str(e)) from None
            for entry in entries:
                if entry.id == rid:
                    try:
                        reply = entry.request(command, **params)
                    except DictaphoneError as e:
                        raise HTTPError(409, str(e)) from None
                    return {k: reply.get(k) for k in ("id", "state", "duration", "error", "marker")
                            if k in reply} | {"file": os.path.basename(reply.get("path") or "")}
            raise HTTPError(404, f"no recording with id {rid!r}")

        return JSONResponse(await run_in_threadpool(do))

    # the event stream

    async def events(self, request: Request):
        """One stream of events: ``hello`` {total, gen} first (the page loads its first
        clips then, and again after a reconnect), then ``clip`` {clip, total} for each clip
        that appeared or changed, ``clip-removed`` {name, file, total}, ``recordings``
        [...] while they change, and ``notice`` {level, text}. Every event's data is one
        JSON value, and a page ignores the events it does not know: others may be added.

        Nothing is scanned here: the feed's watcher keeps the index current (inotify), and
        each stream only compares the index's change counter with the last one it sent."""
        feed = self.feed

        def look():
            statuses = _statuses()
            return statuses, feed.index.gen()

        async def stream():
            yield "retry: 2000\n\n"
            last_recordings = None
            # hello first: it needs only the index (the recorders' status, asked of each
            # running recorder, may take longer and comes with the next event)
            gen, total = await run_in_threadpool(lambda: (feed.index.gen(), feed.index.count(False)))
            yield _event("hello", {"total": total, "gen": gen})
            statuses = await run_in_threadpool(_statuses)
            last_busy = (self.recording_paths(statuses), self.transcriptions.busy())
            next_ping = time.monotonic() + PING_EVERY
            seen = self.notices.last()  # only what happens from now on
            first = True
            while not self.stopping.is_set():
                if not first:
                    statuses, now_gen = await run_in_threadpool(look)
                else:
                    now_gen, first = gen, False
                recordings = self.recording_list(statuses)
                if recordings != last_recordings:
                    last_recordings = recordings
                    yield _event("recordings", recordings)
                busy = (self.recording_paths(statuses), self.transcriptions.busy())
                if now_gen < gen:  # the index was made anew (it was damaged): start again
                    gen = now_gen
                    total = await run_in_threadpool(feed.index.count, False)
                    yield _event("hello", {"total": total, "gen": gen})
                elif now_gen != gen or busy != last_busy:
                    try:
                        events, gen = await run_in_threadpool(self._changes, gen, busy, last_busy, statuses)
                    except (OSError, DictaphoneError):
                        events = []  # the next tick tries again
                    last_busy = busy
                    for name, data in events:
                        yield _event(name, data)
                for seq, notice in self.notices.since(seen):
                    seen = seq
                    yield _event("notice", notice)
                now = time.monotonic()
                if now >= next_ping:
                    next_ping = now + PING_EVERY
                    yield ": ping\n\n"
                await asyncio.sleep(TICK_RECORDING if statuses else TICK_IDLE)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    def _changes(self, gen: int, busy, last_busy, statuses) -> tuple[list, int]:
        """The events for what changed since change ``gen``, and the change counter now:
        the clips that changed, and those whose recording or transcribing state did."""
        index = self.feed.index
        changes = index.changes_since(gen)
        files = set(changes.changed)
        recording, transcribing = busy
        was_recording, was_transcribing = last_busy
        for path in (recording ^ was_recording) | {p for p in set(transcribing) | set(was_transcribing)
                                                   if transcribing.get(p) != was_transcribing.get(p)}:
            if os.path.dirname(path) == os.path.realpath(index.directory):
                files.add(os.path.basename(path))
        events = []
        total = index.count(sync=False)
        for name in changes.removed.values():
            events.append(("clip-removed", {"name": name, "total": total}))
        clips = index.clip_rows(sorted(files)) if files else []
        for data in self.clip_list(clips, statuses):
            events.append(("clip", {"clip": data, "total": total}))
        return events, changes.gen


def _remove_tree(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def _statuses() -> list[dict]:
    try:
        return control.statuses(timeout=2.0)
    except DictaphoneError:  # e.g. a registry directory that is not private: nothing to show
        return []


def _event(name: str, data) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def create_app(token: str, port: int, host: str = "127.0.0.1", transcribe: bool = False,
               launcher: Launcher | None = None, page_host: str | None = None) -> Starlette:
    notices = Notices()
    page = Page(token, transcribe, launcher or Launcher(notices), notices)
    routes = [
        Route("/", page.index),
        Route("/static/{file}", page.static),
        Route("/api/clips", page.list_clips),
        Route("/api/clips/{name}", page.one_clip),
        Route("/api/clips/{name}/audio", page.audio),
        Route("/api/clips/{name}/waveform", page.waveform),
        Route("/api/clips/{name}/transcript", page.transcript),
        Route("/api/clips/{name}/rename", page.rename, methods=["POST"]),
        Route("/api/clips/{name}/delete", page.delete, methods=["POST"]),
        Route("/api/clips/{name}/speakers", page.rename_speaker, methods=["POST"]),
        Route("/api/clips/{name}/transcribe", page.transcribe_clip, methods=["POST"]),
        Route("/api/clips/{name}/trim", page.trim, methods=["POST"]),
        Route("/api/clips/{name}/export", page.export),
        Route("/api/search", page.search),
        Route("/api/recordings", page.recordings),
        Route("/api/record", page.record, methods=["POST"]),
        Route("/api/recordings/{id}/{command}", page.command, methods=["POST"]),
        Route("/api/events", page.events),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPError: _error_response})
    app.state.page = page

    hosts = host_names(host, port)
    if hosts is not None and page_host is not None:
        hosts.add(f"{page_host}:{port}".lower())
    guarded = Guard(app, token, port, hosts, SECURITY_HEADERS,
                    cookie_host=f"{page_host}:{port}".lower() if page_host else None)
    guarded.page = page
    return guarded


def serve(sock, host: str, open_browser: bool, transcribe: bool, announce,
          page_host: str | None = None) -> None:
    """Run the server on the listening socket ``sock`` until SIGINT or SIGTERM.
    ``page_host``: the host name of the page's address (its own loopback address or
    ``*.localhost`` name, so that its cookie goes to no other server; see security.py)."""
    import signal
    import sys

    import uvicorn

    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    shown = page_host or ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host)
    url_host = f"[{shown}]" if ":" in shown else shown
    url = f"http://{url_host}:{port}/?token={token}"
    app = create_app(token, port, host, transcribe, page_host=page_host)
    page = app.page

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # Ends the event streams (they would hold a graceful shutdown open) and does
            # not re-raise the signal afterwards: a stopped server exits 0.
            page.stopping.set()
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=3, server_header=False, date_header=False)
    server = Server(config)
    announce(url)
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        # Some browsers (text ones) block until they exit.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        page.feed.close()
        page.transcriptions.close()
        page.launcher.stop_all(say=lambda m: print(f"dictaphone serve: {m}", file=sys.stderr))
        sock.close()
