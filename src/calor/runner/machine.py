"""What this machine is, as hardware constraints see it: its CPU model and clock."""

import contextlib
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_info(cpuinfo: Path = CPUINFO) -> tuple[str, float]:
    """The CPU model name and its clock in GHz (0.0 when unknown). Linux says both in
    /proc/cpuinfo; elsewhere (and on CPUs whose cpuinfo names no model, as some ARM boards)
    the platform's processor or machine name stands for the model."""
    model, ghz = "", 0.0
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu model") and not model:
                model = value.strip()
            elif key == "cpu MHz" and ghz == 0.0:
                with contextlib.suppress(ValueError):
                    ghz = round(float(value) / 1000, 3)
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown", ghz


def cpu_model() -> str:
    """Run on a Dask worker by the server (client.run): the worker's CPU model."""
    return cpu_info()[0]
