"""Secrets without a server: key rules, grants, prefix ranges, sealing, the instance's files,
and the runner reading its secrets at each attempt's start."""

import stat
from pathlib import Path

import pytest

from calor.domain.errors import BadRequest
from calor.domain.ports import Finished, InstanceEvent, InstanceJob, Output
from calor.domain.secrets import SecretsGrant, check_key, check_prefix, parse_grant, prefix_end
from calor.runner.host import HostRuntime
from calor.runner.instance import InstanceRunner
from calor.runner.secrets_dir import write_secrets
from calor.services.sealing import SealError, SecretBox


@pytest.mark.parametrize(
    ("raw", "key"), [("a", "a"), ("/a/b/", "a/b"), ("a/..b/c.d", "a/..b/c.d"), ("é/ü", "é/ü")]
)
def test_good_keys(raw: str, key: str) -> None:
    assert check_key(raw) == key


@pytest.mark.parametrize(
    "raw", ["", "/", "a//b", "./a", "a/.", "a/../b", "..", "a\nb", "a\x00", "x" * 256, "é" * 600]
)
def test_bad_keys(raw: str) -> None:
    with pytest.raises(BadRequest):
        check_key(raw)


def test_prefixes_are_plain_string_prefixes() -> None:
    assert check_prefix("/app/") == "app/"
    assert check_prefix("") == ""
    with pytest.raises(BadRequest):
        check_prefix("a//")
    grant = parse_grant({"BySecret": [{"Key": "/x/"}], "byPrefix": [{"prefix": "app/"}]})
    assert grant == SecretsGrant(("x",), ("app/",))
    assert grant.covers("x") and grant.covers("app/db") and not grant.covers("apple")
    assert parse_grant(None) == SecretsGrant() and not parse_grant({})


def test_prefix_end_bounds_every_key_of_the_prefix() -> None:
    assert prefix_end("a/") == "a0"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"
    for key in ("a/", "a/b", "a/\U0010ffff"):
        end = prefix_end("a/")
        assert end is not None and "a/" <= key < end


def test_sealed_values_open_only_for_their_user_and_key() -> None:
    box = SecretBox(b"server-key")
    sealed = box.seal(1, "k", "value")
    assert b"value" not in sealed
    assert box.open(1, "k", sealed) == "value"
    assert SecretBox(b"server-key").open(1, "k", sealed) == "value"  # derived, not stored
    assert box.seal(1, "k", "value") != sealed  # a fresh nonce each time
    for user, key, other in ((2, "k", box), (1, "k2", box), (1, "k", SecretBox(b"other"))):
        with pytest.raises(SealError):
            other.open(user, key, sealed)


def test_files_modes(tmp_path: Path) -> None:
    where = tmp_path / "secrets"
    write_secrets(where, {"a/b/c": "1", "d": "2"})
    assert (where / "a" / "b" / "c").read_text() == "1"
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE((where / "a" / "b").stat().st_mode) == 0o700
    assert stat.S_IMODE((where / "d").stat().st_mode) == 0o400
    write_secrets(where, {"e": "3"}, shared=True)  # replaces what was there
    assert sorted(p.name for p in where.iterdir()) == ["e"]
    assert stat.S_IMODE(where.stat().st_mode) == 0o555
    assert stat.S_IMODE((where / "e").stat().st_mode) == 0o444
    with pytest.raises(BadRequest):
        write_secrets(tmp_path / "bad", {"../escape": "x"})
    assert not (tmp_path / "escape").exists()


def test_each_attempt_reads_the_secrets_at_its_start(tmp_path: Path) -> None:
    current = {"db/password": "first"}
    asked: list[int] = []

    def source(job: InstanceJob) -> dict[str, str]:
        asked.append(job.attempt)
        return dict(current)

    runner = InstanceRunner(HostRuntime([], sandbox=False), tmp_path / "work", secrets=source)
    seen: list[str] = []
    for attempt, value in ((1, "first"), (2, "second")):
        current["db/password"] = value
        events: list[InstanceEvent] = []
        job = InstanceJob(
            row_id=7,
            task_uuid="t",
            instance_id=0,
            instance_count=1,
            attempt=attempt,
            profile="docker-batch",
            constants={"DOCKER_CMD": "cat ${CALOR_SECRETS_DIR}/db/password"},
            cores=1,
            secrets=True,
        )
        runner.run(job, events.append, lambda _h: None)
        finished = [e for e in events if isinstance(e, Finished)]
        assert finished and finished[0].exit_code == 0, events
        seen.append("".join(e.data for e in events if isinstance(e, Output) and e.stream == 1))
    assert asked == [1, 2]
    assert seen[0].endswith("first") and seen[1].endswith("second")
    assert not (tmp_path / "work" / "t").exists()  # files and directories gone


def test_a_failing_source_fails_the_attempt_without_running_it(tmp_path: Path) -> None:
    def source(job: InstanceJob) -> dict[str, str]:
        raise RuntimeError("the server answered 404: not running")

    runner = InstanceRunner(HostRuntime([], sandbox=False), tmp_path / "work", secrets=source)
    events: list[InstanceEvent] = []
    job = InstanceJob(7, "t", 0, 1, 1, "docker-batch", {"DOCKER_CMD": "touch ran"}, 1, secrets=True)
    runner.run(job, events.append, lambda _h: None)
    finished = [e for e in events if isinstance(e, Finished)]
    assert finished[0].error is not None and "secrets could not be read" in finished[0].error
    assert not any(isinstance(e, Output) for e in events)
