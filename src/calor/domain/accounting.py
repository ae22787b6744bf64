"""Usage, credits, energy and carbon: the operator's rates and the formulas (pure).

What is measured per instance attempt: the cores it held, its wall time, its CPU time and its
peak memory (the runtimes), and, where the machine exposes RAPL, the energy the processor
packages drew over the attempt. From those:

- core-seconds = cores held * wall time (what the attempt kept from others);
- credits = core-seconds / 3600 * price per core-hour, at the price of the day it ran;
- IT energy = the RAPL energy of the attempt's window * its share of the machine's busy CPU
  time over that window, else (no RAPL) CPU time * watts per core;
- energy drawn = IT energy * PUE; carbon (gCO2e) = energy drawn in kWh * gCO2e per kWh.
"""

from dataclasses import dataclass

from calor.domain.errors import PaymentRequired

JOULES_PER_WH = 3600.0
JOULES_PER_KWH = 3_600_000.0

# what GET /credits/v1/accounts/credits reports for a user without a budget: the SDK needs a
# number (Credits(None) fails), and no cap is set
UNLIMITED_CREDITS = 1e12


@dataclass(frozen=True)
class Accounting:
    """The operator's rates and quota (CALOR_<NAME> variables, settings.py)."""

    price_per_core_hour: float = 0.0  # credits (euros for the SDK); 0: free
    watts_per_core: float = 10.0  # a busy core, for attempts RAPL did not measure
    grams_co2e_per_kwh: float = 50.0  # of the electricity the machines draw
    # 1.0: the machine's own draw is all that is counted (no cooling overhead is known)
    pue: float = 1.0
    # the datacenter carbon facts compare with, and its PUE (Uptime Institute's 2023 survey
    # average); it draws the same electricity
    reference_datacenter: str = "average-datacenter"
    reference_pue: float = 1.58
    max_cores_per_user: int | None = None  # at once; None: every core of the executor

    def check(self) -> None:
        for name in ("price_per_core_hour", "watts_per_core", "grams_co2e_per_kwh"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name.upper()} must be >= 0")
        for name in ("pue", "reference_pue"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name.upper()} must be >= 1 (energy drawn / IT energy)")
        if self.max_cores_per_user is not None and self.max_cores_per_user <= 0:
            raise ValueError("MAX_CORES_PER_USER must be > 0")
        if not self.reference_datacenter.strip():
            raise ValueError("REFERENCE_DATACENTER must not be empty")


@dataclass(frozen=True)
class EnergySample:
    """A reading of the machine's energy counters (RAPL zones, µJ, each with the value it
    wraps at) and of the CPU time all its processes have used (s)."""

    zones: tuple[tuple[int, int], ...]  # (energy_uj, max_energy_range_uj) per zone
    busy_cpu_sec: float


def attributed_energy_j(before: EnergySample, after: EnergySample, cpu_time_sec: float) -> float:
    """The attempt's share of the energy drawn between two readings: the share of the
    machine's busy CPU time that was the attempt's (at most all of it). A counter that went
    back wrapped once; several wraps in one attempt are not detectable."""
    total_uj = 0
    for (start, _), (end, wrap) in zip(before.zones, after.zones, strict=True):
        total_uj += end - start if end >= start else end + wrap - start
    busy = after.busy_cpu_sec - before.busy_cpu_sec
    if cpu_time_sec <= 0:
        return 0.0
    share = 1.0 if busy <= cpu_time_sec else cpu_time_sec / busy
    return total_uj / 1e6 * share


def estimated_energy_j(cpu_time_sec: float, watts_per_core: float) -> float:
    return max(0.0, cpu_time_sec) * watts_per_core


def core_seconds(cores: float, wall_time_sec: float) -> float:
    return max(0.0, cores) * max(0.0, wall_time_sec)


def credits_of(core_sec: float, price_per_core_hour: float) -> float:
    return core_sec / 3600.0 * price_per_core_hour


def carbon_grams(it_energy_j: float, pue: float, grams_co2e_per_kwh: float) -> float:
    return it_energy_j * pue / JOULES_PER_KWH * grams_co2e_per_kwh


def energy_method(energy_j: float, measured_j: float) -> str:
    """How the energy of a set of attempts was had: "rapl" (all measured), "estimated" (none
    measured, or nothing ran), "mixed"."""
    if measured_j <= 0 or energy_j <= 0:
        return "estimated"
    return "rapl" if measured_j >= energy_j * (1 - 1e-9) else "mixed"


@dataclass(frozen=True)
class CarbonFacts:
    it_energy_wh: float
    consumed_energy_wh: float
    carbon_g: float
    reference_name: str
    reference_carbon_g: float
    pue: float
    method: str

    @property
    def saved_g(self) -> float:
        return self.reference_carbon_g - self.carbon_g

    @property
    def saved_percent(self) -> float:
        return self.saved_g / self.reference_carbon_g * 100 if self.reference_carbon_g else 0.0


def carbon_facts(energy_j: float, measured_j: float, rates: Accounting) -> CarbonFacts:
    return CarbonFacts(
        it_energy_wh=energy_j / JOULES_PER_WH,
        consumed_energy_wh=energy_j * rates.pue / JOULES_PER_WH,
        carbon_g=carbon_grams(energy_j, rates.pue, rates.grams_co2e_per_kwh),
        reference_name=rates.reference_datacenter,
        reference_carbon_g=carbon_grams(energy_j, rates.reference_pue, rates.grams_co2e_per_kwh),
        pue=rates.pue,
        method=energy_method(energy_j, measured_j),
    )


def check_budget(consumed: float, budget: float | None) -> None:
    """A user who has spent their budget submits nothing more (SDK: NotEnoughCredits)."""
    if budget is not None and consumed >= budget:
        raise PaymentRequired(
            f"not enough credits: {consumed:.4f} of the budget of {budget:g} credits are "
            "consumed; ask the operator to raise it (calor admin budget set)"
        )


def check_quota(cores_at_once: float, max_cores: int, what: str) -> None:
    """What needs more cores at once than the user's computing quota could never run."""
    if cores_at_once > max_cores + 1e-9:
        raise PaymentRequired(
            f"computing quota exceeded: {what} needs {cores_at_once:g} cores at once and your "
            f"quota is {max_cores} cores"
        )
