"""Tensor-core rates, in-loop INT4 conversion on GPU presets, `run --quant`, and the fused kernel list."""

from __future__ import annotations

from fractions import Fraction
from math import ceil

import pytest

from mixpe_sys import ConfigError, load_design, simulate, simulate_gemm
from mixpe_sys.cli import main
from mixpe_sys.errors import MappingError
from mixpe_sys.hw.pe import pe_model
from mixpe_sys.hw.precision import check_quant
from mixpe_sys.hw.tile_step import plan_timer
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.ops import OpKind, Phase
from mixpe_sys.workload.quant import NumberFormat, QuantScheme
from mixpe_sys.workload.transformer import head_ops, layer_ops

FP, INT = NumberFormat.FP, NumberFormat.INT


@pytest.mark.parametrize("design, w, a, fmt, rate", [
    ("a100-like", 16, 16, FP, 1), ("a100-like", 4, 16, FP, 1),  # W4A16: weights converted to FP16
    ("a100-like", 8, 8, INT, 2), ("a100-like", 4, 8, INT, 2),  # INT8 MMA at twice the FP16 rate
    ("a100-like", 4, 4, INT, 4),  # A100's INT4 tensor cores
    ("h100-like", 4, 4, INT, 2),  # no INT4 rate on H100: runs as INT8
])
def test_tensor_core_rates(design, w, a, fmt, rate):
    pe = pe_model(load_design(design).tile.pe_array.pe)
    assert pe.macs_per_cycle(w, a, fmt) == Fraction(rate)


@pytest.mark.parametrize("w, a, fmt", [(16, 32, FP), (8, 8, FP), (16, 16, INT)])
def test_tensor_core_rejects_what_it_cannot_run(w, a, fmt):
    with pytest.raises(MappingError):
        pe_model(load_design("a100-like").tile.pe_array.pe).macs_per_cycle(w, a, fmt)


def test_w4a16_pays_the_in_loop_conversion():
    d = load_design("a100-like")
    fp16 = simulate_gemm(1, 4096, 4096, d)
    w4 = simulate_gemm(1, 4096, 4096, d, quant="W4A16")
    # one conversion per weight per row block of the 32-row array (M = 1: one), on every SM that has work
    assert w4.dequant_cycles > 0 and fp16.dequant_cycles == 0
    per_step = w4.plan.tiling.tk * w4.plan.tiling.tn
    assert w4.dequant_cycles >= ceil(per_step / d.tile.dequant.elements_per_cycle)
    # weights + group scales and zeros: 4 + (16 + 4) / 128 bits per weight instead of 16
    assert w4.dram_read_bytes < fp16.dram_read_bytes / 3.5
    assert w4.device_time_s < fp16.device_time_s / 2


def test_conversion_keeps_up_on_a100_but_not_for_int8_on_h100():
    # the A100 array consumes 32 FP16 weights per clock, fewer than the 78 converted: each step waits only
    # for the converter's pipeline depth
    a = simulate_gemm(32, 4096, 4096, "a100-like", quant="W4A16")
    lat = load_design("a100-like").tile.dequant.latency_cycles
    timer = plan_timer(a.plan, load_design("a100-like"))
    assert all(timer.step(s).convert_stall_cycles == lat for _, s in a.plan.iter_steps())
    # H100's INT8 MMA consumes 2 x 64 = 128 weights per clock: the converter (78) sets the step time
    h = simulate_gemm(32, 4096, 4096, "h100-like", quant="W4A8")
    d = load_design("h100-like")
    h_timer = plan_timer(h.plan, d)
    for _, s in h.plan.iter_steps():
        busy = ceil(s.k * s.n / d.tile.dequant.elements_per_cycle)
        c = h_timer.step(s)
        assert c.convert_stall_cycles > d.tile.dequant.latency_cycles
        assert c.compute_cycles == busy + lat  # conversion-bound: the k x n weights at 78 per clock


def test_check_quant_one_line_errors():
    check_quant(load_design("a100-like"), QuantScheme.parse("W4A16"))
    with pytest.raises(ConfigError, match="W16A16 on design 'mixpe-w4a8'.*does not take FP activations") as err:
        check_quant(load_design("mixpe-w4a8"), QuantScheme.parse("W16A16"))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="int8_mac. does not take 4-bit weights"):
        check_quant(load_design("int8"), QuantScheme.parse("W4A8"))
    check_quant(load_design("int8"), QuantScheme.parse("W8A8", group_size=0))


def test_cli_run_quant(capsys):
    assert main(["run", "--model", "llama-2-7b", "--design", "mixpe-w4a8", "--quant", "W16A16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "W16A16 on design 'mixpe-w4a8'" in err[0]
    assert main(["run", "--design", "a100-like", "--group-size", "64"]) == 2
    assert "--group-size" in capsys.readouterr().err


def test_run_quant_changes_the_precision(tiny):
    d = load_design("a100-like")
    kw = dict(batch=1, prompt=8, generate=2, progress=False)
    fp16 = simulate(tiny, d, **kw)
    w4 = simulate(tiny, d, quant="W4A16", **kw)
    assert fp16.to_dict()["quant"] == "W16A16" and w4.to_dict()["quant"] == "W4A16"
    lin = w4.ops[w4.ops.kind == "linear"]
    assert set(lin.weight_bits) == {4} and set(lin.activation_bits) == {16}
    assert w4.to_dict()["dram_read_bytes"] < fp16.to_dict()["dram_read_bytes"]


def test_fused_layer_kernels_by_hand():
    model = load_model("llama-2-7b")  # h = 4096, q_dim = kv_dim = 4096, f = 11008, RoPE
    q = QuantScheme.parse("W16A16")
    fused = layer_ops(model, q, batch=1, q_tokens=3, kv_len=3, phase=Phase.PREFILL)
    assert [o.name for o in fused] == ["add_norm_attn", "qkv", "rope_kv_write", "attention", "o_proj",
                                       "add_norm_ffn", "ffn_up", "act", "ffn_down"]
    ops = layer_ops(model, q, batch=1, q_tokens=3, kv_len=3, phase=Phase.PREFILL, attention="unfused")
    assert [o.name for o in ops] == ["add_norm_attn", "qkv", "rope_kv_write", "attn_qk", "softmax", "attn_pv",
                                     "o_proj", "add_norm_ffn", "ffn_up", "act", "ffn_down"]
    add = ops[0]
    # reads the residual and the previous sub-layer's output (FP16), writes the residual and the normed input
    assert (add.kind, add.elements, add.read_bytes, add.write_bytes) == (OpKind.ADD_NORM, 3 * 4096,
                                                                         3 * 4096 * 4, 3 * 4096 * 4)
    rope = ops[2]
    # q (4096) and k, v (2 x 4096) of 3 tokens read at FP16; q written back, k and v into the FP16 cache
    assert rope.kind is OpKind.ROPE_KV_WRITE and rope.elements == 3 * (4096 + 8192)
    assert (rope.read_bytes, rope.write_bytes) == (3 * 12288 * 2, 3 * 12288 * 2)
    act = ops[9]
    assert (act.elements, act.read_bytes, act.write_bytes) == (3 * 11008, 3 * 11008 * 4, 3 * 11008 * 2)
    assert [o.name for o in head_ops(model, q, batch=2, phase=Phase.DECODE)] == ["add_norm_final", "lm_head"]


def test_learned_positions_have_no_rotary():
    ops = layer_ops(load_model("opt-6.7b"), QuantScheme.parse("W4A8"), batch=1, q_tokens=2, kv_len=2,
                    phase=Phase.PREFILL)
    kv = ops[2]
    assert (kv.name, kv.kind, kv.elements) == ("kv_write", OpKind.KV_WRITE, 2 * 2 * 4096)
