"""Live transcription: the words of a recording while it is being recorded.

::

    from dictaphone import MediaRecorder, Microphone
    from dictaphone.speech.live import LiveTranscriber

    rec = MediaRecorder(Microphone(), "audio/flac", output="memo.flac")
    live = LiveTranscriber(rec, model="base.en")  # loads the model and Silero now
    rec.ontranscript = lambda e: print(f"{e.start:.1f}-{e.end:.1f}: {e.text}")
    rec.start()
    ...
    rec.stop()                    # returns as soon as the file is complete
    transcript = live.close()     # finishes the last utterance; the whole Transcript

How it works, and why it cannot cost the recording anything:

- The recorder's frames tap hands every written block (paused and skipped audio left
  out) to :meth:`LiveTranscriber._on_frames` on the writer thread, which only copies it
  (one channel, float32) into a bounded queue and returns. When that queue is full (the
  machine is far too slow), audio is left out of the *transcription* and counted in
  ``missed_seconds``; the recording itself never waits.
- A "vad" thread resamples to 16 kHz and runs Silero VAD (silero.py), which cuts the
  stream into utterances: an utterance ends after ``min_silence`` seconds without speech
  (long ones are cut at a pause). Only what Silero marks as speech is recognised, so
  silence, hum and noise give no words.
- A "transcribe" thread recognises each utterance as soon as it ends, while the recording
  goes on, and fires a ``transcript`` event (``text``, ``start``, ``end`` in seconds of
  recorded media) on the recorder. Utterances that wait for it are bounded
  (``max_backlog`` seconds of speech): the vad thread waits when the backlog is full, and
  the frames queue behind it absorbs the rest. CTranslate2 releases the GIL while it
  computes, and its threads are limited (``cpu_threads``, default 1), so on two cores one
  stays for capture and writing (bench/RESULTS.md measures it: 0 dropped frames with both
  cores busy; 2 threads gave the same median latency there). Threads rather than a worker
  process: the engine's heavy work runs outside the GIL anyway, and a process would load a
  second Python with the engine (about 250 MiB more) and ship audio and text across.

At the end, :meth:`close` ends the utterance in progress at the end of the recording,
recognises what is still queued (their events come after the recorder's ``stop``), and
returns the whole :class:`~dictaphone.library.transcript.Transcript` in the recording's time.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time

import numpy as np

from ..events import TranscriptEvent
from .silero import SAMPLE_RATE, Segmenter, SileroVAD, Utterance, to_mono_float

log = logging.getLogger("dictaphone")

#: CTranslate2 threads for live recognition: one core recognises, the other records
DEFAULT_CPU_THREADS = 1


class LiveTranscriber:
    """Transcribes a :class:`~dictaphone.recording.recorder.MediaRecorder`'s audio while it records.

    ``transcriber``: a :class:`dictaphone.speech.transcribe.Transcriber` (or anything with
    ``transcribe(frames, samplerate)`` returning a Transcript); default: one made from
    ``model`` and ``language`` with ``cpu_threads`` CTranslate2 threads. The model and
    Silero are loaded when this object is made (errors come now, before recording), and
    it listens to the recorder at once (``attach=False``: call :meth:`attach` later).

    ``min_silence`` (seconds of non-speech that end an utterance), ``max_utterance``
    (seconds after which speech is cut at a pause) and ``pad`` go to the segmenter.
    ``max_backlog``: seconds of speech waiting for recognition before the detector waits;
    ``max_pending``: seconds of recorded audio waiting for the detector before it is left
    out of the transcription.
    """

    def __init__(self, recorder, transcriber=None, *, model=None, language: str | None = None,
                 cpu_threads: int = DEFAULT_CPU_THREADS, min_silence: float = 0.6,
                 max_utterance: float = 20.0, pad: float = 0.3, max_backlog: float = 120.0,
                 max_pending: float = 60.0, attach: bool = True):
        if transcriber is None:
            from .transcribe import Transcriber

            transcriber = Transcriber(model, language, cpu_threads=cpu_threads)
        load = getattr(transcriber, "load", None)
        if load is not None:
            load()
        self.recorder = recorder
        self.transcriber = transcriber
        self._vad = SileroVAD()
        self._seg_opts = dict(min_silence=min_silence, max_duration=max_utterance, pad=pad)
        self.max_backlog = max_backlog
        self.max_pending = max_pending
        self.segments: list = []  #: recognised segments, in recorded time (transcript.Segment)
        self.error: BaseException | None = None  #: the first recognition failure, if any
        self.missed_seconds = 0.0  #: audio left out of the transcription (queue full)
        self.latencies: list[float] = []  #: seconds from an utterance's end being detected to its event
        self.language = getattr(transcriber, "language", None) or ""
        self._frames: collections.deque = collections.deque()
        self._frames_cond = threading.Condition()
        self._pending = 0  # frames waiting in _frames
        self._utterances: collections.deque = collections.deque()
        self._utt_cond = threading.Condition()
        self._backlog = 0.0  # seconds of speech waiting in _utterances
        self._working: Utterance | None = None  # the one being recognised
        self._ended = False  # no more frames will come
        self._abandon = False
        self._attached = False
        self._threads: list[threading.Thread] = []
        self._rate = recorder.samplerate
        if attach:
            self.attach()

    # ------------------------------------------------------------------ public

    def attach(self) -> None:
        """Start listening to the recorder (before ``start()``, or while it records)."""
        if self._attached:
            return
        self._attached = True
        self._threads = [threading.Thread(target=self._run_vad, name="dictaphone-vad", daemon=True),
                         threading.Thread(target=self._run_recognition, name="dictaphone-transcribe",
                                          daemon=True)]
        for t in self._threads:
            t.start()
        self.recorder.add_frames_listener(self._on_frames)

    @property
    def pending_seconds(self) -> float:
        """Seconds of speech (and recorded audio not yet judged) still to be transcribed."""
        with self._utt_cond:
            busy = self._backlog + (self._working.duration if self._working else 0.0)
        return busy + self._pending / self._rate

    @property
    def transcript(self):
        """Everything recognised so far, as one Transcript in the recording's time."""
        from ..library.transcript import Transcript

        model = getattr(self.transcriber, "model_name", "") or ""
        return Transcript(segments=sorted(self.segments, key=lambda s: s.start), model=str(model),
                          language=self.language, duration=self.recorder.duration)

    def finish(self) -> None:
        """No more audio will come (the recording ended): the utterance in progress ends here."""
        self.recorder.remove_frames_listener(self._on_frames)
        with self._frames_cond:
            self._ended = True
            self._frames_cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Until everything queued is recognised (after :meth:`finish`); False on time-out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                return False
        return True

    def close(self, timeout: float | None = None):
        """Finish (see :meth:`finish`), wait for the last utterances (at most ``timeout``
        seconds; then the rest is given up) and return the whole transcript."""
        self.finish()
        if not self.wait(timeout):
            self.abandon()
        return self.transcript

    def abandon(self) -> None:
        """Give up what is still queued (the utterance being recognised still finishes)."""
        self._abandon = True
        with self._frames_cond:
            self._frames.clear()
            self._pending = 0
            self._frames_cond.notify_all()
        with self._utt_cond:
            self._utterances.clear()
            # The end marker may have been among them: put it back, so the recognition
            # thread ends (a second one, from the detector's thread, does no harm).
            self._utterances.append(None)
            self._backlog = 0.0
            self._utt_cond.notify_all()

    # ------------------------------------------------------------------ the writer's side

    def _on_frames(self, frames: np.ndarray, media_time: float) -> None:
        # On the writer thread: copy and go. Never wait here.
        n = len(frames)
        if self._pending + n > self.max_pending * self._rate:
            self.missed_seconds += n / self._rate
            return
        block = to_mono_float(frames)  # a new array: the recorder reuses `frames`
        with self._frames_cond:
            self._frames.append((block, media_time))
            self._pending += n
            self._frames_cond.notify()

    # ------------------------------------------------------------------ threads

    def _run_vad(self) -> None:
        seg = None
        expected = None  # the media time the next block should start at
        try:
            while True:
                with self._frames_cond:
                    while not self._frames and not self._ended:
                        self._frames_cond.wait()
                    if not self._frames:
                        break
                    block, media_time = self._frames.popleft()
                    self._pending -= len(block)
                if self._abandon:
                    break
                if seg is None or (expected is not None and abs(media_time - expected) > 0.5 / self._rate + 1e-6):
                    # the first block, or audio left out before this one: a fresh stream
                    if seg is not None:
                        self._queue(seg.flush())
                    self._vad.reset()
                    seg = Segmenter(self._rate, offset=media_time, vad=self._vad, **self._seg_opts)
                expected = media_time + len(block) / self._rate
                self._queue(seg.feed(block))
            if seg is not None and not self._abandon:
                self._queue(seg.flush())
        except Exception as e:  # a bug: the recording must not notice; the caller reports it
            log.debug("live transcription: the speech detector failed", exc_info=True)
            self.error = self.error or e
        finally:
            with self._utt_cond:
                self._utterances.append(None)  # the end
                self._utt_cond.notify_all()

    def _queue(self, utterances: list[Utterance]) -> None:
        now = time.monotonic()
        for u in utterances:
            with self._utt_cond:
                # A full backlog holds the detector here (its own queue absorbs the wait).
                while self._backlog >= self.max_backlog and not self._abandon:
                    self._utt_cond.wait(0.5)
                if self._abandon:
                    return
                u.detected_at = now  # type: ignore[attr-defined]
                self._utterances.append(u)
                self._backlog += u.duration
                self._utt_cond.notify_all()

    def _run_recognition(self) -> None:
        while True:
            with self._utt_cond:
                while not self._utterances:
                    self._utt_cond.wait()
                u = self._utterances.popleft()
                if u is None:
                    return
                self._backlog -= u.duration
                self._working = u
                self._utt_cond.notify_all()
            try:
                if self.error is None:
                    self._recognise(u)
            except Exception as e:
                # The model failed (it could not load, or broke): the recording goes on,
                # later utterances are skipped, and the caller reports self.error.
                self.error = e
                log.debug("live transcription failed", exc_info=True)
            finally:
                with self._utt_cond:
                    self._working = None

    def _recognise(self, u: Utterance) -> None:
        t = self.transcriber
        fast = getattr(t, "transcribe_16k", None)
        result = fast(u.audio) if fast is not None else t.transcribe(u.audio, SAMPLE_RATE)
        if getattr(result, "language", None):
            self.language = result.language
        segments = [_shifted(s, u.start, u.end) for s in result.segments if s.text.strip()]
        if not segments:
            return
        self.segments.extend(segments)
        text = " ".join(s.text.strip() for s in segments)
        event = TranscriptEvent("transcript", text=text, start=segments[0].start,
                                end=segments[-1].end, segments=segments)
        self.latencies.append(time.monotonic() - getattr(u, "detected_at", time.monotonic()))
        self.recorder.post_event(event)


def _shifted(segment, offset: float, limit: float):
    """A segment of an utterance moved into the recording's time (kept inside the
    utterance). Its start and end become its first and last word's when it has word times:
    Whisper's segment times are coarser (a segment tends to start at the clip's start)."""
    def t(x: float) -> float:
        return round(min(limit, offset + max(0.0, float(x))), 3)

    words = [dataclasses.replace(w, start=t(w.start), end=t(w.end)) for w in (segment.words or ())]
    start, end = t(segment.start), t(segment.end)
    if words:
        start, end = max(start, words[0].start), max(words[-1].end, words[0].start)
    return dataclasses.replace(segment, start=start, end=end, text=segment.text.strip(), words=words)
