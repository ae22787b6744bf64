"""The dashboard in a real browser (Debian's chromium, headless): sign in, a running task that
updates in place, its logs per instance, abort / clone / delete, filters and pages, pools, jobs
and a bucket download. Each test has its own user, so it sees only its own things."""

import re
import uuid as uuidlib
from typing import Any

import boto3
import httpx
from botocore.config import Config
from playwright.sync_api import expect

from tests.conftest import FINAL, Server, sh, task_body, wait_for
from tests.web.conftest import sign_in

PROGRESS = {"key": "DOCKER_PROGRESS1", "value": r"progress (\d+)%"}


def submit(api: httpx.Client, body: dict[str, Any]) -> str:
    r = api.post("/tasks", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["uuid"])


def wait_ended(api: httpx.Client, uuids: list[str]) -> None:
    def ended() -> bool:
        return all(api.get(f"/tasks/{u}").json()["state"] in FINAL for u in uuids)

    wait_for(ended, timeout=60, interval=0.1, message="the tasks to end")


def row_names(page: Any) -> Any:
    return page.locator("#task-rows a.task-link")


def test_sign_in(page: Any, web_server: Server, user: str) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(web_server.url + "/")
    page.fill("#token", "not-a-token")
    page.click("#login")
    expect(page.locator("#login-error")).to_contain_text("not accepted")
    expect(page.locator("#top")).to_be_hidden()
    page.shots("wrong token")

    page.fill("#token", user)
    page.click("#login")
    expect(page.locator("#tasks")).to_be_visible()
    expect(page.locator(".empty")).to_contain_text("No tasks yet")
    expect(page.locator("#email")).to_contain_text("@test.local")
    page.shots("signed in")
    # the token lives in this tab's sessionStorage, nowhere else
    assert page.evaluate("sessionStorage.getItem('calor.token')") == user
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert user not in page.url
    assert not [u for u in urls if user in u]

    page.reload()  # same tab: still signed in
    expect(page.locator("#tasks")).to_be_visible()
    page.click("#logout")
    expect(page.locator("#token")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('calor.token')") is None


def test_running_task_updates_then_logs_and_abort(
    page: Any, web_server: Server, user: str, api: httpx.Client
) -> None:
    sign_in(page, web_server, user)
    expect(page.locator(".empty")).to_be_visible()
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    command = (
        "echo progress 10%; echo hello from $INSTANCE_ID; sleep 1.5; "
        "echo progress 60%; echo warn $INSTANCE_ID >&2; sleep 300"
    )
    body = task_body(sh(command), name="live-task", instanceCount=2, tags=["live"])
    body["constants"].append(PROGRESS)
    task = submit(api, body)

    row = page.locator(f'#task-rows tr[data-uuid="{task}"]')
    expect(row).to_be_visible()  # it appears by itself
    expect(row.locator(".state")).to_have_text("FullyExecuting")
    expect(row.locator(".pct")).to_have_text("60%")
    expect(row.locator(".col-instances")).to_have_text("2 running / 2")
    expect(page.locator("#stats .stat-running b")).to_have_text("1")
    assert page.evaluate("window.sameDocument") is True
    page.shots("running task in the list")

    row.locator("a.task-link").click()
    expect(page).to_have_url(re.compile(f"#/tasks/{task}$"))
    expect(page.locator(".task-head h1")).to_contain_text("live-task")
    expect(page.locator("#instances tbody tr")).to_have_count(2)
    for instance in ("0", "1"):
        cells = page.locator(f'#instances tr[data-instance="{instance}"]')
        expect(cells).to_contain_text("Running")
        expect(cells.locator(".pct")).to_have_text("60%")
    log = page.locator("#log")
    expect(log).to_contain_text("0> hello from 0")
    expect(log).to_contain_text("1> hello from 1")

    page.select_option("#log-instance", "1")
    expect(log).to_have_attribute("data-instance", "1")
    expect(log).to_contain_text("hello from 1")
    expect(log).not_to_contain_text("hello from 0")
    page.select_option("#log-stream", "stderr")
    expect(log).to_have_attribute("data-stream", "stderr")
    expect(log).to_have_text(re.compile(r"^warn 1\s*$"))
    page.shots("task page, stderr of instance 1")

    dialogs: list[str] = []

    def confirm(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.click("#abort")
    expect(page.locator(".task-head .state")).to_have_text("Cancelled")
    assert "Abort" in dialogs[0] and "live-task" in dialogs[0]
    expect(page.locator("#abort")).to_be_disabled()
    expect(page.locator('#instances tr[data-instance="0"] .state')).to_have_text("Cancelled")
    assert api.get(f"/tasks/{task}").json()["state"] == "Cancelled"
    page.shots("aborted")


def test_filters_sort_and_pages(
    page: Any, web_server: Server, user: str, api: httpx.Client
) -> None:
    bodies = [task_body("true", name=f"alpha-{i:02d}", tags=["red"]) for i in range(8)]
    bodies += [task_body("true", name=f"beta-{i}", tags=["red", "blue"]) for i in range(2)]
    bodies += [task_body("true", name="gamma", tags=["blue"])]
    bodies += [task_body(sh("exit 3"), name="alpha-bad")]
    made = api.post("/tasks", json=bodies).json()
    wait_ended(api, [m["uuid"] for m in made])

    sign_in(page, web_server, user)
    page.select_option("#f-size", "10")
    expect(row_names(page)).to_have_count(10)
    expect(page.locator("#page-prev")).to_be_disabled()
    page.click("#page-next")
    expect(row_names(page)).to_have_count(2)
    expect(page.locator("#page-label")).to_have_text("Page 2")
    expect(page.locator("#page-next")).to_be_disabled()
    page.click("#page-prev")
    expect(row_names(page)).to_have_count(10)
    expect(page.locator("#page-label")).to_have_text("Page 1")

    # newest first by default, oldest first on demand
    expect(row_names(page).first).to_have_text("alpha-bad")
    page.select_option("#f-order", "asc")
    expect(row_names(page).first).to_have_text("alpha-00")
    page.select_option("#f-size", "20")
    expect(row_names(page)).to_have_count(12)

    page.check('[data-state-filter="Failure"]')
    expect(row_names(page)).to_have_text(["alpha-bad"])
    page.check('[data-state-filter="Success"]')
    expect(row_names(page)).to_have_count(12)
    page.uncheck('[data-state-filter="Failure"]')
    expect(row_names(page)).to_have_count(11)
    page.uncheck('[data-state-filter="Success"]')

    page.fill("#f-tags", "blue")
    expect(row_names(page)).to_have_text(["beta-0", "beta-1", "gamma"])
    page.fill("#f-tags", "red, blue")
    expect(row_names(page)).to_have_count(11)
    page.select_option("#f-tagmode", "all")
    expect(row_names(page)).to_have_text(["beta-0", "beta-1"])
    page.shots("tags red and blue")
    page.fill("#f-tags", "")
    expect(row_names(page)).to_have_count(12)

    page.fill("#f-name", "alpha-0")
    expect(row_names(page)).to_have_count(8)
    page.fill("#f-name", "alpha")
    expect(row_names(page)).to_have_count(9)
    page.check('[data-state-filter="Failure"]')
    expect(row_names(page)).to_have_text(["alpha-bad"])

    # the filters are in the address (not the token), and survive a reload
    assert re.search(r"#/tasks\?state=Failure&mode=all&name=alpha&order=asc$", page.url)
    page.reload()
    expect(row_names(page)).to_have_text(["alpha-bad"])
    expect(page.locator("#f-name")).to_have_value("alpha")
    page.uncheck('[data-state-filter="Failure"]')
    page.fill("#f-name", "")
    # a tag in a row adds itself to the filter
    page.locator('#task-rows tr:has-text("gamma") .tag').click()
    expect(page.locator("#f-tags")).to_have_value("blue")
    expect(row_names(page)).to_have_count(3)


def test_task_page_clone_and_delete(
    page: Any, web_server: Server, user: str, api: httpx.Client
) -> None:
    command = "echo out $INSTANCE_ID; echo oops $INSTANCE_ID >&2; exit $INSTANCE_ID"
    task = submit(api, task_body(sh(command), name="mixed", instanceCount=2, tags=["t1"]))
    wait_ended(api, [task])

    sign_in(page, web_server, user, f"#/tasks/{task}")
    expect(page.locator(".task-head h1")).to_contain_text("mixed")
    expect(page.locator(".task-head .state")).to_have_text("Failure")
    ok = page.locator('#instances tr[data-instance="0"]')
    failed = page.locator('#instances tr[data-instance="1"]')
    expect(ok.locator(".state")).to_have_text("Success")
    expect(ok.locator(".exit")).to_have_text("exit 0")
    expect(failed.locator(".state")).to_have_text("Failure")
    expect(failed.locator(".exit")).to_contain_text("exit 1")
    expect(page.locator("#task-errors")).to_contain_text("instance 1")
    expect(page.locator("#log")).to_contain_text("0> out 0")
    expect(page.locator("#log")).to_contain_text("1> out 1")
    expect(page.locator("#log-note")).to_contain_text("complete")
    page.select_option("#log-stream", "stderr")
    expect(page.locator("#log")).to_contain_text("1> oops 1")
    page.click("details.raw summary")
    expect(page.locator("details.raw pre")).to_contain_text(f'"uuid": "{task}"')
    page.shots("ended task")

    page.once("dialog", lambda dialog: dialog.accept("mixed-again"))
    page.click("#clone")
    expect(page.locator(".task-head h1")).to_contain_text("mixed-again")
    clone = page.url.rsplit("/", 1)[-1]
    assert clone != task and uuidlib.UUID(clone)
    copied = api.get(f"/tasks/{clone}").json()
    assert copied["name"] == "mixed-again" and copied["tags"] == ["t1"]
    assert copied["constants"][0]["value"] == sh(command)
    page.shots("clone")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    expect(page).to_have_url(re.compile(r"#/tasks$"))
    expect(page.locator("#flash")).to_contain_text("deleted")
    expect(page.locator(f'#task-rows tr[data-uuid="{task}"]')).to_be_visible()
    expect(page.locator(f'#task-rows tr[data-uuid="{clone}"]')).to_have_count(0)
    assert api.get(f"/tasks/{clone}").status_code == 404


def test_pools_jobs_and_buckets(
    page: Any, web_server: Server, user: str, api: httpx.Client
) -> None:
    email = api.get("/info").json()["email"]
    s3 = boto3.client(
        "s3",
        endpoint_url=web_server.storage_url,
        aws_access_key_id=email,
        aws_secret_access_key=user,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    bucket = f"files-{uuidlib.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in/data.txt", Body=b"payload\n")
    s3.put_object(Bucket=bucket, Key="readme.md", Body=b"# hi\n")

    pool = api.post(
        "/pools",
        json={
            "name": "warm-pool",
            "profile": "docker-batch",
            "instanceCount": 1,
            "tags": ["p"],
            "preparationTask": {"commandLine": "echo slot ready"},
        },
    ).json()["uuid"]
    job = api.post("/jobs", json={"name": "pipeline", "tags": ["j"]}).json()["uuid"]
    task = submit(
        api,
        task_body(
            "cat data.txt",
            name="job-task",
            jobUuid=job,
            resultBucket=bucket,
            advancedResourceBuckets=[
                {
                    "bucketName": bucket,
                    "filtering": {"prefixFiltering": {"prefix": "in/"}},
                    "resourcesTransformation": {"stripPrefix": {"prefix": "in/"}},
                }
            ],
        ),
    )
    wait_ended(api, [task])

    sign_in(page, web_server, user)
    page.click('nav a[data-nav="pools"]')
    page.locator("#pools a.pool-link", has_text="warm-pool").click()
    expect(page.locator("h1")).to_contain_text("warm-pool")
    expect(page.locator("h1 .state")).to_have_text("FullyExecuting")
    expect(page.locator("#pool-log")).to_contain_text("slot ready")
    page.shots("pool")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#close-pool")
    expect(page.locator("h1 .state")).to_have_text(re.compile("Closing|Closed"))
    wait_for(lambda: api.get(f"/pools/{pool}").json()["state"] == "Closed", message="close")

    page.click('nav a[data-nav="jobs"]')
    page.locator("#jobs a.job-link", has_text="pipeline").click()
    expect(page.locator("h1")).to_contain_text("pipeline")
    expect(page.locator("#job-tasks")).to_contain_text("job-task")
    page.shots("job")
    page.locator("#job-tasks a.task-link").click()
    expect(page.locator(".task-head .state")).to_have_text("Success")
    expect(page.locator("#log")).to_contain_text("payload")
    expect(page.locator("#job-link")).to_have_attribute("href", f"#/jobs/{job}")
    page.locator(".bucket-link", has_text=f"{bucket}/in/").click()
    expect(page.locator("#objects tr")).to_have_count(1)
    expect(page.locator("#objects")).to_contain_text("data.txt")
    page.go_back()
    page.locator("#job-link").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#terminate-job")
    expect(page.locator("h1 .state")).to_have_text(re.compile("Terminating|Completed"))

    page.click('nav a[data-nav="buckets"]')
    listed = page.locator(f'#buckets tr[data-bucket="{bucket}"]')
    expect(listed).to_contain_text("2")
    listed.locator("a").click()
    expect(page.locator("#objects tr.folder")).to_have_text("in/")
    expect(page.locator('#objects tr[data-key="readme.md"]')).to_be_visible()
    page.locator("#objects tr.folder a").click()
    expect(page.locator('#objects tr[data-key="in/data.txt"]')).to_be_visible()
    page.shots("bucket folder")
    with page.expect_download() as download:
        page.click('#objects tr[data-key="in/data.txt"] button.download')
    assert download.value.suggested_filename == "data.txt"
    with open(download.value.path(), "rb") as f:
        assert f.read() == b"payload\n"

    page.goto(f"{web_server.url}/#/buckets/no-such-bucket-x")
    expect(page.locator("h1")).to_have_text("Bucket not found")
