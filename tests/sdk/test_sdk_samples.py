"""What each official Python sample (qarnot/qarnot-samples, ``make samples`` runs them
verbatim) exercises, written as our own tests so CI guards it without the samples' checkout.

Each test drives the SDK the way its sample does: a ``Connection`` read from a ``samples.conf``
whose URL ends in '/', the sample's DOCKER_CMD quoting, its polling loop (``wait(5)``,
``all(wait(2))``, ``run()``), fresh stdout/stderr, buckets and ``delete(purge_...)``. The
Docker-only halves (an image's ENTRYPOINT, DOCKER_REPO/DOCKER_TAG choosing the image) are in
tests/docker/test_docker_sdk.py.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from qarnot.connection import Connection
from qarnot.exceptions import MissingTaskException
from qarnot.task import Task

from tests.conftest import Server, make_server
from tests.sdk.helpers import FINAL, stop_unfinished, unique

LOREM = "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # the samples' flows are about the SDK and the runtime; the stores are covered elsewhere
    srv = make_server(tmp_path_factory.mktemp("samples"), "sqlite").start()
    yield srv
    srv.stop()


@pytest.fixture
def conn(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Connection]:
    """``qarnot.Connection('samples.conf')`` in the sample's own directory, as the samples do."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples.conf").write_text(
        f"[cluster]\nurl={server.url}/\n\n[client]\n# a comment, as in the example\n"
        f"token={server.new_user()}\n"
    )
    connection = Connection("samples.conf")
    yield connection
    stop_unfinished(connection)
    connection._http.close()


def _follow(task: Task, timeout: float = 5) -> tuple[list[str], str, str]:
    """The samples' loop: print the state when it changes, ``done = task.wait(5)``, then
    write the fresh stdout and stderr; returns the states seen and everything written."""
    states: list[str] = []
    out = err = ""
    done = False
    deadline = time.monotonic() + 90
    while not done:
        assert time.monotonic() < deadline, f"the task never finished: states {states}"
        state = task.state
        if not states or state != states[-1]:
            states.append(state)
        done = task.wait(timeout)
        out += task.fresh_stdout()
        err += task.fresh_stderr()
    states.append(task.state)
    return states, out, err


def test_sample0_run_then_stdout(conn: Connection) -> None:
    task = conn.create_task("sample0_helloworld", "docker-batch", 1)
    task.constants["DOCKER_CMD"] = "echo hello world!"
    task.run()
    assert task.state == "Success"
    # no shell added: '!' is an ordinary character, and the words come back joined by one space
    assert "hello world!" in task.stdout()


def test_sample1_sh_c_with_qrank_qsize_followed_by_wait_5(conn: Connection) -> None:
    task = conn.create_task("sample1-helloword-advanced", "docker-batch", 2)
    task.constants["DOCKER_CMD"] = 'sh -c "echo Hello world from $QRANK/$QSIZE!"'
    task.submit()
    states, out, _err = _follow(task, 5)
    assert states[-1] == "Success", task.errors
    assert set(states) <= {"Submitted", "PartiallyDispatched", "FullyDispatched"} | {
        "PartiallyExecuting",
        "FullyExecuting",
        "DownloadingResults",
        "UploadingResults",
        *FINAL,
    }
    # fresh_stdout gave each line once, over the polls, with its instance's prefix
    lines = sorted(line for line in out.splitlines() if "Hello" in line)
    assert lines == ["0> Hello world from 0/2!", "1> Hello world from 1/2!"]
    uuid = task.uuid
    task.delete(purge_resources=True, purge_results=True)
    with pytest.raises(MissingTaskException):
        conn.retrieve_task(uuid)


def test_sample2_files_in_a_bucket_upper_cased_into_results(conn: Connection) -> None:
    Path("input").mkdir()
    Path("input/lorem.txt").write_text(LOREM)
    task = conn.create_task("sample2-files", "docker-batch", 1)
    input_bucket = conn.create_bucket(unique("sample2-files-input-resource"))
    input_bucket.add_file("input/lorem.txt")  # lands as 'lorem.txt', which the command reads
    task.resources.append(input_bucket)
    output_bucket = conn.create_bucket(unique("sample2-files-output"))
    task.results = output_bucket
    task.constants["DOCKER_CMD"] = 'sh -c "cat lorem.txt | tr [:lower:] [:upper:] > LOREM.TXT"'
    task.submit()
    states, _out, err = _follow(task, 5)
    assert states[-1] == "Success", (task.errors, err)

    task.download_results("output")
    assert Path("output/LOREM.TXT").read_text() == LOREM.upper()
    assert not Path("output/lorem.txt").exists(), "a resource came back as a result"

    names = {input_bucket.uuid, output_bucket.uuid}
    task.delete(purge_resources=True, purge_results=True)
    assert names.isdisjoint(b.uuid for b in conn.buckets())
    # the SDK documents botocore's ClientError for a bucket that is gone; S3 says 404
    with pytest.raises(ClientError) as gone:
        conn.retrieve_bucket(output_bucket.uuid)
    assert gone.value.response["Error"]["Code"] == "404"


def test_sample3_several_tasks_polled_with_all_wait_2(conn: Connection) -> None:
    """Seven tasks submitted one after the other, polled together with ``all(wait(2))``; the
    host runtime runs no image, so DOCKER_REPO/DOCKER_TAG only have to be accepted here."""
    versions = [
        "library/centos:5",
        "library/ubuntu:16.04",
        "opensuse/leap:42.3",
        "archlinux:latest",
    ]
    tasks = {v: conn.create_task(unique("sample3-dockerhub"), "docker-batch", 1) for v in versions}
    for version, task in tasks.items():
        repo, tag = version.split(":")
        task.constants["DOCKER_REPO"] = repo
        task.constants["DOCKER_TAG"] = tag
        task.constants["DOCKER_CMD"] = 'sh -c "echo $DOCKER_REPO:$DOCKER_TAG | head -n 1"'
        task.submit()

    deadline = time.monotonic() + 90
    done = False
    while not done:
        assert time.monotonic() < deadline, [t.state for t in tasks.values()]
        done = all([task.wait(2) for task in tasks.values()])
    for version, task in tasks.items():
        assert task.state == "Success", task.errors
        assert f"0> {version}\n" in task.stdout()
    for task in tasks.values():
        task.delete(purge_resources=True, purge_results=True)
    assert conn.tasks() == []
