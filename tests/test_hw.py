"""Exact SimPy times of the hardware components against hand-computed values."""

from __future__ import annotations

from fractions import Fraction

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys import MappingError
from mixpe_sys.hw.config import (AcceleratorConfig, Dataflow, DequantConfig, DequantPlacement, DramConfig,
                                 NocConfig, PeArrayConfig, PeConfig, PeKind, RowBufferConfig, SramConfig,
                                 TileConfig, Topology)
from mixpe_sys.hw.dram import Dram, channel_bytes
from mixpe_sys.hw.noc import Interconnect, build_topology
from mixpe_sys.hw.pe import pe_model
from mixpe_sys.hw.array import tile_work
from mixpe_sys.mapping.gemm import GemmSpec, GemmTiling, LoopOrder, plan_gemm
from mixpe_sys.metrics.recorder import Recorder
from mixpe_sys.sim.gemm import simulate_gemm
from mixpe_sys.workload.quant import NumberFormat

INT, FP = NumberFormat.INT, NumberFormat.FP


def run_transfers(env, *bodies) -> list[float]:
    """Start one process per generator body at time 0; return each one's completion time (ns)."""
    done = [None] * len(bodies)

    def wrap(i, body):
        yield from body
        done[i] = env.now

    for i, body in enumerate(bodies):
        env.process(wrap(i, body))
    env.run()
    return done


# ---------------------------------------------------------------- (a) one DRAM transfer


def test_single_dram_transfer_on_idle_dram():
    cfg = DramConfig(channels=4, bandwidth_bytes_per_s=64e9, latency_ns=100.0, interleave_bytes=256)
    env = simpy.Environment()
    dram = Dram(env, cfg, Recorder())
    nbytes = 4 * 256 * 10  # 10 interleave blocks per channel
    (t,) = run_transfers(env, dram.transfer(0, nbytes))
    # each channel: 2560 B at 64e9 / 4 = 16e9 B/s = 160 ns; plus 100 ns latency
    assert t == 100.0 + 2560 / 16.0
    assert t == 260.0
    assert dram.read_bytes == 10240 and dram.write_bytes == 0
    assert [ch.served_bytes for ch in dram.channels] == [2560] * 4


def test_dram_bandwidth_efficiency_and_writes():
    cfg = DramConfig(channels=2, bandwidth_bytes_per_s=32e9, latency_ns=40.0, interleave_bytes=128,
                     bandwidth_efficiency=0.8)
    env = simpy.Environment()
    dram = Dram(env, cfg, Recorder())
    (t,) = run_transfers(env, dram.transfer(0, 2 * 128 * 50, write=True))
    # per channel 6400 B at 32e9 * 0.8 / 2 = 12.8e9 B/s = 500 ns
    assert t == 40.0 + 500.0
    assert dram.write_bytes == 12800 and dram.read_bytes == 0


def test_two_dram_transfers_queue_on_one_channel():
    cfg = DramConfig(channels=1, bandwidth_bytes_per_s=1e9, latency_ns=30.0)
    env = simpy.Environment()
    dram = Dram(env, cfg, Recorder())
    t1, t2 = run_transfers(env, dram.transfer(0, 500), dram.transfer(4096, 300))
    # 1 ns/B; the channel serves 500 B (0..500) then 300 B (500..800); latency is pipelined
    assert (t1, t2) == (530.0, 830.0)


# ---------------------------------------------------------------- (b) address interleaving


@pytest.mark.parametrize("addr, nbytes, expected", [
    (0, 1024, [256, 256, 256, 256]),  # four aligned blocks, one per channel
    (300, 100, [0, 100, 0, 0]),  # inside block 1 (256..512)
    # [100, 1100): 156 B of block 0 (ch0), blocks 1-3 whole, 76 B of block 4 (ch0)
    (100, 1000, [156 + 76, 256, 256, 256]),
    # [1000, 3000): 24 B of block 3 (ch3), blocks 4..10 whole (ch0,1,2,3,0,1,2), 184 B of block 11 (ch3)
    (1000, 2000, [512, 512, 512, 24 + 256 + 184]),
    (5000, 0, [0, 0, 0, 0]),
])
def test_channel_bytes_hand_worked(addr, nbytes, expected):
    assert channel_bytes(addr, nbytes, 256, 4) == expected


def test_channel_bytes_three_channels():
    # [200, 1000) with 128 B blocks over 3 channels: block 1 (128..256) gives 56 B to ch1;
    # blocks 2..6 whole -> ch2, ch0, ch1, ch2, ch0; block 7 (896..1024) gives 104 B to ch1
    assert channel_bytes(200, 800, 128, 3) == [256, 56 + 128 + 104, 256]


def reference_channel_bytes(addr, nbytes, interleave, channels):
    """Walk the range block by block."""
    out = [0] * channels
    pos, end = addr, addr + nbytes
    while pos < end:
        block = pos // interleave
        stop = min(end, (block + 1) * interleave)
        out[block % channels] += stop - pos
        pos = stop
    return out


@settings(max_examples=300, deadline=None)
@given(addr=st.integers(0, 20_000), nbytes=st.integers(0, 20_000), interleave=st.integers(1, 600),
       channels=st.integers(1, 9))
def test_channel_bytes_properties(addr, nbytes, interleave, channels):
    shares = channel_bytes(addr, nbytes, interleave, channels)
    assert len(shares) == channels
    assert sum(shares) == nbytes
    assert min(shares) >= 0
    # bytes before the first block boundary and after the last one
    head = min(nbytes, -addr % interleave)
    tail = (addr + nbytes) % interleave if nbytes > head else 0
    # whole blocks are dealt round-robin (counts differ by at most one); partial blocks add head + tail
    assert max(shares) - min(shares) <= interleave + head + tail
    assert shares == reference_channel_bytes(addr, nbytes, interleave, channels)


# ---------------------------------------------------------------- (c) interconnect contention


def star_noc(dram_bw: float):
    cfg = NocConfig(topology=Topology.STAR, link_bandwidth_bytes_per_s=1e9, link_latency_ns=2.0)
    env = simpy.Environment()
    noc = Interconnect(env, cfg, Recorder(), num_tiles=2, has_gbuf=False, dram_bandwidth_bytes_per_s=dram_bw)
    return env, noc


def test_star_topology_graph():
    cfg = NocConfig(topology=Topology.STAR, link_bandwidth_bytes_per_s=1e9, link_latency_ns=2.0,
                    dram_link_bandwidth_bytes_per_s=5e9)
    g = build_topology(cfg, num_tiles=2, has_gbuf=True, dram_bandwidth_bytes_per_s=1e12)
    assert set(g.nodes) == {"dram", "gbuf", "tile0", "tile1", "switch"}
    assert g.number_of_edges() == 8  # 4 bidirectional spokes
    assert g.edges["dram", "switch"]["bandwidth_bytes_per_s"] == 5e9
    assert g.edges["switch", "tile1"]["bandwidth_bytes_per_s"] == 1e9
    assert g.edges["tile0", "switch"]["latency_ns"] == 2.0


def test_ring_and_mesh_routes():
    ring = NocConfig(topology=Topology.RING, link_bandwidth_bytes_per_s=1e9, link_latency_ns=3.0)
    env = simpy.Environment()
    noc = Interconnect(env, ring, Recorder(), num_tiles=4, has_gbuf=True, dram_bandwidth_bytes_per_s=1e9)
    # ring dram - gbuf - tile0 - tile1 - tile2 - tile3 - dram: tile3 is 1 hop, tile1 3 hops from dram
    assert noc.route("dram", "tile3")[1] == 3.0
    assert noc.route("dram", "tile1")[1] == 9.0
    mesh = NocConfig(topology=Topology.MESH, link_bandwidth_bytes_per_s=1e9, link_latency_ns=1.0)
    noc = Interconnect(simpy.Environment(), mesh, Recorder(), num_tiles=4, has_gbuf=False,
                       dram_bandwidth_bytes_per_s=1e9)
    # 2x2 routers; dram at r0_0; tile3 at r1_1: dram->r0_0->r0_1->r1_1->tile3 = 4 hops
    assert noc.route("dram", "tile3")[1] == 4.0
    assert noc.route("dram", "tile0")[1] == 2.0


def test_two_transfers_contend_on_one_link():
    env, noc = star_noc(dram_bw=1e12)
    nbytes = 1000
    t1, t2 = run_transfers(env, noc.transfer("dram", "tile0", nbytes), noc.transfer("dram", "tile0", nbytes))
    latency = 2 * 2.0  # dram -> switch -> tile0
    # switch->tile0 carries 1000 B at 1e9 B/s = 1000 ns each, one after the other;
    # the dram->switch link (1 ns per transfer at 1e12 B/s) never limits
    assert t1 == latency + 1000.0
    assert t2 == latency + 2 * 1000.0
    assert noc.link_bytes()["link.switch->tile0"] == 2000
    assert noc.link_bytes()["link.tile1->switch"] == 0


def test_transfers_on_disjoint_links_do_not_contend():
    env, noc = star_noc(dram_bw=1e12)
    t1, t2 = run_transfers(env, noc.transfer("dram", "tile0", 1000), noc.transfer("dram", "tile1", 1000))
    # only dram->switch is shared: 1 ns for the first, 1..2 ns for the second, far below 1000 ns
    assert (t1, t2) == (1004.0, 1004.0)


def test_shared_slow_dram_link_limits():
    env, noc = star_noc(dram_bw=0.5e9)
    t1, t2 = run_transfers(env, noc.transfer("dram", "tile0", 1000), noc.transfer("dram", "tile1", 1000))
    # dram->switch at 0.5e9 B/s: 2000 ns per transfer, serialised: 2000 and 4000 ns, + 4 ns of hops
    assert (t1, t2) == (2004.0, 4004.0)


# ---------------------------------------------------------------- (d) row-buffer timing


def row_buffer_dram():
    cfg = DramConfig(channels=1, bandwidth_bytes_per_s=1e9, latency_ns=0.0, interleave_bytes=256,
                     row_buffer=RowBufferConfig(banks_per_channel=4, row_bytes=1024, t_rcd_ns=10.0, t_rp_ns=10.0))
    env = simpy.Environment()
    return env, Dram(env, cfg, Recorder())


def test_row_buffer_hits_and_misses():
    env, dram = row_buffer_dram()
    durations = []

    def body():
        # (addr, bytes): 1 ns per byte; an activation costs (tRP + tRCD) / banks = 20 / 4 = 5 ns
        for addr, n in [(0, 256), (256, 256), (1024, 256), (4096, 256), (0, 256), (1024, 256), (2048, 2048)]:
            start = env.now
            yield from dram.transfer(addr, n)
            durations.append(env.now - start)

    run_transfers(env, body())
    assert durations == [
        256 + 5,  # row 0 (bank 0) opened
        256,  # row 0 again: open-row hit, no activation
        256 + 5,  # row 1 (bank 1) opened
        256 + 5,  # row 4 maps to bank 0 too: closes row 0
        256 + 5,  # row 0 again: bank 0 now holds row 4
        256,  # row 1 still open in bank 1
        2048 + 2 * 5,  # rows 2 and 3 (banks 2, 3), both closed
    ]


def reference_activations(open_rows: dict, channels: int, interleave: int, row_bytes: int, banks: int,
                           addr: int, nbytes: int) -> int:
    """Row activations of one transfer, row by row: each channel's share starts at its first block."""
    misses = 0
    for c, share in enumerate(channel_bytes(addr, nbytes, interleave, channels)):
        if not share:
            continue
        first_block = addr // interleave + (c - addr // interleave) % channels
        local = (first_block // channels) * interleave
        rows = range(local // row_bytes, (local + share - 1) // row_bytes + 1)
        # every row is opened except those of the first `banks` (distinct banks) already open
        misses += len(rows) - sum(1 for r in rows[:banks] if open_rows.get((c, r % banks)) == r)
        for r in rows[-banks:]:
            open_rows[(c, r % banks)] = r
    return misses


@settings(max_examples=200, deadline=None)
@given(channels=st.integers(1, 4), banks=st.sampled_from([1, 2, 4, 8]), rows_per_block=st.sampled_from([1, 2, 4]),
       transfers=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(1, 1 << 14)), min_size=1, max_size=12))
def test_row_buffer_activations_match_row_by_row_count(channels, banks, rows_per_block, transfers):
    row_bytes = 256 * rows_per_block
    cfg = DramConfig(channels=channels, bandwidth_bytes_per_s=1e9 * channels, latency_ns=0.0, interleave_bytes=256,
                     row_buffer=RowBufferConfig(banks_per_channel=banks, row_bytes=row_bytes, t_rcd_ns=6.0,
                                                t_rp_ns=2.0))
    dram = Dram(simpy.Environment(), cfg, Recorder())
    open_rows: dict = {}
    activation_ns = 8.0 / banks
    for addr, nbytes in transfers:
        expected = reference_activations(open_rows, channels, 256, row_bytes, banks, addr, nbytes)
        before = [ch.busy_ns for ch in dram.channels]
        dram.reserve(0.0, addr, nbytes)
        busy = sum(ch.busy_ns for ch in dram.channels) - sum(before)
        assert busy == pytest.approx(nbytes / 1.0 + expected * activation_ns)


def test_row_buffer_off_costs_no_activation():
    cfg = DramConfig(channels=1, bandwidth_bytes_per_s=1e9, latency_ns=0.0)
    env = simpy.Environment()
    dram = Dram(env, cfg, Recorder())
    t1, t2 = run_transfers(env, dram.transfer(0, 256), dram.transfer(8192, 256))
    assert (t1, t2) == (256.0, 512.0)


# ---------------------------------------------------------------- (e) compute: dataflows and PE rates


def _array(rows=32, cols=16, depth=2, fill_drain=True):
    return PeArrayConfig(pe=PeConfig(kind=PeKind.MIXPE_W4A8, pipeline_depth_cycles=depth), rows=rows, cols=cols,
                         fill_drain=fill_drain)


OS, WS, IS, STREAM = (Dataflow.OUTPUT_STATIONARY, Dataflow.WEIGHT_STATIONARY, Dataflow.INPUT_STATIONARY,
                      Dataflow.WEIGHT_STREAMING)


@pytest.mark.parametrize("m, n, k, rate, dataflow, expected", [
    # R = 32, C = 16, PE depth 2 (one cycle beyond SCALE-Sim's one-cycle MAC) on every fold.
    # output-stationary: ceil(m/R) ceil(n/C) folds of R + C + ceil(k/rate) - 2 (+1)
    (100, 70, 300, Fraction(1), OS, 4 * 5 * (32 + 16 + 300 - 2 + 1)),
    (100, 70, 300, Fraction(2), OS, 4 * 5 * (32 + 16 + 150 - 2 + 1)),
    (100, 70, 300, Fraction(1, 4), OS, 4 * 5 * (32 + 16 + 1200 - 2 + 1)),
    (32, 16, 32, Fraction(1), OS, 1 * 1 * (32 + 16 + 32 - 2 + 1)),
    (1, 16, 8, Fraction(1), OS, 1 * 1 * (32 + 16 + 8 - 2 + 1)),  # M = 1, K < R
    # weight-stationary: ceil(k/(R kpp)) ceil(n/C) folds of 2R + C + m cpp - 2 (+1)
    (100, 70, 300, Fraction(1), WS, 10 * 5 * (64 + 16 + 100 - 2 + 1)),
    (8, 70, 300, Fraction(1), WS, 10 * 5 * (64 + 16 + 8 - 2 + 1)),
    (10, 70, 300, Fraction(1, 4), WS, 10 * 5 * (64 + 16 + 40 - 2 + 1)),  # cpp = 4: 10 x 4 = 40
    (100, 70, 300, Fraction(2), WS, 5 * 5 * (64 + 16 + 100 - 2 + 1)),  # kpp = 2: ceil(300 / 64) = 5
    (1, 16, 8, Fraction(1), WS, 1 * 1 * (64 + 16 + 1 - 2 + 1)),  # K < R: one fold, the preload dominates
    # input-stationary: ceil(k/(R kpp)) ceil(m/C) folds of 2R + C + n cpp - 2 (+1)
    (100, 70, 300, Fraction(1), IS, 10 * 7 * (64 + 16 + 70 - 2 + 1)),
    (1, 70, 300, Fraction(1), IS, 10 * 1 * (64 + 16 + 70 - 2 + 1)),
    # weight streaming: folds of m cpp cycles back to back, one fill and drain R + C - 2 (+1)
    (1, 70, 300, Fraction(1), STREAM, 10 * 5 * 1 + (32 + 16 - 2 + 1)),
    (1, 70, 300, Fraction(1, 4), STREAM, 10 * 5 * 4 + 47),
    (3, 16, 64, Fraction(1), STREAM, 2 * 1 * 3 + 47),
])
def test_array_cycles_per_fold_hand_formula(m, n, k, rate, dataflow, expected):
    assert tile_work(m, n, k, _array(), dataflow, rate).cycles == expected


@pytest.mark.parametrize("dataflow, expected", [(OS, 4 + 4 + 4 - 2), (WS, 2 * 4 + 4 + 4 - 2),
                                                (IS, 2 * 4 + 4 + 4 - 2)])
def test_one_fold_is_scale_sim_closed_form(dataflow, expected):
    """A 4x4x4 GEMM on a 4x4 array of one-cycle MACs is one fold: SCALE-Sim's OS R + C + K - 2 = 10,
    WS 2R + C + M - 2 = 14 (IS: the same with N)."""
    assert tile_work(4, 4, 4, _array(4, 4, depth=1), dataflow, Fraction(1)).cycles == expected


def test_no_fill_drain_costs_the_stream_alone():
    assert tile_work(100, 70, 300, _array(fill_drain=False), OS, Fraction(1)).cycles == 4 * 5 * 300
    assert tile_work(100, 70, 300, _array(fill_drain=False), WS, Fraction(1)).cycles == 10 * 5 * 100


def test_array_cycles_empty_tile():
    assert tile_work(0, 16, 16, _array(), OS, Fraction(1)).cycles == 0


def rate(kind: PeKind, w: int, a: int, fmt=INT, **pe) -> Fraction:
    return pe_model(PeConfig(kind=kind, **pe)).macs_per_cycle(w, a, fmt)


def test_pe_rates_mixpe_w4a8():
    assert rate(PeKind.MIXPE_W4A8, 4, 8) == 1  # all 4 weight bits in one adder tree
    assert rate(PeKind.MIXPE_W4A8, 4, 8, bit_serial=True) == Fraction(1, 4)  # one weight bit per cycle
    assert rate(PeKind.MIXPE_W4A8, 8, 8) == Fraction(1, 2)  # two 4-bit passes
    assert rate(PeKind.MIXPE_W4A8, 4, 16) == Fraction(1, 2)  # two 8-bit activation passes
    assert rate(PeKind.MIXPE_W4A8, 4, 8, initiation_interval_cycles=2) == Fraction(1, 2)
    with pytest.raises(MappingError, match="FP16"):
        rate(PeKind.MIXPE_W4A8, 4, 16, FP)


def test_pe_rates_mixpe_w4a16():
    assert rate(PeKind.MIXPE_W4A16, 4, 16, FP, native_activation_bits=16) == 1
    assert rate(PeKind.MIXPE_W4A16, 4, 16, FP, native_activation_bits=16, bit_serial=True) == Fraction(1, 4)
    assert rate(PeKind.MIXPE_W4A16, 8, 16, FP, native_activation_bits=16) == Fraction(1, 2)
    with pytest.raises(MappingError):
        rate(PeKind.MIXPE_W4A16, 4, 32, FP)


def test_pe_rates_int8_and_fp16():
    assert rate(PeKind.INT8_MAC, 8, 8) == 1
    assert rate(PeKind.INT8_MAC, 4, 8) == 1  # narrower integers gain nothing
    assert rate(PeKind.INT8_MAC, 16, 8) == Fraction(1, 2)
    assert rate(PeKind.INT8_MAC, 16, 16) == Fraction(1, 4)
    with pytest.raises(MappingError):
        rate(PeKind.INT8_MAC, 8, 16, FP)
    assert rate(PeKind.FP16_MAC, 16, 16, FP) == 1
    assert rate(PeKind.FP16_MAC, 4, 16, FP) == 1
    with pytest.raises(MappingError):
        rate(PeKind.FP16_MAC, 4, 32, FP)


@pytest.mark.parametrize("pmax, pmin, w, a, expected", [
    (8, 4, 4, 4, 4),  # floor(8/4) * floor(8/4)
    (8, 4, 4, 8, 2),  # floor(8/4) * floor(8/8)
    (8, 4, 8, 8, 1),
    (8, 4, 2, 2, 4),  # below pmin counts as pmin
    (16, 8, 8, 8, 4),  # floor(16/8) * floor(16/8)
    (16, 8, 4, 16, 2),  # floor(16/8) * floor(16/16)
    (16, 8, 16, 16, 1),
    (8, 4, 16, 8, Fraction(1, 2)),  # 16 > pmax: two passes
])
def test_pe_rates_paper_rule(pmax, pmin, w, a, expected):
    assert rate(PeKind.PAPER_RULE, w, a, max_bits=pmax, min_bits=pmin) == expected


# ---------------------------------------------------------------- (f) a whole single-tile GEMM

L_NS = 100.0  # DRAM latency
B = 2e9  # DRAM bandwidth, bytes/s: 0.5 ns per byte
CYCLE_NS = 2.0  # 500 MHz


def hand_design(pe: PeConfig, placement: DequantPlacement) -> AcceleratorConfig:
    """One 32x32 tile, no interconnect, no global buffer, one DRAM channel; SRAM 4 KiB/cycle, no latency."""
    sram = SramConfig(capacity_bytes=1 << 20, banks=64, bank_width_bytes=64, double_buffered=True, latency_cycles=0)
    return AcceleratorConfig(
        name="hand", frequency_hz=500e6, num_tiles=1,
        tile=TileConfig(pe_array=PeArrayConfig(pe=pe, rows=32, cols=32), weight_buffer=sram,
                        activation_buffer=sram, output_buffer=sram,
                        dequant=DequantConfig(placement=placement, elements_per_cycle=64, latency_cycles=4)),
        dram=DramConfig(channels=1, bandwidth_bytes_per_s=B, latency_ns=L_NS),
        global_buffer=None, noc=None)


def test_single_step_gemm_int8():
    design = hand_design(PeConfig(kind=PeKind.INT8_MAC, pipeline_depth_cycles=2), DequantPlacement.NONE)
    spec = GemmSpec(m=32, n=32, k=64, weight_bits=8, activation_bits=8, output_bits=8, group_size=0)
    result = simulate_gemm(spec, design)
    assert len(result.steps) == 1
    a_bytes, w_bytes, out_bytes = 32 * 64, 64 * 32, 32 * 32  # all 8-bit
    load = L_NS + (a_bytes + w_bytes) / B * 1e9  # 100 + 4096 * 0.5 = 2148 ns
    # one 32x32 output block on a 32x32 array is one fold: R + C + K - 2 = 32 + 32 + 64 - 2, plus 1 for
    # the 2-cycle PE = 127 cycles; SRAM (2 KiB per operand, 4 KiB of accumulators at 4 KiB/cycle) needs 1
    compute = 127 * CYCLE_NS
    store = L_NS + out_bytes / B * 1e9  # 100 + 512 = 612 ns
    assert result.cost.time_ns == load + compute + store == 3014.0
    assert result.core_cycles == 3014 // 2
    assert result.compute_cycles == 127
    assert (result.dram_read_bytes, result.dram_write_bytes) == (4096, 1024)
    row = result.steps.iloc[0]
    assert (row.load_end_ns, row.compute_start_ns, row.compute_end_ns, row.done_ns) == (2148, 2148, 2402, 3014)


def test_single_step_gemm_mixpe_post_gemm_dequant():
    design = hand_design(PeConfig(kind=PeKind.MIXPE_W4A8, pipeline_depth_cycles=2), DequantPlacement.POST_GEMM)
    spec = GemmSpec(m=32, n=32, k=128, weight_bits=4, activation_bits=8, output_bits=8, group_size=64,
                    scale_bits=16, zero_bits=4)
    # one step holding the whole GEMM (the mapper may split K to overlap loads with compute)
    tiling = GemmTiling(tm=32, tn=32, tk=128, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    result = simulate_gemm(spec, design, plan_gemm(spec, design, tiling))
    assert len(result.steps) == 1
    a_bytes = 32 * 128  # INT8
    w_bytes = 128 * 32 * 4 // 8 + 2 * 32 * (16 + 4) // 8  # INT4 weights + 2 groups x 32 cols x (scale + zero)
    assert w_bytes == 2208
    load = L_NS + (a_bytes + w_bytes) / B * 1e9  # 100 + 6304 * 0.5 = 3252 ns
    compute = (32 + 32 + 128 - 2 + 1) * CYCLE_NS  # one fold: R + C + K - 2, + 1 for the 2-cycle PE
    # post-GEMM dequant: 32 x 32 outputs x 2 groups + 32 rows x 2 groups of activation sums, 64 per cycle, + 4 deep
    dequant = (-(-(32 * 32 * 2 + 32 * 2) // 64) + 4) * CYCLE_NS
    assert dequant == 37 * CYCLE_NS
    store = L_NS + 32 * 32 / B * 1e9
    assert result.cost.time_ns == load + compute + dequant + store == 4320.0
    assert result.dequant_cycles == 37


def test_two_k_steps_overlap_load_and_compute():
    design = hand_design(PeConfig(kind=PeKind.INT8_MAC, pipeline_depth_cycles=2), DequantPlacement.NONE)
    spec = GemmSpec(m=32, n=32, k=128, weight_bits=8, activation_bits=8, output_bits=8, group_size=0)
    tiling = GemmTiling(tm=32, tn=32, tk=64, order=LoopOrder.M_OUTER, dataflow=Dataflow.OUTPUT_STATIONARY,
                        estimated_time_s=0.0)
    plan = plan_gemm(spec, design, tiling)
    result = simulate_gemm(spec, design, plan)
    # step 0 loads 2 x 2048 B: the channel is busy 0..2048 ns, data in at 2148; computes 2148..2402
    # (one fold of 32 + 32 + 64 - 2 + 1 = 127 cycles). Step 1 is prefetched from 2148 (the channel is
    # free since 2048): busy 2148..4196, in at 4296; computes 4296..4550, then stores 1024 B: + 100 + 512.
    s = result.steps
    assert list(s.load_end_ns) == [2148.0, 4296.0]
    assert list(s.compute_start_ns) == [2148.0, 4296.0]
    assert list(s.compute_end_ns) == [2402.0, 4550.0]
    assert result.cost.time_ns == 4550.0 + L_NS + 512.0
    assert result.compute_cycles == 254


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 1e5), st.integers(0, 1 << 22), st.integers(0, 70000), st.booleans()),
                min_size=1, max_size=40),
       st.sampled_from(["rows", "few banks", "no rows"]))
def test_inline_reserve_is_channel_spans_and_the_row_rule(transfers, dram):
    """Dram.reserve works the spans and the row rule out inline: the same finish times, channel
    bookings and open rows as booking each share of channel_spans for its bytes plus its row
    activations (Dram._activations) on its channel's FIFO server."""
    from mixpe_sys import load_design
    from mixpe_sys.hw.dram import channel_spans
    config = load_design("mixpe-w4a8").dram  # HBM2E, 8 channels, 32 banks of 1 KiB rows
    if dram == "few banks":  # a share then spans more rows than there are banks
        config = config.replace(row_buffer=config.row_buffer.replace(banks_per_channel=2, row_bytes=256))
    elif dram == "no rows":
        config = load_design("h100-like").dram  # 80 channels, no row-buffer timing
    fast = Dram(simpy.Environment(), config, Recorder(steps=False))
    ref = Dram(simpy.Environment(), config, Recorder(steps=False))
    ns_per_byte = 1e9 / config.channel_bandwidth_bytes_per_s
    for now, addr, nbytes, write in sorted(transfers):
        end = now
        for c, share, block in channel_spans(addr, nbytes, config.interleave_bytes, config.channels):
            service = share * ns_per_byte
            if ref.has_row_buffer:
                service += ref._activations(ref._open_rows[c], block, share) * ref._activation_ns
            end = max(end, ref.channels[c].reserve(now, service, share))
        assert fast.reserve(now, addr, nbytes, write) == end
    assert fast.open_rows() == ref.open_rows()
    assert [(c.free_at_ns, c.busy_ns, c.served_bytes) for c in fast.channels] == \
        [(c.free_at_ns, c.busy_ns, c.served_bytes) for c in ref.channels]
