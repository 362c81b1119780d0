"""The run's quantization is passed beside the design; a design file states the scheme it is built to run."""

from __future__ import annotations

import pytest

from mixpe_sys import ConfigError, load_design, simulate, simulate_gemm
from mixpe_sys.designs import design_from_data
from mixpe_sys.hw.config import AcceleratorConfig
from mixpe_sys.hw.precision import run_quant
from mixpe_sys.system import simulate_system, system_of_design
from mixpe_sys.workload.quant import NumberFormat, QuantScheme


def test_a_design_file_states_its_native_scheme_under_quant():
    fp16 = load_design("fp16")  # fp16.yaml: quant: {weight_bits: 16, activation_bits: 16, activation_format: fp ...}
    q = fp16.native_quant
    assert (q.weight_bits, q.activation_bits, q.activation_format, q.group_size) == (16, 16, NumberFormat.FP, 0)
    data = fp16.to_dict()
    assert "quant" in data and "native_quant" not in data  # the file format is unchanged
    assert AcceleratorConfig.from_dict(data) == fp16
    g64 = design_from_data({"extends": "mixpe-w4a8", "name": "g64", "quant": {"group_size": 64}})
    assert g64.native_quant.group_size == 64


def test_the_attribute_name_is_not_a_file_key():
    with pytest.raises(ConfigError, match="field 'native_quant': unknown field"):
        design_from_data({"extends": "mixpe-w4a8", "name": "x", "native_quant": {"group_size": 64}})


def test_run_quant_is_the_callers_scheme_else_the_native_one():
    d = load_design("a100-like")
    assert run_quant(d) is d.native_quant
    assert run_quant(d, "W4A16") == QuantScheme.parse("W4A16")
    assert run_quant(d, QuantScheme.parse("W4A16"), group_size=64).group_size == 64
    assert run_quant(d, group_size=32) == d.native_quant.replace(group_size=32)


def test_a_gemm_without_quant_runs_the_native_scheme():
    d = load_design("a100-like")
    assert simulate_gemm(64, 256, 512, d).spec.weight_bits == 16
    assert simulate_gemm(64, 256, 512, d, quant="W4A16").spec.weight_bits == 4


def test_a_system_run_takes_the_runs_quant(tiny):
    gpu = load_design("a100-like")
    kw = dict(batch=1, prompt=16, generate=2, progress=False)
    native = simulate(tiny, gpu, tp=2, **kw)
    w4 = simulate(tiny, gpu, tp=2, quant="W4A16", **kw)
    direct = simulate_system(tiny, system_of_design(gpu, num_chips=2, tp=2, pp=1), batch=1, prompt=16, generate=2,
                             quant=QuantScheme.parse("W4A16"))
    assert w4.to_dict() == direct.to_dict()
    assert w4.to_dict()["memory_per_chip_bytes"] < native.to_dict()["memory_per_chip_bytes"]  # 4-bit weights


def test_the_paper_workload_takes_no_quant(tiny):
    with pytest.raises(ConfigError, match="field 'quant': the paper workload"):
        simulate("opt-6.7b", "paper-mixpe-w4a8", batch=64, workload="paper", quant="W4A8", progress=False)


def test_cli_system_run_takes_quant(tmp_path, capsys):
    import json

    from conftest import TINY_CONFIG
    from mixpe_sys.cli import main

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_CONFIG))
    args = ["run", "--model", str(path), "--design", "a100-like", "--tp", "2", "--prompt", "16", "--generate", "2",
            "--workers", "1", "--no-cache", "--json"]
    figures = {}
    for quant in (None, "W4A16"):
        assert main(args + (["--quant", quant] if quant else [])) == 0
        figures[quant] = json.loads(capsys.readouterr().out)
    assert figures["W4A16"]["memory_per_chip_bytes"] < figures[None]["memory_per_chip_bytes"]
