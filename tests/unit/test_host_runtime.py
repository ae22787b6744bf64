"""The host runtime's output capture and wait, on real processes: both pipes read at once on
the instance's own thread, the exit seen from the pidfd, nothing of the tree left behind."""

import os
import shutil
import time
from pathlib import Path

import psutil
import pytest

from calor.domain.ports import Finished, InstanceEvent, InstanceJob, Output
from calor.runner.host import HostRuntime
from calor.runner.instance import InstanceRunner

SANDBOXES = [False] + ([True] if shutil.which("bwrap") else [])


def _run(tmp_path: Path, command: str, sandbox: bool) -> tuple[Finished, str, str, float]:
    runner = InstanceRunner(HostRuntime([], sandbox=sandbox), tmp_path / "work")
    events: list[InstanceEvent] = []
    job = InstanceJob(7, "t", 0, 1, 1, "docker-batch", {"DOCKER_CMD": command}, 1)
    t0 = time.monotonic()
    runner.run(job, events.append, lambda _h: None)
    elapsed = time.monotonic() - t0
    [finished] = [e for e in events if isinstance(e, Finished)]
    out = "".join(e.data for e in events if isinstance(e, Output) and e.stream == 1)
    err = "".join(e.data for e in events if isinstance(e, Output) and e.stream == 2)
    return finished, out, err, elapsed


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_both_pipes_are_read_while_the_process_writes(tmp_path: Path, sandbox: bool) -> None:
    # 1 MiB to each stream, interleaved: reading one pipe to its end first would block the
    # writer on the other pipe's full buffer forever
    line = 'printf "%511d\\n" $i'
    script = f"i=0; while [ $i -lt 2048 ]; do {line}; {line} >&2; i=$((i+1)); done"
    finished, out, err, _ = _run(tmp_path, f"sh -c '{script}'", sandbox)
    assert finished.exit_code == 0 and finished.error is None
    assert out.count("\n") == 2048 + 1  # and the host runtime's banner
    assert err.count("\n") == 2048 and len(err) == 2048 * 512
    assert err.splitlines()[-1].strip() == "2047"


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_the_exit_code_cpu_time_and_a_last_line_without_newline(
    tmp_path: Path, sandbox: bool
) -> None:
    burn = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; printf tail; exit 3"
    finished, out, _, _ = _run(tmp_path, f"sh -c '{burn}'", sandbox)
    assert finished.exit_code == 3 and finished.error == "exited with code 3"
    assert finished.cpu_time_sec > 0.01
    assert out.endswith("tail")


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_background_child_neither_holds_the_instance_nor_survives_it(
    tmp_path: Path, sandbox: bool
) -> None:
    seconds = f"{300 + os.getpid() % 97}.{int(sandbox)}5"  # what finds the children again
    # one child keeps both pipes open; both are in the instance's process group
    command = f"sh -c 'sleep {seconds} & sleep {seconds} >/dev/null 2>&1 & echo started'"
    finished, out, _, elapsed = _run(tmp_path, command, sandbox)
    assert finished.exit_code == 0 and out.endswith("started\n")
    assert elapsed < 60  # far less than the children's 300 s: they did not hold it
    deadline = time.monotonic() + 10
    while True:
        left = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] == ["sleep", seconds]
        ]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, "a child of the instance survived it"


def test_a_working_directory_survives_a_sibling_removing_the_task_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each instance removes its task's directory once it is empty. Another instance that
    had just made that directory for its own must not fail ('the instance could not be run:
    No such file or directory', seen in CI): the removal is made to land in that window."""
    real_mkdir = Path.mkdir
    removed: list[Path] = []

    def racing_mkdir(
        self: Path, mode: int = 0o777, parents: bool = False, exist_ok: bool = False
    ) -> None:
        real_mkdir(self, mode, parents, exist_ok)
        if self.name == "t" and not removed:  # the task's directory, just made
            removed.append(self)
            self.rmdir()  # as a sibling instance's cleanup does

    monkeypatch.setattr(Path, "mkdir", racing_mkdir)
    finished, _, _, _ = _run(tmp_path, "true", sandbox=False)
    assert removed, "the race was not staged"
    assert finished.exit_code == 0 and finished.error is None, finished.error
