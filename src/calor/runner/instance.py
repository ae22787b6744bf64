"""One instance attempt from start to outcome: working directory, environment, output and
progress streamed as events, usage measured, and the result reported once. The runtime (host
or Docker) only runs the command.
"""

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from calor.domain.accounting import attributed_energy_j
from calor.domain.command import CommandError, split_command
from calor.domain.ports import (
    EnergyMeter,
    EventSink,
    Finished,
    InstanceJob,
    Output,
    Progress,
    Ready,
    SecretsSource,
    SnapshotDone,
    Started,
    Transfer,
)
from calor.domain.transfer import Upload
from calor.runner.files import Inputs, TaskFiles, TransferError, make_dirs, scan
from calor.runner.output import OutputBudget, progress_parser
from calor.runner.runtime import Handle, Launch, Runtime, TextSink
from calor.runner.secrets_dir import SECRETS_ENV, remove_secrets, secrets_dir, write_secrets

STDOUT, STDERR = 1, 2


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def instance_environment(
    job: InstanceJob, task_path: str, tmp_path: str, base: dict[str, str]
) -> dict[str, str]:
    """Contract §4.5: the runtime's base, the instance variables, then every constant.

    The hosted service's documentation says that every constant of the task ends up as an
    environment variable, so a constant is never replaced: a constant named like an instance
    variable (QRANK, INSTANCE_ID, TASK_PATH…) is what the instance sees under that name."""
    env = dict(base)
    env.update(
        INSTANCE_ID=str(job.instance_id),
        FRAME_ID=str(job.instance_id),
        INSTANCE_COUNT=str(job.instance_count),
        QRANK=str(job.instance_id),
        QSIZE=str(job.instance_count),
        TASK_PATH=task_path,
        QARNOT_RESOURCES_DIRECTORY=task_path,
        QARNOT_RESULTS_DIRECTORY=task_path,
        TMP_PATH=tmp_path,
        TMP_RAMFS_PATH=tmp_path,
        CALOR_TASK_UUID=job.task_uuid,
        CALOR_ATTEMPT=str(job.attempt),
    )
    for key, value in job.constants.items():
        if key and "=" not in key and "\0" not in key and "\0" not in value:
            env[key] = value
    return env


@dataclass
class _Live:
    """A running attempt, for the requests that reach it while it runs."""

    job: InstanceJob
    workdir: Path
    inputs: Inputs
    emit: EventSink
    lock: threading.Lock = field(default_factory=threading.Lock)  # one transfer at a time


class InstanceRunner:
    """Runs attempts with a runtime; one call of ``run`` per attempt, on its own thread."""

    def __init__(
        self,
        runtime: Runtime,
        work_root: Path,
        max_output_bytes: int = 64 * 1024 * 1024,
        keep_workdirs: bool = False,
        files: TaskFiles | None = None,
        secrets: SecretsSource | None = None,
        energy: EnergyMeter | None = None,
    ):
        self.runtime = runtime
        # RAPL, where the machine has it: each attempt reports its share of the energy drawn
        # while it ran; without it the server estimates the energy from the CPU time
        self.energy = energy
        self.secrets = secrets
        self.work_root = work_root
        self.max_output_bytes = max_output_bytes
        self.keep_workdirs = keep_workdirs
        self.files = files
        self._live: dict[int, _Live] = {}
        self._held: dict[int, threading.Event] = {}
        self._live_lock = threading.Lock()

    def run(self, job: InstanceJob, emit: EventSink, on_process: Callable[[Handle], None]) -> None:
        t0 = time.monotonic()
        energy_before = self.energy.sample() if self.energy else None
        # <task>/<instance>/task is TASK_PATH; the runtime may keep scratch space beside it.
        # An instance on a pool works in its slot's, which outlives it.
        slot = self.work_root / job.task_uuid / str(job.instance_id)
        if job.slot is not None:
            workdir = self.work_root / job.slot[0] / str(job.slot[1]) / "task"
        else:
            workdir = slot / "task"
        live = _Live(job, workdir, Inputs(), emit)
        handles: list[Handle] = []
        results: tuple[str, ...] = ()
        try:
            outcome = self._run(job, live, on_process, handles)
            if job.hold and outcome.exit_code == 0 and outcome.error is None:
                outcome = self._hold(live, handles[0] if handles else None) or outcome
            results, upload_error = self._upload_results(live, handles[0] if handles else None)
            if upload_error and outcome.error is None:
                outcome = replace(outcome, error=upload_error)
        except Exception as exc:  # the outcome must be reported whatever went wrong
            outcome = Finished(
                job.row_id, utcnow(), None, error=f"the instance could not be run: {exc}"
            )
        finally:
            with self._live_lock:
                self._live.pop(job.row_id, None)
            with live.lock:  # a snapshot or refresh in flight ends before the files go
                pass
            # the outcome is reported after the working directory is removed: a retry of
            # this instance reuses the path and may start as soon as the outcome is recorded
            if not self.keep_workdirs and job.slot is None:
                shutil.rmtree(slot, ignore_errors=True)
                with contextlib.suppress(OSError):
                    slot.parent.rmdir()
        handle = handles[0] if handles else None
        energy_after = self.energy.sample() if self.energy and energy_before else None
        energy_j = None
        if energy_before is not None and energy_after is not None:
            energy_j = attributed_energy_j(energy_before, energy_after, outcome.cpu_time_sec)
        emit(
            Finished(
                outcome.row_id,
                outcome.at,
                outcome.exit_code,
                cpu_time_sec=outcome.cpu_time_sec,
                peak_memory_mb=outcome.peak_memory_mb,
                wall_time_sec=time.monotonic() - t0,
                error="cancelled by the user" if handle and handle.cancelled else outcome.error,
                cancelled=bool(handle and handle.cancelled),
                interrupted=bool(handle and handle.interrupted),
                results=results,
                energy_j=energy_j,
            )
        )

    def _hold(self, live: _Live, handle: Handle | None) -> Finished | None:
        """A prepared pool slot: report Ready, then keep the slot (its cores, its working
        directory) until released. Returns how it ended (None: as the preparation did)."""
        job = live.job
        released = threading.Event()
        with self._live_lock:
            self._held[job.row_id] = released
        try:
            # aborted while its preparation ended: the executor marks the handle before it
            # releases, so either this sees the mark or the release finds the slot held
            if handle is None or not handle.cancelled:
                live.emit(Ready(job.row_id, utcnow()))
                released.wait()
        finally:
            with self._live_lock:
                self._held.pop(job.row_id, None)
        if handle is not None and not handle.interrupted:
            handle.cancelled = True  # it ends as the pool closed it, never as a failure
        return None

    def held(self) -> list[int]:
        with self._live_lock:
            return list(self._held)

    def release(self, row_id: int) -> bool:
        """End a held pool slot; False when it is not holding (it may still be preparing)."""
        with self._live_lock:
            released = self._held.get(row_id)
        if released is None:
            return False
        released.set()
        return True

    def _fetch(self, live: _Live) -> None:
        job = live.job
        if not job.transfers.resources:
            return
        if self.files is None:
            raise TransferError("this executor has no access to buckets")
        live.emit(Transfer(job.row_id, "download", 0.0))
        self.files.fetch(
            job.user_id,
            job.transfers.resources,
            live.workdir,
            live.inputs,
            lambda p: live.emit(Transfer(job.row_id, "download", p)),
        )

    def _upload_results(
        self, live: _Live, handle: Handle | None
    ) -> tuple[tuple[str, ...], str | None]:
        """Results of an attempt that ended on its own (or was cancelled, when the task says
        so); returns their "bucket/key" names and an error, if the upload failed."""
        job, target = live.job, live.job.transfers.results
        if target is None or self.files is None or not live.workdir.is_dir():
            return (), None
        if handle is None:
            return (), None  # the command never started (resources, image): no results
        if handle.interrupted:
            return (), None  # it runs again: its results come then
        if handle.cancelled and not job.transfers.upload_results_on_cancellation:
            return (), None
        files = self.files
        with live.lock:
            changed = files.changed(live.workdir, live.inputs, target.filter)
            if not changed:
                return (), None
            live.emit(Transfer(job.row_id, "upload", 0.0))
            try:
                published = files.publish(
                    job.user_id,
                    target,
                    live.workdir,
                    changed,
                    lambda p: live.emit(Transfer(job.row_id, "upload", p)),
                )
            except Exception as exc:
                return (), f"results could not be uploaded to {target.bucket!r}: {exc}"
        return tuple(f"{target.bucket}/{k}" for k in published.keys), None

    # -- requests that reach a running attempt ----------------------------------------------

    def refresh(self, row_id: int) -> None:
        """Fetch the resources' new or changed objects into a running attempt (PATCH)."""
        with self._live_lock:
            live = self._live.get(row_id)
        if live is None or self.files is None:
            return
        try:
            with live.lock:
                if live.workdir.is_dir():
                    self.files.fetch(
                        live.job.user_id,
                        live.job.transfers.resources,
                        live.workdir,
                        live.inputs,
                        lambda _p: None,
                    )
                    self.runtime.give_files(live.job, live.workdir)
        finally:
            with self._live_lock:
                held = row_id in self._held
            if held:  # a prepared pool slot is in use again, synced or not
                live.emit(Ready(row_id, utcnow()))

    def snapshot(self, row_id: int, snapshot_id: str, target: Upload, emit: EventSink) -> None:
        """Upload a running attempt's result files now; always reports SnapshotDone."""
        with self._live_lock:
            live = self._live.get(row_id)
        if live is None or self.files is None:
            # it ended meanwhile: its results went with its outcome
            emit(SnapshotDone(row_id, snapshot_id, 0, 0))
            return
        try:
            with live.lock:
                changed = self.files.changed(live.workdir, live.inputs, target.filter)
                published = self.files.publish(
                    live.job.user_id, target, live.workdir, changed, lambda _p: None
                )
            emit(SnapshotDone(row_id, snapshot_id, published.size, len(published.keys)))
        except Exception as exc:
            emit(SnapshotDone(row_id, snapshot_id, 0, 0, error=str(exc)))

    def _run(
        self,
        job: InstanceJob,
        live: _Live,
        on_process: Callable[[Handle], None],
        handles: list[Handle],
    ) -> Finished:
        workdir = live.workdir
        make_dirs(workdir)
        if job.slot is not None:
            # what the pool put in its slot (resources, preparation) is no result of this task
            live.inputs.stamps.update(scan(workdir))
        try:
            self._fetch(live)
        except Exception as exc:
            return Finished(
                job.row_id, utcnow(), None, error=f"resources could not be fetched: {exc}"
            )
        try:
            secrets = self._secrets(job)
        except Exception as exc:  # the message names keys at most, never values
            return Finished(job.row_id, utcnow(), None, error=f"secrets could not be read: {exc}")
        try:
            return self._launch(job, live, on_process, handles, secrets)
        finally:
            if secrets is not None:
                remove_secrets(secrets)
                for parent in (secrets.parent, secrets.parent.parent):  # an instance on a pool
                    with contextlib.suppress(OSError):
                        parent.rmdir()

    def _secrets(self, job: InstanceJob) -> Path | None:
        """The granted secrets, read now (a retry sees a secret updated since), as files."""
        if not job.secrets:
            return None
        if self.secrets is None:
            raise RuntimeError("this executor cannot deliver secrets")
        values = self.secrets(job)
        directory = secrets_dir(self.work_root, job.task_uuid, job.instance_id)
        write_secrets(directory, values, shared=bool(job.constants.get("DOCKER_USER", "").strip()))
        return directory

    def _launch(
        self,
        job: InstanceJob,
        live: _Live,
        on_process: Callable[[Handle], None],
        handles: list[Handle],
        secrets: Path | None,
    ) -> Finished:
        emit, workdir = live.emit, live.workdir
        with self._live_lock:
            self._live[job.row_id] = live
        task_path, tmp_path = self.runtime.paths(workdir)
        banner = self.runtime.banner(job)
        if banner:
            emit(Output(job.row_id, STDOUT, banner))
        budget = OutputBudget(
            self.max_output_bytes, lambda note: emit(Output(job.row_id, STDERR, note))
        )
        stdout = budget.sink(lambda d: emit(Output(job.row_id, STDOUT, d)))
        progress_patterns = [job.constants.get(f"DOCKER_PROGRESS{i}", "") for i in (1, 2, 3)]
        if any(progress_patterns):
            stdout = _with_progress(stdout, progress_parser(progress_patterns), job, emit)

        def on_start(handle: Handle, pid: int, proc_start: float) -> None:
            handles.append(handle)
            on_process(handle)
            emit(Started(job.row_id, utcnow(), pid, proc_start))

        env = instance_environment(
            job, task_path, tmp_path, self.runtime.base_environment(task_path)
        )
        if secrets is not None:
            env[SECRETS_ENV] = self.runtime.secrets_path(secrets)
        try:
            argv = split_command(job.constants.get("DOCKER_CMD", ""), env)
        except CommandError as exc:  # submit checks the text; this is a defence
            return Finished(job.row_id, utcnow(), None, error=exc.message)
        result = self.runtime.run(
            Launch(
                job=job,
                workdir=workdir,
                env=env,
                argv=argv,
                stdout=stdout,
                stderr=budget.sink(lambda d: emit(Output(job.row_id, STDERR, d))),
                on_start=on_start,
                secrets_dir=secrets,
            )
        )
        # the wire message adds "instance <id>: " (api/schemas.py)
        return Finished(
            job.row_id,
            utcnow(),
            result.exit_code,
            cpu_time_sec=result.cpu_time_sec,
            peak_memory_mb=result.peak_memory_mb,
            error=result.error,
        )


def _with_progress(
    sink: TextSink, parse: Callable[[str], float | None], job: InstanceJob, emit: EventSink
) -> TextSink:
    """DOCKER_PROGRESS1..3 read every stdout line, the part past the output cap included."""
    last = [-1.0]

    def forward(text: str) -> None:
        for line in text.splitlines():
            value = parse(line)
            if value is not None and value != last[0]:
                last[0] = value
                emit(Progress(job.row_id, value))
        sink(text)

    return forward
