"""One instance attempt from start to outcome: working directory, environment, process,
output and progress streamed as events, usage measured, and the result reported once.
"""

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from calor.domain.ports import (
    EventSink,
    Finished,
    InstanceEvent,
    InstanceJob,
    Output,
    Progress,
    Started,
)
from calor.runner.host import SAFE_PATH, HostRuntime, RunningProcess, progress_parser, pump
from calor.runner.output import OutputBudget

STDOUT, STDERR = 1, 2


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def instance_environment(job: InstanceJob, workdir: Path, tmp: Path) -> dict[str, str]:
    """Contract §4.5: every constant, then the instance variables (which win)."""
    env = {"PATH": SAFE_PATH, "HOME": str(workdir), "LANG": "C.UTF-8"}
    for key, value in job.constants.items():
        if key and "=" not in key and "\0" not in key and "\0" not in value:
            env[key] = value
    env.update(
        INSTANCE_ID=str(job.instance_id),
        FRAME_ID=str(job.instance_id),
        INSTANCE_COUNT=str(job.instance_count),
        QRANK=str(job.instance_id),
        QSIZE=str(job.instance_count),
        TASK_PATH=str(workdir),
        TMP_PATH=str(tmp),
        TMP_RAMFS_PATH=str(tmp),
        CALOR_TASK_UUID=job.task_uuid,
        CALOR_ATTEMPT=str(job.attempt),
    )
    return env


class InstanceRunner:
    """Runs attempts with the host runtime; one call of ``run`` per attempt, on its own thread."""

    def __init__(
        self,
        runtime: HostRuntime,
        work_root: Path,
        max_output_bytes: int = 64 * 1024 * 1024,
        keep_workdirs: bool = False,
    ):
        self.runtime = runtime
        self.work_root = work_root
        self.max_output_bytes = max_output_bytes
        self.keep_workdirs = keep_workdirs

    def run(
        self,
        job: InstanceJob,
        emit: EventSink,
        on_process: Callable[[RunningProcess], None],
    ) -> None:
        t0 = time.monotonic()
        workdir = self.work_root / job.task_uuid / str(job.instance_id)
        # the outcome is reported after the working directory is removed: a retry of this
        # instance reuses the path and may start as soon as the outcome is recorded
        outcome: list[InstanceEvent] = []

        def emit_outcome_last(event: InstanceEvent) -> None:
            if isinstance(event, Finished):
                outcome.append(event)
            else:
                emit(event)

        try:
            self._run(job, workdir, emit_outcome_last, on_process, t0)
        except Exception as exc:  # the outcome must be reported whatever went wrong
            outcome.append(
                Finished(
                    job.row_id,
                    utcnow(),
                    None,
                    wall_time_sec=time.monotonic() - t0,
                    error=f"the instance could not be run: {exc}",
                )
            )
        finally:
            if not self.keep_workdirs:
                shutil.rmtree(workdir, ignore_errors=True)
                with contextlib.suppress(OSError):
                    workdir.parent.rmdir()
            for event in outcome:
                emit(event)

    def _run(
        self,
        job: InstanceJob,
        workdir: Path,
        emit: EventSink,
        on_process: Callable[[RunningProcess], None],
        t0: float,
    ) -> None:
        command = job.constants.get("DOCKER_CMD", "").strip()
        if not command:
            emit(
                Finished(
                    job.row_id,
                    utcnow(),
                    None,
                    wall_time_sec=time.monotonic() - t0,
                    error="DOCKER_CMD is empty: the host runtime cannot run the image's "
                    "own entrypoint; set DOCKER_CMD to the command to run",
                )
            )
            return
        workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.runtime.tmp_path(workdir)
        tmp.mkdir(parents=True, exist_ok=True)
        env = instance_environment(job, workdir, tmp)
        image = f"{job.constants.get('DOCKER_REPO', '')}:{job.constants.get('DOCKER_TAG', '')}"
        emit(
            Output(
                job.row_id,
                STDOUT,
                f"[calor] host runtime: image {image} was not used; DOCKER_CMD runs with "
                f"sh -c {self.runtime.description}\n",
            )
        )
        try:
            proc = self.runtime.start(command, workdir, env, job.network)
        except OSError as exc:
            emit(
                Finished(
                    job.row_id,
                    utcnow(),
                    None,
                    wall_time_sec=time.monotonic() - t0,
                    error=f"runtime missing: cannot start the host runtime ({exc})",
                )
            )
            return
        on_process(proc)
        emit(Started(job.row_id, utcnow(), proc.pid, proc.proc_start))
        parse = progress_parser([job.constants.get(f"DOCKER_PROGRESS{i}", "") for i in (1, 2, 3)])
        last = [-1.0]

        def on_line(line: str) -> None:
            value = parse(line)
            if value is not None and value != last[0]:
                last[0] = value
                emit(Progress(job.row_id, value))

        has_progress = any(job.constants.get(f"DOCKER_PROGRESS{i}") for i in (1, 2, 3))
        assert proc.popen.stdout is not None and proc.popen.stderr is not None
        budget = OutputBudget(
            self.max_output_bytes, lambda note: emit(Output(job.row_id, STDERR, note))
        )
        readers = [
            threading.Thread(
                target=pump,
                args=(
                    proc.popen.stdout,
                    budget.sink(lambda d: emit(Output(job.row_id, STDOUT, d))),
                    on_line if has_progress else None,
                ),
                daemon=True,
            ),
            threading.Thread(
                target=pump,
                args=(
                    proc.popen.stderr,
                    budget.sink(lambda d: emit(Output(job.row_id, STDERR, d))),
                    None,
                ),
                daemon=True,
            ),
        ]
        for r in readers:
            r.start()
        result = self.runtime.wait(proc)
        for r in readers:
            r.join(timeout=5)
        error = result.error  # the wire message adds "instance <id>: " (api/schemas.py)
        if proc.cancelled:
            error = "cancelled by the user"
        emit(
            Finished(
                job.row_id,
                utcnow(),
                result.exit_code,
                cpu_time_sec=result.cpu_time_sec,
                peak_memory_mb=result.peak_memory_mb,
                wall_time_sec=time.monotonic() - t0,
                error=error,
                cancelled=proc.cancelled,
                interrupted=proc.interrupted,
            )
        )
