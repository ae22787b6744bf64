"""The machine's energy counters: Intel/AMD RAPL through the Linux powercap interface
(``/sys/class/powercap/intel-rapl:N/energy_uj``), and the CPU time all processes used
(``/proc/stat``), to share each reading between the attempts that ran meanwhile."""

import os
import re
from collections.abc import Callable
from pathlib import Path

from calor.domain.accounting import EnergySample

POWERCAP = Path("/sys/class/powercap")
# a package zone: its sub-zones (intel-rapl:0:0 for the cores, …) are parts of its figure,
# and would count twice
_PACKAGE = re.compile(r"^intel-rapl:\d+$")


def machine_busy_seconds(stat: Path = Path("/proc/stat")) -> float:
    """CPU time every process of the machine has used since boot: user, nice, system, irq,
    softirq and steal (guest time is already part of user)."""
    fields = stat.read_text().split("\n", 1)[0].split()
    if not fields or fields[0] != "cpu":
        raise OSError(f"{stat} does not start with the cpu line")
    ticks = [int(v) for v in fields[1:]]
    busy = ticks[0] + ticks[1] + ticks[2] + sum(ticks[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


class RaplMeter:
    def __init__(self, zones: list[Path], busy_seconds: Callable[[], float]) -> None:
        self.zones = zones
        self.busy_seconds = busy_seconds

    @classmethod
    def detect(
        cls,
        root: Path = POWERCAP,
        busy_seconds: Callable[[], float] = machine_busy_seconds,
    ) -> "RaplMeter | None":
        """A meter over the package zones that can be read now; None when there are none
        (no RAPL, a virtual machine, or energy_uj readable by root only and calor is not)."""
        try:
            zones = sorted(p for p in root.iterdir() if _PACKAGE.match(p.name))
        except OSError:
            return None
        meter = cls(zones, busy_seconds)
        return meter if zones and meter.sample() is not None else None

    def sample(self) -> EnergySample | None:
        try:
            readings = tuple(
                (
                    int((zone / "energy_uj").read_text()),
                    int((zone / "max_energy_range_uj").read_text()),
                )
                for zone in self.zones
            )
            return EnergySample(readings, self.busy_seconds())
        except (OSError, ValueError):
            return None
