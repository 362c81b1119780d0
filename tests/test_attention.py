"""Fused attention: hand-computed DRAM bytes and cycles, fused against unfused, split decode, designs too small."""

from __future__ import annotations

import pytest

from mixpe_sys import load_design
from mixpe_sys.designs import design_from_data
from mixpe_sys.errors import ConfigError, MappingError
from mixpe_sys.hw.config import Dataflow
from mixpe_sys.mapping.attention import Blocks, choose_blocks, plan_attention
from mixpe_sys.sim.model import simulate_model
from mixpe_sys.sim.op_sim import simulate_op
from mixpe_sys.sim.plan_run import run_plan
from mixpe_sys.workload.attention import AttentionSpec
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.ops import Op, OpKind, Phase
from mixpe_sys.workload.quant import NumberFormat
from mixpe_sys.workload.transformer import layer_ops

CYCLE_NS = 1.0  # the small design runs at 1 GHz
DRAM_BYTES_PER_NS = 8.0  # one channel of 8 GB/s
DRAM_LATENCY_NS = 100.0


def small_design(num_tiles: int = 1, output_capacity: int = 1024) -> object:
    """One (or a few) 4x4 FP16 tiles, 8 B/cycle SRAM ports with no latency, one 8 GB/s DRAM channel."""
    sram = {"capacity_bytes": 1024, "banks": 1, "bank_width_bytes": 8, "double_buffered": True, "latency_cycles": 0}
    return design_from_data({
        "name": "small", "frequency_hz": 1e9, "num_tiles": num_tiles,
        "quant": {"weight_bits": 16, "activation_bits": 16, "activation_format": "fp", "group_size": 0,
                  "scale_bits": 0, "zero_bits": 0, "kv_bits": 16},
        "dram": {"channels": 1, "bandwidth_bytes_per_s": 8e9, "latency_ns": DRAM_LATENCY_NS},
        "tile": {"pe_array": {"pe": {"kind": "fp16_mac", "pipeline_depth_cycles": 1}, "rows": 4, "cols": 4,
                              "dataflows": ["output_stationary"], "fill_drain": False},
                 "weight_buffer": sram, "activation_buffer": sram,
                 "output_buffer": {**sram, "capacity_bytes": output_capacity},
                 "dequant": {"placement": "none"}, "vector": {"lanes": 4, "latency_cycles": 0},
                 "accumulator_bits": 32}})


def fused_op(q: int, kv: int, d: int, instances: int = 1, group: int = 1, bits: int = 16,
             fmt: NumberFormat = NumberFormat.FP) -> Op:
    return Op(name="attention", kind=OpKind.ATTENTION, m=q * group, n=kv, k=d, batch=instances, weight_bits=bits,
              activation_bits=bits, output_bits=bits, activation_format=fmt, query_group=group)


def test_one_block_bytes_and_cycles_by_hand():
    """4 new tokens attending causally to 4 keys, head width 4, FP16, on one 4x4 tile: one step."""
    design = small_design()
    op = fused_op(4, 4, 4)
    b = choose_blocks(op.attention_spec(), design)
    assert (b.rows, b.keys, b.splits) == (4, 4, 1)
    cost = simulate_op(op, design)
    q_bytes = 4 * 4 * 2  # Q: 4 rows x 4 x FP16
    kv_bytes = 2 * 4 * 4 * 2  # K and V of 4 keys
    o_bytes = 4 * 4 * 2
    assert (cost.dram_read_bytes, cost.dram_write_bytes) == (q_bytes + kv_bytes, o_bytes)
    # the step, phase by phase (8 B/cycle ports, 4 vector lanes, FP32 scores and accumulators):
    qk = max(4, q_bytes // 8, 32 // 8, 4 * 4 * 4 // 8)  # 1 fold of K = 4 cycles; S written: 64 B -> 8
    softmax = max(16 * (5 + 1) // 4, (64 + 32) // 8)  # 16 scores x (5 ops + 1 mask op) / 4 lanes = 24
    pv = max(4, 32 // 8, (32 + 64) // 8)  # P read (32 B) and O written (64 B) -> 12
    normalize = max(4 * (4 + 1) // 4, 64 // 8)  # 4 rows x (4 multiplies + 1 reciprocal) / 4 lanes = 5; O read 8
    compute = qk + softmax + pv + normalize
    assert compute == 52 and cost.compute_cycles == compute
    # loads at t = 0: K+V (64 B, 8 ns) then Q (32 B, 4 ns more) on the one channel, 100 ns latency;
    # compute; the 32 B output stored (4 ns) with 100 ns latency
    load_end = (kv_bytes + q_bytes) / DRAM_BYTES_PER_NS + DRAM_LATENCY_NS
    end = load_end + compute * CYCLE_NS + o_bytes / DRAM_BYTES_PER_NS + DRAM_LATENCY_NS
    assert cost.device_time_ns == pytest.approx(end, abs=1e-9) and cost.cycles == 268
    assert cost.macs == 2 * 4 * (1 + 2 + 3 + 4)  # the unmasked scores (10) x (4 + 4) MACs


@pytest.mark.parametrize("br,bc", [(16, 16), (16, 32), (32, 16), (8, 32)])
def test_prefill_bytes_q_k_v_once_per_q_block(br, bc):
    """Causal prefill of 64 tokens, head width 4: each Q block reads Q once and the K/V rows its last
    token attends to once, and writes its output once."""
    design = small_design(num_tiles=2, output_capacity=8192)
    spec = AttentionSpec(instances=2, q_tokens=64, group=1, kv_len=64, head_dim=4, q_bits=16, kv_bits=16,
                         out_bits=16)
    plan = plan_attention(spec, design, Blocks(br, bc, Dataflow.OUTPUT_STATIONARY, 1, 0.0, 0, 0))
    cost = run_plan(plan, design, record_steps=False).cost
    kv_rows = sum(min(64, (i + 1) * br) for i in range(64 // br))  # keys of each Q block's last token
    reads = 2 * (64 * 4 * 2 + 2 * kv_rows * 4 * 2)
    assert (cost.dram_read_bytes, cost.dram_write_bytes) == (reads, 2 * 64 * 4 * 2)
    # steps: the key blocks each Q block needs, ceil(its last token's keys / Bc)
    assert cost.tile_steps == 2 * sum(-(-min(64, (i + 1) * br) // bc) for i in range(64 // br))


def test_grouped_queries_stream_kv_once_per_group():
    """Two query heads per KV head share one K/V stream: rows are (token, head) pairs, token-major."""
    design = small_design(output_capacity=8192)
    spec = AttentionSpec(instances=1, q_tokens=8, group=2, kv_len=8, head_dim=4, q_bits=16, kv_bits=16,
                         out_bits=16)
    plan = plan_attention(spec, design, Blocks(4, 4, Dataflow.OUTPUT_STATIONARY, 1, 0.0, 0, 0))
    cost = run_plan(plan, design, record_steps=False).cost
    # Q blocks of 4 rows = 2 tokens: their last tokens attend to 2, 4, 6, 8 keys
    assert cost.dram_read_bytes == 16 * 4 * 2 + 2 * (2 + 4 + 6 + 8) * 4 * 2
    assert spec.scores == 2 * (8 * 9 // 2)


@pytest.mark.parametrize("design_name", ["mixpe-w4a8", "a100-like", "fp16"])
@pytest.mark.parametrize("q,kv", [(256, 256), (100, 100), (1, 4096)])
def test_fused_never_moves_more_dram_bytes_than_unfused(design_name, q, kv):
    """Prefill, and decode with at least as many (sequence, head) pairs as tiles (no split)."""
    design = load_design(design_name)
    model = load_model("llama-2-7b")
    batch = 1 if q > 1 else -(-design.num_tiles // model.num_kv_heads)
    phase = Phase.PREFILL if q > 1 else Phase.DECODE
    kw = dict(batch=batch, q_tokens=q, kv_len=kv, phase=phase)
    fused = [op for op in layer_ops(model, design.native_quant, **kw) if op.kind is OpKind.ATTENTION]
    unfused = [op for op in layer_ops(model, design.native_quant, attention="unfused", **kw)
               if op.name in ("attn_qk", "softmax", "attn_pv")]
    assert len(fused) == 1 and len(unfused) == 3
    assert choose_blocks(fused[0].attention_spec(), design).splits == 1
    f = simulate_op(fused[0], design)
    u = [simulate_op(op, design) for op in unfused]
    assert f.dram_read_bytes + f.dram_write_bytes <= sum(c.dram_read_bytes + c.dram_write_bytes for c in u)
    # and none of it is the scores: the fused op moves Q, K, V and O only
    reads, writes = fused[0].dram_bytes()
    assert f.dram_write_bytes == writes and f.dram_read_bytes >= reads


def test_decode_splits_the_kv_length_across_idle_tiles():
    """32 (sequence, head) pairs on 108 tiles: each pair's 65 key blocks split in 3, partials combined."""
    design = load_design("a100-like")
    kv, d = 4097, 128
    op = fused_op(1, kv, d, instances=32)
    b = choose_blocks(op.attention_spec(), design)
    assert b.rows == 1 and b.splits == 108 // 32 == 3
    plan = plan_attention(op.attention_spec(), design)
    busy = [t for t, steps in enumerate(plan.steps) if steps]
    assert len(busy) == 32 * 3  # every split on its own tile
    assert plan.then is not None and sum(len(s) for s in plan.then.steps) == 32 * 3  # one combine step per partial
    nkv = -(-kv // b.keys)
    ranges = sorted({(s[0].j, s[-1].j + 1) for s in plan.steps if s})
    assert ranges == [((nkv * i) // 3, (nkv * (i + 1)) // 3) for i in range(3)]
    cost = simulate_op(op, design)
    partial = (d + 2) * 4  # FP32 outputs, row max and row sum
    q_bytes, o_bytes = d * 2, d * 2
    kv_bytes = 2 * kv * d * 2
    # each split reads Q and its K/V range and writes a partial; the combine reads the 3 partials and writes O
    assert cost.dram_read_bytes == 32 * (3 * q_bytes + kv_bytes + 3 * partial)
    assert cost.dram_write_bytes == 32 * (3 * partial + o_bytes)
    unsplit = run_plan(plan_attention(op.attention_spec(), design, b._replace(splits=1)), design,
                       record_steps=False).cost
    assert cost.device_time_ns < unsplit.device_time_ns


def test_split_decode_only_when_pairs_are_fewer_than_tiles_and_it_pays():
    design = load_design("a100-like")
    assert choose_blocks(fused_op(1, 16384, 128, instances=108).attention_spec(), design).splits == 1
    # 8 KV heads of one sequence (e.g. a GQA model's decode): 13 ranges keep 104 of the 108 tiles streaming
    assert choose_blocks(fused_op(1, 16384, 128, instances=8, group=8).attention_spec(), design).splits == 13
    # a short cache: the combine's extra DRAM round trip costs more than the idle tiles give back
    short = fused_op(1, 513, 128, instances=32).attention_spec()
    b = choose_blocks(short, design)
    assert b.splits == 1
    times = [run_plan(plan_attention(short, design, b._replace(splits=s)), design, record_steps=False).cost
             .device_time_ns for s in (1, 3)]
    assert times[0] < times[1]


def test_blocks_that_overflow_a_buffer_are_refused():
    spec = AttentionSpec(instances=1, q_tokens=64, group=1, kv_len=64, head_dim=4, q_bits=16, kv_bits=16,
                         out_bits=16)
    with pytest.raises(MappingError, match=r"tile\.output_buffer"):
        plan_attention(spec, small_design(), Blocks(16, 16, Dataflow.OUTPUT_STATIONARY, 1, 0.0, 0, 0))


def test_tile_too_small_for_a_query_row_is_a_clear_error():
    """Fused attention needs one row's FP32 output accumulator, scores, max and sum in an output slot;
    the design cannot hold it, so mapping fails with the field and the way out (attention=unfused)."""
    design = small_design(output_capacity=64)  # 32 B per slot; one row of head width 16 needs (16+1+2) x 4 B
    op = fused_op(1, 8, 16)
    with pytest.raises(MappingError, match=r"tile\.output_buffer\.capacity_bytes.*attention=unfused"):
        simulate_op(op, design)


def test_model_run_records_the_fused_op(tmp_path):
    model = load_model("llama-2-7b")
    design = load_design("mixpe-w4a8")
    run = simulate_model(model, design, quant=design.native_quant, batch=1, prompt=64, generate=2, progress=False,
                         cache_dir=False)
    att = run.ops[run.ops["name"] == "attention"]
    assert len(att) == 2 * 32 and run.to_dict()["attention"] == "fused"
    pre = att[att["phase"] == "prefill"].iloc[0]
    # INT8 Q, K, V and output (the design's W4A8 scheme, 8-bit KV cache), 32 heads of 128
    q = o = 64 * 128
    assert pre["dram_write_bytes"] == 32 * o and pre["macs"] == 32 * 2 * 128 * (64 * 65 // 2)
    assert pre["dram_read_bytes"] >= 32 * (q + 2 * 64 * 128) and pre["cycles"] > 0
    unfused = simulate_model(model, design, quant=design.native_quant, batch=1, prompt=64, generate=2, progress=False,
                             cache_dir=False,
                             attention="unfused")
    assert set(unfused.ops["name"]) >= {"attn_qk", "softmax", "attn_pv"} and "attention" not in set(unfused.ops["name"])


def test_model_checks_report_a_too_small_tile_in_one_line():
    from mixpe_sys.checks import check_ops
    from mixpe_sys.errors import ConfigError

    with pytest.raises(ConfigError, match=r"attention.*tile\.output_buffer\.capacity_bytes.*attention=unfused"):
        check_ops([fused_op(1, 8, 16)], small_design(output_capacity=64), what="the")


@pytest.mark.slow
def test_attention_experiment_quick(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "experiments" / "attention_fused.py"
    spec = importlib.util.spec_from_file_location("attention_fused", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(tmp_path), "--quick", "--designs", "mixpe-w4a8"]) == 0
    import pandas as pd

    llama = pd.read_csv(tmp_path / "llama_prefill_attention.csv")
    fa2 = pd.read_csv(tmp_path / "fa2_setting.csv")
    assert list(llama.prompt) == [128] and (llama.fused_dram_gb < llama.unfused_dram_gb).all()
    assert set(fa2.design) == set(mod.FA2_DESIGNS) and (fa2.tflops <= fa2.tflops_dram_x8 * 1.0001).all()
    assert (tmp_path / "attention.md").read_text().startswith("# Fused attention")


def test_non_causal_two_key_blocks_bytes_and_cycles_by_hand():
    """4 tokens attending to all 8 keys (no causal mask), head width 4, FP16, one 4x4 tile, blocks of
    4 rows x 4 keys: two steps, neither masked, nothing skipped."""
    design = small_design()
    spec = AttentionSpec(instances=1, q_tokens=4, group=1, kv_len=8, head_dim=4, q_bits=16, kv_bits=16,
                         out_bits=16, causal=False)
    plan = plan_attention(spec, design, Blocks(4, 4, Dataflow.OUTPUT_STATIONARY, 1, 0.0, 0, 0))
    steps = plan.steps[0]
    assert [(s.n, s.masked, s.normalize) for s in steps] == [(4, False, False), (4, False, True)]
    cost = run_plan(plan, design, macs=spec.macs, record_steps=False).cost
    q_bytes = 4 * 4 * 2  # Q: 4 rows x 4 x FP16, read once (the Q block stays in the tile)
    kv_block = 2 * 4 * 4 * 2  # K and V of one block of 4 keys
    o_bytes = 4 * 4 * 2
    assert (cost.dram_read_bytes, cost.dram_write_bytes) == (q_bytes + 2 * kv_block, o_bytes)
    # hw/attention_step.py, phase by phase: 8 B/cycle ports, 4 lanes with no latency, FP32 scores (64 B)
    # and accumulator (64 B), P at FP16 (32 B); the array does a 4x4x4 tile in 4 cycles (one fold).
    # step 1 (first block, unmasked, not normalised):
    qk = max(4, 32 // 8, 32 // 8, 64 // 8)  # array 4; Q 32 B; K 32 B; S written 64 B -> 8
    softmax1 = max(16 * 5 // 4, (64 + 32) // 8)  # 16 scores x 5 ops / 4 lanes = 20 (no mask op); S + P -> 12
    pv1 = max(4, 32 // 8, (32 + 64) // 8)  # V 32 B; P read + O written (no O read on the first block) -> 12
    step1 = qk + softmax1 + pv1  # = 40, no normalisation
    # step 2 (rescale of O, normalised):
    softmax2 = max((16 * 5 + 4 * (4 + 4)) // 4, (64 + 32 + 2 * 64) // 8)  # 112 ops -> 28; 224 B -> 28
    pv2 = max(4, 32 // 8, (32 + 64 + 64) // 8)  # P read, O read and written -> 20
    normalize = max(4 * (4 + 1) // 4, 64 // 8)  # 20 ops -> 5; O read 64 B -> 8
    step2 = qk + softmax2 + pv2 + normalize  # = 64
    assert (step1, step2) == (40, 64) and cost.compute_cycles == step1 + step2
    # DRAM (one 8 B/ns channel, 100 ns latency): step 1's K+V (64 B) then Q (32 B) from t = 0, in at
    # 12 + 100 = 112 ns; step 2's K+V is booked when the loader is free (112 ns): 8 ns, in at 220 ns.
    # Step 1 computes 112..152, step 2 at 220..284; the output (32 B, 4 ns) is written at 284 + 4 + 100.
    load2_end = (q_bytes + kv_block) / DRAM_BYTES_PER_NS + DRAM_LATENCY_NS
    load2_end += kv_block / DRAM_BYTES_PER_NS + DRAM_LATENCY_NS
    end = load2_end + step2 * CYCLE_NS + o_bytes / DRAM_BYTES_PER_NS + DRAM_LATENCY_NS
    assert end == 388 and cost.device_time_ns == pytest.approx(end, abs=1e-9)
    # every one of the 4 x 8 scores is computed and counted, (4 + 4) MACs each
    assert spec.scores == 32 and cost.macs == 2 * 4 * 32


@pytest.mark.parametrize("instances,group,q,kv,d", [(1, 1, 4, 8, 4), (3, 2, 5, 7, 8), (2, 4, 9, 3, 16)])
def test_non_causal_macs_count_every_score(instances, group, q, kv, d):
    """Without the mask each of the group x q rows attends to all kv keys (kv may be shorter than q)."""
    spec = AttentionSpec(instances=instances, q_tokens=q, group=group, kv_len=kv, head_dim=d, q_bits=16,
                         kv_bits=16, out_bits=16, causal=False)
    assert spec.macs == 2 * d * instances * group * q * kv
    assert all(spec.keys_for_row(r) == kv for r in range(spec.rows))


def test_non_causal_prefill_reads_all_kv_per_q_block_and_masks_nothing():
    """64 tokens, no mask, Q blocks of 16 rows, K/V blocks of 32 keys on two tiles: every Q block reads all
    64 K/V rows once; 4 Q blocks x 2 key blocks per instance."""
    design = small_design(num_tiles=2, output_capacity=8192)
    spec = AttentionSpec(instances=2, q_tokens=64, group=1, kv_len=64, head_dim=4, q_bits=16, kv_bits=16,
                         out_bits=16, causal=False)
    plan = plan_attention(spec, design, Blocks(16, 32, Dataflow.OUTPUT_STATIONARY, 1, 0.0, 0, 0))
    assert not any(s.masked for tile in plan.steps for s in tile)
    cost = run_plan(plan, design, record_steps=False).cost
    assert cost.tile_steps == 2 * 4 * 2
    assert (cost.dram_read_bytes, cost.dram_write_bytes) == (2 * (64 * 4 * 2 + 4 * 2 * 64 * 4 * 2), 2 * 64 * 4 * 2)


def test_causal_is_the_default_and_must_be_a_bool():
    kw = dict(instances=1, q_tokens=4, group=1, kv_len=4, head_dim=4, q_bits=16, kv_bits=16, out_bits=16)
    assert AttentionSpec(**kw).causal and AttentionSpec(**kw).scores == 10
    with pytest.raises(ConfigError, match="field 'causal'"):
        AttentionSpec(**kw, causal="no")
    with pytest.raises(ConfigError, match="field 'kv_len'"):  # the mask needs the new tokens among the keys
        AttentionSpec(**{**kw, "q_tokens": 8})
