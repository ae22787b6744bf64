"""The host runtime: DOCKER_CMD's words run as a process on this machine (no shell is added,
as in a container), in a bubblewrap sandbox when ``bwrap`` is installed. The image is not
used, and the task's output says so.
"""

import contextlib
import math
import os
import resource
import selectors
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import IO

import psutil

from calor.domain.ports import InstanceJob
from calor.runner.runtime import (
    Launch,
    LineAssembler,
    RunResult,
    TextSink,
    describe_exit,
)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# without a sandbox, a server run as root runs each user's instances as uid (and gid)
# UID_BASE + the user's id: unprivileged, and other than any other user's
UID_BASE = 1_500_000_000
KILL_GRACE_SECONDS = 1.0
# how long the pipes are read once the process has exited (a process that left its group
# may hold them open)
PIPE_DRAIN_SECONDS = 5.0


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
        self.address: str | None = None
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
    name = "host"

    def __init__(
        self, hidden_dirs: list[Path], sandbox: bool | None = None, user_uids: bool = False
    ) -> None:
        self.bwrap = shutil.which("bwrap") if sandbox is not False else None
        if sandbox and not self.bwrap:
            raise RuntimeError("sandbox requested but bwrap is not installed")
        self.hidden_dirs = hidden_dirs
        # ``user_uids``: without a sandbox, a root server gives each user a uid of their own
        # (the server's work root must then be a directory every uid can traverse)
        self.uid_base = UID_BASE if user_uids and not self.bwrap and os.geteuid() == 0 else None

    @property
    def description(self) -> str:
        if self.bwrap:
            return "in a bubblewrap sandbox"
        if self.uid_base is not None:
            return (
                "without a sandbox (bwrap not found); each user's instances run as an "
                "unprivileged uid of their own"
            )
        return "without a sandbox (bwrap not found)"

    def uid_of(self, job: InstanceJob) -> int | None:
        return None if self.uid_base is None else self.uid_base + job.user_id

    def tmp_path(self, workdir: Path) -> Path:
        # without a sandbox, scratch space sits beside TASK_PATH so it is never a result
        return Path("/tmp") if self.bwrap else workdir.parent / "tmp"

    def argv(
        self, command: list[str], workdir: Path, network: bool, secrets: Path | None = None
    ) -> list[str]:
        if not self.bwrap:
            return list(command)
        # --as-pid-1: the command is the namespace's init, as in a container, and bwrap waits
        # for it itself; with bwrap's own init in between, bwrap exits on the init's exit code
        # without reaping it, and the command's CPU time never reaches our wait4
        argv = [self.bwrap, "--die-with-parent", "--unshare-pid", "--as-pid-1", "--unshare-ipc"]
        if not network:
            argv.append("--unshare-net")
        argv += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        # calor's own data (database, other instances' files) is out of sight; bwrap creates
        # the working directory's mount point inside the empty tmpfs
        for hidden in self.hidden_dirs:
            if hidden.exists():
                argv += ["--tmpfs", str(hidden)]
        argv += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
        if secrets is not None:
            argv += ["--ro-bind", str(secrets), str(secrets)]
        return [*argv, "--", *command]

    def start(
        self,
        command: list[str],
        workdir: Path,
        env: dict[str, str],
        network: bool,
        secrets: Path | None = None,
        uid: int | None = None,
    ) -> RunningProcess:
        popen = subprocess.Popen(
            self.argv(command, workdir, network, secrets),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            user=uid,
            group=uid,
            extra_groups=[] if uid is not None else None,
        )
        proc = RunningProcess(popen)
        # with network, the instance shares this host's (bwrap keeps it); without, the
        # sandbox gives it a network of its own that nothing reaches
        if network:
            proc.address = "127.0.0.1"
        return proc

    def paths(self, workdir: Path) -> tuple[str, str]:
        return str(workdir), str(self.tmp_path(workdir))

    def secrets_path(self, directory: Path) -> str:
        # bound read-only at its own path in the sandbox; without one, its modes (0700 and
        # 0400) are all that protects it
        return str(directory)

    def base_environment(self, task_path: str) -> dict[str, str]:
        return {"PATH": SAFE_PATH, "HOME": task_path, "LANG": "C.UTF-8"}

    def give_files(self, job: InstanceJob, workdir: Path) -> None:
        uid = self.uid_of(job)
        if uid is not None:
            _chown_tree(workdir, uid)

    def banner(self, job: InstanceJob) -> str | None:
        image = f"{job.constants.get('DOCKER_REPO', '')}:{job.constants.get('DOCKER_TAG', '')}"
        return (
            f"[calor] host runtime: image {image} was not used; DOCKER_CMD runs on this "
            f"machine {self.description}\n"
        )

    def reap_leftovers(self) -> int:
        return 0  # host processes are found by pid from the store (engine.recover)

    def run(self, launch: Launch) -> RunResult:
        command = launch.argv
        if not command:
            return RunResult(
                None,
                0.0,
                0,
                "DOCKER_CMD is empty: the host runtime cannot run the image's own entrypoint; "
                "set DOCKER_CMD to the command to run",
            )
        Path(self.tmp_path(launch.workdir)).mkdir(parents=True, exist_ok=True)
        uid = self.uid_of(launch.job)
        if uid is not None:
            _hand_over(launch.workdir, launch.secrets_dir, uid)
        # found before the start: bubblewrap reports a missing program as its own exit 1
        if _program(command[0], launch.env.get("PATH", ""), launch.workdir) is None:
            return RunResult(127, 0.0, 0, f"exited with code 127: command not found: {command[0]}")
        try:
            proc = self.start(
                command, launch.workdir, launch.env, launch.job.network, launch.secrets_dir, uid
            )
        except FileNotFoundError:
            return RunResult(127, 0.0, 0, f"exited with code 127: command not found: {command[0]}")
        except PermissionError:
            return RunResult(
                126, 0.0, 0, f"exited with code 126: command not executable: {command[0]}"
            )
        except OSError as exc:
            return RunResult(
                None, 0.0, 0, f"runtime missing: cannot start the host runtime ({exc})"
            )
        launch.on_start(proc, proc.pid, proc.proc_start)
        return self.wait(proc, launch.stdout, launch.stderr)

    def wait(self, proc: RunningProcess, stdout: TextSink, stderr: TextSink) -> RunResult:
        """Forward the output until the process ends, measure it, and make sure none of its
        tree survives it."""
        assert proc.popen.stdout is not None and proc.popen.stderr is not None
        status, usage = _communicate(
            proc.pid,
            {proc.popen.stdout: LineAssembler(stdout), proc.popen.stderr: LineAssembler(stderr)},
        )
        proc.popen.returncode = os.waitstatus_to_exitcode(status)
        code = proc.popen.returncode
        if code < 0:  # the shell's convention, so both runtimes report signals alike
            code = 128 - code
        return RunResult(
            exit_code=code,
            cpu_time_sec=usage.ru_utime + usage.ru_stime,
            peak_memory_mb=int(usage.ru_maxrss / 1024),
            error=describe_exit(code),
        )


def _hand_over(workdir: Path, secrets: Path | None, uid: int) -> None:
    """The instance's own files become its uid's: its directory (TASK_PATH and the scratch
    space beside it: ``<task>/<instance>``, owner only) and its secrets. The task's directory
    can be crossed, not listed, by other uids."""
    own = workdir.parent
    for tree in (own, secrets):
        if tree is not None and tree.exists():
            _chown_tree(tree, uid)
    own.chmod(0o700)
    own.parent.chmod(0o711)


def _chown_tree(tree: Path, uid: int) -> None:
    os.chown(tree, uid, uid, follow_symlinks=False)
    for root, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def _program(name: str, path: str, workdir: Path) -> str | None:
    """Where the instance's argv[0] is, as exec would look for it (None: nowhere)."""
    if "/" in name:
        found = workdir / name  # an absolute name stays absolute
        return str(found) if os.access(found, os.X_OK) and found.is_file() else None
    return shutil.which(name, path=path)


Exit = tuple[int, resource.struct_rusage]  # wait status and usage


def _communicate(pid: int, pipes: dict[IO[bytes], LineAssembler]) -> Exit:
    """Read the pipes and wait for the process on the calling thread: one ``select`` over the
    pipes and the process's pidfd (a reader thread per pipe cost more than the spawn of a
    short command). Once the process has exited its group is killed, so what it left
    behind cannot hold the pipes open; what they still carry is read for a few seconds."""
    selector = selectors.DefaultSelector()
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:  # an old kernel: the exit is polled
        pidfd = None
    exited: Exit | None = None
    try:
        for stream in pipes:
            selector.register(stream, selectors.EVENT_READ, stream)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ)
        deadline = math.inf
        while selector.get_map() and time.monotonic() < deadline:
            if exited is not None:
                timeout: float | None = deadline - time.monotonic()
            else:
                timeout = None if pidfd is not None else 0.1
            for key, _ in selector.select(timeout):
                stream = key.data
                if stream is None:  # the pidfd: the process has exited
                    selector.unregister(key.fileobj)
                    exited = _wait(pid)
                    continue
                data = os.read(stream.fileno(), 65536)
                if data:
                    pipes[stream].feed(data)
                else:
                    selector.unregister(stream)
            if exited is None and pidfd is None:
                exited = _poll(pid)
            if exited is not None and deadline == math.inf:
                _signal_group(pid, signal.SIGKILL)
                deadline = time.monotonic() + PIPE_DRAIN_SECONDS
        if exited is None:  # the pipes closed first (without a pidfd)
            exited = _wait(pid)
            _signal_group(pid, signal.SIGKILL)
        return exited
    finally:
        selector.close()
        if pidfd is not None:
            os.close(pidfd)
        for stream, lines in pipes.items():
            lines.close()
            stream.close()


def _wait(pid: int) -> Exit:
    _, status, usage = os.wait4(pid, 0)
    return status, usage


def _poll(pid: int) -> Exit | None:
    waited, status, usage = os.wait4(pid, os.WNOHANG)
    return (status, usage) if waited else None
