"""The Docker runtime: DOCKER_CMD runs inside DOCKER_REPO:DOCKER_TAG on a Docker engine.

Each attempt is one container, labelled with this server, the task, the instance and the user,
so that abort, shutdown and crash recovery find it; it is removed once its outcome is known.
"""

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout, RequestException

from calor.domain.ports import InstanceJob
from calor.runner.runtime import Launch, LineAssembler, RunResult, describe_exit

log = logging.getLogger("calor.docker")

TASK_PATH = "/job"
SECRETS_PATH = "/run/secrets"  # where Docker's own secrets go too: read-only files by name
TMP_PATH = "/tmp"
DEFAULT_REPO, DEFAULT_TAG = "library/ubuntu", "latest"
STOP_GRACE_SECONDS = 1  # abort: SIGTERM, then SIGKILL after this (contract: stopped within 2 s)
OOM_FLAG_WAIT = 1.0  # seconds a SIGKILLed container's OOMKilled flag is waited for (no cgroup)

LABEL_SERVER = "calor.server"
LABEL_TASK = "calor.task"
LABEL_INSTANCE = "calor.instance"
LABEL_ATTEMPT = "calor.attempt"
LABEL_USER = "calor.user"

EngineError = (DockerException, RequestException)


class DockerUnavailable(RuntimeError):
    """No Docker engine answers at the configured address."""


def _unreachable(exc: BaseException) -> str | None:
    if isinstance(exc, (RequestsConnectionError, ReadTimeout)):
        return f"the Docker engine cannot be reached ({_explain(exc)})"
    return None


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


class ContainerHandle:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.cancelled = False
        self.interrupted = False
        self.address: str | None = None

    def terminate_tree(self) -> None:
        # in a thread: the caller (an API request or the engine) must not wait for the engine
        threading.Thread(target=self._stop, daemon=True, name="docker-stop").start()

    def _stop(self) -> None:
        with contextlib.suppress(*EngineError):
            self.container.stop(timeout=STOP_GRACE_SECONDS)

    def kill_tree(self) -> None:
        with contextlib.suppress(*EngineError):
            self.container.kill()


CGROUP_ROOT = Path("/sys/fs/cgroup")


class _StatsUsage:
    """CPU time and peak memory from the engine's stats stream, sampled about once a second:
    the fallback when the container's cgroup cannot be read (remote engine, systemd driver).
    A container shorter than a sample is under-counted."""

    def __init__(self, container: Container) -> None:
        self.cpu_ns = 0
        self.peak_bytes = 0
        self._container = container
        threading.Thread(target=self._read, daemon=True, name="docker-stats").start()

    def _read(self) -> None:
        with contextlib.suppress(*EngineError, ValueError):
            for sample in self._container.stats(stream=True, decode=True):
                if not isinstance(sample, dict) or not sample.get("pids_stats"):
                    return  # the container has stopped: the engine sends empty samples
                cpu = sample.get("cpu_stats", {}).get("cpu_usage", {}).get("total_usage") or 0
                memory = sample.get("memory_stats", {})
                peak = memory.get("max_usage") or memory.get("usage") or 0
                self.cpu_ns = max(self.cpu_ns, int(cpu))
                self.peak_bytes = max(self.peak_bytes, int(peak))

    def read(self) -> tuple[float, int]:
        return self.cpu_ns / 1e9, self.peak_bytes // 2**20


class _CgroupUsage:
    """Exact CPU time and peak memory: the container runs under a cgroup of its own attempt
    (``cgroup_parent``), whose hierarchical counters outlive the container's own cgroup."""

    def __init__(self, parent: str) -> None:
        self.parent = parent.strip("/")

    def _read_int(self, *relative: str) -> int | None:
        for rel in relative:
            with contextlib.suppress(OSError, ValueError):
                text = (CGROUP_ROOT / rel).read_text()
                if rel.endswith("cpu.stat"):  # v2: "usage_usec N" in microseconds
                    for line in text.splitlines():
                        key, _, value = line.partition(" ")
                        if key == "usage_usec":
                            return int(value) * 1000
                    continue
                return int(text.split()[0])
        return None

    def read(self) -> tuple[float, int]:
        p = self.parent
        cpu = self._read_int(f"cpuacct/{p}/cpuacct.usage", f"{p}/cpu.stat") or 0
        peak = self._read_int(f"memory/{p}/memory.max_usage_in_bytes", f"{p}/memory.peak") or 0
        return cpu / 1e9, peak // 2**20

    def oom_kills(self) -> int:
        """Processes the kernel killed at the attempt's memory limit (v2 memory.events, v1
        memory.oom_control)."""
        p = self.parent
        for rel in (f"{p}/memory.events", f"memory/{p}/memory.oom_control"):
            with contextlib.suppress(OSError, ValueError):
                for line in (CGROUP_ROOT / rel).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        return 0

    def remove(self) -> None:
        for root in _cgroup_roots():
            _remove_cgroup_tree(root / self.parent)


def _cgroup_roots() -> list[Path]:
    """The v2 root and every v1 controller's root."""
    if not CGROUP_ROOT.is_dir():
        return []
    return [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]


def _remove_cgroup_tree(path: Path) -> None:
    """Remove empty cgroups bottom-up (a container's own cgroup may outlive the container when
    its engine died); a cgroup with processes stays."""
    with contextlib.suppress(OSError):
        for child in path.iterdir():
            if child.is_dir():
                _remove_cgroup_tree(child)
        path.rmdir()


class DockerRuntime:
    name = "docker"

    def __init__(self, client: docker.DockerClient, server_id: str, network: str) -> None:
        self.client = client
        self.server_id = server_id
        self.network = network  # for profiles that allow network; the others get "none"
        info = client.info()
        self.cpus = int(info.get("NCPU") or 1)
        # the attempt's cgroup can be read when the engine is on this machine and places
        # containers with plain cgroup paths
        self.local_cgroups = (
            str(client.api.base_url).startswith("http+docker://")
            and info.get("CgroupDriver") == "cgroupfs"
            and any((CGROUP_ROOT / name).exists() for name in ("cpuacct", "cgroup.controllers"))
        )
        self.description = f"Docker {info.get('ServerVersion', '?')} at {client.api.base_url}"
        # an engine on this machine (unix socket): its containers' addresses are reachable
        self.local_engine = str(client.api.base_url).startswith("http+docker://")
        self._cgroup_base = f"calor-{server_id}"
        self._image_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # containers whose removal failed (the engine was away): removed once it answers again
        self._orphans: dict[str, _CgroupUsage | None] = {}

    @classmethod
    def connect(
        cls, server_id: str, network: str, base_url: str | None = None, timeout: float = 120
    ) -> "DockerRuntime":
        """Connect to DOCKER_HOST (or ``base_url``, or the default socket) and check it answers."""
        try:
            if base_url:
                client = docker.DockerClient(base_url=base_url, timeout=int(timeout))
            else:
                client = docker.from_env(timeout=int(timeout))
            client.ping()
            return cls(client, server_id, network)
        except EngineError as exc:
            raise DockerUnavailable(f"no Docker engine answers: {_explain(exc)}") from exc

    # -- Runtime -------------------------------------------------------------------------

    def paths(self, workdir: Path) -> tuple[str, str]:
        return TASK_PATH, TMP_PATH

    def secrets_path(self, directory: Path) -> str:
        return SECRETS_PATH

    def base_environment(self, task_path: str) -> dict[str, str]:
        return {}  # the image's own PATH, HOME… stay in force

    def give_files(self, job: InstanceJob, workdir: Path) -> None:
        pass  # a container sees its files as it saw those fetched before it started

    def banner(self, job: InstanceJob) -> str | None:
        return None

    def reap_leftovers(self) -> int:
        """Remove every container of this server: at start, none of them has a live runner."""
        try:
            found = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_SERVER}={self.server_id}"}
            )
        except EngineError as exc:
            log.warning("cannot list leftover containers: %s", _explain(exc))
            return 0
        for container in found:
            with contextlib.suppress(*EngineError):
                container.remove(force=True)
        if self.local_cgroups:  # the attempts' cgroups of those containers
            for root in _cgroup_roots():
                _remove_cgroup_tree(root / self._cgroup_base)
        if found:
            log.warning("removed %d containers left by a previous server", len(found))
        return len(found)

    def run(self, launch: Launch) -> RunResult:
        if self._orphans:
            self._remove_orphans()
        job = launch.job
        repo = job.constants.get("DOCKER_REPO", "").strip() or DEFAULT_REPO
        tag = job.constants.get("DOCKER_TAG", "").strip() or DEFAULT_TAG
        image = f"{repo}:{tag}"
        try:
            self._ensure_image(repo, tag, job)
        except EngineError as exc:
            return _failed(
                _unreachable(exc)
                or f"image {image} not found or registry unreachable: {_explain(exc)}"
            )
        cgroup = (
            _CgroupUsage(f"{self._cgroup_base}/{job.row_id}-{job.attempt}")
            if self.local_cgroups
            else None
        )
        try:
            container = self._create(launch, image, cgroup)
        except EngineError as exc:
            return _failed(
                _unreachable(exc) or f"the container could not be created: {_explain(exc)}"
            )
        try:
            result = self._run(container, launch, cgroup)
        except EngineError as exc:
            result = _failed(
                _unreachable(exc)
                or f"the Docker engine failed while the instance ran: {_explain(exc)}"
            )
        self._remove(str(container.id), cgroup)
        if cgroup is not None:
            result.cpu_time_sec, result.peak_memory_mb = cgroup.read()
            cgroup.remove()
        return result

    # -- steps ---------------------------------------------------------------------------

    def _remove(self, container_id: str, cgroup: "_CgroupUsage | None") -> bool:
        try:
            self.client.api.remove_container(container_id, force=True)
        except NotFound:
            pass
        except EngineError:
            with self._guard:
                self._orphans[container_id] = cgroup
            return False
        return True

    def _remove_orphans(self) -> None:
        with self._guard:
            orphans, self._orphans = self._orphans, {}
        for container_id, cgroup in orphans.items():
            if self._remove(container_id, cgroup) and cgroup is not None:
                cgroup.remove()

    def _ensure_image(self, repo: str, tag: str, job: InstanceJob) -> None:
        """Use a local image as it is; pull a missing one once, however many instances wait."""
        ref = f"{repo}:{tag}"
        with self._guard:
            lock = self._image_locks.setdefault(ref, threading.Lock())
        with lock:
            try:
                self.client.images.get(ref)
                return
            except ImageNotFound:
                pass
            login = job.constants.get("DOCKER_REGISTRY_LOGIN", "")
            password = job.constants.get("DOCKER_REGISTRY_PASSWORD", "")
            auth = {"username": login, "password": password} if login else None
            self.client.images.pull(repo, tag=tag, auth_config=auth)

    def _create(self, launch: Launch, image: str, cgroup: "_CgroupUsage | None") -> Container:
        job = launch.job
        constants = job.constants
        user = constants.get("DOCKER_USER", "").strip()
        if user:  # another user than the engine's must be able to write its TASK_PATH
            launch.workdir.chmod(0o777)
        kwargs: dict[str, Any] = {
            "image": image,
            # empty DOCKER_CMD: the image's ENTRYPOINT and CMD run, as on the hosted service
            "command": launch.argv or None,
            "environment": launch.env,
            "working_dir": constants.get("DOCKER_WORKDIR", "").strip() or TASK_PATH,
            "volumes": {str(launch.workdir): {"bind": TASK_PATH, "mode": "rw"}},
            "network_mode": self.network if job.network else "none",
            "labels": {
                LABEL_SERVER: self.server_id,
                LABEL_TASK: job.task_uuid,
                LABEL_INSTANCE: str(job.instance_id),
                LABEL_ATTEMPT: str(job.attempt),
                LABEL_USER: str(job.user_id),
            },
            # a pool slot's share of its node is a real CPU quota
            "nano_cpus": int(min(job.cores, self.cpus) * 1_000_000_000),
            # the engine's default capabilities and no more; a setuid program in the image
            # cannot raise them either; only the working directory and the secrets are
            # mounted (never the engine's socket, nor anything of the server's)
            "privileged": False,
            "cap_add": [],
            "security_opt": ["no-new-privileges:true"],
            "detach": True,
        }
        if launch.secrets_dir is not None:
            kwargs["volumes"][str(launch.secrets_dir)] = {"bind": SECRETS_PATH, "mode": "ro"}
        if user:
            kwargs["user"] = user
        if cgroup is not None:
            kwargs["cgroup_parent"] = "/" + cgroup.parent
        hostname = constants.get("DOCKER_HOST", "").strip()
        if hostname:
            kwargs["hostname"] = hostname
        if job.memory_limit_mb:
            # no swap beyond the limit, so that going over it is an out-of-memory kill
            kwargs["mem_limit"] = kwargs["memswap_limit"] = f"{job.memory_limit_mb}m"
        return self.client.containers.create(**kwargs)

    @staticmethod
    def _oom_killed(
        container: Container,
        state: dict[str, Any],
        code: int,
        launch: Launch,
        cgroup: "_CgroupUsage | None",
    ) -> bool:
        """The engine learns of an OOM kill from a cgroup event that can land after the
        exit: the attempt's cgroup counter (v2) says it at once; otherwise a SIGKILLed
        container with a memory limit gets a moment for the engine's flag to arrive."""
        if state.get("OOMKilled"):
            return True
        if code != 137 or not launch.job.memory_limit_mb:
            return False
        if cgroup is not None and cgroup.oom_kills() > 0:
            return True  # (cgroup v1 counts a kill in the container's own cgroup only)
        deadline = time.monotonic() + OOM_FLAG_WAIT
        while time.monotonic() < deadline:
            time.sleep(0.05)
            container.reload()
            if container.attrs.get("State", {}).get("OOMKilled"):
                return True
        return False

    def _run(
        self, container: Container, launch: Launch, cgroup: "_CgroupUsage | None"
    ) -> RunResult:
        # attached before the start: not a byte of output is missed
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
        try:
            container.start()
        except EngineError as exc:  # e.g. the command's program is not in the image
            if launch.argv and "executable file not found" in _explain(exc):
                # what a shell would have said: no shell runs the command (domain/command.py)
                return RunResult(
                    127, 0.0, 0, f"exited with code 127: command not found: {launch.argv[0]}"
                )
            return _failed(f"the container could not start: {_explain(exc)}")
        handle = ContainerHandle(container)
        if launch.job.network:
            handle.address = self._address(container)
        launch.on_start(handle, 0, 0.0)  # found by label at recovery, not by pid
        usage = _StatsUsage(container) if cgroup is None else None
        out, err = LineAssembler(launch.stdout), LineAssembler(launch.stderr)
        for stdout, stderr in stream:
            if stdout:
                out.feed(stdout)
            if stderr:
                err.feed(stderr)
        out.close()
        err.close()
        status: dict[str, Any] = dict(container.wait())
        container.reload()
        state = container.attrs.get("State", {})
        code = int(status.get("StatusCode", state.get("ExitCode", -1)))
        error = describe_exit(code)
        if self._oom_killed(container, state, code, launch, cgroup):
            oom = f"out of memory: killed at its memory limit of {launch.job.memory_limit_mb} MB"
            if code != 0:
                error = f"{oom} (exit code {code})"
            else:  # a child was killed, the command went on and succeeded: say so, no more
                launch.stderr(f"[calor] a process of this instance was {oom}\n")
        elif code != 0 and (state.get("Error") or (status.get("Error") or {}).get("Message")):
            error = f"{error}: {state.get('Error') or status['Error']['Message']}"
        cpu, peak = usage.read() if usage else (0.0, 0)
        return RunResult(exit_code=code, cpu_time_sec=cpu, peak_memory_mb=peak, error=error)

    def _address(self, container: Container) -> str | None:
        """Where this host reaches a started container: its own address on a bridge network,
        or loopback when it shares the host's network. A remote engine's containers are on
        another machine: not reachable from here."""
        if not self.local_engine:
            return None
        if self.network == "host":
            return "127.0.0.1"
        with contextlib.suppress(*EngineError):
            container.reload()
        networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
        found = (networks.get(self.network) or {}).get("IPAddress")
        return str(found) if found else None


def _failed(error: str) -> RunResult:
    return RunResult(exit_code=None, cpu_time_sec=0.0, peak_memory_mb=0, error=error)
