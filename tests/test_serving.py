"""Serving replay: agreement with the engine, token conservation, bounds, batching policies, KV limits."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mixpe_sys.errors import ConfigError, MixpeError
from mixpe_sys.serving import (Batching, IterationCostModel, IterationOps, ServingConfig, ServingError, SeqWork,
                               kv_budget, kv_bytes_per_token, replay, weight_bytes)
from mixpe_sys.serving.results import ITERATION_COLUMNS, REQUEST_COLUMNS
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.sim.model import simulate_model
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.ops import Phase
from mixpe_sys.workload.requests import LogNormalTokens, synthetic_requests
from mixpe_sys.workload.transformer import full_workload

def one_request(prompt: int, output: int, arrival: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"request_id": [0], "arrival_s": [arrival], "prompt_tokens": [prompt],
                         "output_tokens": [output]})


def busy_trace(n=40, rate=4000.0, seed=3, prompt_mean=120, output_mean=24):
    return synthetic_requests(n, rate_per_s=rate, seed=seed,
                              prompt_tokens=LogNormalTokens(mean_tokens=prompt_mean, sigma=0.8, max_tokens=600),
                              output_tokens=LogNormalTokens(mean_tokens=output_mean, sigma=0.8, max_tokens=120))


def small_dram(model, design, kv_tokens: int):
    """The design with just enough DRAM for the weights and ``kv_tokens`` KV-cache tokens."""
    q = design.native_quant
    need = weight_bytes(model, q) + math.ceil(kv_tokens * kv_bytes_per_token(model, q))
    return design.replace(dram=design.dram.replace(capacity_bytes=need))


# --------------------------------------------------------------------------- agreement with the engine

def _engine_phase_ops(model, q, *, prompt, generate, phase):
    return [op for op in full_workload(model, q, batch=1, prompt=prompt, generate=generate) if op.phase is phase]


@pytest.mark.parametrize("prompt,generate", [(37, 6), (1, 3)])
def test_single_sequence_ops_match_engine(tiny, design, prompt, generate):
    ops = IterationOps(tiny, design.native_quant)
    ref = _engine_phase_ops(tiny, design.native_quant, prompt=prompt, generate=generate, phase=Phase.PREFILL)
    mine = ops.iteration([SeqWork(prompt, prompt, True)])
    assert [(o.name, o.layer, o.cost_key()) for o in mine] == [(o.name, o.layer, o.cost_key()) for o in ref]
    ref = _engine_phase_ops(tiny, design.native_quant, prompt=prompt, generate=generate, phase=Phase.DECODE)
    mine = []
    for s in range(1, generate):
        mine += ops.iteration([SeqWork(1, prompt + s, True)])
    assert [(o.name, o.layer, o.cost_key()) for o in mine] == [(o.name, o.layer, o.cost_key()) for o in ref]


def test_iteration_ops_batch_linear_layers_over_all_tokens(tiny, design):
    ops = IterationOps(tiny, design.native_quant)
    works = [SeqWork(1, 40, True), SeqWork(1, 9, True), SeqWork(30, 30, True), SeqWork(16, 50, False)]
    layer = ops.layer(works)
    by_name = {}
    for op in layer:
        by_name.setdefault(op.name, []).append(op)
    for name in ("qkv", "o_proj", "ffn_up", "ffn_down"):
        assert len(by_name[name]) == 1 and by_name[name][0].m == 48
    # fused attention per sequence: new tokens x 2 query heads per KV head as rows, the KV length as keys
    assert [(o.m, o.n) for o in by_name["attention"]] == [(1 * 2, 40), (1 * 2, 9), (30 * 2, 30), (16 * 2, 50)]
    assert all(o.batch == tiny.num_kv_heads and o.query_group == 2 for o in by_name["attention"])
    unfused = IterationOps(tiny, design.native_quant, attention="unfused").layer(works)
    qk = [o for o in unfused if o.name == "attn_qk"]
    assert [(o.m, o.n) for o in qk] == [(1 * 2, 40), (1 * 2, 9), (30 * 2, 30), (16 * 2, 50)]
    assert all(o.batch == tiny.num_kv_heads for o in unfused if o.name == "attn_pv")
    head = ops.iteration(works)[-2:]
    assert [o.name for o in head] == ["add_norm_final", "lm_head"] and head[1].m == 3
    assert ops.head_ops(0) == []


@pytest.mark.parametrize("model_name,prompt,generate", [("tiny", 37, 9), ("llama-2-7b", 12, 4)])
def test_single_request_on_idle_system_matches_simulate_model(tiny, design, cache, model_name, prompt, generate):
    model = tiny if model_name == "tiny" else load_model(model_name)
    res = replay(one_request(prompt, generate, arrival=0.25), model, design, cache=cache, progress=False,
                 shape_buckets=0)  # unpadded shapes: the same ops as the engine
    ref = simulate_model(model, design, quant=design.native_quant, batch=1, prompt=prompt, generate=generate)
    row = res.requests.iloc[0]
    assert row["ttft_s"] == pytest.approx(ref.phase_time_s("prefill"), rel=1e-9)
    assert row["tpot_s"] == pytest.approx(ref.phase_time_s("decode") / (generate - 1), rel=1e-9)
    assert row["e2e_s"] == pytest.approx(ref.total_time_s, rel=1e-9)
    assert row["first_token_s"] == pytest.approx(0.25 + ref.phase_time_s("prefill"), rel=1e-12)
    assert len(res.iterations) == generate
    assert res.summary["iterations"] == generate


def test_shape_buckets_cost_the_padded_shapes(tiny, design, cache):
    # prompt 37 pads to 38 (16 sizes per doubling: multiples of 2 in [32, 64)), KV 200 to 200, then 37 -> 38
    q = design.native_quant
    padded = IterationCostModel(tiny, design, quant=q, cache=cache, config=ServingConfig(shape_buckets=16))
    exact = IterationCostModel(tiny, design, quant=q, cache=cache, config=ServingConfig(shape_buckets=0))
    assert padded.cost([SeqWork(37, 37, True)]) == exact.cost([SeqWork(38, 38, True)])
    assert padded.cost([SeqWork(1, 201, True)]) == exact.cost([SeqWork(1, 208, True)])  # step 8 in [128, 256)
    assert padded.cost([SeqWork(1, 16, True)]) == exact.cost([SeqWork(1, 16, True)])  # small sizes unpadded
    # padding adds work, never removes it
    assert padded.cost([SeqWork(37, 37, True)]).time_ns >= exact.cost([SeqWork(37, 37, True)]).time_ns


def test_iteration_time_is_layers_times_layer_plus_head(tiny, design, cache):
    model = IterationCostModel(tiny, design, quant=design.native_quant, cache=cache,
                               config=ServingConfig(shape_buckets=0))
    works = [SeqWork(1, 40, True), SeqWork(20, 20, True), SeqWork(7, 30, False)]
    ops = IterationOps(tiny, design.native_quant).iteration(works)
    direct = sum(cache.cost(op).time_ns for op in ops)
    assert model.cost(works).time_ns == pytest.approx(direct, rel=1e-12)
    assert model.cost(list(reversed(works))) == model.cost(works)  # composition key is order-free
    assert model.iteration_hits >= 1


def test_energy_per_token_is_the_ops_energy_over_the_tokens(tiny, design, cache):
    # one request on an idle replica runs the engine's ops (unpadded shapes): its energy over its 3 tokens
    res = replay(one_request(8, 3), tiny, design, cache=cache, progress=False, shape_buckets=0)
    ref = simulate_model(tiny, design, quant=design.native_quant, batch=1, prompt=8, generate=3)
    assert res.summary["output_tokens"] == 3
    assert res.summary["energy_per_token_j"] == pytest.approx(ref.energy_j / 3, rel=1e-9)


# --------------------------------------------------------------------------- conservation and bounds

@pytest.mark.parametrize("options", [
    dict(batching="continuous"),
    dict(batching="continuous", chunked_prefill=True, max_batched_tokens=64),
    dict(batching="static"),
    dict(batching="static", max_batched_tokens=100),
])
def test_every_request_completes_once_with_its_tokens(tiny, design, cache, options):
    trace = busy_trace()
    trace.loc[3, "output_tokens"] = 0  # served as 1 token
    res = replay(trace, tiny, design, cache=cache, progress=False, max_batch=8, **options)
    req, it = res.requests, res.iterations
    assert tuple(req.columns) == REQUEST_COLUMNS and tuple(it.columns) == ITERATION_COLUMNS
    assert sorted(req["request_id"]) == list(range(len(trace)))
    assert req["finish_s"].notna().all() and res.summary["completed"] == len(trace)
    expected = np.maximum(trace.sort_values("request_id")["output_tokens"].to_numpy(), 1)
    assert (req["output_tokens"].to_numpy() == expected).all()
    assert req.loc[3, "output_tokens"] == 1 and math.isnan(req.loc[3, "tpot_s"])
    assert it["output_tokens"].sum() == expected.sum()
    assert res.summary["preemptions"] == 0  # the default DRAM holds everything
    assert it["decode_tokens"].sum() + len(trace) == expected.sum()
    assert it["prefill_tokens"].sum() == trace["prompt_tokens"].sum()
    assert (it["sequences"] <= 8).all()
    assert (req["ttft_s"] > 0).all() and (req["finish_s"] >= req["first_token_s"]).all()
    assert (it["start_s"].diff().dropna() > 0).all() and (it["start_s"].iloc[1:].to_numpy()
                                                          >= it["end_s"].iloc[:-1].to_numpy() - 1e-15).all()
    if options.get("chunked_prefill"):
        assert (it["prefill_tokens"] + it["decode_tokens"] <= 64).all()


def test_throughput_never_exceeds_weight_streaming_bound(tiny, design, cache):
    """Each iteration reads every linear weight once (time >= weight bytes / DRAM bandwidth) and emits at
    most one token per running sequence (<= max_batch): tokens/s <= max_batch * bandwidth / weight bytes."""
    max_batch = 16
    trace = busy_trace(n=60, rate=1e5, prompt_mean=8, output_mean=60)
    res = replay(trace, tiny, design, cache=cache, progress=False, max_batch=max_batch)
    linear_params = tiny.num_layers * (tiny.attention_params_per_layer + tiny.ffn_params_per_layer) \
        + tiny.vocab_size * tiny.hidden_size
    weight_read_bytes = linear_params * design.native_quant.weight_bits / 8
    bound = max_batch * design.dram.bandwidth_bytes_per_s / weight_read_bytes
    it = res.iterations
    assert (it["output_tokens"] / it["time_s"]).max() <= bound
    assert res.summary["throughput_tokens_per_s"] <= bound
    assert res.summary["output_tokens"] / res.summary["busy_s"] <= bound
    assert res.summary["mean_batch_sequences"] > 4  # the trace does batch up


# --------------------------------------------------------------------------- batching policies

@pytest.mark.slow
def test_continuous_batching_has_lower_mean_ttft_than_static_on_a_bursty_trace(tiny, design, cache):
    bursts = []
    rng = np.random.default_rng(7)
    for b in range(4):  # four bursts of 12 requests, 2 ms apart
        for i in range(12):
            bursts.append((b * 2e-3 + i * 1e-6, int(rng.integers(20, 200)), int(rng.integers(2, 80))))
    trace = pd.DataFrame(bursts, columns=["arrival_s", "prompt_tokens", "output_tokens"])
    trace.insert(0, "request_id", np.arange(len(trace)))
    static = replay(trace, tiny, design, cache=cache, progress=False, batching="static", max_batch=8)
    cont = replay(trace, tiny, design, cache=cache, progress=False, batching="continuous", max_batch=8)
    assert cont.summary["ttft_mean_s"] <= static.summary["ttft_mean_s"]
    assert cont.summary["completed"] == static.summary["completed"] == len(trace)


def test_static_batch_runs_to_completion_before_the_next(tiny, design, cache):
    trace = pd.DataFrame({"request_id": [0, 1, 2], "arrival_s": [0.0, 0.0, 0.0],
                          "prompt_tokens": [10, 10, 10], "output_tokens": [30, 2, 5]})
    res = replay(trace, tiny, design, cache=cache, progress=False, batching="static", max_batch=2)
    req = res.requests.set_index("request_id")
    assert req.loc[2, "first_token_s"] > req.loc[0, "finish_s"]  # waits for the whole first batch
    cont = replay(trace, tiny, design, cache=cache, progress=False, batching="continuous", max_batch=2)
    creq = cont.requests.set_index("request_id")
    assert creq.loc[2, "first_token_s"] < creq.loc[0, "finish_s"]  # joins when request 1 leaves


def test_prompt_over_the_token_budget_runs_alone(tiny, design, cache):
    trace = pd.DataFrame({"request_id": [0, 1], "arrival_s": [0.0, 0.0], "prompt_tokens": [300, 20],
                          "output_tokens": [3, 3]})
    res = replay(trace, tiny, design, cache=cache, progress=False, max_batched_tokens=128)
    assert res.iterations["prefill_tokens"].iloc[0] == 300
    chunked = replay(trace, tiny, design, cache=cache, progress=False, max_batched_tokens=128,
                     chunked_prefill=True)
    it = chunked.iterations
    assert list(it["prefill_tokens"].iloc[:3]) == [128, 128, 44 + 20]
    assert (it["prefill_tokens"] + it["decode_tokens"] <= 128).all()


# --------------------------------------------------------------------------- KV cache

def test_kv_budget_counts_weights_with_group_scales(design):
    model = load_model("llama-2-7b")
    b = kv_budget(model, design, design.native_quant)
    q = design.native_quant
    groups = math.ceil(model.total_params / q.group_size)
    assert b.weight_bytes == math.ceil((model.total_params * 4 + groups * (q.scale_bits + q.zero_bits)) / 8)
    assert b.kv_bytes_per_token == 2 * model.num_layers * model.kv_dim * q.kv_bits / 8
    assert b.capacity_tokens == (design.dram.capacity_bytes - b.weight_bytes) // b.kv_bytes_per_token


def test_small_kv_cache_makes_requests_wait_and_preempts_but_all_complete(tiny, design, cache):
    trace = busy_trace(n=30, rate=1e5, prompt_mean=60, output_mean=60)
    peak = int((trace["prompt_tokens"] + trace["output_tokens"]).max())
    small = small_dram(tiny, design, peak + 40)
    cache_small = CostCache(small)
    res = replay(trace, tiny, small, cache=cache_small, progress=False, max_batch=16)
    cap = res.summary["kv_capacity_tokens"]
    assert peak <= cap <= peak + 40
    assert res.summary["completed"] == len(trace)
    assert res.summary["preemptions"] > 0
    assert res.summary["kv_peak_tokens"] <= cap and (res.iterations["kv_used_tokens"] <= cap).all()
    assert res.iterations["output_tokens"].sum() == res.requests["output_tokens"].sum()
    # recompute: preempted requests prefill their prompt and generated tokens again
    assert res.iterations["prefill_tokens"].sum() > trace["prompt_tokens"].sum()
    big = replay(trace, tiny, design, cache=cache, progress=False, max_batch=16)
    assert big.summary["preemptions"] == 0
    assert res.summary["ttft_mean_s"] >= big.summary["ttft_mean_s"]
    static = replay(trace, tiny, small, cache=cache_small, progress=False, max_batch=16, batching="static")
    assert static.summary["completed"] == len(trace) and static.summary["preemptions"] == 0


def test_request_that_never_fits_the_kv_cache_is_an_error(tiny, design):
    small = small_dram(tiny, design, 50)
    with pytest.raises(ServingError, match="request 0 needs 59 KV-cache tokens"):
        replay(one_request(50, 10), tiny, small, progress=False)
    with pytest.raises(ServingError, match="no room for the KV cache"):
        replay(one_request(5, 1), tiny, design.replace(dram=design.dram.replace(capacity_bytes=1000)),
               progress=False)


# --------------------------------------------------------------------------- determinism, options

def test_replay_is_deterministic(tiny, design, cache):
    trace = busy_trace(n=25)
    a = replay(trace, tiny, design, cache=cache, progress=False, max_batch=4, chunked_prefill=True,
               max_batched_tokens=96)
    b = replay(trace, tiny, design, cache=CostCache(design), progress=False, max_batch=4, chunked_prefill=True,
               max_batched_tokens=96)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.iterations, b.iterations)
    drop = {"wall_s", "simulated_ops", "iteration_cache_hits", "iteration_cache_misses"}
    sa = {k: v for k, v in a.summary.items() if k not in drop}
    sb = {k: v for k, v in b.summary.items() if k not in drop}
    assert json.dumps(sa, sort_keys=True) == json.dumps(sb, sort_keys=True)


def test_parallel_workers_give_the_same_replay(tiny, design):
    trace = busy_trace(n=25)
    options = dict(progress=False, max_batch=4, chunked_prefill=True, max_batched_tokens=96)
    one = replay(trace, tiny, design, workers=1, **options)
    two = replay(trace, tiny, design, workers=2, **options)
    pd.testing.assert_frame_equal(one.requests, two.requests)
    pd.testing.assert_frame_equal(one.iterations, two.iterations)
    assert one.summary["simulated_ops"] == two.summary["simulated_ops"]


def test_prefetch_simulates_each_missing_op_once_in_parallel(tiny, design):
    ops = IterationOps(tiny, design.native_quant)
    batch = ops.sequence_ops(40, 40) + ops.sequence_ops(40, 40) + ops.token_ops(40)[0]
    with CostCache(design, workers=2) as parallel:
        parallel.prefetch(batch)
        assert parallel.simulated == len({op.cost_key() for op in batch})
        parallel.prefetch(batch)  # all cached: nothing simulated again
        assert parallel.simulated == len({op.cost_key() for op in batch})
    serial = CostCache(design)
    assert all(parallel.costs[op.cost_key()] == serial.cost(op) for op in batch)


def test_bad_options_are_user_errors(tiny, design):
    with pytest.raises(ConfigError, match="chunked_prefill"):
        ServingConfig(batching=Batching.STATIC, chunked_prefill=True)
    with pytest.raises(ConfigError, match="max_batch"):
        replay(one_request(4, 2), tiny, design, max_batch=0)
    with pytest.raises(ConfigError, match="unknown field"):
        replay(one_request(4, 2), tiny, design, max_batchh=3)
    with pytest.raises(ConfigError, match="batching"):
        replay(one_request(4, 2), tiny, design, batching="dynamic")
    with pytest.raises(MixpeError, match="no requests"):
        replay(one_request(4, 2).iloc[:0], tiny, design)


def test_write_outputs_atomically(tmp_path, tiny, design, cache):
    res = replay(busy_trace(n=10), tiny, design, cache=cache, progress=False)
    written = res.write(tmp_path / "out")
    assert sorted(p.name for p in written) == ["iterations.csv", "requests.csv", "summary.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["iterations.csv", "requests.csv",
                                                                      "summary.json"]
    req = pd.read_csv(tmp_path / "out" / "requests.csv")
    assert tuple(req.columns) == REQUEST_COLUMNS and len(req) == 10
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["completed"] == 10
    assert summary["energy_per_token_j"] == res.summary["energy_per_token_j"] > 0


def test_preemption_evicts_most_recently_admitted_and_recomputes(design):
    from mixpe_sys.serving.kv_cache import KvCache
    from mixpe_sys.serving.scheduler import Scheduler
    from mixpe_sys.serving.sequence import Sequence

    kv = KvCache(10)
    sched = Scheduler.create(ServingConfig(max_batch=4), kv)
    a, b = Sequence(0, 0.0, 4, 6), Sequence(1, 0.0, 4, 6)  # peak KV 9 of 10 slots each
    sched.add(a)
    sched.add(b)
    now = 0.0
    for _ in range(2):  # prefill both, then one decode step each: 10 slots used
        plan = sched.schedule()
        assert [s for s, _ in plan.steps] == [a, b]
        now += 1.0
        sched.complete(plan, now)
    assert kv.used_tokens == 10 and a.generated == b.generated == 2
    plan = sched.schedule()  # a needs a slot: b (admitted last) is preempted, a runs
    assert [(s.request_id, q) for s, q in plan.steps] == [(0, 1)]
    assert b.preemptions == 1 and b.computed == 0 and b.allocated == 0 and list(sched.waiting) == [b]
    assert plan.decode_tokens == 1 and plan.prefill_tokens == 0
    while not a.finished:
        sched.complete(plan, now := now + 1.0)
        plan = sched.schedule()
    assert [(s.request_id, q) for s, q in plan.steps] == [(1, 6)]  # prompt + 2 generated tokens again
    assert plan.prefill_tokens == 6 and plan.works()[0].emits and plan.works()[0].kv_len == 6
    sched.complete(plan, now + 1.0)
    assert b.generated == 3 and b.preemptions == 1 and sched.preemptions == 1


def test_cost_cache_of_another_design_is_refused(tiny, design, cache):
    other = design.replace(frequency_hz=design.frequency_hz / 2)
    with pytest.raises(ServingError, match="cost cache"):
        replay(one_request(4, 2), tiny, other, cache=cache)
