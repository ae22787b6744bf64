"""Usage, credits, budgets, quotas and carbon through the official SDK against a real server
(price 3.6 credits per core-hour: a core-second costs 0.001; a computing quota of 1 core per
user on this 2-core machine), and the operator's ``calor admin usage`` and ``budget``."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from qarnot.budget import BlockNewPolicy, BudgetOverrunPolicy
from qarnot.connection import Connection
from qarnot.credits_client import CreditsClient
from qarnot.exceptions import (
    MissingPoolException,
    MissingProjectException,
    MissingTaskException,
    NotEnoughCreditsException,
    QarnotGenericException,
)
from qarnot.hardware_constraint import MinimumCoreHardware
from typer.testing import CliRunner

from calor.cli.main import app
from tests.conftest import BACKENDS, Server, make_server, sh, wait_for
from tests.sdk.conftest import Connect
from tests.sdk.helpers import docker_task, wait_done

RATES = {
    "CALOR_PRICE_PER_CORE_HOUR": "3.6",
    "CALOR_MAX_CORES_PER_USER": "1",
    "CALOR_WATTS_PER_CORE": "10",
    "CALOR_GRAMS_CO2E_PER_KWH": "50",
    "CALOR_PUE": "1.2",
    "CALOR_REFERENCE_DATACENTER": "dc-reference",
    "CALOR_REFERENCE_PUE": "1.5",
}
BURN = sh("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("accounting"), request.param, **RATES).start()
    yield srv
    srv.stop()


def admin(server: Server, *args: str, code: int = 0) -> str:
    """``calor admin …`` on the server's store, with the server's rates."""
    store = ["--data-dir", str(server.data_dir)]
    if server.database_url:
        store += ["--database-url", server.database_url]
    result = CliRunner().invoke(app, ["admin", *args, *store], env={**RATES, "COLUMNS": "200"})
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    return result.stdout


def usage_report(server: Server, *args: str) -> dict[str, Any]:
    return json.loads(admin(server, "usage", "--json", *args))  # type: ignore[no-any-return]


def raw(server: Server, conn: Connection, path: str) -> httpx.Response:
    token = conn._http.headers["Authorization"]
    return httpx.get(server.url + path, headers={"Authorization": token}, timeout=30)


def test_credits_and_usage_after_a_real_task(server: Server, connect: Connect) -> None:
    email = f"bill-{id(server)}@test.local"
    conn = connect(server.new_user(email))
    assert conn.credits().amount_in_euros == 1e12  # no budget: no cap
    task = docker_task(conn, BURN)
    task.submit()
    assert wait_done(task) == "Success"

    credits = task.credits().amount_in_euros
    assert credits > 0
    [line] = usage_report(server, "--user", email)["users"]
    [billed] = line["tasks"]
    assert billed["task_uuid"] == task.uuid and billed["name"] == task.name
    assert billed["attempts"] == 1
    assert billed["cpu_time_sec"] > 0 and billed["wall_time_sec"] >= billed["cpu_time_sec"] * 0.5
    # one core held for the attempt's wall time, at 3.6 per core-hour
    assert billed["core_seconds"] == pytest.approx(billed["wall_time_sec"])
    assert credits == pytest.approx(billed["core_seconds"] * 3.6 / 3600)
    assert billed["credits"] == pytest.approx(credits)
    assert billed["peak_memory_mb"] >= 0
    assert billed["energy_method"] == "estimated"  # this machine has no RAPL
    assert billed["energy_wh"] == pytest.approx(billed["cpu_time_sec"] * 10 / 3600)
    assert billed["carbon_gco2e"] == pytest.approx(billed["energy_wh"] * 1.2 / 1000 * 50)
    assert line["email"] == email and line["credits"] == pytest.approx(credits)

    # the task's figures outlive it: billing survives deletion
    uuid = task.uuid
    task.delete(purge_resources=False, purge_results=False)
    with pytest.raises(MissingTaskException):
        conn.retrieve_task(uuid)
    assert CreditsClient(conn).get_task_credits(uuid).amount_in_euros == credits
    [line] = usage_report(server, "--user", email)["users"]
    assert line["tasks"][0]["task_uuid"] == uuid

    # --since: attempts that ended from then on
    assert usage_report(server, "--user", email, "--since", "2999-01-01")["users"] == []
    assert usage_report(server, "--since", "2000-01-01T00:00:00Z")["users"]
    admin(server, "usage", "--since", "yesterday", code=2)
    admin(server, "usage", "--user", "nobody@test.local", code=1)
    table = admin(server, "usage", "--user", email)
    assert email in table and uuid in table and "total" in table


def test_carbon_facts_after_a_real_task(server: Server, conn: Connection) -> None:
    task = docker_task(conn, BURN)
    task.submit()
    assert wait_done(task) == "Success"
    facts = task.carbon_facts()
    it_wh = facts.energy_it_Wh
    assert it_wh > 0
    assert facts.energy_consumption_Wh == pytest.approx(it_wh * 1.2)
    assert facts.energy_reuse_Wh == 0
    assert facts.carbon_footprint_gC02eq == pytest.approx(it_wh * 1.2 / 1000 * 50)
    assert facts.equivalent_datacenter_name == "dc-reference"
    assert facts.equivalent_dc_carbon_footprint_gC02eq == pytest.approx(it_wh * 1.5 / 1000 * 50)
    saved = facts.equivalent_dc_carbon_footprint_gC02eq - facts.carbon_footprint_gC02eq
    assert facts.saved_carbon_footprint_compute_gC02eq == pytest.approx(saved)
    assert facts.saved_carbon_footprint_percent == pytest.approx(20.0)
    assert facts.PUE == 1.2 and facts.ERE == 1.2
    # the SDK ignores the extra field; the wire says how the energy was had
    body = raw(server, conn, f"/carbon/v1/tasks/{task.uuid}/carbon-facts").json()
    assert body["calor_energy_method"] == "estimated"
    assert body["total_energy_it_Wh"] == pytest.approx(it_wh)
    # CPU time x 10 W (estimated), from the usage the credits come from
    lines = usage_report(server)["users"]
    [billed] = [t for line in lines for t in line["tasks"] if t["task_uuid"] == task.uuid]
    assert it_wh == pytest.approx(billed["cpu_time_sec"] * 10 / 3600)

    assert task.carbon_facts("dc-reference").carbon_footprint_gC02eq == pytest.approx(
        facts.carbon_footprint_gC02eq
    )
    with pytest.raises(QarnotGenericException, match="comparisonDatacenter"):
        task.carbon_facts("somewhere-else")


def test_a_computing_quota_refuses_and_creates_nothing(server: Server, conn: Connection) -> None:
    quota = conn.get_user_computing_quotas()
    assert quota.flex.max_cores == 1 and quota.on_demand.max_cores == 1
    assert conn.user_info.computing_quotas.user.flex.max_cores == 1

    big = docker_task(conn, "true")
    big.hardware_constraints = [MinimumCoreHardware(2)]
    with pytest.raises(NotEnoughCreditsException, match="computing quota"):
        big.submit()
    pool = conn.create_pool("two-slots", "docker-batch", 2)
    with pytest.raises(NotEnoughCreditsException, match="computing quota"):
        pool.submit()
    assert list(conn.all_tasks()) == [] and list(conn.all_pools()) == []
    assert conn.user_info.task_count == 0

    # in an array submission, the item is refused with 402 and the others go on
    token = conn._http.headers["Authorization"]
    item = {
        "name": "x",
        "profile": "docker-batch",
        "instanceCount": 1,
        "constants": [{"key": "DOCKER_CMD", "value": "true"}],
    }
    cores = {"discriminator": "MinimumCoreHardwareConstraint", "coreCount": 2}
    two = {**item, "hardwareConstraints": [cores]}
    answer = httpx.post(
        server.url + "/tasks", json=[two, item], headers={"Authorization": token}, timeout=30
    ).json()
    assert [a["statusCode"] for a in answer] == [402, 200]
    assert "computing quota" in answer[0]["message"]

    org = conn.get_organization_computing_quotas()
    assert org.flex.max_cores == 2  # the whole server: its executor's cores


def test_a_spent_budget_refuses_new_tasks_and_pools(server: Server, connect: Connect) -> None:
    email = f"budget-{id(server)}@test.local"
    conn = connect(server.new_user(email))
    [project] = conn.user_info.projects
    assert CreditsClient(conn).get_project_budgets(project.uuid, True) == []
    with pytest.raises(MissingProjectException):
        CreditsClient(conn).get_project_budgets("00000000-0000-0000-0000-000000000000", False)

    admin(server, "budget", "set", "--user", email, "--credits", "0")
    with pytest.raises(NotEnoughCreditsException, match="not enough credits"):
        docker_task(conn, "true").submit()
    with pytest.raises(NotEnoughCreditsException, match="not enough credits"):
        conn.create_pool("p", "docker-batch", 1).submit()
    assert list(conn.all_tasks()) == [] and list(conn.all_pools()) == []
    admin(server, "budget", "set", "--user", email, "--credits", "-1", code=1)

    admin(server, "budget", "set", "--user", email, "--credits", "5")
    task = docker_task(conn, BURN)
    task.submit()
    assert wait_done(task) == "Success"
    spent = task.credits().amount_in_euros
    assert conn.credits().amount_in_euros == pytest.approx(5 - spent)
    [budget] = CreditsClient(conn).get_project_budgets(project.uuid, False)
    # the SDK's Budget keeps what it read in private attributes (it has no properties)
    assert budget._total_in_cents == 500
    assert budget._consumed_in_cents == round(spent * 100)
    assert budget._remaining_in_cents == 500 - round(spent * 100)
    policy = BudgetOverrunPolicy.from_string(budget._budget_overrun_policy)
    assert isinstance(policy, BlockNewPolicy)
    assert "of 5 credits consumed" in admin(server, "budget", "show", "--user", email)

    # just under what was consumed: spent, so the next submission is refused
    admin(server, "budget", "set", "--user", email, "--credits", f"{spent / 2}")
    with pytest.raises(NotEnoughCreditsException):
        docker_task(conn, "true").submit()
    admin(server, "budget", "clear", "--user", email)
    docker_task(conn, "true").submit()
    assert len(list(conn.all_tasks())) == 2


def test_pool_credits_and_carbon_after_it_closes(server: Server, conn: Connection) -> None:
    pool = conn.create_pool("billed-pool", "docker-batch", 1)
    pool.submit()
    wait_for(lambda: (pool.update(True), pool.state)[1] == "FullyExecuting", timeout=60)
    pool.close()
    wait_for(lambda: (pool.update(True), pool.state)[1] == "Closed", timeout=60)

    def billed() -> float:
        return float(pool.credits().amount_in_euros)

    credits = wait_for(billed, message="the pool's slot to be billed")
    assert credits > 0
    pool.update(True)
    body = raw(server, conn, f"/pools/{pool.uuid}").json()
    assert body["credits"] == pytest.approx(credits)
    facts = pool.carbon_facts()
    assert facts.energy_it_Wh >= 0 and facts.PUE == 1.2


def test_another_users_task_and_pool_are_not_found(server: Server, connect: Connect) -> None:
    owner, other = connect(), connect()
    task = docker_task(owner, "true")
    task.submit()
    assert wait_done(task) == "Success"
    pool = owner.create_pool("mine", "docker-batch", 1)
    pool.submit()
    theirs = CreditsClient(other)
    with pytest.raises(MissingTaskException):
        theirs.get_task_credits(task.uuid)
    with pytest.raises(MissingPoolException):
        theirs.get_pool_credits(pool.uuid)
    for path in (f"/carbon/v1/tasks/{task.uuid}/carbon-facts", f"/pools/{pool.uuid}"):
        assert raw(server, other, path).status_code == 404
    assert raw(server, other, f"/carbon/v1/pools/{pool.uuid}/carbon-facts").status_code == 404
    with pytest.raises(MissingTaskException):
        theirs.get_task_credits("00000000-0000-0000-0000-000000000000")
    assert task.credits().amount_in_euros >= 0  # the owner sees theirs
    assert owner.retrieve_pool(pool.uuid).credits().amount_in_euros == 0  # nothing ended yet
    pool.close()

    # bad input: a clear 4xx
    assert raw(server, owner, f"/carbon/v1/jobs/{task.uuid}/carbon-facts").status_code == 404
    project = owner.user_info.projects[0].uuid
    bad = raw(server, owner, f"/credits/v1/projects/{project}/budgets?activeOnly=maybe")
    assert bad.status_code == 400 and "activeOnly" in bad.json()["message"]
