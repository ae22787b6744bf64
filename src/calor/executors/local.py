"""The local executor: instances run concurrently on this machine, up to its cores."""

import logging
import os
import queue
import threading
from collections.abc import Callable

from calor.domain.ports import (
    EventSink,
    Finished,
    Forwards,
    InstanceEvent,
    InstanceJob,
    Leftover,
)
from calor.domain.transfer import Upload
from calor.executors.background import in_background
from calor.runner.instance import InstanceRunner
from calor.runner.runtime import Handle

log = logging.getLogger("calor.executor")

# a thread that ran an attempt waits this long for the next before it ends: starting a
# thread per attempt cost the engine a wait for the new thread to take the GIL
IDLE_THREAD_SECONDS = 30.0
KILLED_SECONDS = 5.0  # for killed attempts to report their end, when the server stops


class LocalExecutor:
    def __init__(
        self,
        runner: InstanceRunner,
        emit: EventSink,
        on_free: Callable[[], None],
        cores: int | None = None,
        forwards: Forwards | None = None,
    ) -> None:
        self.runner = runner
        # the forwarded ports of running instances (domain/network.py), opened at their start
        self.forwards = forwards
        self.emit = emit
        self.on_free = on_free
        self._total = cores or os.cpu_count() or 1
        self._used = 0.0
        self._lock = threading.Lock()
        # attempts started whose end has not reached the engine yet
        self._running: set[int] = set()
        self._ended = threading.Condition(self._lock)
        self._procs: dict[int, Handle] = {}
        self._pending_abort: set[int] = set()
        # attempts handed to threads that are idle, and how many of those there are
        self._handoff: queue.SimpleQueue[InstanceJob] = queue.SimpleQueue()
        self._idle = 0

    @property
    def total_cores(self) -> int:
        return self._total

    def free_cores(self) -> float:
        with self._lock:
            return self._total - self._used

    def start(self, job: InstanceJob) -> None:
        with self._lock:
            self._used += self._cores(job)
            self._running.add(job.row_id)
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1  # that thread takes this attempt: none else may end it
        if reuse:
            self._handoff.put(job)
            return
        threading.Thread(target=self._work, args=(job,), daemon=True).start()

    def _work(self, job: InstanceJob) -> None:
        """A thread of this executor: runs attempts, one at a time, while it is given any."""
        me = threading.current_thread()
        while True:
            me.name = f"instance-{job.row_id}"
            self._run(job)
            with self._lock:
                self._idle += 1
            self.on_free()  # the engine may hand this thread the next attempt at once
            while True:
                try:
                    job = self._handoff.get(timeout=IDLE_THREAD_SECONDS)
                    break
                except queue.Empty:
                    with self._lock:
                        if self._idle > 0:  # no attempt is on its way to this thread
                            self._idle -= 1
                            return

    def _run(self, job: InstanceJob) -> None:
        def on_process(proc: Handle) -> None:
            with self._lock:
                self._procs[job.row_id] = proc
                abort = job.row_id in self._pending_abort
            if abort:
                proc.cancelled = True
                proc.terminate_tree()
            elif job.forward_ports and self.forwards is not None and proc.address:
                try:
                    self.forwards.open(job, proc.address)
                except Exception as exc:  # the instance runs on, unreachable
                    log.warning("ports of instance row %d not forwarded: %s", job.row_id, exc)

        def emit(event: InstanceEvent) -> None:
            if isinstance(event, Finished):
                if self.forwards is not None and job.forward_ports:
                    self.forwards.close(job.row_id)
                # capacity is free before the outcome is seen, so the next claim can use it
                with self._lock:
                    self._used -= self._cores(job)
                    self._procs.pop(job.row_id, None)
            self.emit(event)
            if isinstance(event, Finished):
                with self._ended:  # its outcome is with the engine: stop() may return
                    self._running.discard(job.row_id)
                    self._pending_abort.discard(job.row_id)
                    self._ended.notify_all()

        self.runner.run(job, emit, on_process)

    @staticmethod
    def _cores(job: InstanceJob) -> float:
        """An instance on a pool runs on cores its slot already holds."""
        return 0 if job.slot is not None else job.cores

    def abort(self, row_ids: list[int]) -> None:
        row_ids = [rid for rid in row_ids if not self.runner.release(rid)]  # held pool slots
        with self._lock:
            procs = []
            for rid in row_ids:
                proc = self._procs.get(rid)
                if proc is None:
                    if rid in self._running:
                        self._pending_abort.add(rid)
                    continue
                procs.append((rid, proc))
        for rid, proc in procs:
            proc.cancelled = True
            proc.terminate_tree()
            self.runner.release(rid)  # a slot whose preparation ended meanwhile

    def refresh(self, row_ids: list[int]) -> None:
        for rid in row_ids:
            in_background(f"refresh-{rid}", self.runner.refresh, rid)

    def snapshot(self, row_ids: list[int], snapshot_id: str, target: Upload) -> None:
        for rid in row_ids:
            in_background(
                f"snapshot-{rid}", self.runner.snapshot, rid, snapshot_id, target, self.emit
            )

    def adopt(self, leftovers: list[Leftover]) -> list[Leftover]:
        return leftovers  # a process of a previous server is never this executor's

    def stop(self, grace_seconds: float) -> None:
        """Let running instances finish for a while, then stop the rest as interrupted.
        Pool slots hold on until released: they are released at once, to come back when
        the server starts again."""
        for rid in self.runner.held():
            with self._lock:
                proc = self._procs.get(rid)
            if proc is not None:
                proc.interrupted = True
            self.runner.release(rid)
        with self._ended:
            if self._ended.wait_for(lambda: not self._running, grace_seconds):
                return
            procs = list(self._procs.values())
        for proc in procs:
            proc.interrupted = True
            proc.kill_tree()
        with self._ended:
            self._ended.wait_for(lambda: not self._running, KILLED_SECONDS)
