"""Energy model: hand checks of both accountings, per op and over whole runs; the data file names its sources."""

from __future__ import annotations

import pytest

from mixpe_sys import load_design, simulate, simulate_gemm
from mixpe_sys.energy import (EnergyBreakdown, constants, dram_constants, pe_cycle_energy_pj, pe_leakage_w,
                              pe_mac_energy_pj, sram_pj_per_bit)
from mixpe_sys.hw.config import PeConfig, PeKind
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.workload.ops import Op, OpKind, vector_op


@pytest.mark.parametrize("design", ["mixpe-w4a8", "paper-int8", "paper-mixpe-w4a8", "mixpe-w4a16"])
def test_gemm_energy_parts_are_positive(design):
    parts = simulate_gemm(64, 512, 1024, design).to_dict()["energy_breakdown_j"]
    assert parts["dram"] > 0 and parts["buffer"] > 0 and parts["core"] > 0 and parts["static"] > 0


def test_run_energy_is_the_cited_power_and_per_bit_figures(tiny):
    """A whole run on paper-int8 (the authors' accounting): static energy is the DRAM background power
    (484.615 mW) x time in every phase and layer row, DRAM energy 0.644304 / 0.784104 nJ per 1024 bits read /
    written (ANT stats.py) over the run's bytes."""
    res = simulate(tiny, "paper-int8", batch=2, prompt=16, generate=3, progress=False)
    assert (res.ops["energy_j"] > 0).all()
    parts = res.to_dict()["energy_breakdown_j"]
    assert parts["static"] == pytest.approx(0.484615 * res.total_time_s, rel=1e-12)
    for report in (res.phases, res.layers):
        assert report["static_energy_j"].to_numpy() == pytest.approx(0.484615 * report["time_s"].to_numpy(),
                                                                     rel=1e-12)
    read, written = int(res.ops["dram_read_bytes"].sum()), int(res.ops["dram_write_bytes"].sum())
    dram_j = 8 * (read * 0.644304 / 1.024 + written * 0.784104 / 1.024) * 1e-12
    assert parts["dram"] == pytest.approx(dram_j, rel=1e-12)


def test_cost_cache_exposes_energy():
    cache = CostCache(load_design("mixpe-w4a8"))
    op = Op(name="qkv", kind=OpKind.LINEAR, m=4, n=256, k=256, weight_bits=4, activation_bits=8, output_bits=16,
            group_size=128, scale_bits=16, zero_bits=4)
    cost = cache.cost(op)
    assert cost.energy_j > 0 and cost.dequant_elements > 0 and cost.core_energy_j > 0
    vec = cache.cost(vector_op("softmax", OpKind.SOFTMAX, elements=4096, read_bits_per_element=16,
                               write_bits_per_element=8, ops_per_element=5))
    assert vec.vector_ops == 4096 * 5 and vec.core_energy_j > 0


def test_paper_accounting_hand_check():
    """ANT stats.get_energy_breakdown on one GEMM of paper-int8 (one tile, 32x32 (8,4) PEs)."""
    design = load_design("paper-int8")
    op = Op(name="fc", kind=OpKind.LINEAR, m=64, n=1024, k=1024, weight_bits=8, activation_bits=8, output_bits=16)
    c = CostCache(design).cost(op)
    t = c.time_ns * 1e-9
    pes = 32 * 32
    # static: DRAM background 484.615 mW x time
    assert c.static_energy_j == pytest.approx(0.484615 * t, rel=1e-12)
    # DRAM: 0.644304 / 1024 nJ per bit read, 0.784104 / 1024 per bit written
    dram = 8 * (c.dram_read_bytes * 0.644304 / 1.024 + c.dram_write_bytes * 0.784104 / 1.024) * 1e-12
    assert c.dram_energy_j == pytest.approx(dram, rel=1e-12)
    # core: 64.314 uW leakage per PE all the time + 279.960 uW / 500 MHz per PE per busy cycle
    assert c.compute_cycles == 2 * 32 * 1024
    core = pes * 64.314e-6 * t + c.compute_cycles * pes * 279.960e-6 / 500e6
    assert c.core_energy_j == pytest.approx(core, rel=1e-12)
    # buffer: both operands read from SRAM for every MAC (8 bits each) at the CACTI figures,
    # buffer fills from DRAM, and the output buffer's counted traffic
    out_r = c.sram_read_bytes - c.w_sram_read_bytes - c.a_sram_read_bytes
    out_w = c.sram_write_bytes - c.w_sram_write_bytes - c.a_sram_write_bytes
    buffer = (op.macs * 8 * (0.0330 + 0.0347)
              + 8 * (c.w_sram_write_bytes * 0.0397 + c.a_sram_write_bytes * 0.0486 + out_r * 0.0092
                     + out_w * 0.0130)) * 1e-12
    assert c.buffer_energy_j == pytest.approx(buffer, rel=1e-12)
    assert c.w_sram_write_bytes + c.a_sram_write_bytes == c.dram_read_bytes  # every byte read lands in a buffer


def test_simulated_accounting_core_is_mac_energy_plus_leakage():
    design = load_design("mixpe-w4a8")
    r = simulate_gemm(128, 1024, 1024, design, group_size=0)  # no dequant work
    pe = design.tile.pe_array.pe
    e_mac = pe_mac_energy_pj(pe, 4, 8)
    # 3 x add12 + add32 at 45 nm (0.22 pJ) x 28/45 x 2 (registers and clock)
    assert e_mac == pytest.approx((3 * 0.04 + 0.1) * 0.6222 * 2.0)
    core = r.macs * e_mac * 1e-12 + pe_leakage_w(pe) * design.num_pes * r.time_s
    assert r.energy.core_j == pytest.approx(core, rel=1e-9)


def test_in_loop_conversion_costs_energy_post_gemm_less():
    # same GEMM: the in-loop design converts every weight, MixPE scales each group's partial sums once
    m, n, k = 16, 1024, 1024
    qserve = simulate_gemm(m, n, k, "qserve-w4a8")
    mixpe = simulate_gemm(m, n, k, "mixpe-w4a8")
    q_dq, x_dq = qserve.dequant_elements, mixpe.dequant_elements
    assert q_dq >= k * n  # every weight at least once
    assert x_dq < q_dq
    assert qserve.dequant_cycles > 0 and mixpe.dequant_cycles > 0


def test_pe_energy_relations():
    int8 = PeConfig(kind=PeKind.INT8_MAC)
    fp16 = PeConfig(kind=PeKind.FP16_MAC)
    w4a8 = PeConfig(kind=PeKind.MIXPE_W4A8)
    w4a16 = PeConfig(kind=PeKind.MIXPE_W4A16, native_activation_bits=16)
    assert pe_mac_energy_pj(w4a8, 4, 8) < pe_mac_energy_pj(int8, 8, 8) < pe_mac_energy_pj(fp16, 16, 16)
    assert pe_mac_energy_pj(w4a16, 4, 16) < pe_mac_energy_pj(fp16, 16, 16)
    bf = PeConfig(kind=PeKind.BITFUSION, max_bits=8)
    assert pe_mac_energy_pj(bf, 4, 4) < pe_mac_energy_pj(bf, 4, 8) < pe_mac_energy_pj(bf, 8, 8)
    # paper PEs: the synthesised busy-cycle energy, whatever the widths
    paper = PeConfig(kind=PeKind.PAPER_RULE, max_bits=8, min_bits=4)
    assert pe_cycle_energy_pj(paper, 4, 4) == pytest.approx(279.960e-6 / 500e6 * 1e12)
    assert pe_mac_energy_pj(paper, 4, 4) == pytest.approx(pe_cycle_energy_pj(paper, 4, 4) / 4)
    assert pe_leakage_w(paper) == pytest.approx(64.314e-6)


def test_sram_energy_scales_with_bank_size():
    paper = load_design("paper-int8").tile
    assert sram_pj_per_bit("weight", paper.weight_buffer) == pytest.approx((0.0330, 0.0397))  # 4 KiB banks
    assert sram_pj_per_bit("activation", paper.activation_buffer) == pytest.approx((0.0347, 0.0486))
    big = paper.weight_buffer.replace(capacity_bytes=4 * paper.weight_buffer.capacity_bytes)
    assert sram_pj_per_bit("weight", big)[0] == pytest.approx(2 * 0.0330)


def test_dram_kinds_and_prefix_fallback():
    assert dram_constants("paper-1024b")["read_pj_per_bit"] == pytest.approx(0.644304 / 1.024)
    assert dram_constants("hbm2e")["read_pj_per_bit"] == 3.9
    assert dram_constants("hbm2e-a100-40gb") is dram_constants("hbm2e")
    assert dram_constants("no-such-dram") is constants()["dram"]["default"]
    for kind in ("ddr4-3200", "lpddr5-6400", "hbm2e", "hbm3", "paper-1024b"):
        d = dram_constants(kind)
        assert d["read_pj_per_bit"] > 0 and d["write_pj_per_bit"] > 0


def _walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    else:
        yield path, node


def test_every_cited_source_is_listed():
    data = constants()
    listed = set(data["sources"])
    cited = [(p, v) for p, v in _walk(data) if p[-1] in ("source", "area_source")]
    assert cited, "the data file cites no source"
    for path, value in cited:
        assert value in listed, f"{'.'.join(map(str, path))} cites unknown source {value!r}"


def test_breakdown_arithmetic():
    a = EnergyBreakdown(1.0, 2.0, 3.0, 4.0)
    assert (a + a).energy_j == 20.0 and a.to_dict() == {"static": 1.0, "dram": 2.0, "buffer": 3.0, "core": 4.0}
