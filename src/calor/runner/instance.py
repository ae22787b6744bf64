"""One instance attempt from start to outcome: working directory, environment, output and
progress streamed as events, usage measured, and the result reported once. The runtime (host
or Docker) only runs the command.
"""

import contextlib
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from calor.domain.ports import EventSink, Finished, InstanceJob, Output, Progress, Started
from calor.runner.output import OutputBudget, progress_parser
from calor.runner.runtime import Handle, Launch, Runtime, TextSink

STDOUT, STDERR = 1, 2


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def instance_environment(
    job: InstanceJob, task_path: str, tmp_path: str, base: dict[str, str]
) -> dict[str, str]:
    """Contract §4.5: the runtime's base, every constant, then the instance variables (which
    win)."""
    env = dict(base)
    for key, value in job.constants.items():
        if key and "=" not in key and "\0" not in key and "\0" not in value:
            env[key] = value
    env.update(
        INSTANCE_ID=str(job.instance_id),
        FRAME_ID=str(job.instance_id),
        INSTANCE_COUNT=str(job.instance_count),
        QRANK=str(job.instance_id),
        QSIZE=str(job.instance_count),
        TASK_PATH=task_path,
        TMP_PATH=tmp_path,
        TMP_RAMFS_PATH=tmp_path,
        CALOR_TASK_UUID=job.task_uuid,
        CALOR_ATTEMPT=str(job.attempt),
    )
    return env


class InstanceRunner:
    """Runs attempts with a runtime; one call of ``run`` per attempt, on its own thread."""

    def __init__(
        self,
        runtime: Runtime,
        work_root: Path,
        max_output_bytes: int = 64 * 1024 * 1024,
        keep_workdirs: bool = False,
    ):
        self.runtime = runtime
        self.work_root = work_root
        self.max_output_bytes = max_output_bytes
        self.keep_workdirs = keep_workdirs

    def run(self, job: InstanceJob, emit: EventSink, on_process: Callable[[Handle], None]) -> None:
        t0 = time.monotonic()
        # <task>/<instance>/task is TASK_PATH; the runtime may keep scratch space beside it
        slot = self.work_root / job.task_uuid / str(job.instance_id)
        workdir = slot / "task"
        handles: list[Handle] = []
        try:
            outcome = self._run(job, workdir, emit, on_process, handles)
        except Exception as exc:  # the outcome must be reported whatever went wrong
            outcome = Finished(
                job.row_id, utcnow(), None, error=f"the instance could not be run: {exc}"
            )
        finally:
            # the outcome is reported after the working directory is removed: a retry of
            # this instance reuses the path and may start as soon as the outcome is recorded
            if not self.keep_workdirs:
                shutil.rmtree(slot, ignore_errors=True)
                with contextlib.suppress(OSError):
                    slot.parent.rmdir()
        handle = handles[0] if handles else None
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
            )
        )

    def _run(
        self,
        job: InstanceJob,
        workdir: Path,
        emit: EventSink,
        on_process: Callable[[Handle], None],
        handles: list[Handle],
    ) -> Finished:
        workdir.mkdir(parents=True, exist_ok=True)
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

        result = self.runtime.run(
            Launch(
                job=job,
                workdir=workdir,
                env=instance_environment(
                    job, task_path, tmp_path, self.runtime.base_environment(task_path)
                ),
                stdout=stdout,
                stderr=budget.sink(lambda d: emit(Output(job.row_id, STDERR, d))),
                on_start=on_start,
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
