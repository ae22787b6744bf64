"""The official SDK's docker-batch flow, unchanged, on calor's Docker runtime."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from qarnot.connection import Connection

from tests.conftest import Server, sh, wait_for
from tests.docker.conftest import IMAGE, containers_of
from tests.sdk.helpers import docker_task, stop_unfinished, wait_done, wait_executing


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    stop_unfinished(connection)
    connection._http.close()


def test_sdk_hello_world_in_an_image(conn: Connection) -> None:
    task = docker_task(
        conn, sh("echo Hello World from $INSTANCE_ID in $(cat /etc/passwd | wc -l)"), 2
    )
    task.constants["DOCKER_REPO"] = IMAGE
    task.constants["DOCKER_TAG"] = "latest"
    task.submit()
    assert wait_done(task) == "Success"
    out = {line for line in task.stdout().splitlines() if line}
    assert out == {"0> Hello World from 0 in 2", "1> Hello World from 1 in 2"}
    assert task.completed_instances[0].peak_memory_mb >= 0


def test_sdk_fresh_stdout_and_abort(conn: Connection, engine: docker.DockerClient) -> None:
    task = docker_task(conn, sh("echo started; sleep 300"))
    task.constants["DOCKER_REPO"] = IMAGE
    task.submit()
    wait_executing(task)
    assert wait_for(task.fresh_stdout) == "0> started\n"
    task.abort()
    assert wait_done(task) == "Cancelled"
    assert containers_of(engine, task.uuid) == []


def test_sdk_resources_in_and_results_out_of_a_container(conn: Connection, tmp_path: Path) -> None:
    """Resources land in the mounted TASK_PATH; what the container writes there comes back."""
    resources = conn.create_bucket(f"in-{uuid.uuid4().hex[:10]}")
    resources.add_string("from a bucket\n", "data/input.txt")
    results = conn.create_bucket(f"out-{uuid.uuid4().hex[:10]}")
    task = docker_task(conn, sh('cp data/input.txt "$TASK_PATH/copy.txt" && pwd > where.txt'))
    task.constants["DOCKER_REPO"] = IMAGE
    task.resources = [resources]
    task.results = results
    task.submit()
    assert wait_done(task) == "Success", task.errors
    out = tmp_path / "out"
    task.download_results(str(out))
    assert (out / "copy.txt").read_text() == "from a bucket\n"
    assert (out / "where.txt").read_text() == "/job\n"
    assert not (out / "data").exists()


def test_sdk_sample3_docker_repo_and_tag_choose_the_image(conn: Connection) -> None:
    """The official sample3: one task per image, DOCKER_REPO and DOCKER_TAG from
    ``version.split(':')``, a pipe inside the user's own ``sh -c "..."``, polled with
    ``all(wait(2))``. Only the :issue tag of the test image has an /etc/issue."""
    tags = {"issue": "0> Calor Test Linux 1.0 \\n \\l\n", "latest": ""}
    tasks = {tag: docker_task(conn, 'sh -c "cat /etc/issue | head -n 1"') for tag in tags}
    for tag, task in tasks.items():
        repo, tag_ = f"{IMAGE}:{tag}".split(":")
        task.constants["DOCKER_REPO"] = repo
        task.constants["DOCKER_TAG"] = tag_
        task.submit()
    wait_for(lambda: all([task.wait(2) for task in tasks.values()]), timeout=60, interval=0)
    assert tasks["issue"].state == "Success", tasks["issue"].errors
    assert tasks["issue"].stdout() == tags["issue"]
    # busybox's cat fails on the missing file; head still exits 0, so the pipe succeeds
    assert tasks["latest"].state == "Success"
    assert "No such file" in tasks["latest"].stderr()


def test_sdk_sample4_arguments_for_the_images_entrypoint(conn: Connection, tmp_path: Path) -> None:
    """The official sample4: DOCKER_CMD is only arguments (``-i media/clip.mp4 ...``) for the
    image's ENTRYPOINT, and its inputs go in with ``bucket[key] = path``, keys with folders."""
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"\x00not really a video")
    bucket = conn.create_bucket(f"sample4-{uuid.uuid4().hex[:10]}")
    bucket["media/clip.mp4"] = str(media / "clip.mp4")
    assert [f.key for f in bucket.list_files()] == ["media/clip.mp4"]
    task = docker_task(conn, "-i media/clip.mp4 -t 1 -vf scale=64:-1 small.gif")
    task.constants["DOCKER_REPO"] = "calor-test/entrypoint"
    task.constants["DOCKER_TAG"] = "latest"
    task.resources.append(bucket)
    task.submit()
    assert wait_done(task) == "Success", task.errors
    assert task.stdout() == "0> Hello -i media/clip.mp4 -t 1 -vf scale=64:-1 small.gif\n"
