"""Model runs on the op engine: roofline classes, bandwidth bounds, cost reuse, KV growth, report sums.

Expected figures are worked out by hand from the model shapes in the shipped
``config.json`` files and the design's YAML (peak MAC rate, DRAM bandwidth).
"""

from __future__ import annotations

import json
import math
from math import ceil

import pandas as pd
import pytest

from mixpe_sys import load_design
from mixpe_sys.sim.model import WorkloadKind, model_ops, simulate_model
from mixpe_sys.workload.models import load_model

LINEAR_GEMMS = ("qkv", "o_proj", "ffn_up", "ffn_down")
LABELS = ["op_index", "layer", "start_s", "end_s"]  # where an op sits, not what it costs
PROMPT, GENERATE = 128, 4


@pytest.fixture(scope="module")
def design():
    return load_design("mixpe-w4a8")


@pytest.fixture(scope="module")
def llama():
    return load_model("llama-2-7b")


@pytest.fixture(scope="module")
def decode_run(llama, design):
    """Llama-2-7B, batch 1, prompt 128, 4 generated tokens (prefill + decode steps 1..3)."""
    return simulate_model(llama, design, quant=design.native_quant, batch=1, prompt=PROMPT, generate=GENERATE,
                          progress=False)


@pytest.fixture(scope="module")
def prefill_run(llama, design):
    """Llama-2-7B, batch 1, a 2048-token prefill only."""
    return simulate_model(llama, design, quant=design.native_quant, batch=1, prompt=2048, generate=1, progress=False)


def _weight_bytes(k: int, n: int) -> int:
    """INT4 weights of a [k, n] projection plus an FP16 scale and a 4-bit zero per group of 128 along k."""
    return ceil((k * n * 4 + ceil(k / 128) * n * (16 + 4)) / 8)


def _peak_macs_per_s(design) -> float:
    """8 tiles x 64 x 64 bit-parallel W4A8 PEs, one MAC per PE per cycle."""
    arr = design.tile.pe_array
    return design.num_tiles * arr.rows * arr.cols * 1 * design.frequency_hz


# --------------------------------------------------------------------------- roofline classes


def test_decode_is_memory_bound(decode_run, design):
    ops = decode_run.ops
    dec = ops[ops["phase"] == "decode"]
    # steps 1..G-1, each 32 layers x 9 kernels (fused attention) + final add-norm + LM head
    assert sorted(dec["step"].unique()) == [1, 2, 3]
    assert len(dec) == 3 * (32 * 9 + 2)
    mem_time = dec.loc[dec["roofline_bound"] == "memory", "time_s"].sum()
    share = mem_time / dec["time_s"].sum()
    assert share > 0.9
    assert decode_run.memory_bound_share("decode") == pytest.approx(share, rel=1e-12)

    linear = dec[dec["kind"] == "linear"]
    assert len(linear) == 3 * (32 * 4 + 1)
    assert (linear["roofline_bound"] == "memory").all(), linear[linear["roofline_bound"] != "memory"]
    # and by hand: one token's weight stream over HBM2E takes longer than its MACs at peak
    bw, peak = design.dram.bandwidth_bytes_per_s, _peak_macs_per_s(design)
    for row in linear.drop_duplicates("name").itertuples():
        assert row.m == 1
        assert _weight_bytes(row.k, row.n) / bw > row.m * row.n * row.k / peak, row.name


def test_prefill_2048_linears_are_compute_bound(prefill_run, design):
    ops = prefill_run.ops
    assert set(ops["phase"]) == {"prefill"}
    gemms = ops[ops["name"].isin(LINEAR_GEMMS)]
    assert len(gemms) == 32 * 4
    assert (gemms["roofline_bound"] == "compute").all(), gemms[gemms["roofline_bound"] != "compute"]
    peak = _peak_macs_per_s(design)
    h, q, f = 4096, 4096, 11008
    shapes = {"qkv": (h, 3 * q), "o_proj": (q, h), "ffn_up": (h, 2 * f), "ffn_down": (f, h)}
    for row in gemms[gemms["layer"] == 0].itertuples():
        k, n = shapes[row.name]
        assert (row.m, row.k, row.n) == (2048, k, n)
        compute_s = 2048 * n * k / peak
        assert row.compute_time_s == pytest.approx(compute_s, rel=1e-12)
        assert row.time_s >= compute_s  # never faster than the array at peak
        # 2048 x k x n at 32.8 TMAC/s dwarfs moving the weights and activations once at 409.6 GB/s
        bytes_once = _weight_bytes(k, n) + 2048 * k + 2048 * n * 2
        assert compute_s > bytes_once / design.dram.bandwidth_bytes_per_s


def test_decode_step_never_beats_weight_streaming(decode_run, design):
    h, q, kv, f, vocab, layers = 4096, 4096, 4096, 11008, 32000, 32
    per_layer = (_weight_bytes(h, q + 2 * kv) + _weight_bytes(q, h) + _weight_bytes(h, 2 * f)
                 + _weight_bytes(f, h))
    step_bytes = layers * per_layer + _weight_bytes(h, vocab)
    # 6.74 B params at ~4.16 bits each, minus the (unquantized, unread) embedding table and norms
    assert 3.3e9 < step_bytes < 3.6e9
    bound_s = step_bytes / design.dram.bandwidth_bytes_per_s
    ops = decode_run.ops
    for step in (1, 2, 3):
        rows = ops[(ops["phase"] == "decode") & (ops["step"] == step)]
        assert set(rows["layer"]) == set(range(-1, 32))
        assert rows["time_s"].sum() >= bound_s
        assert rows["dram_read_bytes"].sum() >= step_bytes
    # the prefill of 128 tokens also streams every weight once
    pre = ops[ops["phase"] == "prefill"]
    assert pre["time_s"].sum() >= bound_s


# --------------------------------------------------------------------------- cost reuse


TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1000,
    "max_position_embeddings": 2048, "hidden_act": "silu",
}


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(TINY_CONFIG))
    return load_model(path)


def test_reuse_on_and_off_give_identical_frames(tiny, design):
    assert tiny.name == "tiny" and tiny.head_dim == 64
    kw = dict(batch=2, prompt=16, generate=4, progress=False)
    on = simulate_model(tiny, design, quant=design.native_quant, reuse=True, **kw)
    off = simulate_model(tiny, design, quant=design.native_quant, reuse=False, **kw)
    total = 4 * (2 * 9 + 2)  # prefill + 3 decode steps, each 2 layers x 9 kernels + add-norm + LM head
    assert len(on.ops) == len(off.ops) == total
    pd.testing.assert_frame_equal(on.ops, off.ops, check_exact=True)
    pd.testing.assert_frame_equal(on.layers, off.layers, check_exact=True)
    pd.testing.assert_frame_equal(on.phases, off.phases, check_exact=True)
    assert on.to_dict() == {**off.to_dict(), "simulated_ops": on.simulated_ops}

    assert off.simulated_ops == total
    distinct = {op.cost_key() for op in model_ops(tiny, design, quant=design.native_quant,
                                                  workload=WorkloadKind.FULL, **{
        k: v for k, v in kw.items() if k != "progress"})}
    # layer 1 repeats layer 0, and in decode only the attention ops change with the KV length
    assert on.simulated_ops == len(distinct) < total // 2


def test_identical_layers_cost_the_same(decode_run):
    ops = decode_run.ops
    for phase, step in (("prefill", 0), ("decode", 2)):
        sel = (ops["phase"] == phase) & (ops["step"] == step)
        a = ops[sel & (ops["layer"] == 0)].drop(columns=LABELS).reset_index(drop=True)
        b = ops[sel & (ops["layer"] == 5)].drop(columns=LABELS).reset_index(drop=True)
        assert len(a) == 9
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        # the rows are placed back to back: layer 5 starts where layer 4 ended
        l4 = ops[sel & (ops["layer"] == 4)]
        l5 = ops[sel & (ops["layer"] == 5)]
        assert l5["start_s"].iloc[0] == l4["end_s"].iloc[-1]


# --------------------------------------------------------------------------- KV cache


def test_decode_sees_the_kv_cache_grow(decode_run):
    ops = decode_run.ops
    att = ops[(ops["name"] == "attention") & (ops["layer"] == 0)].set_index("step")
    assert int(att.loc[0, "n"]) == PROMPT and int(att.loc[0, "m"]) == PROMPT
    for step in (1, 2, 3):
        assert int(att.loc[step, "n"]) == PROMPT + step
        assert int(att.loc[step, "m"]) == 1 and int(att.loc[step, "k"]) == 128  # one query row, head_dim 128
        assert int(att.loc[step, "batch"]) == 32  # batch 1 x 32 KV heads
        # K and V caches read at 8 bits: 2 x 32 heads x (P + s) tokens x 128 dims
        assert att.loc[step, "dram_read_bytes"] >= 2 * 32 * (PROMPT + step) * 128
    for earlier, later in ((1, 2), (2, 3), (1, 3)):
        assert att.loc[later, "time_s"] >= att.loc[earlier, "time_s"]
        assert att.loc[later, "dram_read_bytes"] > att.loc[earlier, "dram_read_bytes"]
    # every layer of a step attends to the same cache length
    dec = ops[(ops["name"] == "attention") & (ops["phase"] == "decode")]
    assert (dec["n"] == PROMPT + dec["step"]).all()


def test_unfused_decode_sees_the_kv_cache_grow(llama, design):
    run = simulate_model(llama, design, quant=design.native_quant, batch=1, prompt=PROMPT, generate=3, progress=False,
                         attention="unfused")
    ops = run.ops
    assert run.to_dict()["attention"] == "unfused" and len(ops) == 3 * (32 * 11 + 2)
    qk = ops[(ops["name"] == "attn_qk") & (ops["layer"] == 0)].set_index("step")
    pv = ops[(ops["name"] == "attn_pv") & (ops["layer"] == 0)].set_index("step")
    assert int(qk.loc[0, "n"]) == PROMPT and int(qk.loc[0, "m"]) == PROMPT
    for step in (1, 2):
        assert int(qk.loc[step, "n"]) == PROMPT + step
        assert int(qk.loc[step, "m"]) == 1 and int(qk.loc[step, "k"]) == 128
        assert int(pv.loc[step, "k"]) == PROMPT + step
        # K cache read at 8 bits: 32 heads x (P + s) tokens x 128 dims
        assert qk.loc[step, "dram_read_bytes"] >= 32 * (PROMPT + step) * 128
    assert qk.loc[2, "dram_read_bytes"] > qk.loc[1, "dram_read_bytes"]
    assert pv.loc[2, "dram_read_bytes"] > pv.loc[1, "dram_read_bytes"]


# --------------------------------------------------------------------------- the MixPE authors' workload


def test_paper_workload_shapes():
    opt = load_model("opt-6.7b")
    design = load_design("paper-mixpe-w4a8")
    res = simulate_model(opt, design, quant=design.native_quant, batch=64, workload="paper", progress=False)
    ops = res.ops
    assert len(ops) == 32 * 8
    assert sorted(ops["layer"].unique()) == list(range(32))
    assert (ops.groupby("layer").size() == 8).all()
    h = 4096
    main = {"qkv": (h, 3 * h), "o_proj": (h, h), "ffn1": (h, 4 * h), "ffn2": (4 * h, h)}
    layer0 = ops[ops["layer"] == 0]
    assert list(layer0["name"]) == ["qkv", "qkv_dequant", "o_proj", "o_proj_dequant", "ffn1", "ffn1_dequant",
                                    "ffn2", "ffn2_dequant"]
    for name, (k, n) in main.items():
        lin = ops[ops["name"] == name]
        dq = ops[ops["name"] == f"{name}_dequant"]
        assert len(lin) == len(dq) == 32
        assert (lin["kind"] == "linear").all() and (dq["kind"] == "dequant_gemm").all()
        assert (lin["m"] == 64).all() and (lin["k"] == k).all() and (lin["n"] == n).all()
        # MixPE dequantizes after the GEMM: [64 x K/8] x [K/8 x N/128]
        assert (dq["m"] == 64).all() and (dq["k"] == k // 8).all() and (dq["n"] == n // 128).all()
    qkv_dq = ops[ops["name"] == "qkv_dequant"].iloc[0]
    assert (qkv_dq["k"], qkv_dq["n"]) == (512, 96)
    # each dequant GEMM directly follows its linear layer
    kinds = list(ops["kind"])
    assert kinds == ["linear", "dequant_gemm"] * 128
    assert res.prompt_tokens == 0 and res.to_dict()["prefill_time_s"] == 0.0


# --------------------------------------------------------------------------- reports add up


def test_layer_and_phase_reports_add_up(decode_run):
    ops, layers, phases = decode_run.ops, decode_run.layers, decode_run.phases
    by_ops = math.fsum(ops["time_s"])
    by_layers = math.fsum(layers["time_s"])
    by_phases = math.fsum(phases["time_s"])
    end = float(ops["end_s"].iloc[-1])  # ops run back to back from t = 0
    assert float(ops["start_s"].iloc[0]) == 0.0
    for value in (by_layers, by_phases, decode_run.total_time_s, end):
        assert math.isclose(value, by_ops, rel_tol=1e-12), (value, by_ops)
    figures = decode_run.to_dict()
    assert math.isclose(figures["prefill_time_s"] + figures["decode_time_s"], figures["total_time_s"],
                        rel_tol=1e-12)
    # one layers row per (phase, step, layer): 4 steps x (32 layers + the LM-head group)
    assert len(layers) == 4 * 33
    assert layers["ops"].sum() == len(ops)
    assert list(phases["phase"]) == ["prefill", "decode"]
    assert list(phases["ops"]) == [32 * 9 + 2, 3 * (32 * 9 + 2)]
    assert list(phases["steps"]) == [1, 3]
    assert int(phases["dram_read_bytes"].sum()) == int(ops["dram_read_bytes"].sum())
    # decode time per output token averages the 3 decode steps
    assert figures["time_per_output_token_s"] == pytest.approx(figures["decode_time_s"] / 3, rel=1e-12)


def test_parallel_workers_give_identical_frames(tiny, design):
    kw = dict(batch=2, prompt=16, generate=4, progress=False)
    one = simulate_model(tiny, design, quant=design.native_quant, workers=1, **kw)
    two = simulate_model(tiny, design, quant=design.native_quant, workers=2, **kw)
    pd.testing.assert_frame_equal(one.ops, two.ops, check_exact=True)
    assert one.to_dict() == two.to_dict()
    assert two.simulated_ops == len({op.cost_key() for op in model_ops(tiny, design, quant=design.native_quant, **{
        k: v for k, v in kw.items() if k != "progress"})})


# --------------------------------------------------------------------------- blocks and the compact op table


def test_blocks_expand_to_the_flat_op_stream(llama, design):
    from mixpe_sys.sim.model import model_blocks

    kw = dict(batch=2, prompt=16, generate=3, quant=design.native_quant)
    blocks = list(model_blocks(llama, design, **kw))
    # per step: one block of the 32 identical layers (9 kernels each with fused attention), then the head
    # (final add-norm + LM head)
    assert [(len(b.ops), b.layers) for b in blocks] == [(9, 32), (2, 1)] * 3
    assert [op for b in blocks for op in b.expand()] == list(model_ops(llama, design, **kw))


def test_table_frames_equal_the_row_by_row_reports(decode_run, tiny, design):
    from mixpe_sys.report import layers_report, phases_report
    from mixpe_sys.sim.model import simulate_ops_result

    # reports taken over the whole per-op frame, as a row-by-row engine builds them
    pd.testing.assert_frame_equal(decode_run.layers, layers_report(decode_run.ops), check_exact=True)
    pd.testing.assert_frame_equal(decode_run.phases, phases_report(decode_run.ops), check_exact=True)
    # a flat stream with one layer split over two places (no one block per layer group) takes the same reports
    ops = list(model_ops(tiny, design, batch=1, prompt=8, generate=2, quant=design.native_quant))
    ops = ops[:3] + ops[24:27] + ops[3:24] + ops[27:]
    res = simulate_ops_result(ops, design, model_name="tiny", workload="trace", batch=1, prompt=8, generate=2,
                              progress=False)
    assert len(res.ops) == len(ops) and list(res.ops["name"]) == [op.name for op in ops]
    pd.testing.assert_frame_equal(res.layers, layers_report(res.ops), check_exact=True)
    assert len(res.layers) == 2 * 3  # (prefill, decode) x (layer 0, layer 1, head)


def test_engine_work_does_not_grow_with_layers(design, monkeypatch):
    import dataclasses

    from mixpe_sys.sim.engine import CostCache

    calls = []
    real = CostCache.cost
    monkeypatch.setattr(CostCache, "cost", lambda self, op, reuse=True: calls.append(op) or real(self, op, reuse))
    base = load_model("llama-2-7b")
    looked_up = {}
    for layers in (2, 80):
        calls.clear()
        spec = dataclasses.replace(base, num_layers=layers, name=f"l{layers}")
        res = simulate_model(spec, design, quant=design.native_quant, batch=1, prompt=32, generate=3,
                             progress=False, cache_dir=False)
        looked_up[layers] = len(calls)
        assert res.to_dict()["ops"] == 3 * (layers * 9 + 2)  # 9 kernels per layer (fused attention), 2 head
    # one lookup per op of one layer copy and per head op, per step, whatever the layer count
    assert looked_up[2] == looked_up[80] == 3 * (9 + 2)
