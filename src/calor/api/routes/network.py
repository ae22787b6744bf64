"""Port forwarding of running instances: GET /v1/network/tasks/{uuid}/port-forward (the node
SDK's getPortForwarding). The same forwards show in each running instance's activeForwards."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from calor.api.deps import PlatformDep, UserDep, json_response
from calor.domain.errors import BadRequest
from calor.domain.network import ForwardRule, forward_rules
from calor.domain.ports import ActiveForward

router = APIRouter()


def _rule(rule: ForwardRule, open_: ActiveForward | None) -> dict[str, Any]:
    return {
        "name": rule.name,
        "enabled": open_ is not None,
        "applicationType": rule.application_type or None,
        "proto": "tcp",
        "port": rule.port,
        # the forwarder listens on loopback: only this host's users can connect
        "allowedIPs": f"{open_.bind_address}/32" if open_ else None,
        "access": (
            {"publicHost": open_.forwarder_host, "publicPort": open_.forwarder_port}
            if open_
            else None
        ),
    }


@router.get("/v1/network/tasks/{key}/port-forward")
async def task_port_forward(key: str, p: PlatformDep, user: UserDep) -> Response:
    """Each instance of the task, with its forwarded ports by rule name; ``access`` says
    where to connect while the instance runs (null otherwise)."""
    record = await run_in_threadpool(p.tasks.get, user.id, key)
    try:
        rules = forward_rules(record.profile, record.document.get("forcedNetworkRules"))
    except BadRequest:
        rules = ()
    active = p.forwards.active(record.uuid) if p.forwards is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for instance in sorted(i.instance_id for i in record.instances):
        by_port = {f.application_port: f for f in active.get(instance, [])}
        out[str(instance)] = {r.name: _rule(r, by_port.get(r.port)) for r in rules}
    return json_response(out)
