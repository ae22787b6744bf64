"""The ``calor`` client commands against a real server: configuration, every command group,
``--json`` shapes, exit codes, errors, NO_COLOR and the live progress bar (issue 7)."""

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from calor.cli.client import resolve
from calor.cli.main import app
from tests.conftest import Server, make_server, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("cli"), "sqlite").start()
    yield srv
    srv.stop()


class Cli:
    """Runs ``calor …`` in this process, as a user of the server (CALOR_URL, CALOR_TOKEN)."""

    def __init__(self, server: Server, token: str, config: Path) -> None:
        self.env = {
            "CALOR_URL": server.url,
            "CALOR_TOKEN": token,
            "CALOR_CONFIG": str(config),
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, **env: str) -> Any:
        result = self.runner.invoke(app, list(args), env={**self.env, **env})
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    return Cli(server, server.new_user(), tmp_path / "config.json")


def test_configuration_sources(tmp_path: Path, server: Server) -> None:
    path = tmp_path / "c.json"
    file_env = {"CALOR_CONFIG": str(path)}
    assert resolve(None, None, file_env).url == "http://127.0.0.1:8000"
    token = server.new_user()
    runner = CliRunner()
    result = runner.invoke(
        app, ["login", "--url", server.url, "--token", token], env={"CALOR_CONFIG": str(path)}
    )
    assert result.exit_code == 0, result.stderr
    assert "logged in" in result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve(None, None, file_env) == resolve(server.url, token, {})
    sdk = {**file_env, "QARNOT_CLUSTER_URL": "http://sdk:1", "QARNOT_CLIENT_TOKEN": "sdk"}
    assert (resolve(None, None, sdk).url, resolve(None, None, sdk).token) == ("http://sdk:1", "sdk")
    ours = {**sdk, "CALOR_URL": "http://calor:2", "CALOR_TOKEN": "calor"}
    assert resolve(None, None, ours).token == "calor"
    assert resolve("http://flag:3/", "flag", ours).url == "http://flag:3"
    # the saved login is used by the next commands
    result = runner.invoke(app, ["info", "--json"], env={"CALOR_CONFIG": str(path)})
    assert result.exit_code == 0 and json.loads(result.stdout)["taskCount"] == 0
    # a bad login saves nothing
    result = runner.invoke(
        app, ["login", "--url", server.url, "--token", "wrong"], env={"CALOR_CONFIG": str(path)}
    )
    assert result.exit_code == 1 and "refused the token" in result.stderr
    assert json.loads(path.read_text())["token"] == token


def test_missing_token_and_unreachable_server_say_so(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {
        "CALOR_CONFIG": str(tmp_path / "none.json"),
        "CALOR_TOKEN": None,
        "QARNOT_CLIENT_TOKEN": None,
    }
    result = runner.invoke(app, ["task", "list"], env=env)
    assert result.exit_code == 1 and "no API token" in result.stderr
    result = runner.invoke(
        app, ["task", "list", "--url", "http://127.0.0.1:9", "--token", "x"], env=env
    )
    assert result.exit_code == 1
    assert "cannot reach the calor server at http://127.0.0.1:9" in result.stderr


def test_task_commands_and_json_shapes(cli: Cli) -> None:
    created = cli.json(
        "task",
        "create",
        "hello",
        "-c",
        "echo hi ${INSTANCE_ID} ${WHO}",
        "-n",
        "2",
        "-e",
        "WHO=cli",
        "-t",
        "a",
        "-t",
        "b",
    )
    uuid = created["uuid"]
    assert set(created) == {"uuid"}
    assert cli.json("task", "wait", uuid) == [{"uuid": uuid, "state": "Success"}]
    info = cli.json("task", "info", uuid)
    assert info["uuid"] == uuid and info["tags"] == ["a", "b"] and info["instanceCount"] == 2
    assert cli("task", "stdout", uuid, "--instance", "1").stdout.splitlines()[-1] == "hi 1 cli"
    whole = cli("task", "stdout", uuid).stdout
    assert "0> hi 0 cli" in whole and "1> hi 1 cli" in whole
    assert "hi" in cli("task", "stdout", uuid, "--fresh").stdout
    assert cli("task", "stdout", uuid, "--fresh").stdout == ""
    assert cli("task", "stderr", uuid).stdout == ""
    other = cli.json("task", "create", "other", "-c", "true", "-t", "b")["uuid"]
    cli("task", "wait", other)
    text = cli("task", "info", uuid).stdout
    assert "hello" in text and "Success" in text

    # list: filters, pages, shapes
    def listed(*args: str) -> list[str]:
        return [t["uuid"] for t in cli.json("task", "list", *args)]

    assert listed() == [uuid, other]
    assert listed("--newest") == [other, uuid]
    assert listed("--tag", "a") == [uuid]
    assert listed("--tag", "a", "--tag", "b") == [uuid, other]
    assert listed("--tag", "a", "--tag", "b", "--all-tags") == [uuid]
    assert listed("--name", "oth") == [other]
    assert listed("--state", "Success", "--state", "Failure") == [uuid, other]
    assert listed("--state", "Cancelled") == []
    assert listed("--created-after", "2999-01-01") == []
    assert listed("--created-before", "2999-01-01T00:00") == [uuid, other]
    assert listed("--page-size", "1") == [uuid]
    assert listed("--page-size", "1", "--all") == [uuid, other]
    table = cli("task", "list", "--page-size", "1").stdout
    assert "hello" in table and "other" not in table
    assert "more tasks" in cli("task", "list", "--page-size", "1").stderr
    # clone, delete
    copy = cli.json("task", "clone", uuid, "--name", "again")["uuid"]
    assert cli.json("task", "info", copy)["name"] == "again"
    cli("task", "delete", uuid, copy)
    result = cli("task", "info", uuid, code=1)
    assert f"task '{uuid}' not found" in result.stderr


def test_wait_exit_codes(cli: Cli) -> None:
    failing = cli.json("task", "create", "bad", "-c", "exit 3", "--wait", code=1)
    assert failing[0]["state"] == "Failure"
    slow = cli("task", "create", "slow", "-c", "sleep 59.123").stdout.strip()
    result = cli("task", "wait", slow, "--timeout", "0.5", code=3)
    assert "timed out" in result.stderr
    cli("task", "abort", slow)
    assert cli.json("task", "wait", slow, code=2) == [{"uuid": slow, "state": "Cancelled"}]
    ok = cli.json("task", "create", "ok", "-c", "true")["uuid"]
    # the worst outcome wins
    cli("task", "wait", ok, slow, code=2)


def test_bad_input_prints_the_message(cli: Cli) -> None:
    result = cli("task", "create", "x", "-e", "NOEQUALS", code=2)
    assert "KEY=VALUE" in result.stderr
    result = cli("task", "create", "x", "--profile", "nope", code=1)
    assert "profile 'nope' does not exist" in result.stderr and "(400)" in result.stderr
    result = cli("task", "list", "--created-after", "yesterday", code=2)
    assert "--created-after" in result.stderr
    result = cli("task", "clone", "x", "--instances", "some", code=2)
    assert "--instances" in result.stderr
    assert cli.json("task", "list") == []


def test_pool_job_and_bucket_commands(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("A")
    (source / "sub" / "b.txt").write_text("B")
    cli("bucket", "create", "inputs")
    assert "2 uploaded, 0 unchanged" in cli("bucket", "sync", str(source), "inputs").stderr
    (source / "a.txt").write_text("A2")
    assert "1 uploaded, 1 unchanged" in cli("bucket", "sync", str(source), "inputs").stderr
    assert [b["name"] for b in cli.json("bucket", "list")] == ["inputs"]
    assert [o["key"] for o in cli.json("bucket", "list", "inputs")] == ["a.txt", "sub/b.txt"]
    cli("bucket", "put", "inputs", str(source / "a.txt"), "--prefix", "copy/")
    cli("bucket", "get", "inputs", "copy/a.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_text() == "A2"
    cli("bucket", "get", "inputs", "sub/", str(tmp_path / "tree"), "--recursive")
    assert (tmp_path / "tree" / "b.txt").read_text() == "B"

    pool = cli.json(
        "pool",
        "create",
        "warm",
        "--slots",
        "1",
        "--prepare",
        "sh -c 'echo ready > ready.txt'",
        "-r",
        "inputs",
    )["uuid"]
    wait_for(
        lambda: cli.json("pool", "info", pool)["state"] == "FullyExecuting",
        timeout=20,
        message="the pool",
    )
    assert [p["uuid"] for p in cli.json("pool", "list")] == [pool]
    job = cli.json("job", "create", "pipeline", "--dependencies")["uuid"]
    first = cli.json(
        "task", "create", "first", "-c", "cat ready.txt sub/b.txt", "--pool", pool, "--job", job
    )["uuid"]
    second = cli.json(
        "task",
        "create",
        "second",
        "-c",
        "echo two",
        "--job",
        job,
        "--depends-on",
        first,
        "--result",
        "outputs",
    )["uuid"]
    assert cli("task", "wait", first, second).exit_code == 0
    assert cli("task", "stdout", first, "-i", "0").stdout.splitlines()[-2:] == ["ready", "B"]
    shown = cli.json("job", "info", job)
    assert [t["uuid"] for t in shown["tasks"]] == [first, second]
    assert cli("job", "tasks", job).stdout.split() == [first, second]
    assert "ready" not in cli("pool", "stdout", pool).stdout  # the preparation printed nothing
    assert [j["uuid"] for j in cli.json("job", "list")] == [job]
    cli("job", "terminate", job)
    assert cli.json("job", "info", job)["state"] == "Completed"
    cli("pool", "close", pool)
    wait_for(
        lambda: cli.json("pool", "info", pool)["state"] == "Closed",
        timeout=20,
        message="the pool to close",
    )
    cli("pool", "delete", pool)
    cli("job", "delete", job, "--force")
    assert cli.json("job", "list") == []
    result = cli("bucket", "delete", "inputs", code=1)
    assert "BucketNotEmpty" in result.stderr
    cli("bucket", "delete", "inputs", "--force")
    assert cli.json("bucket", "list") == []
    info = cli.json("info")
    assert info["taskCount"] == 0 and info["poolCount"] == 0


def _run(server: Server, token: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(
        [sys.executable, "-m", "calor", *args],
        env={**base, "CALOR_URL": server.url, "CALOR_TOKEN": token, "COLUMNS": "120", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_colours_follow_no_color_and_the_bar_shows_progress(server: Server) -> None:
    token = server.new_user()
    httpx.post(
        server.url + "/tasks",
        headers={"Authorization": token},
        json={
            "name": "c",
            "instanceCount": 1,
            "constants": [{"key": "DOCKER_CMD", "value": "true"}],
        },
    ).raise_for_status()
    coloured = _run(server, token, "task", "list", FORCE_COLOR="1")
    assert coloured.returncode == 0 and "\x1b[" in coloured.stdout
    plain = _run(server, token, "task", "list", FORCE_COLOR="1", NO_COLOR="1")
    assert plain.returncode == 0 and "\x1b[3" not in plain.stdout, plain.stdout
    # on a terminal, `task create --wait` draws a bar: instances done / running / failed
    waited = _run(
        server,
        token,
        "task",
        "create",
        "bar",
        "-c",
        "sleep 1",
        "-n",
        "2",
        "--wait",
        FORCE_COLOR="1",
    )
    assert waited.returncode == 0, waited.stderr
    assert "2/2" in waited.stderr and "2 done, 0 running, 0 failed" in waited.stderr
    assert "Success" in waited.stdout


def test_follow_prints_output_until_the_task_ends(cli: Cli) -> None:
    uuid = cli.json(
        "task", "create", "ticks", "-c", "sh -c 'for i in 1 2 3; do echo tick $i; sleep 0.4; done'"
    )["uuid"]
    out = cli("task", "stdout", uuid, "--follow", "--instance", "0").stdout
    assert [line for line in out.splitlines() if line.startswith("tick")] == [
        "tick 1",
        "tick 2",
        "tick 3",
    ]
    assert cli.json("task", "info", uuid)["state"] == "Success"
