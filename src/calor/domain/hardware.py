"""What a task's hardware constraints (contract §7.1) ask of the machine running an instance."""

import math
from dataclasses import dataclass
from typing import Any

from calor.domain.errors import BadRequest


@dataclass(frozen=True)
class Requirements:
    cores: int = 1
    # the memory an instance may use, in MB (None: no limit asked)
    memory_limit_mb: int | None = None


# cores are held in shares (a pool node's slots split its cores); a sum of shares is compared
# with this much slack, so that three thirds fill one core
CORE_EPSILON = 1e-6


def whole_cores(cores: float) -> int:
    """Cores as the wire counts them (whole numbers): the cores a share touches."""
    return math.ceil(cores - CORE_EPSILON) if cores > 0 else 0


def _number(hc: dict[str, Any], key: str, kind: str, minimum: float) -> float:
    value = hc.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise BadRequest(f"{kind}.{key} must be a number >= {minimum:g}")
    return float(value)


def requirements(hardware_constraints: list[dict[str, Any]]) -> Requirements:
    """Cores from MinimumCore; the memory limit from MaximumRam, or MaximumRamCoreRatio * cores.

    Other constraints (CPU model, GPU, SSD…) are accepted and stored: one machine cannot
    choose among hardware it does not have.
    """
    cores = 1
    max_ram: float | None = None
    ratio: float | None = None
    for hc in hardware_constraints:
        kind = str(hc.get("discriminator", ""))
        if kind == "MinimumCoreHardwareConstraint":
            count = hc.get("coreCount")
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise BadRequest("MinimumCoreHardwareConstraint.coreCount must be an integer >= 1")
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
    return Requirements(cores, None if limit is None else int(limit))
