"""Energy and carbon: the RAPL adapter over a fake powercap tree, the attribution of a reading
to an attempt, the runner with a fake meter, and the formulas."""

import os
from pathlib import Path

import pytest

from calor.domain.accounting import (
    Accounting,
    EnergySample,
    attributed_energy_j,
    carbon_facts,
    check_budget,
    check_quota,
    energy_method,
)
from calor.domain.errors import PaymentRequired
from calor.domain.ports import Finished, InstanceEvent, InstanceJob
from calor.runner.host import HostRuntime
from calor.runner.instance import InstanceRunner
from calor.runner.rapl import RaplMeter, machine_busy_seconds
from calor.settings import accounting_from_env


def _zone(root: Path, name: str, energy_uj: int, wrap: int = 262_143_328_850) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{wrap}\n")
    return zone


def test_rapl_reads_the_package_zones_only(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", 5_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 4_000_000)  # the cores of package 0: part of it
    _zone(tmp_path, "intel-rapl:1", 7_000_000, wrap=10_000_000)
    (tmp_path / "intel-rapl").mkdir()  # the control type, no counter
    busy = iter([100.0, 104.0])
    meter = RaplMeter.detect(tmp_path, busy_seconds=lambda: next(busy))
    assert meter is not None
    assert [z.name for z in meter.zones] == ["intel-rapl:0", "intel-rapl:1"]
    before = meter.sample()  # detect's own reading took 100.0
    assert before is not None
    assert before.zones == ((5_000_000, 262_143_328_850), (7_000_000, 10_000_000))
    # package 0 drew 3 J, package 1 wrapped: 10 - 7 + 1 = 4 J
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("8000000\n")
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("1000000\n")
    meter.busy_seconds = lambda: 108.0
    after = meter.sample()
    assert after is not None
    # the attempt used 1 s of the machine's 4 s of busy CPU time: a quarter of 7 J
    assert attributed_energy_j(before, after, cpu_time_sec=1.0) == pytest.approx(1.75)
    # more CPU time than the machine counted (clocks differ): all of it, never more
    assert attributed_energy_j(before, after, cpu_time_sec=9.0) == pytest.approx(7.0)
    assert attributed_energy_j(before, after, cpu_time_sec=0.0) == 0.0


def test_no_rapl_means_no_meter(tmp_path: Path) -> None:
    assert RaplMeter.detect(tmp_path / "missing") is None
    assert RaplMeter.detect(tmp_path) is None  # an empty powercap directory
    zone = _zone(tmp_path, "intel-rapl:0", 1)
    (zone / "energy_uj").write_text("not a number")
    assert RaplMeter.detect(tmp_path, busy_seconds=lambda: 0.0) is None
    (zone / "energy_uj").write_text("12")
    meter = RaplMeter.detect(tmp_path, busy_seconds=lambda: 0.0)
    assert meter is not None
    (zone / "energy_uj").unlink()  # unreadable later: that attempt is estimated
    assert meter.sample() is None


def test_machine_busy_seconds_reads_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(f"cpu  {hz} {hz} {hz} 9999 9999 {hz} {hz} {hz} 777 777\ncpu0 1 2 3\n")
    assert machine_busy_seconds(stat) == pytest.approx(6.0)
    assert machine_busy_seconds() > 0  # this machine's


class FakeMeter:
    """Readings that grow by 2 J and 1 s of busy CPU between two samples."""

    def __init__(self) -> None:
        self.n = 0

    def sample(self) -> EnergySample:
        self.n += 1
        return EnergySample(((self.n * 2_000_000, 10**12),), busy_cpu_sec=float(self.n))


def _run(runner: InstanceRunner, command: str) -> Finished:
    events: list[InstanceEvent] = []
    job = InstanceJob(7, "t", 0, 1, 1, "docker-batch", {"DOCKER_CMD": command}, 1)
    runner.run(job, events.append, lambda _h: None)
    [finished] = [e for e in events if isinstance(e, Finished)]
    return finished


def test_the_runner_reports_its_share_of_the_measured_energy(tmp_path: Path) -> None:
    burn = "sh -c 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done'"
    runtime = HostRuntime([], sandbox=False)
    measured = _run(InstanceRunner(runtime, tmp_path / "a", energy=FakeMeter()), burn)
    assert measured.exit_code == 0 and measured.cpu_time_sec > 0
    # the attempt's CPU time is its share of the 1 s the machine was busy, of 2 J
    share = min(1.0, measured.cpu_time_sec / 1.0)
    assert measured.energy_j == pytest.approx(2.0 * share)
    # no meter: the server estimates it (energy_j None)
    estimated = _run(InstanceRunner(runtime, tmp_path / "b"), burn)
    assert estimated.exit_code == 0 and estimated.energy_j is None


def test_carbon_formulas() -> None:
    rates = Accounting(grams_co2e_per_kwh=50, pue=1.2, reference_pue=1.5)
    facts = carbon_facts(3_600_000.0, 0.0, rates)  # 1 kWh of IT energy, estimated
    assert facts.it_energy_wh == pytest.approx(1000)
    assert facts.consumed_energy_wh == pytest.approx(1200)
    assert facts.carbon_g == pytest.approx(60)
    assert facts.reference_carbon_g == pytest.approx(75)
    assert facts.saved_g == pytest.approx(15) and facts.saved_percent == pytest.approx(20)
    assert facts.method == "estimated"
    assert energy_method(10.0, 10.0) == "rapl" and energy_method(10.0, 4.0) == "mixed"
    assert carbon_facts(0.0, 0.0, rates).saved_percent == 0.0


def test_budget_and_quota_checks() -> None:
    check_budget(0.5, None)
    check_budget(0.5, 1.0)
    with pytest.raises(PaymentRequired, match="not enough credits"):
        check_budget(1.0, 1.0)
    check_quota(2, 2, "x")
    with pytest.raises(PaymentRequired, match="computing quota") as exc:
        check_quota(3, 2, "this pool")
    assert "hardware constraint" not in exc.value.message  # the SDK would not map it


def test_rates_from_the_environment() -> None:
    assert accounting_from_env({}) == Accounting()
    rates = accounting_from_env(
        {
            "CALOR_PRICE_PER_CORE_HOUR": "0.5",
            "CALOR_MAX_CORES_PER_USER": "4",
            "CALOR_PUE": "1.3",
            "CALOR_REFERENCE_DATACENTER": "dc-paris",
        }
    )
    assert rates.price_per_core_hour == 0.5 and rates.max_cores_per_user == 4
    assert rates.pue == 1.3 and rates.reference_datacenter == "dc-paris"
    for bad in (
        {"CALOR_PRICE_PER_CORE_HOUR": "free"},
        {"CALOR_PRICE_PER_CORE_HOUR": "-1"},
        {"CALOR_PUE": "0.9"},
        {"CALOR_WATTS_PER_CORE": "nan"},
        {"CALOR_MAX_CORES_PER_USER": "0"},
        {"CALOR_MAX_CORES_PER_USER": "1.5"},
    ):
        with pytest.raises(ValueError, match="CALOR_"):
            accounting_from_env(bad)
