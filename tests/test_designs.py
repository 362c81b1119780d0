"""Design presets: per-tile-step cycles by hand, dequant records, iso-area, area model."""

from __future__ import annotations

from math import ceil

import pytest

from mixpe_sys import design_names, load_design
from mixpe_sys.area import area_breakdown, area_mm2, pe_area_um2
from mixpe_sys.designs import design_summary
from mixpe_sys.hw.config import Dataflow, DequantPlacement, PeKind
from mixpe_sys.hw.pe import pe_model, registered_pe_kinds
from mixpe_sys.hw.tile_step import plan_timer
from mixpe_sys.mapping.gemm import GemmSpec, GemmTiling, LoopOrder, plan_gemm
from mixpe_sys.sim.gemm import simulate_gemm

REALISTIC = ("int8", "fp16", "trtllm-w4a16", "qserve-w4a8", "bitfusion", "ant")
ISO = tuple(f"{n}-iso" for n in REALISTIC)
M, N, K = 64, 64, 256  # one output-stationary tile step


def _spec(design, weight_bits=None, activation_bits=None, group=True):
    q = design.native_quant
    return GemmSpec(m=M, n=N, k=K, weight_bits=weight_bits or q.weight_bits,
                    activation_bits=activation_bits or q.activation_bits, activation_format=q.activation_format,
                    output_bits=16, group_size=q.group_size if group and q.quantized_weights else 0,
                    scale_bits=q.scale_bits, zero_bits=q.zero_bits)


def _one_step(design, spec):
    """The plan of a one-step output-stationary tiling and the hardware's cost of that step."""
    tiling = GemmTiling(tm=M, tn=N, tk=K, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    plan = plan_gemm(spec, design, tiling)
    steps = [s for _, s in plan.iter_steps()]
    assert len(steps) == 1
    return plan, plan_timer(plan, design).step(steps[0])


def fold(rows, cols, depth, stream):
    """One output-stationary fold: SCALE-Sim's R + C + K - 2 for a one-cycle MAC, plus depth - 1."""
    return rows + cols + stream - 2 + depth - 1


# design -> hand-computed array cycles of [64 x 256] x [256 x 64] at the design's own precision
HAND_ARRAY_CYCLES = {
    # one MAC per PE per cycle: one 64x64 fold streaming K = 256
    "mixpe-w4a8": fold(64, 64, 2, 256),
    "int8": fold(64, 64, 2, 256),
    "fp16": fold(64, 64, 4, 256),
    "trtllm-w4a16": fold(64, 64, 4, 256),
    "qserve-w4a8": fold(64, 64, 2, 256),
    # 16 BitBricks / (ceil(4/2) * ceil(8/2)) = 2 MACs per cycle: K/2
    "bitfusion": fold(64, 64, 3, 256 // 2),
    # 4-bit PE, 8-bit activations in two passes: 2 cycles per MAC
    "ant": fold(64, 64, 2, 2 * 256),
    "mixpe-w4a16": ceil(64 / 64) * ceil(64 / 32) * fold(64, 32, 4, 256),
    # iso-area arrays: ceil(M / R) x ceil(N / C) folds
    "int8-iso": ceil(64 / 48) * ceil(64 / 72) * fold(48, 72, 2, 256),
    "fp16-iso": ceil(64 / 16) * ceil(64 / 24) * fold(16, 24, 4, 256),
    "trtllm-w4a16-iso": ceil(64 / 16) * ceil(64 / 20) * fold(16, 20, 4, 256),
    "qserve-w4a8-iso": ceil(64 / 56) * ceil(64 / 60) * fold(56, 60, 2, 256),
    "bitfusion-iso": ceil(64 / 44) * 1 * fold(44, 64, 3, 256 // 2),
    "ant-iso": ceil(64 / 52) * ceil(64 / 104) * fold(52, 104, 2, 2 * 256),
    # the authors' rule: activation factor x rows, weight factor x columns, no fill/drain
    "paper-mixpe-w4a8": ceil(64 / (64 * 2)) * ceil(64 / (64 * 2)) * 256,  # their 4x4-bit GEMMs on (8,4)
    "paper-ant": ceil(64 / (32 * 2)) * ceil(64 / (32 * 2)) * 256,  # 4x4 bits
    "paper-bitfusion": ceil(64 / 32) * ceil(64 / 40) * 256,  # 8x8 bits on 32x40
    "paper-int8": ceil(64 / 32) * ceil(64 / 32) * 256,
    "paper-mixpe-w4a16": ceil(64 / (32 * 2)) * ceil(64 / (32 * 2)) * 256,  # 8x8 bits on (16,8)
    "paper-fp16": ceil(64 / 32) * ceil(64 / 28) * 256,
}
PAPER_BITS = {"paper-mixpe-w4a8": (4, 4), "paper-ant": (4, 4), "paper-bitfusion": (8, 8), "paper-int8": (8, 8),
              "paper-mixpe-w4a16": (8, 8), "paper-fp16": (16, 16)}


@pytest.mark.parametrize("name", sorted(HAND_ARRAY_CYCLES))
def test_tile_step_cycles_by_hand(name):
    design = load_design(name)
    w, a = PAPER_BITS.get(name, (None, None))
    _, step = _one_step(design, _spec(design, w, a))
    assert step.array_cycles == HAND_ARRAY_CYCLES[name]
    # compute = max(PE rule, SRAM bandwidth), plus the in-loop converter where there is one
    assert step.compute_cycles >= step.array_cycles


def test_every_new_preset_is_listed_with_a_description():
    names = set(design_names())
    for n in REALISTIC + ISO + ("paper-bitfusion", "paper-ant"):
        assert n in names
        assert len(load_design(n).description) > 80, n


def test_pe_types_are_registered_and_documented():
    for kind in (PeKind.DEQUANT_W4A16, PeKind.DEQUANT_W4A8, PeKind.BITFUSION, PeKind.ANT):
        assert kind in registered_pe_kinds()
    for name in REALISTIC:
        pe = load_design(name).tile.pe_array.pe
        doc = " ".join(type(pe_model(pe)).__doc__.split())
        assert "per cycle" in doc.lower(), name  # says what the PE does per cycle
        assert "Source" in doc, name


@pytest.mark.parametrize("w, a, rate", [(2, 2, 16), (4, 4, 4), (4, 8, 2), (8, 8, 1), (16, 16, 0.25)])
def test_bitfusion_rate(w, a, rate):
    assert float(pe_model(load_design("bitfusion").tile.pe_array.pe).macs_per_cycle(w, a)) == rate


@pytest.mark.parametrize("w, a, rate", [(4, 4, 1), (4, 8, 0.5), (8, 8, 0.25)])
def test_ant_rate(w, a, rate):
    assert float(pe_model(load_design("ant").tile.pe_array.pe).macs_per_cycle(w, a)) == rate


# ----------------------------------------------------------------- dequant records


def test_in_loop_conversion_tile_step_by_hand():
    """TensorRT-LLM-style W4A16: every weight converted as it enters the array, 128 per cycle, 4 deep."""
    design = load_design("trtllm-w4a16")
    assert design.tile.dequant.placement is DequantPlacement.IN_LOOP
    spec = _spec(design)
    plan, step = _one_step(design, spec)
    converted = K * N * ceil(M / 64)  # every weight, once per row block
    busy = ceil(converted / 128)
    assert (step.dequant_elements, step.convert_cycles) == (converted, busy + 4) == (16384, 132)
    array = fold(64, 64, 4, 256)
    assert step.compute_cycles == max(array, busy) + 4 == 389  # the converter's depth delays the array
    assert step.convert_stall_cycles == 4 and step.dequant_cycles == 0  # nothing left for after the GEMM
    r = simulate_gemm(spec, design, plan)
    assert r.dequant_cycles == 132  # the op shows its converter's busy cycles
    assert r.compute_cycles == 389


def test_qserve_conversion_tile_step_by_hand():
    design = load_design("qserve-w4a8")
    spec = _spec(design)
    _, step = _one_step(design, spec)
    assert step.convert_cycles == ceil(256 * 64 / 128) + 2 == 130
    assert step.compute_cycles == fold(64, 64, 2, 256) + 2 == 385
    # QServe's 8-bit group scales and 4-bit zeros travel with the weights
    assert spec.weight_bytes(K, N) == 256 * 64 // 2 + 2 * 64 * (8 + 4) // 8


def test_mixpe_post_gemm_dequant_tile_step_by_hand():
    design = load_design("mixpe-w4a8")
    spec = _spec(design)
    plan, step = _one_step(design, spec)
    groups = K // 128
    elems = M * N * groups + M * groups  # scaled partial sums + the activation group sums
    assert step.dequant_elements == elems == 8320
    assert step.dequant_cycles == ceil(elems / 64) + 4 == 134
    assert step.convert_cycles == 0 and step.compute_cycles == fold(64, 64, 2, 256) == 383
    r = simulate_gemm(spec, design, plan)
    assert r.dequant_cycles == 134


def test_engine_rows_show_dequant_cycles():
    from mixpe_sys.sim.engine import CostCache
    from mixpe_sys.workload.ops import Op, OpKind

    op = Op(name="qkv", kind=OpKind.LINEAR, m=64, n=512, k=512, weight_bits=4, activation_bits=8, output_bits=16,
            group_size=128, scale_bits=16, zero_bits=4)
    for name in ("mixpe-w4a8", "qserve-w4a8"):
        c = CostCache(load_design(name)).cost(op)
        assert c.dequant_cycles > 0 and c.dequant_elements > 0, name


# ----------------------------------------------------------------- area


@pytest.mark.parametrize("name", ISO)
def test_iso_area_presets_match_mixpe_within_2_percent(name):
    target = area_mm2(load_design("mixpe-w4a8"))
    assert abs(area_mm2(load_design(name)) / target - 1) <= 0.02


def test_area_breakdown_and_summary():
    d = load_design("mixpe-w4a8")
    b = area_breakdown(d)
    assert b.pes_mm2 == pytest.approx(8 * 64 * 64 * pe_area_um2(d.tile.pe_array.pe) * 1e-6)
    # 4 MiB global buffer + 8 x (512 + 512 + 256) KiB tile buffers at 1734 um^2 per KiB
    assert b.sram_mm2 == pytest.approx((4096 + 8 * 1280) * 1734e-6)
    assert design_summary(d)["area_mm2"] == pytest.approx(b.total_mm2)


def test_pe_areas_order():
    area = {n: pe_area_um2(load_design(n).tile.pe_array.pe) for n in ("mixpe-w4a8", "int8", "fp16", "ant",
                                                                       "mixpe-w4a16")}
    assert area["ant"] < area["mixpe-w4a8"] < area["int8"] < area["mixpe-w4a16"] < area["fp16"]


def test_mapper_accounts_for_global_buffer_port():
    """A 512-token QKV projection on bitfusion: the mapper must not pick a tiling that streams every
    activation tile through the global buffer's single port once per weight block."""
    r = simulate_gemm(GemmSpec(m=512, n=15360, k=5120, weight_bits=4, activation_bits=8, output_bits=16),
                      load_design("bitfusion"))
    assert r.stall_cycles < 0.05 * r.compute_cycles


@pytest.mark.parametrize("name", ["ant", "bitfusion", "int8", "mixpe-w4a8"])
def test_decode_gemv_spreads_over_tiles(name):
    """A decode GEMV (m = 1) must not be cut into fewer output blocks than the tiles can stream:
    one tile's link alone is slower than the DRAM."""
    design = load_design(name)
    q = design.native_quant
    spec = GemmSpec(m=1, n=4096, k=16384, weight_bits=q.weight_bits, activation_bits=q.activation_bits,
                    output_bits=16, group_size=q.group_size if q.quantized_weights else 0,
                    scale_bits=q.scale_bits, zero_bits=q.zero_bits)
    r = simulate_gemm(spec, design)
    assert r.time_s < 1.1 * r.roofline.memory_time_s
