"""The GPU experiment scripts (quantized speedup curve, end-to-end sanity) in their quick modes."""

from __future__ import annotations

import pandas as pd
import pytest

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.workload.models import load_model
from experiment_module import load_experiment


@pytest.mark.slow
def test_quant_speedup_quick(tmp_path):
    qs = load_experiment("gpu_quant_speedup")
    out = qs.run(tmp_path, ("a100-like",), quick=True)
    df = out["speedups"]
    assert list(df.m) == [1, 16, 256] and set(df.design) == {"a100-like"}
    for path in out["files"]:
        assert path.stat().st_size > 0
    row = df[df.m == 1].iloc[0]
    fp16 = simulate_gemm(1, 4096, 4096, "a100-like").device_time_s * 1e6
    w4 = simulate_gemm(1, 4096, 4096, "a100-like", quant="W4A16").device_time_s * 1e6
    assert row.W16A16_us == pytest.approx(fp16) and row.W4A16_speedup == pytest.approx(fp16 / w4)
    # at M = 1 the roofline is bytes: FP16 weights + x + y against INT4 weights + 20-bit scale/zero per 128 + x + y
    assert row.W4A16_roofline_speedup == pytest.approx((16 * 4096 * 4096 + 2 * 16 * 4096)
                                                       / (4 * 4096 * 4096 + 20 * 4096 * 32 + 2 * 16 * 4096),
                                                       rel=1e-6)
    assert 1 < row.W4A16_speedup <= row.W4A16_roofline_speedup * 1.01


@pytest.mark.slow
def test_e2e_quick(tmp_path):
    e2e = load_experiment("gpu_e2e")
    out = e2e.run(tmp_path, ("a100-like",), quick=True)
    dec = out["decode"].iloc[0]
    params = load_model("llama-2-7b").total_params
    assert dec.bound_ms == pytest.approx(params * 2 / 1.555e12 * 1e3)
    # no run streams the weights faster than the peak bandwidth, and each kernel pays its graph launch
    assert dec.tpot_ms > dec.bound_ms
    assert dec.kernels_per_token == 32 * 9 + 2
    assert dec.launch_ms == pytest.approx(dec.kernels_per_token * load_design("a100-like").launch.graph_launch_ns
                                          * 1e-6)
    pre = out["prefill"].iloc[0]
    assert pre.prefill_ms > pre.compute_bound_ms
    assert (tmp_path / "e2e.md").read_text().count("|") > 10


@pytest.mark.slow
def test_tp_scaling_quick(tmp_path):
    """gpt-fast's published 8 x A100 rows load, and Llama-2-70B at TP 8 runs in quick mode."""
    tps = load_experiment("tp_scaling")
    meas = tps.measured()
    # pytorch-labs/gpt-fast README, "Tensor Parallelism" (tokens/s, batch 1)
    assert dict(zip(zip(meas.model, meas.gpus), meas.tokens_per_s)) == {
        ("llama-2-7b", 1): 104.9, ("llama-2-7b", 2): 168.84, ("llama-2-7b", 4): 254.02, ("llama-2-7b", 8): 328.43,
        ("llama-2-70b", 2): 21.32, ("llama-2-70b", 4): 38.01, ("llama-2-70b", 8): 62.50}
    assert tps.main([str(tmp_path), "--quick"]) == 0
    row = pd.read_csv(tmp_path / "tp_scaling.csv").iloc[0]
    assert (row.model, row.gpus) == ("llama-2-70b", 8)
    # a decode step streams each chip's weight shard once and waits on the all-reduces: never faster
    assert row.simulated_tpot_ms > row.weight_stream_bound_ms
    assert 0 < row.collective_ms_per_token < row.simulated_tpot_ms
    # a slower HBM can only lower the token rate
    assert row.simulated_tokens_per_s_at_1700gbps < row.simulated_tokens_per_s
    assert row.error_pct == pytest.approx((row.simulated_tokens_per_s / 62.50 - 1) * 100)
