"""The worker side of remote execution: what a Dask task runs on a worker machine.

``run_instance`` runs one attempt with the same InstanceRunner as the local executor (host or
Docker runtime on the worker, resources fetched and results uploaded through the S3 gateway),
and sends its events to the server through an EventChannel, which also brings back the server's
orders (abort, refresh, snapshot). The attempt's Dask task ends only once the server has its
outcome, so a finished task never leaves an outcome undelivered.
"""

import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from calor.domain.ports import EventSink, Finished, InstanceEvent, InstanceJob
from calor.executors.background import in_background
from calor.executors.wire import Orders, encode_event
from calor.runner.files import TaskFiles
from calor.runner.instance import InstanceRunner
from calor.runner.rapl import RaplMeter
from calor.runner.runtime import Handle, Runtime

log = logging.getLogger("calor.worker")

POST_EVERY = 0.2  # seconds between two posts while instances run and no event is new
# a busy worker's events other than outcomes wait until this long after the previous post
LINGER = 0.05
MAX_BACKOFF = 2.0
MAX_CLIENTS = 64  # S3 clients kept by a worker process (one per user's credentials)
DELIVERY_DEADLINE = 24 * 3600.0  # how long an outcome waits for a server that is down


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker needs to know, sent with each attempt."""

    server_url: str  # where events go (the API's URL as workers reach it)
    token: str  # the executor token the server checks on /executor/events
    storage_url: str  # the S3 gateway as workers reach it
    runtime: str = "auto"  # docker | host | auto, chosen on the worker
    docker_network: str = "bridge"
    sandbox: bool | None = None
    max_output_bytes: int = 64 * 1024 * 1024
    server_id: str = ""


@dataclass(frozen=True)
class StorageCredentials:
    access_key: str
    secret: str


class EventChannel:
    """Events out, orders in, over HTTP; nothing is dropped while the server is away."""

    def __init__(self, url: str, token: str, on_orders: Callable[[Orders], None]) -> None:
        self.url = url.rstrip("/") + "/executor/events"
        self.token = token
        self.on_orders = on_orders
        self.worker_id = uuid.uuid4().hex[:12]
        self._pending: list[dict[str, Any]] = []
        self._running: dict[int, str] = {}  # row -> the attempt's Dask key
        self._delivered: set[str] = set()  # keys whose Finished the server has
        self._cond = threading.Condition()
        self._outcome = False  # a Finished is pending: it goes at once
        self._last_post = 0.0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="calor-channel")
        self._thread.start()

    def track(self, row_id: int, key: str) -> None:
        with self._cond:
            self._running[row_id] = key

    def sink(self, key: str) -> EventSink:
        """Where an attempt's events go: tagged with its key, so that the server can tell
        them from those of an older attempt of the same instance."""

        def emit(event: InstanceEvent) -> None:
            with self._cond:
                self._pending.append({**encode_event(event), "key": key})
                self._outcome |= isinstance(event, Finished)
                self._cond.notify_all()

        return emit

    def wait_delivered(self, key: str, timeout: float = DELIVERY_DEADLINE) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self._delivered:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._delivered.discard(key)
            return True

    def _loop(self) -> None:
        backoff = POST_EVERY
        with httpx.Client(timeout=30) as client:
            while True:
                with self._cond:
                    # new events go out at once (those emitted during a post, with the next
                    # one); with none, running rows are still posted every POST_EVERY, which
                    # is how the server's orders arrive
                    if not self._pending:
                        self._cond.wait(POST_EVERY if self._running else 5.0)
                    # except for an outcome, events less than LINGER after the previous post
                    # wait for company: a busy worker makes about one post per short instance
                    # (Started, output, Finished) instead of one per event, and an idle one
                    # still posts at once
                    hold = self._last_post + LINGER
                    while self._pending and not self._outcome:
                        left = hold - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    self._outcome = False
                    batch = list(self._pending[:5000])
                    running = sorted([row, key] for row, key in self._running.items())
                if not batch and not running:
                    continue
                try:
                    answer = client.post(
                        self.url,
                        json={"worker": self.worker_id, "events": batch, "running": running},
                        headers={"Authorization": f"Executor {self.token}"},
                    )
                    answer.raise_for_status()
                    orders = Orders.from_json(answer.json())
                except Exception as exc:  # the server restarts, or the network hiccups
                    log.warning("events not delivered yet (%s); retrying", exc)
                    time.sleep(backoff)
                    backoff = min(MAX_BACKOFF, backoff * 2)
                    continue
                backoff = POST_EVERY
                self._last_post = time.monotonic()
                finished = {e["key"] for e in batch if e["type"] == "finished"}
                with self._cond:
                    del self._pending[: len(batch)]
                    for row, key in list(self._running.items()):
                        if key in finished:
                            del self._running[row]
                    self._delivered |= finished
                    self._cond.notify_all()
                try:
                    self.on_orders(orders)
                except Exception:
                    log.exception("orders from the server could not be carried out")


SECRETS_DEADLINE = 60.0  # seconds an attempt waits for a server that does not answer


@dataclass(frozen=True)
class ServerSecrets:
    """An attempt's secrets, asked of the server when it starts (POST /executor/secrets with
    the executor token): the server answers only for the attempt it runs as ``key``."""

    server_url: str
    token: str
    key: str

    def __call__(self, job: InstanceJob) -> dict[str, str]:
        url = self.server_url.rstrip("/") + "/executor/secrets"
        deadline = time.monotonic() + SECRETS_DEADLINE
        backoff = POST_EVERY
        with httpx.Client(timeout=30) as client:
            while True:
                try:
                    answer = client.post(
                        url,
                        json={"row": job.row_id, "key": self.key},
                        headers={"Authorization": f"Executor {self.token}"},
                    )
                except httpx.HTTPError as exc:
                    problem = f"the server did not answer ({exc})"
                else:
                    if answer.status_code == 200:
                        secrets = answer.json().get("secrets")
                        if not isinstance(secrets, dict):
                            raise RuntimeError("the server's answer has no secrets")
                        return {str(k): str(v) for k, v in secrets.items()}
                    problem = f"the server answered {answer.status_code}: {_message(answer)}"
                    if answer.status_code < 500:
                        raise RuntimeError(problem)
                if time.monotonic() + backoff > deadline:
                    raise RuntimeError(problem)
                time.sleep(backoff)  # the server restarts: the attempt waits a little
                backoff = min(MAX_BACKOFF, backoff * 2)


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("message"))
    except ValueError:
        return answer.text[:200]


@dataclass
class _Attempt:
    runner: InstanceRunner
    emit: EventSink
    handle: Handle | None = None
    abort_requested: bool = False


@dataclass
class WorkerState:
    """One per worker process: the runtime, the channel, the attempts running here."""

    setup: WorkerSetup
    runtime: Runtime
    root: Path
    attempts: dict[int, _Attempt] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    channel: EventChannel | None = None
    # S3 clients by credentials, reused by later attempts: creating one costs milliseconds of
    # CPU, and boto3 does not create clients safely from several threads at once
    clients: dict[StorageCredentials, Any] = field(default_factory=dict)
    clients_lock: threading.Lock = field(default_factory=threading.Lock)

    def objects(self, credentials: StorageCredentials) -> Any:
        from calor.storage.s3_access import S3Objects

        with self.clients_lock:
            found = self.clients.get(credentials)
            if found is None:
                if len(self.clients) >= MAX_CLIENTS:
                    self.clients.clear()
                found = S3Objects(
                    self.setup.storage_url, credentials.access_key, credentials.secret
                )
                self.clients[credentials] = found
            return found

    def orders(self, orders: Orders) -> None:
        with self.lock:
            aborts = [(r, self.attempts.get(r)) for r in orders.abort]
            refresh = [(r, self.attempts.get(r)) for r in orders.refresh]
            snaps = [(r, sid, t, self.attempts.get(r)) for r, sid, t in orders.snapshot]
        for _row, attempt in aborts:
            if attempt is None or attempt.abort_requested:
                continue
            attempt.abort_requested = True
            if attempt.handle is not None:
                attempt.handle.cancelled = True
                attempt.handle.terminate_tree()
        for row, found in refresh:
            if found is not None:
                in_background(f"refresh-{row}", found.runner.refresh, row)
        assert self.channel is not None
        for row, sid, target, attempt in snaps:
            if attempt is not None:
                in_background(
                    f"snapshot-{row}", attempt.runner.snapshot, row, sid, target, attempt.emit
                )

    def run(self, job: InstanceJob, credentials: StorageCredentials, key: str) -> str:
        assert self.channel is not None
        channel = self.channel
        objects = self.objects(credentials)
        runner = InstanceRunner(
            self.runtime,
            self.root,
            max_output_bytes=self.setup.max_output_bytes,
            files=TaskFiles(objects),
            secrets=ServerSecrets(self.setup.server_url, self.setup.token, key),
            energy=RaplMeter.detect(),  # this worker's machine's counters
        )
        emit = channel.sink(key)
        attempt = _Attempt(runner, emit)
        with self.lock:
            self.attempts[job.row_id] = attempt
        channel.track(job.row_id, key)

        def on_process(handle: Handle) -> None:
            with self.lock:
                attempt.handle = handle
                abort = attempt.abort_requested
            if abort:
                handle.cancelled = True
                handle.terminate_tree()

        try:
            runner.run(job, emit, on_process)
        except Exception as exc:  # run() reports its own errors; this is the last resort
            emit(Finished(job.row_id, _utcnow(), None, error=f"worker error: {exc}"))
        finally:
            with self.lock:
                self.attempts.pop(job.row_id, None)
        delivered = channel.wait_delivered(key)
        return "delivered" if delivered else "undelivered"


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(tzinfo=None)


_states: dict[WorkerSetup, WorkerState] = {}
_states_lock = threading.Lock()


def worker_state(setup: WorkerSetup) -> WorkerState:
    with _states_lock:
        state = _states.get(setup)
        if state is None:
            state = _build(setup)
            _states[setup] = state
        return state


def _build(setup: WorkerSetup) -> WorkerState:
    root = Path(
        os.environ.get("CALOR_WORKER_DIR")
        or Path(tempfile.gettempdir()) / f"calor-worker-{os.getpid()}"
    )
    root.mkdir(parents=True, exist_ok=True)
    runtime = _runtime(setup, root)
    state = WorkerState(setup, runtime, root)
    state.channel = EventChannel(setup.server_url, setup.token, state.orders)
    return state


def _runtime(setup: WorkerSetup, root: Path) -> Runtime:
    from calor.runner.host import HostRuntime

    if setup.runtime != "host":
        from calor.runner.docker import DockerRuntime, DockerUnavailable

        try:
            return DockerRuntime.connect(setup.server_id or "worker", setup.docker_network)
        except DockerUnavailable as exc:
            if setup.runtime == "docker":
                raise
            log.warning("%s; instances run with the host runtime", exc)
    return HostRuntime(hidden_dirs=[root], sandbox=setup.sandbox)


def run_instance(
    job: InstanceJob, setup: WorkerSetup, credentials: StorageCredentials, key: str
) -> str:
    """The Dask task of one attempt (``key`` is its Dask key)."""
    return worker_state(setup).run(job, credentials, key)
