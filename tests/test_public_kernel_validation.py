"""Published kernel-level GPU measurements (experiments/data) and experiments/validate_public_kernels.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.errors import TraceError
from mixpe_sys.mapping.attention import plan_attention
from mixpe_sys.measurements import read_measurements
from mixpe_sys.sim.plan_run import run_plan
from mixpe_sys.workload.attention import AttentionSpec
from experiment_module import load_experiment

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "experiments" / "data"


vpk = load_experiment("validate_public_kernels")


def test_xla_table_is_complete_and_transcribed_exactly():
    meta, df = read_measurements(DATA / "xla_h100_bf16_gemm.csv",
                                 {"b": int, "m": int, "n": int, "k": int, "flops_per_s": float})
    assert {"source", "timing", "gpu"} <= set(meta)
    sizes = {256, 512, 1024, 2048, 4096}
    for b in (1, 2, 4):  # the source's grid: every (m, n, k) in sizes^3 once per b
        part = df[df["b"] == b]
        assert len(part) == 125 and set(map(tuple, part[["m", "n", "k"]].values)) == {
            (m, n, k) for m in sizes for n in sizes for k in sizes}
    # XLA stores flops = 2*b*m*n*k / (median kernel ns): each time is a whole or half nanosecond,
    # so a mistyped digit would show up here
    time_ns = 2.0 * df["b"] * df["m"] * df["n"] * df["k"] / df["flops_per_s"] * 1e9
    assert ((time_ns * 2 - (time_ns * 2).round()).abs() < 1e-3).all()


def test_attention_rows_match_their_flop_count():
    meta, df = read_measurements(DATA / "tritonbench_h100_attention.csv",
                                 {"batch": int, "heads": int, "seq_len": int, "head_dim": int, "tflops": float})
    assert {"source", "timing", "gpu"} <= set(meta) and len(df) == 27
    timed = df[df["latency_ms"] != ""]
    assert len(timed) == 15
    for r in timed.itertuples():  # latency x TFLOP/s = 4 B H S^2 D (non-causal forward), to print precision
        flops = 4 * r.batch * r.heads * r.seq_len ** 2 * r.head_dim
        assert float(r.latency_ms) * 1e-3 * r.tflops * 1e12 == pytest.approx(flops, rel=1e-5)


def test_measured_time_from_the_table():
    df = vpk.xla_gemm_points(DATA / "xla_h100_bf16_gemm.csv")
    first = df.iloc[0]  # b=1, 1024 x 2048 x 256 at 139,519,467,775,467 FLOP/s: 1.073741824e9 / that = 7.696 us
    assert (first.b, first.m, first.n, first.k) == (1, 1024, 2048, 256)
    assert first.measured_us == pytest.approx(7.696, abs=1e-9)


def test_vllm_linear_times():
    df = vpk.linear_points(DATA / "vllm_h100_bf16_linear.csv")
    assert list(df["m"]) == [1, 16, 64, 128] and set(df["n"]) == {12288} and set(df["k"]) == {5376}
    # 2 x 1 x 12288 x 5376 = 132,120,576 FLOP at 2.870333 TFLOP/s = 46.0297 us
    assert df.iloc[0].measured_us == pytest.approx(46.0297, abs=1e-4)


def test_attention_measured_times():
    df = vpk.attention_points(DATA / "tritonbench_h100_attention.csv")
    first = df.iloc[0]  # sdpa, 128 x 8 x 1024 x 128: the printed latency, 1.91248 ms
    assert (first.kernel, first.batch, first.heads, first.seq_len) == ("sdpa", 128, 8, 1024)
    assert first.measured_us == pytest.approx(1912.48, abs=1e-9) and first.latency_printed
    # triton FA-2, 32 x 16 x 512 x 128, TFLOP/s only: 4 x 32 x 16 x 512^2 x 128 = 68,719,476,736 FLOP
    # at 328.882 TFLOP/s = 208.9487 us
    row = df[(df["kernel"] == "triton_tutorial_flash_v2") & (df["seq_len"] == 512)].iloc[0]
    assert row.flops == 68_719_476_736 and not row.latency_printed
    assert row.measured_us == pytest.approx(208.9487, abs=1e-4)


def test_scaled_attention_runs_fill_whole_waves():
    # up to FULL_ATTENTION_STEPS steps in full: 512 x 4 Q blocks x 8 key blocks = 16,384 steps
    assert vpk.scaled_instances(512, 4, 8, 132) == 512
    # 1024 x 128 x 256 = 3.4e7 steps: 132 / gcd(128, 132) = 33 instances fill 33 x 128 / 132 = 32 waves
    assert vpk.scaled_instances(1024, 128, 256, 132) == 33
    # 1024 x 32 x 64: 33 instances are 1,056 Q blocks = 8 waves, MIN_WAVES
    assert vpk.scaled_instances(1024, 32, 64, 132) == 33
    # 2,000 x 2 Q blocks x 200: 66 instances = 1 wave; 8 waves take 528
    assert vpk.scaled_instances(2000, 2, 200, 132) == 528
    assert vpk.scaled_instances(500, 2, 800, 132) == 500  # never more than the op has


@pytest.mark.slow
def test_script_runs_on_a_subset(tmp_path):
    out = vpk.run(tmp_path, subset=2)
    pts = out["points"]
    assert len(pts) == 6 and set(pts["design"]) == {"h100-like"}
    assert list(pts["dataset"]) == (["xla-h100-bf16-gemm"] * 2 + ["vllm-h100-bf16-linear"] * 2
                                    + ["tritonbench-h100-attention"] * 2)
    for r in pts[pts["dataset"] != "tritonbench-h100-attention"].itertuples():
        sim = simulate_gemm(int(r.m), int(r.n), int(r.k), "h100-like", batch=int(r.b), launch="graph")
        # kernel durations against the kernel alone; graph-replayed calls against kernel + graph launch
        expected = sim.device_time_s if r.dataset == "xla-h100-bf16-gemm" else sim.time_s
        assert r.simulated_us == pytest.approx(expected * 1e6)
        assert r.error_pct == pytest.approx(100 * (r.simulated_us - r.measured_us) / r.measured_us)
    # the two attention points of the fewest FLOPs: triton FA-2 and FA-3 at 32 x 16 x 512 x 128, against
    # one non-causal fused attention op of 32 x 16 instances, simulated in full
    att = pts[pts["dataset"] == "tritonbench-h100-attention"]
    assert list(att["kernel"]) == ["triton_tutorial_flash_v2", "flash_v3"] and set(att["point"]) == {"32x16x512x128"}
    design = load_design("h100-like")
    spec = AttentionSpec(instances=512, q_tokens=512, group=1, kv_len=512, head_dim=128, q_bits=16, kv_bits=16,
                         out_bits=16, causal=False)
    device_us = run_plan(plan_attention(spec, design), design, record_steps=False).cost.device_time_ns * 1e-3
    flops = 4 * 32 * 16 * 512 ** 2 * 128
    for r in att.itertuples():
        assert r.simulated_instances == 512 and r.simulated_us == pytest.approx(device_us)
        assert r.error_pct == pytest.approx(100 * (r.simulated_us - r.measured_us) / r.measured_us)
        assert r.simulated_tflops == pytest.approx(flops / r.simulated_us * 1e-6)
    text = (tmp_path / "public_kernels.md").read_text()
    assert "tritonbench-h100-attention" in text and "By measured kernel" in text and "not compared" not in text
    assert (tmp_path / "public_kernels.csv").exists()


def test_bad_table_names_file_line_field(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("# source: test\nb,m,n,k,flops_per_s\n1,256,256,256,fast\n")
    with pytest.raises(TraceError, match=r"bad.csv:3: field 'flops_per_s'"):
        vpk.xla_gemm_points(bad)


def test_cli_rejects_empty_subset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        vpk.main([str(tmp_path), "--subset", "0"])
    assert exc.value.code == 2 and "--subset" in capsys.readouterr().err


def test_bad_attention_latency_names_file_line_field(tmp_path):
    head = "# source: test\nsource_commit,kernel,batch,heads,seq_len,head_dim,latency_ms,tflops\n"
    good = "d5f0a12,sdpa,1,1,128,128,,300\n"  # TFLOP/s only: 4 x 128^2 x 128 = 8,388,608 FLOP at 300 TFLOP/s
    ok = tmp_path / "ok.csv"
    ok.write_text(head + good)
    row = vpk.attention_points(ok).iloc[0]
    assert not row.latency_printed and row.measured_us == pytest.approx(8_388_608 / 300e12 * 1e6)
    bad = tmp_path / "bad.csv"
    bad.write_text(head + good + "d5f0a12,sdpa,1,1,128,128,soon,300\n")
    with pytest.raises(TraceError, match=r"bad.csv:4: field 'latency_ms'"):
        vpk.attention_points(bad)
