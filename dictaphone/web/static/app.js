// dictaphone's page: the clip library, search, and recordings, kept current by one
// event stream from the server (/api/events). Plain JavaScript, no dependencies.
"use strict";

const TOKEN = document.querySelector('meta[name="dictaphone-token"]').content;
const CAN_TRANSCRIBE = document.querySelector('meta[name="dictaphone-transcribe"]').content === "1";
const CAN_MARK = document.querySelector('meta[name="dictaphone-mark"]').content === "1";
const $ = (sel, root = document) => root.querySelector(sel);

// ---- helpers -------------------------------------------------------------------------------

function clock(seconds, places = 0) {
  // The one time format (dictaphone/timecode.py: the CLI writes the same text): m:ss, h:mm:ss
  // from an hour, `places` decimals (true: tenths), cut as a stopwatch does, so 59.96 s is
  // 0:59.9 (rounding made it "0:60.0").
  if (seconds == null || !isFinite(seconds)) return "–";
  places = places === true ? 1 : places || 0;
  const scale = 10 ** places;
  const units = Math.floor(Math.max(0, seconds) * scale + 1e-6);  // (6.573 * 1000 is 6572.99…)
  const whole = Math.floor(units / scale), fraction = units % scale;
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const sec = String(s).padStart(2, "0") + (places ? `.${String(fraction).padStart(places, "0")}` : "");
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${sec}`;
}

function bytes(n) {
  if (n == null) return "–";
  // (a no-break space: a narrow window wraps the line between fields, never inside one)
  if (n < 1000) return `${n}\u00a0B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}\u00a0kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)}\u00a0MB`;
  return `${(n / 1e9).toFixed(2)}\u00a0GB`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric",
                                       hour: "2-digit", minute: "2-digit" });
}

function clipUrl(name, what) {
  return `/api/clips/${encodeURIComponent(name)}/${what}`;
}

async function post(url, data) {
  // The token travels in a header: a form on another site cannot send one.
  const r = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Dictaphone-Token": TOKEN },
    body: JSON.stringify(data || {}),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

let toastTimer = null;
function toast(text, level = "info") {
  const el = $("#toast");
  el.textContent = text;
  el.className = `toast ${level}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, level === "error" ? 8000 : 3000);
}

// ---- clips ---------------------------------------------------------------------------------

const cards = new Map(); // name -> {el, clip, peaks, transcript}

// The library is long (years of memos): the page holds a window of it, newest first, that
// grows as the user scrolls (PAGE_SIZE clips at a time), and the server pushes each change
// (a clip that appeared, changed or went away) as it happens. A clip opened from a search
// that is not in the window yet waits in #found until the window reaches it.
const PAGE_SIZE = 40;
const lib = { total: 0, cursor: null, done: false, loading: null, started: false };

function newer(a, b) { // true when clip a comes before clip b (newest first, as `list`)
  const ca = a.created || "", cb = b.created || "";
  return ca !== cb ? ca > cb : a.name > b.name;
}

function keyOf(clip) { return `${clip.created || ""}\n${clip.name}`; }

function lastInWindow() {
  const root = $("#clips");
  const el = root.lastElementChild;
  return el ? cards.get(el.dataset.name) : null;
}

function inWindow(clip) {
  const last = lastInWindow();
  return lib.done || !last || last.clip.name === clip.name || newer(clip, last.clip);
}

function place(card) {
  // Put the card where it belongs in the window (moving only what is out of place: a
  // playing <audio> keeps playing), or in #found when the window does not reach it.
  const root = $("#clips");
  if (!inWindow(card.clip)) {
    if (card.el.parentElement === root) dropCard(card.clip.name);
    else if (card.el.parentElement !== $("#found")) $("#found").append(card.el);
    updateFound();
    return;
  }
  let before = null;
  for (const el of root.children) {
    if (el === card.el) continue;
    const other = cards.get(el.dataset.name);
    if (other && newer(card.clip, other.clip)) { before = el; break; }
  }
  if (before ? card.el.nextElementSibling !== before || card.el.parentElement !== root
             : root.lastElementChild !== card.el) {
    root.insertBefore(card.el, before);
  }
  updateFound();
}

function updateFound() {
  $("#found-box").hidden = !$("#found").children.length;
}

function dropCard(name) {
  const card = cards.get(name);
  if (!card) return;
  card.el.querySelector("audio").pause();
  card.el.remove();
  cards.delete(name);
  updateFound();
}

function showClip(clip) {
  let card = cards.get(clip.name);
  if (card) {
    updateCard(card, clip);
    place(card);
  } else if (inWindow(clip)) {
    card = makeCard(clip);
    cards.set(clip.name, card);
    place(card);
  }
  return card;
}

function showCount() {
  $("#count").textContent = lib.total ? `(${lib.total})` : "";
  $("#empty").hidden = lib.total > 0 || cards.size > 0;
  $("#more").hidden = lib.done;
}

async function fetchClips(limit, cursor) {
  const q = new URLSearchParams({ limit: String(limit) });
  if (cursor) q.set("before", cursor);
  const r = await fetch(`/api/clips?${q}`);
  if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
  const total = +r.headers.get("x-dictaphone-total");
  return { list: await r.json(), total: isFinite(total) ? total : null };
}

async function loadMore() {
  // The next PAGE_SIZE clips after the window's last one.
  if (lib.loading || lib.done) return lib.loading;
  lib.loading = (async () => {
    try {
      const { list, total } = await fetchClips(PAGE_SIZE, lib.cursor);
      if (total != null) lib.total = total;
      if (list.length < PAGE_SIZE) lib.done = true;
      for (const clip of list) {
        let card = cards.get(clip.name);
        if (!card) { card = makeCard(clip); cards.set(clip.name, card); }
        else updateCard(card, clip);
        $("#clips").append(card.el); // in order: the server sends them newest first
      }
      if (list.length) lib.cursor = keyOf(list[list.length - 1]);
    } catch (e) {
      toast(`Cannot load the clips: ${e.message}`, "error");
    } finally {
      lib.loading = null;
      showCount();
      updateFound();
    }
    // Still at the end (a tall window, a fast scroll): the next page too.
    if (!lib.done && $("#more").getBoundingClientRect().top < window.innerHeight + 600) loadMore();
  })();
  return lib.loading;
}

async function reloadWindow() {
  // (Re)connected: read the window again, as many clips as it holds (changes may have
  // been missed while the stream was down), then carry on from there.
  const n = Math.max(PAGE_SIZE, Math.min(500, $("#clips").children.length));
  try {
    const { list, total } = await fetchClips(n, null);
    if (total != null) lib.total = total;
    lib.done = list.length < n;
    lib.cursor = list.length ? keyOf(list[list.length - 1]) : null;
    const keep = new Set(list.map((c) => c.name));
    for (const el of [...$("#clips").children]) if (!keep.has(el.dataset.name)) dropCard(el.dataset.name);
    const root = $("#clips");
    list.forEach((clip, i) => {
      let card = cards.get(clip.name);
      if (!card) { card = makeCard(clip); cards.set(clip.name, card); }
      else updateCard(card, clip);
      if (root.children[i] !== card.el) root.insertBefore(card.el, root.children[i] || null);
    });
  } catch (e) {
    toast(`Cannot load the clips: ${e.message}`, "error");
  }
  showCount();
  updateFound();
  lib.started = true;
}

function onClipEvent(data) {
  if (data.total != null) lib.total = data.total;
  showClip(data.clip);
  showCount();
}

function onClipRemoved(data) {
  if (data.total != null) lib.total = data.total;
  dropCard(data.name);
  showCount();
}

async function ensureCard(name) {
  // The card of a clip (a search hit), loading it on its own when the window has not
  // reached it yet.
  let card = cards.get(name);
  if (card) return card;
  const r = await fetch(clipUrl(name, "").replace(/\/$/, ""));
  if (!r.ok) return null;
  const clip = await r.json();
  card = cards.get(name);
  if (card) return card;
  card = makeCard(clip);
  cards.set(name, card);
  place(card);
  return card;
}

function makeCard(clip) {
  const el = $("#clip-template").content.firstElementChild.cloneNode(true);
  const card = { el, clip: null, peaks: null, transcript: null, version: null };
  el.dataset.name = clip.name;
  const audio = $("audio", el);
  const canvas = $("canvas", el);
  audio.addEventListener("timeupdate", () => { drawWave(card); followTranscript(card); });
  audio.addEventListener("seeked", () => drawWave(card));
  audio.addEventListener("play", () => pauseOthers(audio));
  canvas.addEventListener("click", (ev) => {
    const duration = audio.duration || card.clip.duration;
    if (!duration) return;
    const rect = canvas.getBoundingClientRect();
    const at = duration * (ev.clientX - rect.left) / rect.width;
    if (card.trim) { trimClick(card, at); return; }
    if (!card.clip.playable) return;
    playFrom(card, at);
  });
  setupSteering(card);
  setupTrim(card);
  $(".rename", el).addEventListener("click", () => openRename(card.clip.name));
  $(".transcribe", el).addEventListener("click", async () => {
    const b = $(".transcribe", el);
    b.disabled = true;
    try {
      await post(clipUrl(card.clip.name, "transcribe"));
      b.textContent = "Queued…";
    } catch (e) {
      b.disabled = false;
      toast(e.message, "error");
    }
  });
  $(".delete", el).addEventListener("click", () => openDelete(card.clip.name));
  $(".transcript", el).addEventListener("toggle", () => {
    if ($(".transcript", el).open) loadTranscript(card);
  });
  updateCard(card, clip);
  return card;
}

function updateCard(card, clip) {
  const el = card.el;
  const changed = card.version !== clip.version || card.clip?.recording !== clip.recording;
  card.clip = clip;
  $(".name", el).textContent = clip.name;
  if (!clip.recording) card.live = null;  // finished: the library's own numbers from now on
  renderMeta(card);
  const preview = $(".preview", el);
  preview.textContent = clip.transcript ? `“${clip.transcript}”` : "";
  preview.hidden = !clip.transcript;
  const download = $(".download", el);
  download.href = `${clipUrl(clip.name, "audio")}?download=1`;
  download.setAttribute("download", clip.file);
  $(".unplayable", el).hidden = clip.playable || clip.recording;
  $(".busy", el).hidden = !clip.recording;
  el.classList.toggle("recording", clip.recording);
  $(".actions", el).hidden = clip.recording;  // stop it first (the server refuses anyway)
  renderMarkers(card);
  const details = $(".transcript", el);
  details.hidden = !clip.has_transcript;
  const transcribe = $(".transcribe", el);
  transcribe.hidden = !CAN_TRANSCRIBE || clip.has_transcript || !clip.playable || clip.recording;
  transcribe.disabled = !!clip.transcribing;
  transcribe.textContent = clip.transcribing === "transcribing" ? "Transcribing…"
    : clip.transcribing === "queued" ? "Queued…" : "Transcribe";
  const audio = $("audio", el);
  audio.hidden = !clip.playable || clip.recording;
  if (changed) {
    card.version = clip.version;
    card.transcript = null;
    if (clip.playable && !clip.recording) {
      if (audio.paused) audio.src = `${clipUrl(clip.name, "audio")}?v=${clip.version}`;
    } else {
      audio.removeAttribute("src");
    }
    if (details.open) loadTranscript(card);
    loadWave(card);
  } else {
    drawWave(card);  // the same audio, new markers or gaps (its metadata changed)
  }
}

// A card's line of details. While its clip is being recorded, the time and size are the
// recording's own (its row's, four times a second), not the library's last look at the file.
function renderMeta(card) {
  const clip = card.clip, live = clip.recording ? card.live : null;
  const duration = live && live.duration != null ? live.duration : clip.duration;
  const size = live && live.bytes != null ? live.bytes : clip.size;
  const parts = [when(clip.created), clock(duration, true), clip.format || "?", bytes(size)];
  if (clip.samplerate) parts.push(`${(clip.samplerate / 1000).toFixed(clip.samplerate % 1000 ? 1 : 0)}\u00a0kHz`);
  $(".meta", card.el).textContent = parts.join(" · ");
}

function pauseOthers(current) {
  for (const card of cards.values()) {
    const a = $("audio", card.el);
    if (a !== current && !a.paused) a.pause();
  }
}

function playFrom(card, seconds) {
  const audio = $("audio", card.el);
  if (!card.clip.playable) return;
  const go = () => {
    audio.currentTime = Math.max(0, seconds);
    audio.play().catch(() => {});
    drawWave(card);
  };
  if (audio.readyState >= 1) go();
  else audio.addEventListener("loadedmetadata", go, { once: true });
}

function renderMarkers(card) {
  const ul = $(".markers", card.el);
  ul.replaceChildren();
  for (const m of card.clip.markers || []) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "marker";
    b.dataset.time = m.time;
    b.textContent = `${m.number ?? ""} ${clock(m.time, true)} ${m.label || ""}`.trim();
    b.title = `Play from this marker: ${m.label || ""}`;
    b.addEventListener("click", () => playFrom(card, m.time));
    li.append(b);
    ul.append(li);
  }
  for (const g of card.clip.gaps || []) {
    // Where the device was lost and came back: the audio jumps here (recorded time).
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "marker gap";
    b.dataset.time = g.time;
    const reason = g.reason ? ` (${g.reason})` : "";
    b.textContent = `gap ${clock(g.time, true)}: ${(+g.duration || 0).toFixed(1)} s missing${reason}`;
    b.title = "The input was lost here; play from this point";
    b.addEventListener("click", () => playFrom(card, g.time));
    li.append(b);
    ul.append(li);
  }
  ul.hidden = !ul.children.length;
}

// ---- waveform ------------------------------------------------------------------------------

async function loadWave(card) {
  const note = $(".wave-note", card.el);
  const canvas = $("canvas", card.el);
  card.peaks = null;
  if (card.clip.recording || !card.clip.playable) {  // raw: no header to read (a note says so)
    canvas.hidden = true;
    note.hidden = true;
    return;
  }
  const version = card.clip.version;
  try {
    const r = await fetch(`${clipUrl(card.clip.name, "waveform")}?columns=600&v=${version}`);
    const data = await r.json();
    if (card.clip.version !== version) return; // a newer version is loading
    if (!r.ok) throw new Error(data.error || r.statusText);
    card.peaks = data;
    canvas.hidden = false;
    note.hidden = true;
    drawWave(card);
  } catch (e) {
    canvas.hidden = true;
    note.textContent = "No waveform: the file cannot be read.";
    note.hidden = false;
  }
}

function drawWave(card) {
  const canvas = $("canvas", card.el);
  const data = card.peaks;
  if (!data || canvas.hidden) return;
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(50, Math.round(canvas.clientWidth * dpr));
  const height = Math.round(64 * dpr);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const ctx = canvas.getContext("2d");
  const css = getComputedStyle(document.documentElement);
  const played = css.getPropertyValue("--accent").trim() || "#c33";
  const rest = css.getPropertyValue("--wave").trim() || "#999";
  ctx.clearRect(0, 0, width, height);
  const audio = $("audio", card.el);
  const duration = data.duration || card.clip.duration || 0;
  const at = duration ? (audio.currentTime || 0) / duration : 0;
  const peaks = data.peaks || [];
  const n = peaks.length;
  const mid = height / 2;
  const bar = Math.max(1, Math.round(dpr * 2));
  const step = bar + Math.max(1, Math.round(dpr));
  for (let x = 0; x < width; x += step) {
    // The loudest column under this bar, so short clicks are never lost between bars.
    const a = Math.floor((x / width) * n), b = Math.max(a + 1, Math.floor(((x + step) / width) * n));
    let p = 0;
    for (let i = a; i < b && i < n; i++) p = Math.max(p, peaks[i]);
    const h = Math.max(dpr, p * (height - 2 * dpr));
    ctx.fillStyle = x / width < at ? played : rest;
    ctx.fillRect(x, mid - h / 2, bar, h);
  }
  // Markers: a line and the number on a flag; gaps (device lost) in the warning colour.
  if (duration) {
    ctx.font = `${Math.round(10 * dpr)}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    const line = Math.max(1, Math.round(dpr));
    for (const m of card.clip.markers || []) {
      // (a marker at the very end is drawn at the last column, its flag to the left of
      // its line: it was cut off the canvas)
      const x = Math.min(width - line, Math.max(0, Math.round((m.time / duration) * width)));
      ctx.fillStyle = css.getPropertyValue("--marker").trim() || "#06c";
      ctx.fillRect(x, 0, line, height);
      const label = String(m.number ?? "");
      const w = Math.ceil(ctx.measureText(label).width + 4 * dpr);
      const fx = x + w <= width ? x : x + line - w;
      ctx.fillRect(fx, 0, w, Math.round(12 * dpr));
      ctx.fillStyle = "#fff";
      ctx.fillText(label, fx + 2 * dpr, 1 * dpr);
    }
    ctx.fillStyle = css.getPropertyValue("--warn").trim() || "#d80";
    for (const g of card.clip.gaps || []) {
      const x = Math.min(width - 2 * dpr, Math.max(dpr, Math.round((g.time / duration) * width)));
      ctx.fillRect(x - dpr, 0, 2 * dpr, height);
    }
    if (at > 0) {
      ctx.fillStyle = played;
      ctx.fillRect(Math.round(at * width), 0, Math.max(1, dpr), height);
    }
    if (card.trim && card.trim.from != null) {
      const a = Math.round((card.trim.from / duration) * width);
      const b = card.trim.to != null ? Math.round((card.trim.to / duration) * width) : a + Math.max(1, dpr);
      ctx.fillStyle = "rgba(40, 120, 220, 0.25)";
      ctx.fillRect(a, 0, Math.max(Math.max(1, dpr), b - a), height);
    }
  }
}

new ResizeObserver(() => { for (const c of cards.values()) drawWave(c); }).observe(document.body);

// ---- transcripts ---------------------------------------------------------------------------

async function loadTranscript(card) {
  const box = $(".segments", card.el);
  if (card.transcript) return card.transcript;
  const version = card.clip.version;
  box.textContent = "Loading…";
  const r = await fetch(clipUrl(card.clip.name, "transcript"));
  if (!r.ok) {
    box.textContent = "No transcript.";
    return null;
  }
  const t = await r.json();
  if (card.clip.version !== version) return null;
  card.transcript = t;
  box.replaceChildren();
  let speaker = null;
  for (const seg of t.segments || []) {
    if (seg.speaker != null && seg.speaker !== speaker) {
      // A speaker's label where the speaker changes; a click names the speaker.
      speaker = seg.speaker;
      const who = document.createElement("button");
      who.type = "button";
      who.className = "speaker";
      who.textContent = seg.speaker;
      who.title = "Name this speaker";
      const old = seg.speaker;
      who.addEventListener("click", () => openSpeaker(card, old));
      box.append(who);
    }
    const p = document.createElement("p");
    p.className = "segment";
    const ts = document.createElement("button");
    ts.type = "button";
    ts.className = "ts";
    ts.textContent = clock(seg.start);
    ts.dataset.start = seg.start;
    ts.title = "Play this line";
    ts.addEventListener("click", () => playFrom(card, seg.start));
    p.append(ts, " ");
    const words = seg.words && seg.words.length ? seg.words : [{ word: seg.text, start: seg.start, end: seg.end }];
    for (const w of words) {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = w.word.trim();
      span.dataset.start = w.start;
      span.dataset.end = w.end;
      span.addEventListener("click", () => playFrom(card, w.start));
      p.append(span, " ");
    }
    box.append(p);
  }
  if (!box.children.length) box.textContent = "(no speech)";
  return t;
}

function followTranscript(card) {
  if (!card.transcript) return;
  const t = $("audio", card.el).currentTime;
  for (const span of card.el.querySelectorAll(".word")) {
    const on = t >= +span.dataset.start && t < +span.dataset.end;
    span.classList.toggle("current", on);
  }
}

// ---- search --------------------------------------------------------------------------------

let searchTimer = null, searchSeq = 0;

function setupSearch() {
  const input = $("#search");
  const hits = $("#hits");
  input.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(input.value), 200);
  });
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      const first = $("button", hits);
      if (first) first.click();
    } else if (ev.key === "Escape") {
      hits.hidden = true;
    }
  });
  document.addEventListener("click", (ev) => {
    if (!ev.target.closest(".search")) hits.hidden = true;
  });
  input.addEventListener("focus", () => { if (hits.children.length) hits.hidden = false; });
}

const HITS_PAGE = 20;

function hitItem(h) {
  const li = document.createElement("li");
  const b = document.createElement("button");
  b.type = "button";
  b.className = "hit";
  const name = document.createElement("strong");
  name.textContent = h.name;
  const at = document.createElement("span");
  at.className = "at";
  at.textContent = clock(h.start, true);
  const text = document.createElement("span");
  text.className = "text";
  // The snippet is cut around the match (the server centres it), every match marked.
  const snippet = h.snippet ?? h.text;
  const spans = h.snippet_spans ?? (h.span ? [h.span] : []);
  if (h.speaker) {
    const who = document.createElement("span");
    who.className = "speaker";
    who.textContent = `${h.speaker}: `;
    text.append(who);
  }
  let from = 0;
  for (const [a, z] of spans) {
    if (z <= a || a < from) continue;
    const mark = document.createElement("mark");
    mark.textContent = snippet.slice(a, z);
    text.append(snippet.slice(from, a), mark);
    from = z;
  }
  text.append(snippet.slice(from));
  b.append(name, at, text);
  b.addEventListener("click", () => { $("#hits").hidden = true; jumpTo(h.name, h.start); });
  li.append(b);
  return li;
}

async function runSearch(q, offset = 0) {
  const hits = $("#hits");
  const seq = offset ? searchSeq : ++searchSeq;
  q = q.trim();
  if (!q) { hits.hidden = true; hits.replaceChildren(); return; }
  const params = new URLSearchParams({ q, limit: String(HITS_PAGE), offset: String(offset) });
  const r = await fetch(`/api/search?${params}`);
  const data = await r.json().catch(() => ({ hits: [] }));
  if (seq !== searchSeq) return;
  if (!offset) hits.replaceChildren();
  hits.querySelector("li.more")?.remove();
  if (!r.ok || !data.available || !data.hits.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = !r.ok ? (data.error || "search failed")
      : !data.available ? "Search needs transcripts (dictaphone transcribe)" : "No match in the transcripts";
    hits.append(li);
  }
  for (const h of data.hits || []) hits.append(hitItem(h));
  const shown = offset + (data.hits || []).length;
  if (r.ok && data.total > shown) {
    // No silent cap: the rest are a click away, a page at a time.
    const li = document.createElement("li");
    li.className = "more";
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn small more-hits";
    b.textContent = `More results (${data.total - shown} more)`;
    b.addEventListener("click", (ev) => { ev.stopPropagation(); runSearch(q, shown); });
    li.append(b);
    hits.append(li);
  }
  hits.hidden = false;
}

async function jumpTo(name, seconds) {
  const card = await ensureCard(name);
  if (!card) return toast(`${name} is no longer in the library`, "error");
  card.el.scrollIntoView({ block: "center" });
  card.el.classList.add("flash");
  setTimeout(() => card.el.classList.remove("flash"), 1500);
  const details = $(".transcript", card.el);
  if (!details.hidden) {
    details.open = true;
    await loadTranscript(card);
    let best = null;
    for (const span of card.el.querySelectorAll(".word")) {
      if (+span.dataset.start <= seconds + 0.01) best = span;
    }
    if (best) {
      best.classList.add("current");
      // The word itself on the screen (on a phone the card is taller than the screen).
      best.scrollIntoView({ block: "center" });
    }
  }
  playFrom(card, seconds);
}

// ---- rename and delete ---------------------------------------------------------------------

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function openRename(name) {
  const dialog = $("#rename-dialog");
  $(".which", dialog).textContent = `“${name}”`;
  const input = $("#rename-input");
  input.value = name;
  showError($("#rename-error"), "");
  dialog.dataset.name = name;
  dialog.showModal();
  input.select();
}

function openSpeaker(card, speaker) {
  const dialog = $("#speaker-dialog");
  $(".which", dialog).textContent = `“${speaker}” in “${card.clip.name}”`;
  const input = $("#speaker-input");
  input.value = speaker;
  $("#speaker-remember").checked = false;
  showError($("#speaker-error"), "");
  dialog.dataset.name = card.clip.name;
  dialog.dataset.speaker = speaker;
  dialog.showModal();
  input.select();
}

function openDelete(name) {
  const dialog = $("#delete-dialog");
  $(".which", dialog).textContent = `“${name}”`;
  showError($("#delete-error"), "");
  dialog.dataset.name = name;
  dialog.showModal();
}

function setupDialogs() {
  for (const b of document.querySelectorAll("dialog [data-close]")) {
    b.addEventListener("click", () => b.closest("dialog").close());
  }
  $("#rename-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const dialog = $("#rename-dialog");
    const old = dialog.dataset.name, name = $("#rename-input").value.trim();
    if (name === old) return dialog.close();
    try {
      const renamed = await post(clipUrl(old, "rename"), { name });
      dialog.close();
      toast(`Renamed to “${name}”`);
      dropCard(old);  // (the event stream says so too, a moment later)
      showClip(renamed);
    } catch (e) {
      showError($("#rename-error"), e.message);
    }
  });
  $("#speaker-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const dialog = $("#speaker-dialog");
    const name = dialog.dataset.name, old = dialog.dataset.speaker;
    const now = $("#speaker-input").value.trim(), remember = $("#speaker-remember").checked;
    if (now === old && !remember) return dialog.close();
    try {
      await post(clipUrl(name, "speakers"), { old, new: now, remember });
      dialog.close();
      toast(remember ? `${old} is “${now}”, and the voice is known now` : `${old} is “${now}”`);
      const card = cards.get(name);
      if (card) {
        card.transcript = null;
        await loadTranscript(card);
      }
    } catch (e) {
      showError($("#speaker-error"), e.message);
    }
  });
  $("#delete-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const dialog = $("#delete-dialog");
    const name = dialog.dataset.name;
    try {
      await post(clipUrl(name, "delete"));
      dialog.close();
      toast(`Deleted “${name}”`);
      dropCard(name);
    } catch (e) {
      showError($("#delete-error"), e.message);
    }
  });
}


// ---- recording -----------------------------------------------------------------------------

const rows = new Map(); // recording id -> <li>

function meterWidth(dbfs) {
  if (dbfs == null || !isFinite(dbfs)) return 0;
  return Math.max(0, Math.min(100, ((dbfs + 60) / 60) * 100));
}

function renderRecordings(list) {
  const ul = $("#recordings");
  const seen = new Set();
  for (const r of list) {
    seen.add(r.id);
    let li = rows.get(r.id);
    if (!li) {
      li = makeRow(r.id);
      rows.set(r.id, li);
      ul.append(li);
    }
    const lost = r.device_lost;  // the input went away: the recorder waits for it (as its meter says)
    li.dataset.state = lost ? "lost" : r.state;
    $(".rname", li).textContent = r.name || r.file || `recording ${r.id}`;
    $(".rname", li).title = r.in_library ? "a clip in the library" : r.file;
    $(".rstate", li).textContent = lost
      ? `device lost (${lost.reason}), waiting ${Math.max(0, Math.ceil(lost.left))} s`
      : r.state === "paused" ? "paused" : r.duration ? "recording" : "starting…";
    $(".rstate", li).title = lost ? "recording goes on in the same file when the input is back" : "";
    $(".rsource", li).textContent = r.from_page ? "from this page" : `pid ${r.pid}`;
    $(".rtime", li).textContent = clock(r.duration, true);
    const level = $(".level", li);
    const w = r.state === "paused" || lost ? 0 : meterWidth(r.peak_dbfs);
    level.style.width = `${w}%`;
    level.className = `level ${r.peak_dbfs > -3 ? "hot" : r.peak_dbfs > -12 ? "warm" : ""}`;
    $(".meter", li).setAttribute("aria-valuenow", r.peak_dbfs == null ? -100 : r.peak_dbfs);
    $(".rdb", li).textContent = r.peak_dbfs == null || r.peak_dbfs < -99 ? "–∞ dB" : `${r.peak_dbfs.toFixed(0)} dB`;
    $(".pause", li).hidden = r.state !== "recording";
    $(".resume", li).hidden = r.state !== "paused";
    showLiveText($(".rtext", li), r.transcript, 3);
    // ... and in its card in the library, which shows the saved transcript once it ends
    const card = r.in_library && cards.get(r.name);
    if (card && card.clip.recording) {
      showLiveText($(".preview", card.el), r.transcript, 1);
      card.live = { duration: r.duration, bytes: r.bytes };
      renderMeta(card);
    }
  }
  for (const [id, li] of rows) {
    if (!seen.has(id)) { li.remove(); rows.delete(id); }
  }
}

// The running transcript of a recording with --transcribe: its last final utterances,
// then the one being spoken, committed words plain and tentative ones dimmed.
function showLiveText(el, t, last) {
  const items = t ? t.utterances.slice(-last).map((u) => [u.text, ""]) : [];
  if (t && t.partial) {
    const rest = t.partial.text.slice(t.partial.committed.length).trim();
    if (last === 1) items.length = 0;  // a card has room for the words being said
    items.push([t.partial.committed, rest]);
  }
  el.hidden = !t || !items.length;
  el.replaceChildren(...items.map(([settled, tentative]) => {
    const p = document.createElement("span");
    p.className = "live-line";
    p.append(settled);
    if (tentative) {
      const s = document.createElement("span");
      s.className = "tentative";
      s.textContent = (settled ? " " : "") + tentative;
      p.append(s);
    }
    return p;
  }));
}

function makeRow(id) {
  const li = document.createElement("li");
  li.className = "recording-row";
  li.dataset.id = id;
  li.innerHTML = `
    <div class="rinfo"><span class="rec-dot"></span><strong class="rname"></strong>
      <span class="rstate"></span><span class="rsource"></span></div>
    <div class="rmeter"><span class="rtime"></span>
      <div class="meter" role="meter" aria-label="Input level" aria-valuemin="-60" aria-valuemax="0">
        <div class="level"></div></div><span class="rdb"></span></div>
    <div class="rbuttons">
      <button type="button" class="btn mark" title="Mark this moment (as the m key does)">Mark</button>
      <button type="button" class="btn pause">Pause</button>
      <button type="button" class="btn resume" hidden>Resume</button>
      <button type="button" class="btn stop">Stop</button>
    </div>
    <p class="rtext" aria-live="polite" hidden></p>`;
  $(".mark", li).hidden = !CAN_MARK;
  for (const command of ["mark", "pause", "resume", "stop"]) {
    const b = $(`.${command}`, li);
    b.addEventListener("click", async () => {
      b.disabled = true;
      if (command === "stop") b.textContent = "Saving…";
      try {
        const reply = await post(`/api/recordings/${encodeURIComponent(id)}/${command}`);
        if (command === "stop") toast(`Saved ${reply.file}`);
        if (command === "mark" && reply.marker) toast(`${reply.marker.label} at ${clock(reply.marker.time, true)}`);
      } catch (e) {
        toast(e.message, "error");
      } finally {
        b.disabled = false;
        if (command === "stop") b.textContent = "Stop";
      }
    });
  }
  return li;
}

function setupRecorder() {
  $("#rec-transcribe-label").hidden = !CAN_TRANSCRIBE;
  $("#record-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = $("#record");
    const error = $("#rec-error");
    button.disabled = true;
    showError(error, "");
    try {
      await post("/api/record", {
        name: $("#rec-name").value.trim(),
        format: $("#rec-format").value,
        transcribe: CAN_TRANSCRIBE && $("#rec-transcribe").checked,
      });
      $("#rec-name").value = "";
    } catch (e) {
      showError(error, e.message);
    } finally {
      button.disabled = false;
    }
  });
}

// ---- live updates --------------------------------------------------------------------------

// What the label at the top right says, in words: its title (a tooltip), read by screen
// readers, and shown as a note when it is clicked or tapped (a phone has no hover).
const LIVE_HELP = {
  on: "Live: this page is connected to dictaphone serve. New clips, renames, deletions, " +
      "transcripts and recordings (also those made in a terminal or on another page) " +
      "appear within a second, without reloading.",
  reconnecting: "Reconnecting: the connection to dictaphone serve was lost; the page tries " +
                "again by itself and catches up when it is back.",
  stopped: "Stopped: dictaphone serve is not running any more. Start it again and open " +
           "the address it prints.",
  connecting: "Connecting to dictaphone serve…",
};

function connect() {
  const live = $("#live");
  live.title = LIVE_HELP.connecting;
  live.addEventListener("click", () => toast(live.title));
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "live on";
    live.title = LIVE_HELP.on;
  });
  source.addEventListener("hello", (ev) => { lib.total = JSON.parse(ev.data).total; reloadWindow(); });
  source.addEventListener("clip", (ev) => onClipEvent(JSON.parse(ev.data)));
  source.addEventListener("clip-removed", (ev) => onClipRemoved(JSON.parse(ev.data)));
  source.addEventListener("recordings", (ev) => renderRecordings(JSON.parse(ev.data)));
  source.addEventListener("notice", (ev) => { const n = JSON.parse(ev.data); toast(n.text, n.level); });
  source.addEventListener("error", () => {
    // EventSource retries by itself; CLOSED means the server refused (a new token).
    const closed = source.readyState === EventSource.CLOSED;
    live.textContent = closed ? "stopped" : "reconnecting";
    live.className = "live off";
    live.title = closed ? LIVE_HELP.stopped : LIVE_HELP.reconnecting;
  });
}

function setupScrolling() {
  // More clips as the end of the window comes into view.
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && lib.started) loadMore();
  }, { rootMargin: "600px" }).observe($("#more"));
  $("#more-button").addEventListener("click", () => loadMore());
}

setupSearch();
setupDialogs();
setupRecorder();
setupScrolling();
connect();

// ---- playback speed and skipping silences ----------------------------------------------------

function setupSteering(card) {
  const el = card.el;
  const audio = $("audio", el);
  const speed = $(".speed", el);
  const skip = $(".skip-silence", el);
  const apply = () => {
    audio.playbackRate = Number(speed.value) || 1;
    audio.preservesPitch = true;  // faster or slower, the voice stays at its pitch
  };
  speed.addEventListener("change", apply);
  audio.addEventListener("loadedmetadata", apply);
  // Silences as the waveform found them (0.5 s or more below -50 dBFS): 0.25 s of each plays.
  const KEEP = 0.25;
  const hop = () => {
    if (!skip.checked || audio.paused) return;
    const t = audio.currentTime;
    for (const [a, b] of (card.peaks && card.peaks.silences) || []) {
      if (t >= a + KEEP && t < b - 0.05) { audio.currentTime = b - 0.05; break; }
    }
  };
  let timer = null;
  audio.addEventListener("play", () => { clearInterval(timer); timer = setInterval(hop, 50); });
  audio.addEventListener("pause", () => clearInterval(timer));
  audio.addEventListener("ended", () => clearInterval(timer));
}

// ---- trim (choose the start and the end on the waveform) and export ---------------------------

function setupTrim(card) {
  const el = card.el;
  const bar = $(".trim-bar", el);
  const range = $(".trim-range", el);
  const reset = () => {
    card.trim = null;
    bar.hidden = true;
    drawWave(card);
  };
  $(".trim", el).addEventListener("click", () => {
    card.trim = { from: null, to: null };
    bar.hidden = false;
    range.textContent = "Click the waveform where the part starts, then where it ends.";
    $(".trim-new", el).disabled = $(".trim-replace", el).disabled = true;
    drawWave(card);
  });
  $(".trim-cancel", el).addEventListener("click", reset);
  const send = async (inPlace) => {
    const { from, to } = card.trim || {};
    if (from == null || to == null) return;
    const body = { from, to, in_place: inPlace };
    if (inPlace && !confirm(`Replace “${card.clip.name}” with ${clock(from, true)}–${clock(to, true)}?`)) return;
    try {
      const r = await post(clipUrl(card.clip.name, "trim"), body);
      toast(inPlace ? `Trimmed “${card.clip.name}”` : `Saved “${r.clip.name}”` +
            (r.notes && r.notes.length ? ` (${r.notes.join("; ")})` : ""));
      reset();
      if (r.clip) showClip(r.clip);  // (the event stream says so too, a moment later)
    } catch (e) {
      toast(e.message, "error");
    }
  };
  $(".trim-new", el).addEventListener("click", () => send(false));
  $(".trim-replace", el).addEventListener("click", () => send(true));
  const exp = $(".export", el);
  exp.addEventListener("change", () => {
    if (!exp.value) return;
    const a = document.createElement("a");
    a.href = `${clipUrl(card.clip.name, "export")}?format=${encodeURIComponent(exp.value)}`;
    a.download = "";
    document.body.appendChild(a);
    a.click();
    a.remove();
    exp.value = "";
  });
}

function trimClick(card, at) {
  const t = card.trim;
  if (t.from == null || t.to != null) {
    t.from = at;
    t.to = null;
  } else if (at > t.from) {
    t.to = at;
  } else {
    t.to = t.from;
    t.from = at;
  }
  const ready = t.from != null && t.to != null && t.to > t.from;
  $(".trim-range", card.el).textContent = ready
    ? `Keep ${clock(t.from, true)} to ${clock(t.to, true)} (${clock(t.to - t.from, true)})`
    : `From ${clock(t.from, true)}: now click where it ends.`;
  $(".trim-new", card.el).disabled = $(".trim-replace", card.el).disabled = !ready;
  drawWave(card);
}
