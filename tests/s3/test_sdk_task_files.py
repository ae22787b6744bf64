"""The official SDK's files-in / files-out flow, unchanged: resources and results buckets,
task.run(output_dir=...), snapshots, update_resources, and purging buckets on delete."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from qarnot.connection import Connection
from qarnot.snapshot import SuccessStatus

from tests.conftest import Server, sh, wait_for
from tests.s3.conftest import unique_bucket
from tests.sdk.helpers import wait_done


@pytest.fixture
def conn(server: Server) -> Iterator[Connection]:
    connection = Connection(client_token=server.new_user(), cluster_url=server.url)
    yield connection
    connection._http.close()


def _bucket_names(conn: Connection) -> list[str]:
    return [b.uuid for b in conn.buckets()]


def test_sdk_run_with_resources_and_results(conn: Connection, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "dir").mkdir(parents=True)
    (src / "numbers.txt").write_text("3\n1\n2\n")
    (src / "dir" / "extra.txt").write_text("extra\n")
    resources = conn.create_bucket(unique_bucket("in"))
    resources.add_directory(str(src))
    results = conn.create_bucket(unique_bucket("out"))

    task = conn.create_task("sdk-files", "docker-batch", 2)
    task.constants["DOCKER_CMD"] = sh(
        "sort numbers.txt > sorted-$INSTANCE_ID.txt && cat dir/extra.txt >> sorted-$INSTANCE_ID.txt"
    )
    task.resources = [resources]
    task.results = results
    out = tmp_path / "out"
    task.run(output_dir=str(out))  # submit, wait (the SDK naps up to 10 s), download

    assert task.state == "Success"
    for i in (0, 1):
        assert (out / f"sorted-{i}.txt").read_text() == "1\n2\n3\nextra\n"
    # inputs are not results
    assert not (out / "numbers.txt").exists() and not (out / "dir").exists()

    task.delete(purge_resources=True, purge_results=True)
    names = _bucket_names(conn)
    assert resources.uuid not in names and results.uuid not in names


def test_sdk_snapshots_and_update_resources(conn: Connection, tmp_path: Path) -> None:
    resources = conn.create_bucket(unique_bucket("in"))
    resources.add_string("seed", "seed.txt")
    results = conn.create_bucket(unique_bucket("out"))
    task = conn.create_task("sdk-snap", "docker-batch", 1)
    # writes a file, then waits (up to 60 s) for "go", which arrives through update_resources
    task.constants["DOCKER_CMD"] = sh(
        "echo work > partial.txt; i=0; "
        "while [ ! -e go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
        "echo done > final.txt"
    )
    task.resources = [resources]
    task.results = results
    task.snapshot(1)  # periodic, posted by the SDK right after submit
    task.submit()

    snap_dir = tmp_path / "snap"

    def snapshot_arrived() -> bool:
        task.update(True)
        task.download_results(str(snap_dir))
        return (snap_dir / "partial.txt").exists()

    wait_for(snapshot_arrived, timeout=30, interval=0.2, message="a periodic snapshot")
    assert (snap_dir / "partial.txt").read_text() == "work\n"

    snapshot_id = task.instant(bucket_prefix="instant/")
    assert snapshot_id
    wait_for(
        lambda: isinstance(task.snapshot_status(snapshot_id)._status, SuccessStatus),
        message="the instant snapshot",
    )
    assert "instant/partial.txt" in [f.key for f in results.list_files()]

    resources.add_string("", "go")
    task.update_resources()
    assert wait_done(task) == "Success"
    final = tmp_path / "final"
    task.download_results(str(final))
    assert (final / "final.txt").read_text() == "done\n"
