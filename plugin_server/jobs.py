"""One GPU worker and a bounded queue of generation jobs.

The worker thread owns the model: it loads it (the server reports NOT_SERVING meanwhile) and
runs one job at a time. A job's ``should_stop`` is checked by the pipeline between stages and
sampler steps, and at every progress report, so cancellation, client disconnects and
deadlines stop it promptly; the pipeline stages its files and moves them into place only when
everything succeeded, so a stopped or failed job leaves no files.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from muvi.memory import return_free_memory
from muvi.errors import Cancelled
from muvi.pipeline import GenerateOptions, GenerationResult, Generator
from muvi.timeline import Timeline
from plugin_server.convert import AlreadyExistsError
from plugin_server.status import DeadlineExceeded, NotReady, QueueFull

__all__ = ["Job", "Worker"]

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"


@dataclass(eq=False)
class Job:
    """A request on its way through the queue. Events for the RPC arrive on ``events`` as
    ``("progress", stage, fraction, message)``, ``("done", result)`` or ``("error", exc)``."""

    timeline: Timeline
    options: GenerateOptions
    out_dir: Path
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    deadline: float | None = None  # time.monotonic() by which it must finish
    events: "queue.Queue[tuple[Any, ...]]" = field(default_factory=queue.Queue)
    state: str = QUEUED
    _stop: threading.Event = field(default_factory=threading.Event)
    _reason: str = ""

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._stop.is_set():
            self._reason = reason
            self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def should_stop(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.cancel("deadline exceeded")
        return self._stop.is_set()

    def stop_error(self, detail: str) -> Cancelled:
        kind = DeadlineExceeded if self._reason == "deadline exceeded" else Cancelled
        return kind(f"{self._reason} ({detail})")


class Worker:
    """Runs jobs one at a time on a model loaded by ``load`` (called in the worker thread)."""

    def __init__(self, load: Callable[[], Generator], *, max_queue: int = 4,
                 on_ready: Callable[[bool], None] | None = None) -> None:
        self._load, self.max_queue, self._on_ready = load, max_queue, on_ready
        self.generator: Generator | None = None
        self.load_error: BaseException | None = None
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._jobs: dict[str, Job] = {}
        self._running: Job | None = None
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="muvi-worker", daemon=True)

    def start(self) -> "Worker":
        self._thread.start()
        return self

    @property
    def ready(self) -> bool:
        return self.generator is not None and not self._closing

    # -- submitting ---------------------------------------------------------------------
    def submit(self, job: Job) -> int:
        """Queue ``job``; returns how many jobs are ahead of it."""
        with self._lock:
            if self._closing:
                raise NotReady("the server is shutting down")
            if self.generator is None:
                raise NotReady("the model failed to load: " + str(self.load_error) if self.load_error
                               else "the model is still loading; retry when the health service says SERVING")
            if job.request_id in self._jobs:
                raise AlreadyExistsError(f"request_id: {job.request_id!r} is already queued or running")
            busy = [j.out_dir for j in self._jobs.values()]
            if job.out_dir in busy:
                raise AlreadyExistsError(f"output_name: another job is writing {job.out_dir.name!r}")
            # a job the idle worker has not picked up yet is the running one, not a waiting one
            if len(self._waiting) >= self.max_queue + (self._running is None):
                raise QueueFull(f"the queue is full ({len(self._waiting)} waiting of {self.max_queue}, "
                                f"1 running); retry later")
            self._waiting.append(job)
            self._jobs[job.request_id] = job
            self._idle.clear()
            ahead = len(self._waiting) - 1 + (self._running is not None)
            self._wake.notify()
            return ahead

    def cancel(self, request_id: str) -> str | None:
        """Cancel a queued or running job; returns its state then, or None if unknown."""
        with self._lock:
            job = self._jobs.get(request_id)
            if job is None:
                return None
            state = job.state
            job.cancel()
            if job in self._waiting:  # answer its stream now, not when the worker reaches it
                self._waiting.remove(job)
                self._jobs.pop(request_id, None)
                job.state = CANCELLED
                job.events.put(("error", job.stop_error("while queued")))
                if not self._waiting and self._running is None:
                    self._idle.set()
        return state

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    # -- running ------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.generator = self._load()
        except BaseException as exc:  # noqa: BLE001 - reported through NotReady on every submit
            log.exception("model failed to load")
            self.load_error = exc
        if self._on_ready is not None:
            self._on_ready(self.generator is not None)
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._wake.wait()
                if not self._waiting:
                    return
                job = self._waiting.pop(0)
                self._running = job
            outcome = self._execute(job)
            with self._lock:  # unknown before its client hears how it ended (a Cancel then says NOT_FOUND)
                self._running = None
                self._jobs.pop(job.request_id, None)
                if not self._waiting:
                    self._idle.set()
            job.events.put(outcome)
            return_free_memory()

    def _execute(self, job: Job) -> tuple[Any, ...]:
        """Run the job; its progress goes to its events as it comes, and its last event (done or
        error) is returned, for :meth:`_run` to send once the job is no longer registered."""
        assert self.generator is not None
        if job.should_stop():
            job.state = CANCELLED
            return ("error", job.stop_error("while queued"))
        job.state = RUNNING

        def progress(stage: str, fraction: float) -> None:
            if job.should_stop():
                raise Cancelled(f"during {stage}, {100 * fraction:.0f}% through")
            job.events.put(("progress", stage, fraction, ""))

        def warn(message: str) -> None:  # e.g. damaged frames concealed: a Progress event of its own
            job.events.put(("progress", "warning", 1.0, message))

        try:
            result: GenerationResult = self.generator.generate(job.timeline, job.options, job.out_dir,
                                                               progress=progress, should_stop=job.should_stop,
                                                               warn=warn)
        except Cancelled as exc:
            job.state = CANCELLED
            return ("error", job.stop_error(str(exc)) if job.cancelled else exc)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to its client
            job.state = FAILED
            return ("error", exc)
        job.state = DONE
        return ("done", result)

    # -- shutdown -----------------------------------------------------------------------
    def shutdown(self, grace: float) -> bool:
        """Refuse new jobs, cancel the queued ones, let the running one finish within ``grace``
        seconds (then cancel it); returns True when the worker stopped."""
        with self._lock:
            self._closing = True
            waiting, self._waiting = self._waiting, []
            running = self._running
            self._wake.notify_all()
        for job in waiting:
            job.cancel("server shutting down")
            job.state = CANCELLED
            job.events.put(("error", job.stop_error("before it started")))
            with self._lock:
                self._jobs.pop(job.request_id, None)
        if running is not None and not self._idle.wait(grace):
            running.cancel("server shutting down")
        self._thread.join(timeout=max(grace, 1.0) + 30.0)
        return not self._thread.is_alive()
