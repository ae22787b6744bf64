"""Which TCP ports of an instance are forwarded to the server's host (contract §7.2, §3.4
activeForwards): declared as the hosted service declares them.

- An inbound ``forcedNetworkRules`` entry with a ``port`` (``{"inbound": true, "proto":
  "tcp", "port": "8080"}``) forwards that port of each instance.
- The ``docker-network-ssh`` profile forwards port 22, as the hosted profile of that name
  does for the SSH how-to (the instance starts sshd with the key in DOCKER_SSH).

Only instances with network (a profile that allows it) can be reached: a rule on a profile
without network is refused at submit, never silently ignored.
"""

from dataclasses import dataclass
from typing import Any

from calor.domain.errors import BadRequest
from calor.domain.profiles import PROFILES

MAX_FORWARDS = 16  # ports forwarded per instance


@dataclass(frozen=True)
class ForwardRule:
    name: str
    port: int  # the application's port, inside the instance
    application_type: str = ""


def _port(value: Any, index: int) -> int:
    text = (
        str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    )
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise BadRequest(
            f"forcedNetworkRules[{index}].port must be a TCP port from 1 to 65535, not {value!r}"
        )
    return int(text)


def forward_rules(profile: str, rules: Any) -> tuple[ForwardRule, ...]:
    """The forwarded ports of a task or pool; BadRequest for a rule calor cannot honour."""
    found: dict[int, ForwardRule] = {}
    prof = PROFILES.get(profile)
    for port in prof.forwarded_ports if prof else ():
        found[port] = ForwardRule(f"port-{port}", port, "ssh" if port == 22 else "")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise BadRequest("forcedNetworkRules must be an array of rules")
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise BadRequest(f"forcedNetworkRules[{index}] must be an object")
        inbound = rule.get("inbound")
        if inbound not in (True, "true", "True") or rule.get("port") in (None, ""):
            continue  # outbound rules, and inbound ones that only say who may connect
        port = _port(rule.get("port"), index)
        proto = str(rule.get("proto") or "tcp").lower()
        if proto != "tcp":
            raise BadRequest(
                f"forcedNetworkRules[{index}]: calor forwards TCP ports only, not {proto!r}"
            )
        name = str(rule.get("name") or f"port-{port}")
        found[port] = ForwardRule(name, port, str(rule.get("applicationType") or ""))
    if found and not (prof and prof.network):
        ports = ", ".join(str(p) for p in sorted(found))
        with_network = ", ".join(sorted(n for n, p in PROFILES.items() if p.network))
        raise BadRequest(
            f"forcedNetworkRules forward port {ports}, but instances of profile {profile!r} "
            f"have no network; use a profile with network ({with_network})"
        )
    if len(found) > MAX_FORWARDS:
        raise BadRequest(f"at most {MAX_FORWARDS} ports can be forwarded per instance")
    return tuple(sorted(found.values(), key=lambda r: r.port))
