"""The official SDK's job flows against calor, unchanged: create_job with dependencies, tasks in
the job, listing, terminate and delete (issue 6)."""

from qarnot.connection import Connection
from qarnot.dependency import (
    AdvancedDependency,
    DependencyStateConditionsFulfilled,
    DependencyStateConditionsNotFulfilled,
    TaskFinalStateFailure,
    TaskFinalStateSuccess,
)
from qarnot.exceptions import MissingJobException, MissingTaskException, UnauthorizedException

from tests.conftest import sh, wait_for
from tests.sdk.helpers import (
    fresh_state,
    processes_with,
    sleeper,
    unique,
    uuids,
    wait_done,
    wait_executing,
)


def test_job_with_dependencies(conn: Connection) -> None:
    job = conn.create_job(unique("job"), useDependencies=True)
    job.tags = ["sdk-jobs"]
    job.submit()
    assert job.uuid and job.state == "Active" and job.use_dependencies is True
    first = conn.create_task(unique(), "docker-batch", 1, job=job)
    first.constants["DOCKER_CMD"] = sh("sleep 0.3; echo first")
    first.submit()
    second = conn.create_task(unique(), "docker-batch", 1, job=job)
    second.constants["DOCKER_CMD"] = "echo second"
    second.set_task_dependencies_from_tasks([first])
    second.submit()
    on_success = conn.create_task(unique(), "docker-batch", 1, job=job)
    on_success.constants["DOCKER_CMD"] = "echo checked"
    on_success.set_task_advanced_dependencies(
        [AdvancedDependency(first.uuid, [TaskFinalStateSuccess()])]
    )
    on_success.submit()
    on_failure = conn.create_task(unique(), "docker-batch", 1, job=job)
    on_failure.constants["DOCKER_CMD"] = "echo never"
    on_failure.set_task_advanced_dependencies(
        [AdvancedDependency(first.uuid, [TaskFinalStateFailure()])]
    )
    on_failure.submit()
    assert wait_done(second) == "Success"
    assert wait_done(on_success) == "Success"
    assert wait_done(on_failure) == "Cancelled"
    deps = second.dependencies
    assert deps is not None and deps.depends_on == [first.uuid]
    assert deps.state == DependencyStateConditionsFulfilled()
    failed = on_failure.dependencies
    assert failed is not None and failed.state == DependencyStateConditionsNotFulfilled()
    [entry] = failed.advanced_depends_on
    assert entry.task_uuid == first.uuid and str(entry.actual_final_state) == "success"
    assert any(first.uuid in e.message for e in on_failure.errors)
    # the job lists its tasks, and the connection lists and finds the job
    assert uuids(job.tasks) == [first.uuid, second.uuid, on_success.uuid, on_failure.uuid]
    assert [j.uuid for j in conn.all_jobs(tags=["sdk-jobs"])] == [job.uuid]
    assert [j.uuid for j in conn.jobs(tags_intersect=["sdk-jobs", "other"])] == []
    assert conn.retrieve_job(job.uuid).name == job.name
    job.terminate()
    wait_for(
        lambda: (job.update(True), job.state)[1] == "Completed",
        timeout=10,
        message="the job to complete",
    )
    job.delete()
    for task in (first, second):
        try:
            task.update(True)
        except MissingTaskException:
            continue
        raise AssertionError(f"task {task.uuid} survived its job")
    try:
        conn.retrieve_job(job.uuid)
        raise AssertionError("the job survived its deletion")
    except MissingJobException:
        pass


def test_job_terminate_and_force_delete(conn: Connection) -> None:
    job = conn.create_job(unique("job"))
    job.submit()
    command, marker = sleeper()
    running = conn.create_task(unique(), "docker-batch", 1, job=job)
    running.constants["DOCKER_CMD"] = command
    running.submit()
    wait_executing(running)
    # without force, a job with a running task stays
    try:
        job.delete(forceAbort=False)
        raise AssertionError("a job with a running task was deleted without force")
    except UnauthorizedException as exc:
        assert "force" in str(exc)
    assert fresh_state(running) == "FullyExecuting"
    job.delete(forceAbort=True)
    wait_for(lambda: not processes_with(marker), timeout=10, message="the sleep to be killed")
    try:
        running.update(True)
        raise AssertionError("the job's task survived a forced delete")
    except MissingTaskException:
        pass
