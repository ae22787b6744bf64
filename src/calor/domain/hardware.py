"""What a task's hardware constraints (contract §7.1) ask of the machine running an instance."""

import math
import re
from dataclasses import dataclass
from typing import Any

from calor.domain.errors import BadRequest


@dataclass(frozen=True)
class Requirements:
    cores: int = 1
    # the memory an instance may use, in MB (None: no limit asked)
    memory_limit_mb: int | None = None
    # CPU models the machine must have one of (empty: any machine)
    cpu_models: tuple[str, ...] = ()


# cores are held in shares (a pool node's slots split its cores); a sum of shares is compared
# with this much slack, so that three thirds fill one core
CORE_EPSILON = 1e-6


def whole_cores(cores: float) -> int:
    """Cores as the wire counts them (whole numbers): the cores a share touches."""
    return math.ceil(cores - CORE_EPSILON) if cores > 0 else 0


# bounds of what a constraint may ask: far beyond any machine, within what the store and
# the container engine hold (a larger number was a 500 from the database)
MAX_CORES = 1_000_000
MAX_MEMORY_MB = 2**40


def _number(
    hc: dict[str, Any], key: str, kind: str, minimum: float, maximum: float = MAX_MEMORY_MB
) -> float:
    value = hc.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not minimum <= value <= maximum
    ):
        raise BadRequest(f"{kind}.{key} must be a number between {minimum:g} and {maximum:.0f}")
    return float(value)


def requirements(hardware_constraints: list[dict[str, Any]]) -> Requirements:
    """Cores from MinimumCore; the memory limit from MaximumRam, or MaximumRamCoreRatio * cores.

    CpuModel constraints name the models a machine must have one of. Other constraints
    (GPU, SSD…) are accepted and stored: one machine cannot choose among hardware it does
    not have.
    """
    cores = 1
    max_ram: float | None = None
    ratio: float | None = None
    for hc in hardware_constraints:
        kind = str(hc.get("discriminator", ""))
        if kind == "MinimumCoreHardwareConstraint":
            count = hc.get("coreCount")
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CORES:
                raise BadRequest(
                    "MinimumCoreHardwareConstraint.coreCount must be an integer between 1 and "
                    f"{MAX_CORES}"
                )
            cores = max(cores, count)
        elif kind == "MaximumRamHardwareConstraint":
            value = _number(hc, "maximumMemoryMB", kind, 4)
            max_ram = value if max_ram is None else min(max_ram, value)
        elif kind == "MaximumRamCoreRatioHardwareConstraint":
            value = _number(hc, "maximumMemoryGBCoreRatio", kind, 0.004)
            ratio = value if ratio is None else min(ratio, value)
    limit = max_ram
    if ratio is not None:
        by_ratio = ratio * 1024 * cores
        limit = by_ratio if limit is None else min(limit, by_ratio)
    models = demanded_cpu_models(hardware_constraints)
    return Requirements(cores, None if limit is None else int(limit), models)


# -- CPU models (CpuModelHardwareConstraint) ----------------------------------------------

CPU_MODEL = "CpuModelHardwareConstraint"
MAX_CPU_MODEL_CHARS = 256


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def cpu_model_matches(demand: str, model: str) -> bool:
    """A machine has the model a constraint demands when every word of the demand is a word
    of its model, case aside: "EPYC 7B13" is an "AMD EPYC 7B13 64-Core Processor"; the
    search answers the machines' full names, which always match themselves."""
    wanted, have = _tokens(demand), set(_tokens(model))
    return bool(wanted) and all(t in have for t in wanted)


def demanded_cpu_models(hardware_constraints: list[dict[str, Any]]) -> tuple[str, ...]:
    """The models a task's CpuModel constraints name; several are alternatives (a machine has
    one model, so all of them at once could never be met)."""
    found: list[str] = []
    for hc in hardware_constraints:
        if str(hc.get("discriminator", "")) != CPU_MODEL:
            continue
        value = hc.get("cpuModel")
        if not isinstance(value, str) or not _tokens(value) or len(value) > MAX_CPU_MODEL_CHARS:
            raise BadRequest(
                f"{CPU_MODEL}.cpuModel must be a CPU model name (letters or digits, at most "
                f"{MAX_CPU_MODEL_CHARS} characters), not {value!r}; "
                "GET /hardware-constraints/cpu-model-constraints/search lists them"
            )
        found.append(value)
    return tuple(found)


def machine_fits(demanded: tuple[str, ...], model: str) -> bool:
    return not demanded or any(cpu_model_matches(d, model) for d in demanded)


def check_cpu_models(hardware_constraints: list[dict[str, Any]], known: list[str]) -> None:
    """Refuse, at submit, a task or pool that demands a CPU model no machine has: it would
    wait forever. With no machine known yet (a cluster with no worker) nothing is refused:
    the workers that join decide."""
    demanded = demanded_cpu_models(hardware_constraints)
    if not demanded or not known or any(machine_fits(demanded, m) for m in known):
        return
    asked = " or ".join(repr(d) for d in demanded)
    have = ", ".join(repr(m) for m in sorted(set(known)))
    raise BadRequest(
        f"no machine has the CPU model {asked} ({CPU_MODEL}); the machines have: {have}"
    )


def search_cpu_models(query: str, models: list[str]) -> list[str]:
    """The known models that match a search, most relevant first: the same name, then every
    word of the query a word of the model, then every word found inside the model, then some
    words found; an empty query lists them all."""
    wanted = _tokens(query)
    scored: list[tuple[tuple[int, float, float], str]] = []
    for model in sorted(set(models)):
        have = _tokens(model)
        if not wanted:
            scored.append(((0, 0.0, 0.0), model))
            continue
        joined = " ".join(have)
        whole = sum(1 for t in wanted if t in have) / len(wanted)
        inside = sum(1 for t in wanted if t in joined) / len(wanted)
        if inside == 0:
            continue
        scored.append(((int(wanted == have), whole, inside), model))
    scored.sort(key=lambda item: (-item[0][0], -item[0][1], -item[0][2], item[1]))
    return [model for _, model in scored]
