"""The host runtime: DOCKER_CMD runs with ``sh -c`` on this machine, in a bubblewrap sandbox
when ``bwrap`` is installed. The image is not used, and the task's output says so.
"""

import codecs
import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
KILL_GRACE_SECONDS = 1.0


@dataclass
class ProcessResult:
    exit_code: int | None
    cpu_time_sec: float
    peak_memory_mb: int
    error: str | None


class RunningProcess:
    """A started instance process (its own session, so its whole tree can be signalled)."""

    def __init__(self, popen: "subprocess.Popen[bytes]") -> None:
        self.popen = popen
        self.pid = popen.pid
        try:
            self.proc_start = psutil.Process(self.pid).create_time()
        except psutil.Error:
            self.proc_start = 0.0
        self.cancelled = False
        self.interrupted = False
        self._killed = threading.Event()

    def terminate_tree(self) -> None:
        """SIGTERM the process group, then SIGKILL it if it is still there after a grace."""
        _signal_group(self.pid, signal.SIGTERM)
        timer = threading.Timer(KILL_GRACE_SECONDS, self.kill_tree)
        timer.daemon = True
        timer.start()

    def kill_tree(self) -> None:
        _signal_group(self.pid, signal.SIGKILL)
        self._killed.set()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def reap_leftover(pid: int | None, proc_start: float | None) -> bool:
    """Kill what a previous server left running, if that pid is still the same process."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc_start and abs(proc.create_time() - proc_start) > 0.05:
            return False  # the pid was reused by an unrelated process
    except psutil.Error:
        return False
    _signal_group(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        proc.kill()
    return True


class HostRuntime:
    def __init__(self, hidden_dirs: list[Path], sandbox: bool | None = None) -> None:
        self.bwrap = shutil.which("bwrap") if sandbox is not False else None
        if sandbox and not self.bwrap:
            raise RuntimeError("sandbox requested but bwrap is not installed")
        self.hidden_dirs = hidden_dirs

    @property
    def description(self) -> str:
        return "in a bubblewrap sandbox" if self.bwrap else "without a sandbox (bwrap not found)"

    def tmp_path(self, workdir: Path) -> Path:
        return Path("/tmp") if self.bwrap else workdir / ".tmp"

    def argv(self, command: str, workdir: Path, network: bool) -> list[str]:
        if not self.bwrap:
            return ["/bin/sh", "-c", command]
        argv = [self.bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc"]
        if not network:
            argv.append("--unshare-net")
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        # calor's own data (database, other instances' files) is out of sight; bwrap creates
        # the working directory's mount point inside the empty tmpfs
        for hidden in self.hidden_dirs:
            if hidden.exists():
                argv += ["--tmpfs", str(hidden)]
        argv += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        return [*argv, "--", "/bin/sh", "-c", command]

    def start(
        self, command: str, workdir: Path, env: dict[str, str], network: bool
    ) -> RunningProcess:
        popen = subprocess.Popen(
            self.argv(command, workdir, network),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        return RunningProcess(popen)

    def wait(self, proc: RunningProcess) -> ProcessResult:
        """Wait for the process, measure it, and make sure none of its tree survives it."""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.popen.returncode = os.waitstatus_to_exitcode(status)
        _signal_group(proc.pid, signal.SIGKILL)
        code = proc.popen.returncode
        cpu = usage.ru_utime + usage.ru_stime
        peak = int(usage.ru_maxrss / 1024)
        error = None
        if code < 0:
            name = signal.Signals(-code).name
            error = f"killed by signal {-code} ({name})"
            code = 128 - code
        elif code == 127:
            error = "exited with code 127: command not found"
        elif code != 0:
            error = f"exited with code {code}"
        return ProcessResult(exit_code=code, cpu_time_sec=cpu, peak_memory_mb=peak, error=error)


LineSink = Callable[[str], None]


def pump(stream: IO[bytes], emit: LineSink, on_line: Callable[[str], None] | None) -> None:
    """Forward a pipe as whole lines (a partial line waits for its end, or for EOF)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    fd = stream.fileno()
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        text = pending + decoder.decode(data)
        cut = text.rfind("\n")
        if cut < 0:
            pending = text
            if len(pending) > 65536:  # a huge line without newline: pass it on anyway
                emit(pending)
                pending = ""
            continue
        complete, pending = text[: cut + 1], text[cut + 1 :]
        emit(complete)
        if on_line is not None:
            for line in complete.splitlines():
                on_line(line)
    pending += decoder.decode(b"", final=True)
    if pending:
        emit(pending)
        if on_line is not None:
            on_line(pending)
    stream.close()


def progress_parser(patterns: list[str]) -> Callable[[str], float | None]:
    """DOCKER_PROGRESS1..3: the first group of the first matching regex is the progress."""
    compiled = []
    for p in patterns:
        with contextlib.suppress(re.error):
            compiled.append(re.compile(p))

    def parse(line: str) -> float | None:
        for rx in compiled:
            m = rx.search(line)
            if m:
                text = m.group(1) if m.groups() else m.group(0)
                try:
                    return float(text.replace(",", "."))
                except (TypeError, ValueError):
                    continue
        return None

    return parse
