"""Serving on replicas and pools: routers, disaggregation, overload statements, capacity search, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mixpe_sys.cli import main
from mixpe_sys.serving import ServingConfig, replay
from mixpe_sys.serving.capacity import find_capacity
from mixpe_sys.serving.kv_cache import kv_bytes_per_token
from mixpe_sys.serving.router import Router
from mixpe_sys.system import LinkConfig, SystemConfig, TopologyConfig, system_of_design
from mixpe_sys.system.presets import resolve
from mixpe_sys.system.serve import replay_system
from mixpe_sys.workload.requests import load_request_trace

ROOT = Path(__file__).resolve().parent.parent
CONV = ROOT / "traces/azure-llm-2023/AzureLLMInferenceTrace_conv.csv"
B, L = 50e9, 1000.0
TINY_CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 688,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
               "max_position_embeddings": 4096}


def run(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def same(n: int, prompt: int = 64, output: int = 8) -> pd.DataFrame:
    return pd.DataFrame({"request_id": range(n), "arrival_s": [0.0] * n, "prompt_tokens": [prompt] * n,
                         "output_tokens": [output] * n})


def test_one_replica_equals_the_one_chip_replay(tiny, design, cache):
    req = load_request_trace(CONV, limit=20)
    cfg = ServingConfig(max_batch=8)
    a = replay(req, tiny, design, config=cfg, cache=cache, progress=False)
    b = replay_system(req, tiny, system_of_design(design, num_chips=1), config=cfg, cache=cache, progress=False)
    pd.testing.assert_series_equal(a.requests["finish_s"], b.requests["finish_s"], rtol=1e-12)
    for key in ("ttft_p99_s", "tpot_p99_s", "peak_waiting", "offered_to_served"):
        assert b.summary[key] == pytest.approx(a.summary[key], rel=1e-12)


def test_two_replicas_double_the_throughput_of_an_overloaded_trace(tiny, design, cache):
    # 32 identical requests at t=0, at most 4 running: one replica serves 8 identical waves of 4, each of
    # time W, in 8W; two replicas (round robin, 16 each) serve 4 waves each in 4W: exactly twice the throughput
    req = same(32)
    cfg = ServingConfig(max_batch=4)
    one = replay_system(req, tiny, system_of_design(design, num_chips=2), config=cfg, cache=cache, progress=False)
    two = replay_system(req, tiny, system_of_design(design, num_chips=2), config=cfg, replicas=2, cache=cache,
                        progress=False)
    ratio = two.summary["throughput_tokens_per_s"] / one.summary["throughput_tokens_per_s"]
    assert ratio == pytest.approx(2.0, rel=1e-12)
    assert list(two.replicas["requests"]) == [16, 16]
    assert one.summary["peak_waiting"] == 28 and two.summary["peak_waiting"] == 24  # 32-4, then 2 x (16-4)
    assert "arrived at once" in one.summary["load_statement"]


def test_routers():
    class R:
        def __init__(self, outstanding, kv):
            self.outstanding, self.kv_demand_tokens = outstanding, kv

    pool = [R(3, 10), R(1, 50), R(1, 5)]
    rr = Router.create("round_robin")
    assert [rr.pick(pool) for _ in range(4)] == [0, 1, 2, 0]
    assert Router.create("least_outstanding").pick(pool) == 1  # tie 1 vs 2: lowest index
    assert Router.create("least_kv").pick(pool) == 2


def test_least_outstanding_balances_uneven_requests(tiny, design, cache):
    # request 0 is long (about 2000 x 12 us of decode); 1 arrives with it; 2 and 3 arrive 1 and 2 ms later,
    # when 1 (and then 2) have long finished: least_outstanding sends both to replica 1, round robin alternates
    req = pd.DataFrame({"request_id": range(4), "arrival_s": [0.0, 0.0, 1e-3, 2e-3],
                        "prompt_tokens": [64] * 4, "output_tokens": [2000, 2, 2, 2]})
    s = system_of_design(design, num_chips=2)
    lo = replay_system(req, tiny, s, replicas=2, router="least_outstanding", cache=cache, progress=False)
    rr = replay_system(req, tiny, s, replicas=2, router="round_robin", cache=cache, progress=False)
    assert list(lo.replicas["requests"]) == [1, 3] and list(rr.replicas["requests"]) == [2, 2]


def test_disaggregated_kv_transfer_time_is_hand_computed(tiny, design, cache):
    # 2 chips on a ring, one link each way: P tokens of KV cache of the whole model cross one hop,
    # P * kv_bytes_per_token / B + L; the second token waits for the transfer and one decode iteration
    p = 100
    cfg = SystemConfig(name="pair", design=design.name, num_chips=2,
                       topology=TopologyConfig(kind="ring", link=LinkConfig(bandwidth_bytes_per_s=B, latency_ns=L)))
    req = same(1, prompt=p, output=2)
    r = replay_system(req, tiny, resolve(cfg), disaggregate=(1, 1), cache=cache, progress=False)
    expected = p * kv_bytes_per_token(tiny, design.native_quant) / B + L * 1e-9
    assert r.summary["kv_transfer_mean_s"] == pytest.approx(expected, rel=1e-12)
    decode = r.iterations[r.iterations["pool"] == "decode"]
    assert len(decode) == 1
    tpot = r.requests["tpot_s"].iloc[0]
    assert tpot == pytest.approx(expected + decode["time_s"].iloc[0], rel=1e-9)
    assert r.summary["kv_transfer_bytes"] == p * kv_bytes_per_token(tiny, design.native_quant)


def test_disaggregated_pools_serve_everything(tiny, design, cache):
    req = load_request_trace(CONV, limit=16, rate_scale=20)
    s = system_of_design(design, num_chips=4, tp=1)
    r = replay_system(req, tiny, s, disaggregate=(1, 3), router="least_kv", cache=cache, progress=False)
    assert r.summary["completed"] == 16 and r.summary["prefill_replicas"] == 1
    assert (r.requests["output_tokens"] == req["output_tokens"].clip(lower=1)).all()
    assert int(r.replicas.loc[r.replicas["pool"] == "prefill", "requests"].iloc[0]) == 16
    assert int(r.replicas.loc[r.replicas["pool"] == "decode", "requests"].sum()) == (req["output_tokens"] > 1).sum()


def _scale(trace: pd.DataFrame) -> float:
    # the probes' traces are the base trace (arrivals 0, 1, ..., 9 s) divided by the scale
    return 9.0 / float(trace["arrival_s"].max())


def test_capacity_bisection_reads_the_scale():
    req = pd.DataFrame({"request_id": range(10), "arrival_s": [float(i) for i in range(10)],
                        "prompt_tokens": [8] * 10, "output_tokens": [2] * 10})
    result = find_capacity(req, lambda t: {"ttft_p99_s": 0.1 * _scale(t), "ttft_p50_s": 0.0, "tpot_p50_s": 0.0,
                                           "tpot_p99_s": 0.0},
                           slo_ttft_p99_s=0.5, slo_tpot_p99_s=1.0, tolerance=0.01)
    assert result.max_rate_scale <= 5.0 < result.max_rate_scale * 1.01
    assert result.trace_rate_per_s == pytest.approx(1.0)
    assert result.curve["rate_scale"].is_monotonic_increasing


@pytest.mark.slow
def test_capacity_is_monotone_in_the_slo(tiny, design, cache):
    req = load_request_trace(CONV, limit=20)
    cfg = ServingConfig(cost_model="interpolated")

    def probe(trace):
        return replay(trace, tiny, design, config=cfg, cache=cache, progress=False).summary

    # the tiny model barely queues: p99 TTFT is 0.99 ms up to 64x the trace's rate, 1.00 ms at 256x and
    # 1.10 ms at 1024x; p99 TPOT 13 us, 19 us and 76 us there. SLOs around those figures bind.
    slos = ((0.00100, 1.5e-5), (0.00100, 5e-5), (0.00105, 5e-5), (0.0011, 1e-4), (0.002, 1e-4))
    rates = [find_capacity(req, probe, slo_ttft_p99_s=ttft, slo_tpot_p99_s=tpot, tolerance=0.1).max_rate_scale
             for ttft, tpot in slos]
    assert all(a <= b for a, b in zip(rates, rates[1:])), rates
    assert 0 < rates[0] < rates[-1], rates


def test_cli_capacity_json_and_files(tmp_path, capsys):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY_CONFIG))
    out = tmp_path / "cap"
    assert run(["capacity", str(CONV), "--model", str(model), "--limit", "12", "--cost-model", "interpolated",
                "--slo-ttft-p99", "0.01", "--slo-tpot-p99", "0.001", "--tolerance", "0.2", "--json",
                "--out", str(out), "--workers", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["max_rate_scale"] > 0 and d["ttft_p99_s"] <= 0.01
    assert {p.name for p in out.iterdir()} == {"capacity.csv", "capacity.png", "capacity.json"}
    curve = pd.read_csv(out / "capacity.csv")
    assert curve["meets_slo"].any() and len(curve) == d["probes"]


def test_cli_replay_on_replicas_and_errors(tmp_path, capsys):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY_CONFIG))
    args = ["replay", str(CONV), "--model", str(model), "--limit", "8", "--workers", "1"]
    assert run(args + ["--replicas", "2", "--tp", "2", "--router", "least_outstanding", "--out",
                       str(tmp_path / "r")]) == 0
    text = capsys.readouterr().out
    assert "load: offered" in text and "2 replica(s) of tp 2 x pp 1" in text
    assert (tmp_path / "r" / "replicas.csv").exists()
    assert run(args + ["--disaggregate", "1:x"]) == 2
    assert run(args + ["--disaggregate", "1:1", "--replicas", "2"]) == 2
    assert run(args + ["--system", "mixpe-board4", "--replicas", "2"]) == 2  # 2 x tp 4 > 4 chips
    assert run(["run", "--model", "llama-2-70b", "--system", "dgx-a100", "--tp", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 4 and "does not fit at tp=2" in err and "bytes of DRAM" in err


def test_replay_help_says_how_to_find_a_sustainable_rate(capsys):
    assert run(["replay", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "To find a sustainable rate, run `mixpe-sim capacity" in text


def test_serving_memory_check_names_bytes():
    from mixpe_sys.errors import FitError
    from mixpe_sys.system import load_system
    from mixpe_sys.workload.models import load_model

    with pytest.raises(FitError, match=r"does not fit at tp=2, pp=1: each chip needs [\d,]+ bytes .*its longest "
                                       r"request \(64 tokens\).* but has 42,949,672,960 bytes of DRAM"):
        replay_system(same(2, prompt=60, output=5), load_model("llama-2-70b"),
                      load_system("dgx-a100").with_parallelism(tp=2), progress=False)
