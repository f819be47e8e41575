"""Live transcription: the words of a recording while it is being recorded.

::

    from dictaphone import MediaRecorder, Microphone
    from dictaphone.speech.live import LiveTranscriber

    rec = MediaRecorder(Microphone(), "audio/flac", output="memo.flac")
    live = LiveTranscriber(rec, model="base.en")  # loads the model and Silero now
    rec.onpartial = lambda e: print(f"... {e.text}")  # the utterance being spoken
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
- While an utterance goes on, the "transcribe" thread recognises it so far every
  ``partial_every`` seconds of new audio (or as often as the machine affords: the pace
  follows how long a hypothesis takes), greedily and alone, and fires ``partial``
  events (``text``, ``committed``, ``start``, ``end``): words settle by LocalAgreement-2
  between consecutive hypotheses (streaming.py), and committed words never change.
  Partials are only made while the recognition thread has nothing else to do and the
  detector keeps up with the recording, so they never delay final text.
- Final text: each utterance is recognised with beam search and with the audio of the
  utterances before it in front of it (streaming.Context: up to 28 s, whole utterances,
  speech only), which is what makes it about as good as recognising the whole file
  (measurements in streaming.py). It fires a ``transcript`` event (``text``, ``start``,
  ``end`` in seconds of recorded media) on the recorder. That recognition starts as soon
  as the speech pauses (``early`` seconds of non-speech, and not before the padding after
  the speech was heard) rather than when the pause has lasted long enough to end the
  utterance; it hears the very samples the utterance will hold if it ends there, so if it
  does, that result *is* its final text (the saved transcript does not depend on how fast
  the machine was), and if speech goes on, the early result is only a hypothesis.
  Utterances that wait for it are bounded
  (``max_backlog`` seconds of speech): the vad thread waits when the backlog is full, and
  the frames queue behind it absorbs the rest. CTranslate2 releases the GIL while it
  computes, and its threads are bounded (``cpu_threads``, default 1, its OpenMP threads
  waiting passively): capture and writing need little CPU and wake briefly, so they are not
  kept waiting (bench/RESULTS.md measures it: 0 dropped frames with both cores busy). One
  thread rather than two, measured in real time on a quiet 2-core machine (see
  DEFAULT_CPU_THREADS); an earlier measurement with the machine shared with other work
  (load 13-17) had favoured two, with OpenMP spinning, which is what made two threads slow
  when the cores are busy. Threads rather than a worker
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

from ..events import PartialEvent, TranscriptEvent
from . import streaming
from .silero import SAMPLE_RATE, Segmenter, SileroVAD, Utterance, to_mono_float

log = logging.getLogger("dictaphone")

#: CTranslate2 threads for live recognition (bounded; capture and writing wake briefly and
#: keep their 0 dropped frames beside them: bench/live.py). One, with OpenMP's threads
#: waiting passively (below): measured in real time through the virtual microphone on a
#: quiet 2-core machine, end of utterance to final text was median 1.20 s / worst 1.42 s
#: with 1 thread against 1.31 / 1.82 s with 2, and with both cores busy 2.43 / 4.45 s against
#: 3.46 / 4.69 s (2 threads with OpenMP's default spinning: 6.65 / 9.22 s): threads that
#: spin at every barrier take turns away from each other and from everything else.
DEFAULT_CPU_THREADS = 1


def passive_openmp() -> None:
    """CTranslate2's OpenMP (libgomp) spins while its threads wait, which on a machine whose
    cores are busy costs the recognition its own turns (the measurements above). The
    setting is read once, when the library loads: set it (unless the user did) before
    faster-whisper is imported, in a process that transcribes live."""
    import os
    import sys

    if "ctranslate2" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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

    ``partials``: fire ``partial`` events while an utterance goes on (about every
    ``partial_every`` seconds of new audio, less often when the machine is slower);
    ``context``: seconds of earlier speech recognised in front of each utterance (0:
    each alone); ``early``: seconds of non-speech after which an utterance's final
    recognition starts (before ``min_silence`` ends it; at the soonest once ``pad`` seconds
    of it were heard). Partials and context need a
    :class:`~dictaphone.speech.transcribe.Transcriber` (an engine with ``recognise_16k``);
    any other engine hears each utterance alone, and gives final text only.
    """

    def __init__(self, recorder, transcriber=None, *, model=None, language: str | None = None,
                 cpu_threads: int = DEFAULT_CPU_THREADS, min_silence: float = 0.6,
                 max_utterance: float = 20.0, pad: float = 0.3, max_backlog: float = 120.0,
                 max_pending: float = 60.0, partials: bool = True, partial_every: float = 0.8,
                 context: float = streaming.WINDOW, early: float = 0.2, attach: bool = True):
        if transcriber is None:
            passive_openmp()
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
        #: each utterance's final text so far: (start in recorded seconds, text)
        self.utterances: list[tuple[float, str]] = []
        self.error: BaseException | None = None  #: the first recognition failure, if any
        self.missed_seconds = 0.0  #: audio left out of the transcription (queue full)
        self.latencies: list[float] = []  #: seconds from an utterance's end being detected to its event
        streams = hasattr(transcriber, "recognise_16k")
        self.partials = bool(partials) and streams
        self.partial_every = float(partial_every)
        self.early = float(early) if streams else 0.0
        self._context = streaming.Context(context if streams else 0.0)
        self._job: Utterance | None = None  # the utterance in progress, to recognise so far
        self._job_early = False  # ... for its final text (its speech paused) or a partial
        self._snap_end = 0.0  # where the last snapshot of the utterance in progress ended
        self._early_done: tuple | None = None  # _same_speech() of the last early job
        self._early_result: tuple | None = None  # (_same_speech(), segments, language)
        self._pace = self.partial_every  # seconds of new audio between two partials
        self._agreement: streaming.LocalAgreement | None = None
        self._agreement_start: float | None = None
        self._shown = False  # a partial with words was fired for the utterance in progress
        self._final_upto = -1.0  # the end of the last utterance given final text
        self.latest_partial: PartialEvent | None = None  #: the utterance in progress, or None
        self.language = getattr(transcriber, "language", None) or ""
        self._frames: collections.deque = collections.deque()
        self._frames_cond = threading.Condition()
        self._pending = 0  # frames waiting in _frames
        self._utterances: collections.deque = collections.deque()
        self._utt_cond = threading.Condition()
        self._backlog = 0.0  # seconds of speech waiting in _utterances
        self._working: Utterance | None = None  # the one being recognised
        self._working_final = False  # ... for its final text (not a hypothesis)
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
            busy = self._backlog + (self._working.duration if self._working_final else 0.0)
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
                self._offer(seg)
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

    def _offer(self, seg: Segmenter) -> None:
        """On the vad thread: hand the utterance in progress to the recognition thread
        when it has nothing else to do (a partial hypothesis, or the early final)."""
        if not (self.partials or self.early) or not seg.in_speech or self._abandon:
            return
        with self._utt_cond:
            idle = self._working is None and not self._utterances and self._job is None
        # While the detector catches up (a file read faster than real time, a machine
        # that fell behind) partials would only be late: final text first.
        if not idle or self._pending > 0.5 * self._rate:
            return
        silent = seg.silent_for
        early = self.early > 0 and silent >= self.early
        if early:
            # The utterance as it will end if no more speech comes, the very samples (its
            # padding after the speech included, so not before that was heard): the early
            # result is then the final text itself, whatever the machine's speed, and a
            # recording transcribes alike in real time and from a file read at full speed.
            cur = seg.ending()
            if cur is None:
                return
            key = _same_speech(cur)
            if key == self._early_done:
                return
            self._early_done = key
        elif (not self.partials or silent > 0 or seg.current_seconds < 0.3
              or seg.heard - self._snap_end < self._pace):
            return
        else:
            cur = seg.current()
        self._snap_end = cur.end
        with self._utt_cond:
            self._job, self._job_early = cur, early
            self._utt_cond.notify_all()

    def _run_recognition(self) -> None:
        while True:
            job = early = None
            with self._utt_cond:
                while not self._utterances and self._job is None:
                    self._utt_cond.wait()
                if self._utterances:
                    u = self._utterances.popleft()
                    if u is None:
                        return
                    self._backlog -= u.duration
                else:
                    u = None
                    job, early, self._job = self._job, self._job_early, None
                self._working = u or job
                self._working_final = u is not None
                self._utt_cond.notify_all()
            try:
                if self.error is None and u is not None:
                    self._recognise(u)
                elif self.error is None and job is not None and job.start >= self._final_upto - 1e-6:
                    self._hypothesis(job, early)
            except Exception as e:
                # The model failed (it could not load, or broke): the recording goes on,
                # later utterances are skipped, and the caller reports self.error.
                self.error = e
                log.debug("live transcription failed", exc_info=True)
            finally:
                with self._utt_cond:
                    self._working, self._working_final = None, False

    def _recognise(self, u: Utterance) -> None:
        """Final text of an utterance that ended: the early result if it heard the same
        speech, else recognised now (with the context before it)."""
        done = self._early_result
        self._early_result = None
        if done is not None and done[0] == _same_speech(u):
            found, language = done[1], done[2]
        else:
            found, language = self._final(u)
        self._final_upto = u.end
        self._agreement = None
        if language:
            self.language = language
        segments = [_shifted(s, u.start, u.end) for s in found if s.text.strip()]
        shown, self._shown = self._shown, False
        if not segments:
            self.latest_partial = None
            if shown:  # the words shown for it are gone
                self.recorder.post_event(PartialEvent("partial", start=round(u.start, 3),
                                                      end=round(u.end, 3)))
            return
        text = " ".join(s.text.strip() for s in segments)
        self.segments.extend(segments)
        self.utterances.append((segments[0].start, text))
        self.latest_partial = None  # (after its final text is there: the meter never shows neither)
        # Context for the next ones: speech that held words (what Whisper heard nothing
        # in would only invite it to invent words later).
        self._context.add(u.audio)
        event = TranscriptEvent("transcript", text=text, start=segments[0].start,
                                end=segments[-1].end, segments=segments)
        self.latencies.append(time.monotonic() - getattr(u, "detected_at", time.monotonic()))
        self.recorder.post_event(event)

    def _final(self, u: Utterance):
        t = self.transcriber
        if not hasattr(t, "recognise_16k"):
            fast = getattr(t, "transcribe_16k", None)
            result = fast(u.audio) if fast is not None else t.transcribe(u.audio, SAMPLE_RATE)
            return result.segments, getattr(result, "language", None)
        context = self._context.before(streaming.WINDOW - u.duration)
        found, language = streaming.recognise(t, u.audio, context)
        if len(context) and not found:
            # Whisper sometimes ends its text with the context's last sentence and skips a
            # short utterance after it ("Call Maria." after a 7 s sentence gave nothing):
            # heard alone (as before contexts, with faster-whisper's own speech filter),
            # it is not lost.
            result = t.transcribe_16k(u.audio)
            found, language = [s for s in result.segments if s.text.strip()], result.language
        return found, language

    def _hypothesis(self, job: Utterance, early: bool) -> None:
        """The utterance in progress recognised so far: a partial event (and, ``early``,
        its final text in case it ends here)."""
        began = time.monotonic()
        if early:
            segments, language = self._final(job)
            self._early_result = (_same_speech(job), segments, language)
        else:
            segments, _ = streaming.recognise(self.transcriber, job.audio, beam_size=1, word_times=False)
            # The pace follows what the machine affords: a hypothesis that takes most of
            # the interval would leave no room for anything else.
            took = time.monotonic() - began
            self._pace = min(3.0, max(self.partial_every, 1.5 * took))
        if self._agreement is None or self._agreement_start != round(job.start, 3):
            self._agreement, self._agreement_start = streaming.LocalAgreement(), round(job.start, 3)
        words = " ".join(s.text.strip() for s in segments).split()
        committed, tentative = self._agreement.update(words)
        if not committed and not tentative:
            return
        if job.start < self._final_upto - 1e-6:
            return  # its final text came meanwhile
        event = PartialEvent("partial", text=" ".join(committed + tentative),
                             committed=" ".join(committed), start=round(job.start, 3),
                             end=round(job.end, 3))
        self._shown = True
        self.latest_partial = event
        self.recorder.post_event(event)


def _same_speech(u: Utterance) -> tuple:
    """What makes two views of an utterance the same audio (the early job's and the ended
    utterance's): where it starts, where its speech ends and where its audio ends."""
    return round(u.start, 3), round(u.speech_end or -1, 3), round(u.end, 3)


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
