"""CPU model rules (domain/hardware.py): matching, search order, the submit check."""

import pytest

from calor.domain.errors import BadRequest
from calor.domain.hardware import (
    check_cpu_models,
    cpu_model_matches,
    demanded_cpu_models,
    requirements,
    search_cpu_models,
)
from calor.runner.machine import cpu_info

EPYC = "AMD EPYC 7B13 64-Core Processor"
XEON = "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"
RYZEN = "AMD Ryzen 7 2700X Eight-Core Processor"


def cpu(model: object) -> dict[str, object]:
    return {"discriminator": "CpuModelHardwareConstraint", "cpuModel": model}


def test_a_model_matches_every_word_of_the_demand_case_aside() -> None:
    assert cpu_model_matches(EPYC, EPYC)
    assert cpu_model_matches("epyc 7b13", EPYC)
    assert cpu_model_matches("  AMD   epyc ", EPYC)
    assert not cpu_model_matches("EPYC 7B12", EPYC)
    assert not cpu_model_matches("7B", EPYC)  # a word, not a piece of one
    assert not cpu_model_matches("", EPYC)


def test_search_ranks_the_same_name_then_whole_words_then_pieces() -> None:
    models = [XEON, EPYC, RYZEN, EPYC]
    assert search_cpu_models("", models) == sorted({XEON, EPYC, RYZEN})
    assert search_cpu_models("amd", models) == [EPYC, RYZEN]
    assert search_cpu_models(EPYC.lower(), models)[0] == EPYC
    # "core processor": both AMD models have the words; the Xeon has neither
    assert search_cpu_models("core processor", models) == [EPYC, RYZEN]
    # a piece of a word still finds the model, after the whole-word ones
    assert search_cpu_models("xeo", models) == [XEON]
    # as relevant as each other: by name
    assert search_cpu_models("amd xeon", models) == [EPYC, RYZEN, XEON]
    assert search_cpu_models("sparc", models) == []


def test_search_puts_more_words_first() -> None:
    assert search_cpu_models("amd ryzen", [EPYC, RYZEN]) == [RYZEN, EPYC]


def test_the_submit_check_refuses_a_model_no_machine_has() -> None:
    check_cpu_models([cpu("EPYC 7B13")], [XEON, EPYC])
    check_cpu_models([cpu("ryzen"), cpu("xeon")], [XEON])  # alternatives
    check_cpu_models([], [XEON])
    check_cpu_models([cpu("ryzen")], [])  # no machine known yet: the workers decide
    with pytest.raises(BadRequest) as exc:
        check_cpu_models([cpu("ryzen")], [XEON, EPYC])
    assert "ryzen" in exc.value.message and XEON in exc.value.message


@pytest.mark.parametrize("bad", [None, "", "  -- ", 7, "x" * 300])
def test_a_bad_cpu_model_is_refused(bad: object) -> None:
    with pytest.raises(BadRequest, match="cpuModel"):
        demanded_cpu_models([cpu(bad)])
    with pytest.raises(BadRequest, match="cpuModel"):
        requirements([cpu(bad)])


def test_requirements_carry_the_demanded_models() -> None:
    assert requirements([cpu("a"), cpu("b")]).cpu_models == ("a", "b")
    assert requirements([]).cpu_models == ()


def test_cpu_info_reads_the_model_name(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {EPYC}\ncpu MHz\t\t: 2450.000\n")
    assert cpu_info(path) == (EPYC, 2.45)
    model, ghz = cpu_info(Path(str(tmp_path)) / "missing")
    assert model and ghz == 0.0  # the platform's name stands in
