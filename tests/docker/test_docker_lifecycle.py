"""Containers across the server's life: crash, shutdown, runtime choice, and an engine that
goes away."""

import signal
import subprocess
import sys
from pathlib import Path

import docker
import httpx
import pytest

from tests.conftest import (
    Server,
    docker_host,
    make_server,
    sh,
    wait_final,
    wait_for,
)
from tests.docker.conftest import containers_of, docker_env, image_task

REPO_ROOT = Path(__file__).resolve().parents[2]


def _client(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": server.new_user()}, timeout=30
    )


def _running(c: httpx.Client, uuid_: str) -> bool:
    return bool(c.get(f"/tasks/{uuid_}").json()["state"] == "FullyExecuting")


def test_sigkill_mid_run_leaks_no_container_and_retries(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    server = make_server(tmp_path, "sqlite", **docker_env()).start()
    try:
        with _client(server) as c:
            retried = c.post(
                "/tasks",
                json=image_task(
                    sh(
                        'if [ "$CALOR_ATTEMPT" = 1 ]; then sleep 300; fi; '
                        "echo attempt $CALOR_ATTEMPT"
                    ),
                    retrySettings={"maxPerInstanceRetries": 1},
                ),
            ).json()["uuid"]
            doomed = c.post("/tasks", json=image_task("sleep 300")).json()["uuid"]
            wait_for(lambda: _running(c, retried) and _running(c, doomed))
            assert len(containers_of(engine, retried)) == 1
            server.stop(signal.SIGKILL)
            # the containers outlive the server...
            assert len(containers_of(engine, doomed)) == 1
            server.restart()
            # ...and are gone once it is back, before it serves a request
            assert containers_of(engine, retried) == containers_of(engine, doomed) == []
            task = wait_final(c, retried)
            assert task["state"] == "Success", task
            assert c.get(f"/tasks/{retried}/stdout").text == "0> attempt 2\n"
            task = wait_final(c, doomed)
            assert task["state"] == "Failure"
            assert (
                "the calor server stopped while this instance was running"
                in (task["errors"][0]["message"])
            )
    finally:
        server.stop()


def test_sigterm_stops_containers_and_requeues_them(
    tmp_path: Path, engine: docker.DockerClient
) -> None:
    server = make_server(tmp_path, "sqlite", **docker_env(), CALOR_DRAIN_SECONDS="0").start()
    try:
        with _client(server) as c:
            uuid_ = c.post("/tasks", json=image_task("sleep 300")).json()["uuid"]
            wait_for(lambda: _running(c, uuid_))
            (first,) = containers_of(engine, uuid_)
            # uvicorn re-raises SIGTERM once its graceful shutdown (our drain included) is done
            assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
            assert containers_of(engine, uuid_) == []
            server.restart()
            # the interrupted attempt runs again, in a new container, without using a retry
            wait_for(lambda: _running(c, uuid_) and containers_of(engine, uuid_))
            (second,) = containers_of(engine, uuid_)
            assert second.id != first.id
            assert second.labels["calor.attempt"] == "1"
            c.post(f"/tasks/{uuid_}/abort")
            assert wait_final(c, uuid_)["state"] == "Cancelled"
    finally:
        server.stop()


def test_auto_runtime_picks_the_engine(tmp_path: Path) -> None:
    env = {**docker_env(), "CALOR_RUNTIME": "auto"}
    server = make_server(tmp_path, "sqlite", **env).start()
    try:
        assert "runtime: docker" in server.log()
        with _client(server) as c:
            uuid_ = c.post("/tasks", json=image_task("echo in a container")).json()["uuid"]
            assert wait_final(c, uuid_)["state"] == "Success"
            assert c.get(f"/tasks/{uuid_}/stdout").text == "0> in a container\n"
    finally:
        server.stop()


def _serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calor", "serve", "--data-dir", str(tmp_path / "d"), "--port", "0"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_runtime_without_engine_refuses_to_start(tmp_path: Path) -> None:
    result = _serve(
        tmp_path, CALOR_RUNTIME="docker", DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock"
    )
    assert result.returncode == 1
    assert "error: no Docker engine answers" in result.stderr


def test_auto_runtime_without_engine_uses_the_host(tmp_path: Path) -> None:
    server = make_server(
        tmp_path,
        "sqlite",
        CALOR_RUNTIME="auto",
        DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock",
        CALOR_LOG_LEVEL="warning",
    ).start()
    try:
        assert "runtime: host" in server.log()
        assert "no Docker engine answers" in server.log()
    finally:
        server.stop()


@pytest.fixture
def private_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    docker_host()  # fails in CI, skips on a laptop, when there is no engine to test with
    work = tmp_path_factory.mktemp("engine")
    host = subprocess.run(
        [str(REPO_ROOT / ".ci/docker.sh"), "start", str(work)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.strip()
    return work, host


def test_engine_gone_fails_instances_with_a_clear_error_and_the_server_serves_on(
    tmp_path: Path, private_engine: tuple[Path, str]
) -> None:
    work, host = private_engine
    ctl = str(REPO_ROOT / ".ci/docker.sh")
    server = make_server(tmp_path, "sqlite", **{**docker_env(), "DOCKER_HOST": host}).start()
    try:
        with _client(server) as c:
            subprocess.run([ctl, "stop", str(work)], check=True, timeout=60)
            uuid_ = c.post("/tasks", json=image_task("echo never")).json()["uuid"]
            task = wait_final(c, uuid_)
            assert task["state"] == "Failure"
            assert "the Docker engine cannot be reached" in task["errors"][0]["message"]
            assert c.get("/tasks/summaries").status_code == 200

            subprocess.run([ctl, "start", str(work)], check=True, capture_output=True, timeout=120)
            uuid_ = c.post("/tasks", json=image_task("echo back")).json()["uuid"]
            assert wait_final(c, uuid_)["state"] == "Success"
    finally:
        server.stop()
        subprocess.run([ctl, "stop", str(work)], timeout=60)


def test_engine_lost_mid_run_fails_the_instance_and_its_container_is_removed_later(
    tmp_path: Path, private_engine: tuple[Path, str]
) -> None:
    work, host = private_engine
    ctl = str(REPO_ROOT / ".ci/docker.sh")
    server = make_server(tmp_path, "sqlite", **{**docker_env(), "DOCKER_HOST": host}).start()
    try:
        engine = docker.DockerClient(base_url=host)
        with _client(server) as c:
            uuid_ = c.post("/tasks", json=image_task(sh("echo up; sleep 300"))).json()["uuid"]
            wait_for(lambda: c.get(f"/tasks/{uuid_}/stdout").text == "0> up\n")
            (container,) = containers_of(engine, uuid_)
            # the engine dies; its containers stay behind until an engine starts again
            subprocess.run(["kill", "-9", (work / "docker.pid").read_text().strip()], check=True)
            task = wait_final(c, uuid_)
            assert task["state"] == "Failure"
            assert "the Docker engine cannot be reached" in task["errors"][0]["message"]
            assert c.get(f"/tasks/{uuid_}").status_code == 200  # the server serves on

            subprocess.run([ctl, "start", str(work)], check=True, capture_output=True, timeout=120)
            assert [c.id for c in containers_of(engine, uuid_)] == [container.id]
            # the next instance the server runs first removes what it could not remove before
            again = c.post("/tasks", json=image_task("echo back")).json()["uuid"]
            assert wait_final(c, again)["state"] == "Success"
            assert containers_of(engine, uuid_) == []
    finally:
        server.stop()
        subprocess.run([ctl, "stop", str(work)], timeout=60)
