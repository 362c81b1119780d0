"""One timing model: systolic folds as cycle-accurate simulators count them, buffers that fit or fail,
the mapper's estimate against the simulation, and shipped designs without accidental bottlenecks."""

from __future__ import annotations

import pytest

from mixpe_sys import MappingError, design_names, load_design, simulate_gemm
from mixpe_sys.hw.config import (AcceleratorConfig, Dataflow, DequantConfig, DequantPlacement, DramConfig,
                                 PeArrayConfig, PeConfig, PeKind, SramConfig, TileConfig)
from mixpe_sys.mapping.gemm import GemmSpec, GemmTiling, LoopOrder, plan_gemm
from mixpe_sys.sim.gemm import simulate_gemm as simulate_spec

GPU_PRESETS = {"a100-like", "a100-80gb-like", "h100-like", "h200-like"}  # their point is to match measured GPUs, not to reach peak


def ample_design(capacity_bytes: int) -> AcceleratorConfig:
    """One 32x32 output-stationary INT8 array of one-cycle MACs (SCALE-Sim's PE) with buffers of
    ``capacity_bytes`` and bandwidth to spare."""
    sram = SramConfig(capacity_bytes=capacity_bytes, banks=64, bank_width_bytes=64, latency_cycles=0)
    return AcceleratorConfig(
        name="ample", frequency_hz=1e9, num_tiles=1,
        tile=TileConfig(pe_array=PeArrayConfig(pe=PeConfig(kind=PeKind.INT8_MAC, pipeline_depth_cycles=1),
                                               rows=32, cols=32),
                        weight_buffer=sram, activation_buffer=sram, output_buffer=sram,
                        dequant=DequantConfig(placement=DequantPlacement.NONE)),
        dram=DramConfig(channels=4, bandwidth_bytes_per_s=1e13, latency_ns=10.0))


SPEC = GemmSpec(m=256, n=256, k=512, weight_bits=8, activation_bits=8, output_bits=8, group_size=0)
# SCALE-Sim, output-stationary: ceil(256 / 32) x ceil(256 / 32) = 64 folds of R + C + K - 2 cycles
SCALE_SIM_OS_CYCLES = 64 * (32 + 32 + 512 - 2)


@pytest.mark.parametrize("capacity, tm, tn", [(1 << 22, 256, 256), (1 << 22, 64, 128), (1 << 26, 32, 256),
                                              (1 << 26, 256, 32)])
def test_compute_cycles_do_not_depend_on_buffer_capacity_or_tile_shape(capacity, tm, tn):
    design = ample_design(capacity)
    tiling = GemmTiling(tm=tm, tn=tn, tk=512, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    r = simulate_spec(SPEC, design, plan_gemm(SPEC, design, tiling))
    assert r.compute_cycles == SCALE_SIM_OS_CYCLES == 36736
    assert int(r.steps.folds.sum()) == 64


@pytest.mark.parametrize("capacity", [1 << 22, 1 << 26])
def test_the_mappers_choice_has_the_same_compute_cycles(capacity):
    assert simulate_spec(SPEC, ample_design(capacity)).compute_cycles == SCALE_SIM_OS_CYCLES


def test_weight_stationary_pays_the_preload_every_fold():
    design = ample_design(1 << 22).replace(tile=ample_design(1 << 22).tile.replace(
        pe_array=ample_design(1 << 22).tile.pe_array.replace(dataflows=(Dataflow.WEIGHT_STATIONARY,))))
    tiling = GemmTiling(tm=256, tn=256, tk=512, order=LoopOrder.M_OUTER, dataflow=Dataflow.WEIGHT_STATIONARY,
                        estimated_time_s=0.0)
    r = simulate_spec(SPEC, design, plan_gemm(SPEC, design, tiling))
    # ceil(512 / 32) x ceil(256 / 32) = 128 folds of 2R + C + M - 2
    assert r.compute_cycles == 128 * (2 * 32 + 32 + 256 - 2)


def test_a_tile_that_does_not_fit_its_slot_is_an_error():
    design = load_design("mixpe-w4a8")
    spec = GemmSpec(m=4096, n=4096, k=4096, weight_bits=4, activation_bits=8, output_bits=8, group_size=128)
    tiling = GemmTiling(tm=4096, tn=64, tk=4096, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    with pytest.raises(MappingError) as err:
        simulate_spec(spec, design, plan_gemm(spec, design, tiling))
    msg = str(err.value)
    # a 4096 x 4096 INT8 activation tile is 16 MiB; the activation buffer's slot is half of 512 KiB
    assert "activation tile of 16777216 B" in msg and "tile0.activation_buffer" in msg and "262144 B" in msg


def test_partial_sums_that_overflow_the_output_buffer_are_an_error():
    design = load_design("mixpe-w4a8")
    spec = GemmSpec(m=512, n=512, k=128, weight_bits=4, activation_bits=8, output_bits=8, group_size=128)
    tiling = GemmTiling(tm=512, tn=512, tk=128, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    with pytest.raises(MappingError, match=r"partial-sum tile of 1048576 B does not fit buffer 'tile\d+.output_buffer' \(slot 131072 B"):
        simulate_spec(spec, design, plan_gemm(spec, design, tiling))


DECODE_PREFILL = [(1, 4096, 4096), (16, 11008, 4096), (256, 4096, 4096)]
#: measured over these shapes on every shipped design: worst |estimate / simulation - 1| = 3.7 % (h100-like,
#: 256 x 4096 x 4096), median 0.1 %
ESTIMATE_TOLERANCE = 0.05


def _estimate_matches(name: str) -> None:
    for m, n, k in DECODE_PREFILL:
        r = simulate_gemm(m, n, k, name)
        assert r.plan.tiling.estimated_time_s == pytest.approx(r.device_time_s, rel=ESTIMATE_TOLERANCE), (m, n, k)


#: one design of each kind of PE and memory system, in the default run; every design under -m slow
ESTIMATE_SAMPLE = ("mixpe-w4a8", "mixpe-w4a16", "qserve-w4a8", "paper-int8", "a100-like")


@pytest.mark.parametrize("name", ESTIMATE_SAMPLE)
def test_the_estimate_of_the_chosen_tiling_is_its_simulated_time(name):
    _estimate_matches(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(design_names()) - set(ESTIMATE_SAMPLE)))
def test_the_estimate_is_the_simulated_time_on_every_shipped_design(name):
    _estimate_matches(name)


def _peak_share(name: str) -> float:
    r = simulate_gemm(2048, 4096, 4096, name)
    return r.compute_time_s / r.device_time_s


@pytest.mark.parametrize("name", ["mixpe-w4a8", "fp16", "trtllm-w4a16", "paper-int8"])
def test_large_gemm_reaches_90_percent_of_peak(name):
    assert _peak_share(name) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(design_names()) - GPU_PRESETS))
def test_every_shipped_design_reaches_90_percent_of_peak(name):
    assert _peak_share(name) >= 0.9


def test_the_op_names_its_bottleneck():
    fp16 = simulate_gemm(1, 4096, 4096, "fp16")  # a GEMV streams 32 MiB of FP16 weights
    assert fp16.bottleneck == "dram" and fp16.bottleneck_utilization > 0.9 and fp16.roofline_bound == "memory"
    big = simulate_gemm(2048, 4096, 4096, "mixpe-w4a8")
    assert big.bottleneck == "tile.array" and big.roofline_bound == "compute"
    assert list(big.units.utilization) == sorted(big.units.utilization, reverse=True)
