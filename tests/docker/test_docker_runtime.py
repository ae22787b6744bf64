"""docker-batch on a real Docker engine, over real HTTP: what runs, where, with what, and how
it ends."""

import time

import docker
import httpx

from tests.conftest import Server, sh, wait_final, wait_for
from tests.docker.conftest import containers_of, image_task


def _run(client: httpx.Client, body: dict[str, object]) -> tuple[str, dict[str, object]]:
    uuid_ = client.post("/tasks", json=body).json()["uuid"]
    return uuid_, wait_final(client, uuid_)


def test_instances_run_in_the_image_with_constants_and_their_own_variables(
    client: httpx.Client, engine: docker.DockerClient
) -> None:
    uuid_, task = _run(
        client,
        image_task(
            sh(
                'echo "id=$INSTANCE_ID of $INSTANCE_COUNT frame=$FRAME_ID greeting=$GREETING"; '
                'echo "path=$TASK_PATH pwd=$(pwd) host=$(hostname)"; '
                'echo "$INSTANCE_ID" > "$TASK_PATH/mine" && cat /job/mine; echo to-stderr >&2'
            ),
            instanceCount=3,
            constants=[
                {"key": "GREETING", "value": "hello docker"},
                {"key": "DOCKER_HOST", "value": "calor-node"},
            ],
        ),
    )
    assert task["state"] == "Success", task
    for i in range(3):
        out = client.get(f"/tasks/{uuid_}/stdout/{i}").text
        assert f"id={i} of 3 frame={i} greeting=hello docker\n" in out
        assert "path=/job pwd=/job host=calor-node\n" in out
        assert out.endswith(f"{i}\n")
        assert "[calor] host runtime" not in out  # the image was used
        assert client.get(f"/tasks/{uuid_}/stderr/{i}").text == "to-stderr\n"
    assert containers_of(engine, uuid_) == []  # removed once the outcome is recorded


def test_empty_command_runs_the_images_own_cmd(client: httpx.Client) -> None:
    uuid_, task = _run(client, image_task(""))
    assert task["state"] == "Success", task
    assert client.get(f"/tasks/{uuid_}/stdout").text == "0> image default command\n"


def test_workdir_and_user_constants(client: httpx.Client) -> None:
    uuid_, task = _run(
        client,
        image_task(
            sh('echo "uid=$(id -u) pwd=$(pwd)"; echo data > "$TASK_PATH/out" && echo written'),
            constants=[
                {"key": "DOCKER_WORKDIR", "value": "/tmp"},
                {"key": "DOCKER_USER", "value": "65534"},
            ],
        ),
    )
    assert task["state"] == "Success", task
    assert client.get(f"/tasks/{uuid_}/stdout").text == "0> uid=65534 pwd=/tmp\n0> written\n"


def test_exit_codes_and_signals_become_errors(client: httpx.Client) -> None:
    _, task = _run(client, image_task(sh("exit 3")))
    assert task["state"] == "Failure"
    assert task["errors"][0]["message"] == "instance 0: exited with code 3"
    # a child shell: the container's PID 1 ignores signals it has no handler for
    _, task = _run(client, image_task(sh("sh -c 'kill -KILL $$'; exit $?")))
    assert task["state"] == "Failure"
    assert task["errors"][0]["message"] == "instance 0: killed by signal 9 (SIGKILL)"
    _, task = _run(client, image_task("no-such-program"))
    assert task["errors"][0]["message"] == (
        "instance 0: exited with code 127: command not found: no-such-program"
    )


def test_memory_limit_and_out_of_memory(client: httpx.Client) -> None:
    limit = [{"discriminator": "MaximumRamHardwareConstraint", "maximumMemoryMB": 32}]
    _, task = _run(
        client,
        image_task(
            sh("exec dd if=/dev/zero of=/dev/null bs=96M count=1"), hardwareConstraints=limit
        ),
    )
    assert task["state"] == "Failure", task
    message = task["errors"][0]["message"]
    assert message.startswith("instance 0: out of memory: killed at its memory limit of 32 MB"), (
        message
    )
    # under the limit, the peak is measured for real
    _, task = _run(
        client,
        image_task("dd if=/dev/zero of=/dev/null bs=20M count=1", hardwareConstraints=limit),
    )
    assert task["state"] == "Success", task
    assert 20 <= task["completedInstances"][0]["peakMemoryMB"] <= 32


def test_cpu_time_is_measured(client: httpx.Client) -> None:
    _, task = _run(client, image_task(sh("yes | head -c 300000000 > /dev/null")))
    assert task["state"] == "Success", task
    done = task["completedInstances"][0]
    assert done["execTimeSec"] > 0.05
    assert done["wallTimeSec"] > 0


def test_output_streams_while_it_runs_and_progress_is_read(
    client: httpx.Client, engine: docker.DockerClient
) -> None:
    uuid_ = client.post(
        "/tasks",
        json=image_task(
            sh("echo step one; echo 'progress 42%'; sleep 300"),
            constants=[{"key": "DOCKER_PROGRESS1", "value": r"progress (\d+)%"}],
        ),
    ).json()["uuid"]
    fresh = wait_for(
        lambda: client.post(f"/tasks/{uuid_}/stdout").text, message="output before the exit"
    )
    assert fresh.startswith("0> step one\n")
    wait_for(lambda: client.get(f"/tasks/{uuid_}").json()["progress"] == 42.0)
    # the container carries the labels that find it again
    (container,) = containers_of(engine, uuid_)
    assert container.labels["calor.instance"] == "0"
    assert container.labels["calor.attempt"] == "1"
    assert container.labels["calor.user"].isdigit()
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"

    started = time.monotonic()
    assert client.post(f"/tasks/{uuid_}/abort").status_code == 200
    wait_for(lambda: containers_of(engine, uuid_) == [], timeout=2.5, message="container gone")
    task = wait_final(client, uuid_)
    assert time.monotonic() - started < 3
    assert task["state"] == "Cancelled"


def test_network_only_for_profiles_that_allow_it(client: httpx.Client) -> None:
    count = "grep -c : /proc/net/dev"  # interfaces the container sees
    uuid_, task = _run(client, image_task(count))
    assert client.get(f"/tasks/{uuid_}/stdout").text == "0> 1\n"  # loopback only
    body = image_task(count)
    body["profile"] = "docker-network"
    uuid_, task = _run(client, body)
    assert task["state"] == "Success"
    assert int(client.get(f"/tasks/{uuid_}/stdout").text.removeprefix("0> ")) > 1


def test_missing_image_is_a_clear_error_not_a_hang(client: httpx.Client) -> None:
    _, task = _run(client, image_task("true", image="calor-test/no-such-image:1.0"))
    assert task["state"] == "Failure"
    message = task["errors"][0]["message"]
    assert message.startswith(
        "instance 0: image calor-test/no-such-image:1.0 not found or registry unreachable"
    )


def test_profiles_list_the_docker_constants(client: httpx.Client) -> None:
    for name in ("docker-batch", "docker-network"):
        profile = client.get(f"/profiles/{name}").json()
        constants = {c["name"]: c["value"] for c in profile["constants"]}
        assert constants["DOCKER_REPO"] == "library/ubuntu"
        assert constants["DOCKER_TAG"] == "latest"
        for key in ("DOCKER_CMD", "DOCKER_WORKDIR", "DOCKER_USER", "DOCKER_HOST"):
            assert key in constants
        assert {"DOCKER_REGISTRY_LOGIN", "DOCKER_REGISTRY_PASSWORD", "DOCKER_PROGRESS3"} <= set(
            constants
        )


def test_server_says_which_runtime_it_uses(server: Server) -> None:
    assert "runtime: docker (Docker " in server.log()


def test_the_command_runs_without_a_shell_in_the_image(client: httpx.Client) -> None:
    """Issue 12: calor wrapped DOCKER_CMD in `/bin/sh -c`, so an image without a shell could
    not run at all, and `#` started a comment."""
    uuid_, task = _run(
        client,
        image_task(
            "echo no shell in here, node #${INSTANCE_ID} 'of  ${INSTANCE_COUNT}'",
            image="calor-test/noshell",
            instanceCount=2,
        ),
    )
    assert task["state"] == "Success", task
    out = client.get(f"/tasks/{uuid_}/stdout/1").text
    assert out == "no shell in here, node #1 of  2\n"


def test_the_command_follows_the_images_entrypoint(client: httpx.Client) -> None:
    """The hosted documentation's example: ENTRYPOINT ["echo", "Hello"] and DOCKER_CMD
    " World" print "Hello World"."""
    uuid_, task = _run(client, image_task(" World", image="calor-test/entrypoint"))
    assert task["state"] == "Success", task
    assert client.get(f"/tasks/{uuid_}/stdout/0").text == "Hello World\n"
