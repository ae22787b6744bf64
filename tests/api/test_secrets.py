"""Secrets over raw HTTP (contract §2.5): shapes, bad keys and bodies, limits, isolation, the
grants of tasks and pools at submit, and values that never show in task or pool JSON."""

import http.client
import json
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api.helpers import assert_error, task_count, unique
from tests.conftest import Server, task_body, wait_final, wait_for


def _raw(server: Server, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    """A request whose path goes out byte for byte (httpx would resolve ``..`` itself)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": token, "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        return httpx.Response(answer.status, content=answer.read())
    finally:
        conn.close()


def _keys(client: httpx.Client, prefix: str = "") -> list[str]:
    r = client.get(f"/secrets-manager/search/{prefix}")
    assert r.status_code == 200, r.text
    keys = r.json()["keys"]
    assert isinstance(keys, list)
    return list(keys)


def test_round_trip_shapes(client: httpx.Client) -> None:
    r = client.put("/secrets-manager/data/app/db/password", json={"Value": "hunter2"})
    assert r.status_code == 200, r.text
    assert client.get("/secrets-manager/data/app/db/password").json() == {"value": "hunter2"}
    assert client.patch("/secrets-manager/data/app/db/password", json={"Value": "é\n"}).is_success
    assert client.get("/secrets-manager/data/app/db/password").json() == {"value": "é\n"}
    # the lower-case key is read as well, and "" is a value like any other
    assert client.put("/secrets-manager/data/app/token", json={"value": ""}).is_success
    assert client.get("/secrets-manager/data/app/token").json() == {"value": ""}
    assert client.put("/secrets-manager/data/top", json={"Value": "t"}).is_success
    assert client.put("/secrets-manager/data/app/db/user", json={"Value": "u"}).is_success
    assert client.put("/secrets-manager/data/app/db/x/y", json={"Value": "y"}).is_success
    # one level deep, relative to the prefix, folders end in /, in key order
    assert _keys(client) == ["app/", "top"]
    assert _keys(client, "app") == ["db/", "token"]
    assert _keys(client, "app/db") == ["password", "user", "x/"]
    assert _keys(client, "/app/db/") == ["password", "user", "x/"]
    assert _keys(client, "app/db/x") == ["y"]
    assert _keys(client, "nothing/here") == []
    assert client.get("/secrets-manager/search").json() == {"keys": ["app/", "top"]}
    assert client.delete("/secrets-manager/data/app/db/x/y").is_success
    assert _keys(client, "app/db") == ["password", "user"]


def test_missing_and_conflicting_secrets(client: httpx.Client) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        r = client.request(method, "/secrets-manager/data/nope", json={"Value": "x"})
        assert_error(r, 404, "nope")
    assert client.put("/secrets-manager/data/dup", json={"Value": "one"}).is_success
    assert_error(client.put("/secrets-manager/data/dup", json={"Value": "two"}), 409, "exists")
    assert client.get("/secrets-manager/data/dup").json() == {"value": "one"}
    # a path is a file or a folder: "dup" cannot hold "dup/a", "f/a" forbids "f"
    assert_error(client.put("/secrets-manager/data/dup/a", json={"Value": "x"}), 409, "folder")
    assert client.put("/secrets-manager/data/f/a", json={"Value": "x"}).is_success
    assert_error(client.put("/secrets-manager/data/f", json={"Value": "x"}), 409, "folder")
    assert _keys(client, "f") == ["a"]
    assert_error(client.get("/secrets-manager/data/dup/a"), 404)


@pytest.mark.parametrize(
    "path",
    [
        "/secrets-manager/data/a//b",
        "/secrets-manager/data/a/./b",
        "/secrets-manager/data/a/../b",
        "/secrets-manager/data/../b",
        "/secrets-manager/data/a/%2E%2E/b",
        "/secrets-manager/data/a/%00",
        "/secrets-manager/data/a%0Ab",
        "/secrets-manager/data/" + "x" * 256,
        "/secrets-manager/data/" + "/".join(["x" * 200] * 6),
        "/secrets-manager/data",
        "/secrets-manager/data/",
        "/secrets-manager/data///",
    ],
)
def test_path_tricks_are_refused(server: Server, token: str, path: str) -> None:
    for method in ("PUT", "GET", "PATCH", "DELETE"):
        r = _raw(server, token, method, path, {"Value": "v"})
        assert_error(r, 400)
    assert _raw(server, token, "GET", "/secrets-manager/search").json() == {"keys": []}


def test_search_path_tricks_are_refused(server: Server, token: str) -> None:
    for path in ("a//b", "a/../b", "./a", "a/."):
        assert_error(_raw(server, token, "GET", f"/secrets-manager/search/{path}"), 400)


def test_leading_and_trailing_slashes_are_stripped(server: Server, token: str) -> None:
    r = _raw(server, token, "PUT", "/secrets-manager/data//lead/trail/", {"Value": "v"})
    assert r.status_code == 200, r.text
    assert r.json() == {"key": "lead/trail"}
    r = _raw(server, token, "GET", "//secrets-manager/data/lead/trail")
    assert r.json() == {"value": "v"}
    assert _raw(server, token, "GET", "/secrets-manager/search/lead/").json() == {"keys": ["trail"]}


@pytest.mark.parametrize(
    "body",
    [None, [], {"value": 3}, {"Value": None}, {"Value": ["a"]}, {"other": "x"}, "text"],
)
def test_bad_bodies_are_400(client: httpx.Client, body: object) -> None:
    kwargs = {"content": b""} if body is None else {"json": body}
    assert_error(client.put("/secrets-manager/data/bad", **kwargs), 400)  # type: ignore[arg-type]
    assert_error(client.get("/secrets-manager/data/bad"), 404)
    assert client.put("/secrets-manager/data/bad", json={"Value": "ok"}).is_success
    assert_error(client.patch("/secrets-manager/data/bad", **kwargs), 400)  # type: ignore[arg-type]
    assert client.get("/secrets-manager/data/bad").json() == {"value": "ok"}
    assert client.delete("/secrets-manager/data/bad").is_success


def test_oversized_value_is_413(client: httpx.Client) -> None:
    limit = 64 * 1024
    assert client.put("/secrets-manager/data/big", json={"Value": "x" * limit}).is_success
    assert len(client.get("/secrets-manager/data/big").json()["value"]) == limit
    assert_error(client.put("/secrets-manager/data/big2", json={"Value": "x" * (limit + 1)}), 413)
    assert_error(client.get("/secrets-manager/data/big2"), 404)
    # bytes count, not characters
    too_big = "é" * (limit // 2 + 1)
    assert_error(client.patch("/secrets-manager/data/big", json={"Value": too_big}), 413)
    assert len(client.get("/secrets-manager/data/big").json()["value"]) == limit


def test_users_do_not_see_each_others_secrets(client: httpx.Client, other: httpx.Client) -> None:
    assert client.put("/secrets-manager/data/mine/key", json={"Value": "a's"}).is_success
    assert_error(other.get("/secrets-manager/data/mine/key"), 404)
    assert_error(other.patch("/secrets-manager/data/mine/key", json={"Value": "b"}), 404)
    assert_error(other.delete("/secrets-manager/data/mine/key"), 404)
    assert other.get("/secrets-manager/search/mine").json() == {"keys": []}
    assert "mine/" not in _keys(other)
    # the same key is another user's own secret
    assert other.put("/secrets-manager/data/mine/key", json={"Value": "b's"}).is_success
    assert client.get("/secrets-manager/data/mine/key").json() == {"value": "a's"}
    assert other.get("/secrets-manager/data/mine/key").json() == {"value": "b's"}
    assert_error(httpx.get(f"{client.base_url}/secrets-manager/data/mine/key"), 401)


def test_values_are_sealed_at_rest(
    server: Server, client: httpx.Client, other: httpx.Client
) -> None:
    if server.database_url:
        pytest.skip("the SQLite file is read directly here")
    marker = unique("plain-value")
    assert client.put("/secrets-manager/data/sealed", json={"Value": marker}).is_success
    assert client.put("/secrets-manager/data/moved", json={"Value": "m"}).is_success
    assert other.put("/secrets-manager/data/sealed", json={"Value": "o"}).is_success
    db = sqlite3.connect(Path(server.data_dir) / "calor.db")
    try:
        rows = db.execute("SELECT sealed FROM secrets").fetchall()
        # copied onto another key's row, or onto another user's, a sealed value does not open
        assert db.execute("SELECT count(*) FROM secrets WHERE key = 'sealed'").fetchone() == (2,)
        db.execute(
            "UPDATE secrets SET sealed = (SELECT s.sealed FROM secrets s WHERE s.key = 'sealed' "
            "AND s.user_id = (SELECT user_id FROM secrets WHERE key = 'moved')) "
            "WHERE key = 'moved' OR (key = 'sealed' AND user_id != "
            "(SELECT user_id FROM secrets WHERE key = 'moved'))"
        )
        db.commit()
    finally:
        db.close()
    assert rows and all(marker.encode() not in bytes(r[0]) for r in rows)
    for path in (Path(server.data_dir) / "calor.db", Path(server.data_dir) / "calor.db-wal"):
        if path.exists():
            assert marker.encode() not in path.read_bytes()
    assert client.get("/secrets-manager/data/sealed").json() == {"value": marker}
    assert_error(client.get("/secrets-manager/data/moved"), 503, "decrypted")
    assert_error(other.get("/secrets-manager/data/sealed"), 503, "decrypted")
    assert marker not in server.log()


def _grant(*keys: str, prefixes: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "bySecret": [{"key": k} for k in keys],
        "byPrefix": [{"prefix": p} for p in prefixes],
    }


def test_task_grants_are_checked_at_submit(client: httpx.Client, other: httpx.Client) -> None:
    assert other.put("/secrets-manager/data/theirs", json={"Value": "b"}).is_success
    assert client.put("/secrets-manager/data/ours", json={"Value": "a"}).is_success
    before = task_count(client)
    for grant, status, word in [
        (_grant("theirs"), 404, "theirs"),
        (_grant("ours", "missing"), 404, "missing"),
        (_grant("a//b"), 400, "empty segment"),
        (_grant("../etc"), 400, ".."),
        (_grant(prefixes=("a//",)), 400, "empty segment"),
        ({"bySecret": [{"nokey": 1}]}, 400, "bySecret[0]"),
        ({"bySecret": "ours"}, 400, "array"),
        ("ours", 400, "secretsAccessRights"),
    ]:
        r = client.post("/tasks", json=task_body("true", secretsAccessRights=grant))
        assert_error(r, status, word)
    assert task_count(client) == before
    # an array submission refuses that item only
    r = client.post(
        "/tasks",
        json=[
            task_body("true", secretsAccessRights=_grant("theirs")),
            task_body("true", secretsAccessRights=_grant("ours", prefixes=("app/",))),
        ],
    )
    assert [o["statusCode"] for o in r.json()] == [404, 200]
    uuid = r.json()[1]["uuid"]
    task = client.get(f"/tasks/{uuid}").json()
    assert task["secretsAccessRights"] == _grant("ours", prefixes=("app/",))
    assert '"a"' not in json.dumps({k: v for k, v in task.items() if k != "secretsAccessRights"})
    # an update that keeps its grant passes even if the secret went meanwhile; a new one
    # is looked up
    assert client.delete("/secrets-manager/data/ours").is_success
    body = task_body("true", secretsAccessRights=_grant("ours", prefixes=("app/",)))
    assert client.put(f"/tasks/{uuid}", json=body).is_success
    body = task_body("true", secretsAccessRights=_grant("ours", "theirs"))
    assert_error(client.put(f"/tasks/{uuid}", json=body), 404, "theirs")
    assert client.get(f"/tasks/{uuid}").json()["secretsAccessRights"] == _grant(
        "ours", prefixes=("app/",)
    )


def test_pool_grants_are_checked_at_submit(client: httpx.Client, other: httpx.Client) -> None:
    assert other.put("/secrets-manager/data/pool-theirs", json={"Value": "b"}).is_success
    before = len(client.get("/pools").json())
    body = {"name": unique("pool"), "profile": "docker-batch", "instanceCount": 0}
    for grant, status in [(_grant("pool-theirs"), 404), (_grant("x/../y"), 400)]:
        assert_error(client.post("/pools", json={**body, "secretsAccessRights": grant}), status)
    assert len(client.get("/pools").json()) == before


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("[calor]")]


def test_instance_files_are_read_only_and_gone_afterwards(client: httpx.Client) -> None:
    assert client.put("/secrets-manager/data/run/key", json={"Value": "v1\nline2"}).is_success
    command = (
        'sh -c \'echo "$CALOR_SECRETS_DIR"; cd "$CALOR_SECRETS_DIR"; '
        "stat -c %a . run run/key; cat run/key; echo; "
        "(echo x > run/key) 2>/dev/null && echo WRITABLE; "
        '(touch new) 2>/dev/null && echo DIR-WRITABLE; ls "$TASK_PATH"\''
    )
    r = client.post(
        "/tasks", json=task_body(command, secretsAccessRights=_grant(prefixes=("run/",)))
    )
    assert r.status_code == 200, r.text
    uuid = r.json()["uuid"]
    task = wait_final(client, uuid)
    out = _lines(client.get(f"/tasks/{uuid}/stdout/0").text)
    assert task["state"] == "Success", (task, out, client.get(f"/tasks/{uuid}/stderr").text)
    where = Path(out[0])
    assert out[1:4] == ["700", "700", "400"]
    assert out[4:6] == ["v1", "line2"]
    sandboxed = "bubblewrap" in client.get(f"/tasks/{uuid}/stdout").text
    if sandboxed:  # read-only for root too
        assert "WRITABLE" not in out and "DIR-WRITABLE" not in out
    # nothing of it in TASK_PATH, and nothing left on disk once the attempt ended
    assert out[-1:] != ["secrets"] and "key" not in out[6:]
    assert where.name == "secrets" and not where.exists()
    assert "v1" not in json.dumps(task)


def test_no_grant_no_directory(client: httpx.Client) -> None:
    r = client.post("/tasks", json=task_body("sh -c 'echo \"[${CALOR_SECRETS_DIR:-none}]\"'"))
    uuid = r.json()["uuid"]
    assert wait_final(client, uuid)["state"] == "Success"
    assert _lines(client.get(f"/tasks/{uuid}/stdout/0").text) == ["[none]"]


def test_pool_slots_and_tasks_on_pools_get_their_grants(client: httpx.Client) -> None:
    from tests.api.test_pools import create_pool, on_pool, wait_state

    for key in ("pool/a", "task/b", "neither/c"):
        assert client.put(f"/secrets-manager/data/{key}", json={"Value": key.upper()}).is_success
    read_all = (
        'sh -c \'cd "$CALOR_SECRETS_DIR" && for f in pool/a task/b neither/c; do '
        "(cat $f && echo) 2>/dev/null || echo no-$f; done'"
    )
    pool = create_pool(
        client,
        instanceCount=1,
        preparationTask={"commandLine": read_all},
        secretsAccessRights=_grant("pool/a"),
    )
    try:
        prepared = wait_for(
            lambda: len(lines := _lines(client.get(f"/pools/{pool}/stdout/0").text)) >= 3 and lines,
            message="the preparation's output",
        )
        assert prepared == ["POOL/A", "no-task/b", "no-neither/c"]
        r = client.post(
            "/tasks", json=on_pool(pool, read_all, secretsAccessRights=_grant("task/b"))
        )
        assert r.status_code == 200, r.text
        uuid = r.json()["uuid"]
        assert wait_final(client, uuid)["state"] == "Success"
        out = _lines(client.get(f"/tasks/{uuid}/stdout/0").text)
        assert out == ["POOL/A", "TASK/B", "no-neither/c"]
    finally:
        client.post(f"/pools/{pool}/close")
        wait_state(client, pool, {"Closed", "Failure"})


def test_without_a_sandbox_the_files_sit_beside_task_path(tmp_path: Path) -> None:
    from tests.conftest import make_server

    srv = make_server(tmp_path, "sqlite", CALOR_SANDBOX="off").start()
    try:
        with httpx.Client(
            base_url=srv.url, headers={"Authorization": srv.new_user()}, timeout=30
        ) as c:
            assert c.put("/secrets-manager/data/k", json={"Value": "plain"}).is_success
            command = (
                'sh -c \'echo "$CALOR_SECRETS_DIR"; echo "$TASK_PATH"; '
                'stat -c %a "$CALOR_SECRETS_DIR" "$CALOR_SECRETS_DIR/k"; '
                'cat "$CALOR_SECRETS_DIR/k"\''
            )
            uuid = c.post(
                "/tasks", json=task_body(command, secretsAccessRights=_grant("k"))
            ).json()["uuid"]
            assert wait_final(c, uuid)["state"] == "Success"
            text = c.get(f"/tasks/{uuid}/stdout/0").text
            assert "without a sandbox" in text
            where, task_path, *rest = _lines(text)
            assert Path(where).parent == Path(task_path).parent
            assert rest == ["700", "400", "plain"]
            assert not Path(where).exists()
    finally:
        srv.stop()


def test_secret_constants_are_write_only(server: Server, client: httpx.Client) -> None:
    body = task_body(
        "sh -c 'echo \"$QARNOT_SECRET__PW\"'",
        constants=[
            {"key": "DOCKER_CMD", "value": "sh -c 'echo \"[$QARNOT_SECRET__PW]\"'"},
            {"key": "QARNOT_SECRET__PW", "value": "pw-value"},
            {"key": "PLAIN", "value": "shown"},
        ],
    )
    uuid = client.post("/tasks", json=body).json()["uuid"]
    task = wait_final(client, uuid)
    assert task["state"] == "Success"
    assert _lines(client.get(f"/tasks/{uuid}/stdout/0").text) == ["[pw-value]"]
    constants = {c["key"]: c["value"] for c in task["constants"]}
    assert constants["QARNOT_SECRET__PW"] == "[SECRET]" and constants["PLAIN"] == "shown"
    assert "pw-value" not in client.get(f"/tasks/{uuid}").text
    assert "pw-value" not in client.get("/tasks").text
    # an update sends back what it read: the stored value stays, a new one replaces it
    assert client.put(f"/tasks/{uuid}", json={**body, "constants": task["constants"]}).is_success
    if not server.database_url:
        db = sqlite3.connect(Path(server.data_dir) / "calor.db")
        try:
            (document,) = db.execute(
                "SELECT document FROM tasks WHERE uuid = ?", (uuid,)
            ).fetchone()
        finally:
            db.close()
        stored = {c["key"]: c["value"] for c in json.loads(document)["constants"]}
        assert stored["QARNOT_SECRET__PW"] == "pw-value"
    pool = client.post(
        "/pools",
        json={
            "name": unique("pool"),
            "profile": "docker-batch",
            "instanceCount": 0,
            "constants": [{"key": "QARNOT_SECRET__X", "value": "pool-pw"}],
        },
    ).json()["uuid"]
    try:
        shown = client.get(f"/pools/{pool}").json()["constants"]
        assert shown == [{"key": "QARNOT_SECRET__X", "value": "[SECRET]"}]
        assert "pool-pw" not in client.get("/pools").text
    finally:
        client.delete(f"/pools/{pool}")
