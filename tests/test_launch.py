"""Kernel launch costs per run mode (graph | eager), exposed through the API, the CLI and serving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixpe_sys import ConfigError, load_design, simulate, simulate_gemm
from mixpe_sys.cli import main
from mixpe_sys.designs import design_from_data
from mixpe_sys.energy import dram_static_power_w, pe_leakage_w, sram_capacity_kib, constants
from mixpe_sys.hw.launch import LaunchConfig, LaunchMode, kernel_overhead_ns
from mixpe_sys.serving import ServingConfig, replay
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.serving.iteration_cost import IterationCostModel
from mixpe_sys.serving.config import ServingError


def test_overhead_per_mode_by_hand():
    cfg = LaunchConfig(graph_launch_ns=500.0, launch_ns=6700.0, host_dispatch_ns=19800.0)
    assert cfg.kernel_overhead_ns("graph") == 500.0
    assert cfg.kernel_overhead_ns(LaunchMode.EAGER) == 6700.0 + 19800.0
    assert kernel_overhead_ns(None, "eager") == 0.0  # an accelerator with its own sequencer launches nothing
    with pytest.raises(ConfigError, match="unknown launch mode 'lazy'"):
        cfg.kernel_overhead_ns("lazy")


def test_gemm_time_is_device_time_plus_one_launch():
    d = load_design("a100-like")
    g_ns, e_ns = d.launch.graph_launch_ns, d.launch.launch_ns + d.launch.host_dispatch_ns
    graph = simulate_gemm(1, 4096, 4096, d)
    eager = simulate_gemm(1, 4096, 4096, d, launch="eager")
    assert graph.device_time_s == eager.device_time_s
    assert graph.time_s == pytest.approx(graph.device_time_s + g_ns * 1e-9, rel=1e-12)
    assert eager.time_s == pytest.approx(eager.device_time_s + e_ns * 1e-9, rel=1e-12)
    assert (graph.launch, eager.launch) == ("graph", "eager")
    # the launch is idle time: stall cycles grow, compute cycles do not
    assert eager.compute_cycles == graph.compute_cycles
    assert eager.stall_cycles - graph.stall_cycles == round(e_ns / d.cycle_ns) - round(g_ns / d.cycle_ns)
    # ... and it costs static power plus PE leakage for its duration, nothing else
    c = constants()
    idle_w = (dram_static_power_w(d) + sram_capacity_kib(d) * c["sram"]["leakage_uw_per_kib"] * 1e-6
              + pe_leakage_w(d.tile.pe_array.pe) * d.num_pes)
    assert eager.energy_j - graph.energy_j == pytest.approx(idle_w * (e_ns - g_ns) * 1e-9, rel=1e-9)
    assert eager.energy.dram_j == graph.energy.dram_j and eager.energy.buffer_j == graph.energy.buffer_j


def test_design_without_launch_block_pays_nothing():
    d = load_design("mixpe-w4a8")
    assert d.launch is None
    r = simulate_gemm(8, 1024, 1024, d, launch="eager")
    assert r.time_s == r.device_time_s


def test_model_run_pays_one_launch_per_kernel(tiny):
    d = load_design("a100-like")
    kw = dict(batch=1, prompt=16, generate=3, progress=False)
    graph = simulate(tiny, d, **kw)
    eager = simulate(tiny, d, launch="eager", **kw)
    assert graph.to_dict()["launch"] == "graph" and eager.to_dict()["launch"] == "eager"
    assert len(graph.ops) == len(eager.ops)
    # the same device costs, each op one kernel: the difference is ops x (eager - graph) cost
    diff = eager.ops["time_s"].to_numpy() - graph.ops["time_s"].to_numpy()
    extra_ns = d.launch.launch_ns + d.launch.host_dispatch_ns - d.launch.graph_launch_ns
    assert np.allclose(diff, extra_ns * 1e-9, rtol=1e-9, atol=0)


def test_old_overhead_field_names_its_replacement(tmp_path):
    with pytest.raises(ConfigError) as err:
        design_from_data({"extends": "a100-like", "name": "old", "op_overhead_ns": 26500.0}, source="old.yaml",
                         lines={("op_overhead_ns",): 3})
    msg = str(err.value)
    assert msg.startswith("old.yaml:3: field 'op_overhead_ns': replaced by 'launch'") and "\n" not in msg
    path = tmp_path / "old.yaml"
    path.write_text("extends: a100-like\nname: old\nop_overhead_ns: 26500.0\n")
    assert main(["gemm", "--design", str(path)]) == 2


def test_cli_gemm_and_run_take_launch(capsys, tiny, tmp_path):
    assert main(["gemm", "--design", "a100-like", "--m", "1", "--launch", "eager", "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert main(["gemm", "--design", "a100-like", "--m", "1", "--json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert eager["launch"] == "eager" and graph["launch"] == "graph"
    d = load_design("a100-like")
    extra_ns = d.launch.launch_ns + d.launch.host_dispatch_ns - d.launch.graph_launch_ns
    assert eager["time_s"] - graph["time_s"] == pytest.approx(extra_ns * 1e-9, rel=1e-9)
    with pytest.raises(SystemExit) as exit_:
        main(["gemm", "--design", "a100-like", "--launch", "lazy"])
    assert exit_.value.code == 2


def test_serving_launch_mode(tiny):
    import pandas as pd

    d = load_design("a100-like")
    reqs = pd.DataFrame({"request_id": [0, 1], "arrival_s": [0.0, 0.001], "prompt_tokens": [8, 12],
                         "output_tokens": [3, 2]})
    graph = replay(reqs, tiny, d, progress=False)
    eager = replay(reqs, tiny, d, progress=False, launch="eager")
    assert graph.summary["launch"] == "graph" and eager.summary["launch"] == "eager"
    assert eager.summary["busy_s"] > graph.summary["busy_s"]
    assert ServingConfig().launch is LaunchMode.GRAPH
    with pytest.raises(ServingError, match="launch mode 'graph', not 'eager'"):
        IterationCostModel(tiny, d, quant=d.native_quant, config=ServingConfig(launch="eager"), cache=CostCache(d))
