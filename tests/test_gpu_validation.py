"""GPU-like presets and the validation against measured A100 GEMM times (experiments/validate_gpu.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.workload.quant import NumberFormat

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    path = ROOT / "experiments" / "validate_gpu.py"
    spec = importlib.util.spec_from_file_location("validate_gpu", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


vg = _load_script()


def _peak_flops(design) -> float:
    arr = design.tile.pe_array
    return design.num_tiles * arr.rows * arr.cols * design.frequency_hz * 2


@pytest.mark.parametrize("name, flops, hbm", [("a100-like", 312e12, 1.555e12), ("h100-like", 989e12, 3.35e12)])
def test_preset_has_published_peaks(name, flops, hbm):
    d = load_design(name)
    assert _peak_flops(d) == pytest.approx(flops, rel=0.01)
    assert d.dram.bandwidth_bytes_per_s == pytest.approx(hbm)
    q = d.quant
    assert (q.weight_bits, q.activation_bits, q.activation_format, q.group_size, q.kv_bits) == \
        (16, 16, NumberFormat.FP, 0, 16)
    assert d.tile.pe_array.pe.kind == "fp16_mac"
    assert d.op_overhead_ns > 0 and 0 < d.dram.bandwidth_efficiency <= 1


def test_a100_shape():
    d = load_design("a100-like")
    assert d.num_tiles == 108 and d.frequency_hz == 1.41e9
    assert d.global_buffer.capacity_bytes == 40 * 2**20
    assert d.dram.capacity_bytes == 40 * 2**30


def test_validation_design_swaps_only_the_dram():
    base = load_design("a100-like")
    v = vg.validation_design(base)
    assert v.dram.bandwidth_bytes_per_s == pytest.approx(2.039e12)
    assert v.dram.bandwidth_efficiency == base.dram.bandwidth_efficiency
    assert (v.tile, v.num_tiles, v.frequency_hz, v.op_overhead_ns, v.global_buffer, v.noc) == \
        (base.tile, base.num_tiles, base.frequency_hz, base.op_overhead_ns, base.global_buffer, base.noc)


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_validation")
    assert vg.main([str(out), "--subset"]) == 0
    return out


def test_script_writes_its_files(subset_run):
    for name in ("gemm_validation.csv", "gemm_validation.md", "gemm_validation.png",
                 "decode_gemv.csv", "decode_gemv.md", "decode_gemv.png"):
        assert (subset_run / name).stat().st_size > 0, name
    assert (subset_run / "gemm_validation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_error_is_computed_from_simulated_and_measured(subset_run):
    df = pd.read_csv(subset_run / "gemm_validation.csv")
    assert len(df) == len(vg.measurements("subset"))
    design = vg.validation_design("a100-like")
    # one row checked independently: its own simulation, the overhead, the measured value from the CSV source
    row = df[(df.m == 8192) & (df.n == 1024) & (df.k == 1024)].iloc[0]
    device = vg.with_params(design, op_overhead_ns=0.0)
    kernel_ms = simulate_gemm(8192, 1024, 1024, device).time_s * 1e3
    simulated_ms = kernel_ms + design.op_overhead_ns * 1e-6
    assert row.measured_ms == 0.0927
    assert row.kernel_ms == pytest.approx(kernel_ms, rel=1e-9)
    assert row.simulated_ms == pytest.approx(simulated_ms, rel=1e-9)
    assert row.error_pct == pytest.approx((simulated_ms - 0.0927) / 0.0927 * 100, rel=1e-9)
    # the summary is the median / max of the per-row errors, whatever their size
    errors = np.abs((df.simulated_ms - df.measured_ms) / df.measured_ms * 100)
    s = vg.error_summary(df)
    assert s["median_abs_error_pct"] == pytest.approx(float(np.median(errors)))
    assert s["max_abs_error_pct"] == pytest.approx(float(errors.max()))
    md = (subset_run / "gemm_validation.md").read_text()
    assert f"median |error| {s['median_abs_error_pct']:.1f} %" in md


def test_fit_follows_its_two_steps():
    points = vg.measurements("subset")
    best, grid, kernels = vg.fit(vg.validation_design("a100-like"), points, efficiencies=(0.8, 0.9),
                                 overheads_ns=(0.0, 20000.0, 30000.0))
    assert len(grid) == 6 and len(kernels) == 2 * len(points)
    # step 1: at the chosen efficiency, the overhead minimises the median over all points
    same_eff = grid[grid.bandwidth_efficiency == best["bandwidth_efficiency"]]
    assert best["median_abs_error_pct"] == pytest.approx(same_eff["median_abs_error_pct"].min())
    # the small GEMMs take a few microseconds on the device; the measured ~30 us is fixed overhead
    assert best["op_overhead_ns"] > 0
    # step 2 compares efficiencies on the GEMMs the simulation finds DRAM-bandwidth-bound (the M=64 one)
    at_best = kernels[kernels.bandwidth_efficiency == best["bandwidth_efficiency"]]
    bound = at_best[at_best.dram_busy_fraction >= vg.BANDWIDTH_BOUND_FRACTION]
    assert (64, 12288) in set(zip(bound.m, bound.n))
    assert best["bandwidth_bound_points"] == len(bound)


def test_decode_gemv_reaches_a_realistic_fraction_of_hbm_bandwidth():
    d = load_design("a100-like")
    r = simulate_gemm(1, 4096, 4096, d)
    reads, writes = r.spec.compulsory_bytes()
    # a profiler's figure: the kernel's own time, without the launch overhead
    assert r.time_s == pytest.approx(r.device_time_s + d.op_overhead_ns * 1e-9)
    fraction = (reads + writes) / r.device_time_s / d.dram.bandwidth_bytes_per_s
    # measured GEMV kernels reach 70-80 % of peak; the simulated one cannot beat the sustained fraction
    assert 0.7 <= fraction <= d.dram.bandwidth_efficiency
    assert r.roofline_bound == "memory"


def test_decode_curve_columns(subset_run):
    dec = pd.read_csv(subset_run / "decode_gemv.csv")
    assert list(dec.m) == [1, 16, 256]
    assert (dec.kernel_us >= np.maximum(dec.memory_roofline_us, dec.compute_roofline_us) * (1 - 1e-9)).all()
    assert (dec.roofline_us == np.maximum(dec.memory_roofline_us, dec.compute_roofline_us)).all()
    assert (dec.hbm_fraction > 0).all() and (dec.hbm_fraction <= 1).all()
    assert dec.vs_m1.iloc[0] == 1 and (dec.vs_m1 == dec.kernel_us / dec.kernel_us.iloc[0]).all()
    assert np.allclose(dec.time_us - dec.kernel_us, load_design("a100-like").op_overhead_ns * 1e-3)
    assert (dec.tiles >= 1).all() and (dec.tiles <= 108).all()
    # the mapper's estimate is what the simulation measures
    assert (abs(dec.estimate_us / dec.kernel_us - 1) < 0.1).all()


def test_decode_markdown_and_summary(subset_run):
    dec = pd.read_csv(subset_run / "decode_gemv.csv")
    summary = vg.decode_summary(dec)
    row = summary.iloc[0]
    assert (row.n, row.k, row.m1_us) == (4096, 4096, dec.kernel_us.iloc[0])
    assert row.last_memory_bound_m == dec[dec.roofline_bound == "memory"].m.max()
    # flat_up_to_m: the largest M before the first point that exceeds the tolerance
    over = dec[dec.vs_m1 > vg.FLAT_TOLERANCE]
    assert row.flat_up_to_m == (dec.m.max() if over.empty else dec[dec.m < over.m.min()].m.max())
    md = (subset_run / "decode_gemv.md").read_text()
    assert "| M | 4096x4096 us | 4096x4096 HBM | 4096x4096 roofline us |" in md
    first = dec.iloc[0]
    assert f"| 1 | {round(first.kernel_us, 1):.4g} | {round(first.hbm_fraction, 2):.4g} |" in md


def test_decode_shapes_are_the_llama_2_7b_projections():
    assert set(vg.DECODE_SHAPES) == {(4096, 4096), (11008, 4096), (4096, 11008), (12288, 4096)}
    assert vg.DECODE_BATCHES == tuple(2 ** i for i in range(10))
