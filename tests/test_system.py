"""Systems of chips: topologies, collectives (hand-computed times), the TP/PP split, memory checks, runs."""

from __future__ import annotations

import math

import pytest
import simpy

from mixpe_sys.errors import ConfigError, FitError
from mixpe_sys.sim.model import simulate_model
from mixpe_sys.system import (LinkConfig, SystemConfig, TopologyConfig, load_system, simulate_system,
                              system_names, system_of_design)
from mixpe_sys.system.collectives import CollectiveKind, CollectiveTimer
from mixpe_sys.system.config import CollectiveAlgorithm
from mixpe_sys.system.links import Fabric
from mixpe_sys.system.parallel import Stage, ReplicaPlan, plan_replica, shard_model, split_layers
from mixpe_sys.system.pipeline import Pass, pipeline_time_ns
from mixpe_sys.system.stage_cost import StagePass
from mixpe_sys.system.topology import SWITCH_NODE, build_graph, chip_node
from mixpe_sys.workload.models import load_model

B = 100e9  # bytes/s per direction
L = 500.0  # ns per hop
N = 8e6  # bytes


def topo(kind: str, **kw) -> TopologyConfig:
    return TopologyConfig(kind=kind, link=LinkConfig(bandwidth_bytes_per_s=B, latency_ns=L), **kw)


def nodes(p: int) -> list[str]:
    return [chip_node(i) for i in range(p)]


@pytest.mark.parametrize("p", [2, 3, 4, 8])
def test_ring_all_reduce_on_a_ring(p):
    # 2(p-1) steps of n/p bytes over one hop each: 2(p-1)/p * n/B + 2(p-1) * L
    timer = CollectiveTimer(build_graph(topo("ring"), p))
    expected = 2 * (p - 1) / p * N / B * 1e9 + 2 * (p - 1) * L
    assert timer.time_ns(CollectiveKind.ALL_REDUCE, nodes(p), N) == pytest.approx(expected, rel=1e-12)
    t, sent = timer.run(CollectiveKind.ALL_REDUCE, nodes(p), N)
    assert all(v == pytest.approx(2 * (p - 1) / p * N) for v in sent.values()) and len(sent) == p


@pytest.mark.parametrize("p", [2, 4, 8])
def test_ring_collectives_on_a_switch(p):
    # every step goes chip -> switch -> chip: two hops of latency; uplinks and downlinks are each used once
    timer = CollectiveTimer(build_graph(topo("switch"), p))
    assert timer.time_ns(CollectiveKind.ALL_REDUCE, nodes(p), N) == pytest.approx(
        2 * (p - 1) / p * N / B * 1e9 + 2 * (p - 1) * 2 * L, rel=1e-12)
    assert timer.time_ns(CollectiveKind.ALL_GATHER, nodes(p), N) == pytest.approx(
        (p - 1) / p * N / B * 1e9 + (p - 1) * 2 * L, rel=1e-12)


@pytest.mark.parametrize("p", [2, 4, 8])
def test_tree_all_reduce_on_a_switch(p):
    # binomial tree: log2(p) reduce steps then log2(p) broadcast steps of n bytes, two hops each
    timer = CollectiveTimer(build_graph(topo("switch"), p), CollectiveAlgorithm.TREE)
    d = math.log2(p)
    assert timer.time_ns(CollectiveKind.ALL_REDUCE, nodes(p), N) == pytest.approx(2 * d * (N / B * 1e9 + 2 * L))


def test_one_chip_and_zero_bytes_move_nothing():
    timer = CollectiveTimer(build_graph(topo("ring"), 4))
    assert timer.time_ns(CollectiveKind.ALL_REDUCE, nodes(1), N) == 0.0
    assert timer.time_ns(CollectiveKind.ALL_REDUCE, nodes(4), 0) == 0.0


def test_transfers_on_one_link_take_turns():
    env = simpy.Environment()
    fabric = Fabric(env, build_graph(topo("ring"), 2))
    done = []

    def send():
        yield from fabric.transfer(chip_node(0), chip_node(1), N)
        done.append(env.now)

    env.process(send())
    env.process(send())
    env.run()
    c = N / B * 1e9
    assert done == pytest.approx([c + L, 2 * c + L])


def test_two_collectives_sharing_links_contend():
    # a line 0-1-2-3: groups {0, 2} and {1, 3} both cross the 1<->2 link
    edges = [dict(a=i, b=i + 1, bandwidth_bytes_per_s=B, latency_ns=L) for i in range(3)]
    g = build_graph(TopologyConfig(kind="explicit", edges=edges), 4)
    timer = CollectiveTimer(g)
    alone = timer.time_ns(CollectiveKind.ALL_REDUCE, [chip_node(0), chip_node(2)], N)
    from mixpe_sys.system.collectives import collective

    env = simpy.Environment()
    fabric = Fabric(env, g)
    a = env.process(collective(env, fabric, CollectiveKind.ALL_REDUCE, [chip_node(0), chip_node(2)], N))
    b = env.process(collective(env, fabric, CollectiveKind.ALL_REDUCE, [chip_node(1), chip_node(3)], N))
    env.run(env.all_of([a, b]))
    # the shared link carries twice the bytes: slower than alone, at most twice the data time slower
    assert alone < env.now <= alone + 2 * (N / 2 / B * 1e9)


def test_topologies():
    assert build_graph(topo("switch"), 4).degree(SWITCH_NODE) == 8  # in + out edge per chip
    torus = build_graph(topo("torus2d"), 8)  # 2 x 4: right neighbour, left (wrap) and one down (rows of 2)
    assert {torus.out_degree(n) for n in nodes(8)} == {3}
    assert build_graph(topo("ring"), 5).number_of_edges() == 10
    with pytest.raises(ConfigError, match="cannot reach chip2"):
        build_graph(TopologyConfig(kind="explicit", edges=[dict(a=0, b=1, bandwidth_bytes_per_s=B, latency_ns=L)]), 3)


def test_system_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="tp x pp"):
        SystemConfig(name="x", design="int8", num_chips=2, tp=2, pp=2, topology=topo("ring"))
    with pytest.raises(ConfigError, match="needs a link"):
        TopologyConfig(kind="ring")
    bad = tmp_path / "sys.yaml"
    bad.write_text("name: s\ndesign: mixpe-w4a8\nnum_chips: 2\ntopology:\n  kind: ring\n"
                   "  link: {bandwidth_bytes_per_s: -1, latency_ns: 5}\n")
    with pytest.raises(ConfigError, match=r"sys.yaml:6: field 'topology.link.bandwidth_bytes_per_s'"):
        load_system(bad)
    with pytest.raises(ConfigError, match="unknown system"):
        load_system("no-such-system")


def test_presets_and_relative_design(tmp_path):
    assert {"dgx-a100", "mixpe-board4"} <= set(system_names())
    dgx = load_system("dgx-a100")
    assert dgx.config.num_chips == 8 and dgx.chip.name == "a100-like" and dgx.config.tp == 8
    assert dgx.graph.edges[chip_node(0), SWITCH_NODE]["bandwidth_bytes_per_s"] == 300e9  # NVLink3 per direction
    (tmp_path / "chip.yaml").write_text("extends: mixpe-w4a8\nname: my-chip\n")
    (tmp_path / "s.yaml").write_text("name: s\ndesign: chip.yaml\nnum_chips: 2\ntp: 2\n"
                                     "topology: {kind: ring, link: {bandwidth_bytes_per_s: 1e9, latency_ns: 10}}\n")
    assert load_system(tmp_path / "s.yaml").chip.name == "my-chip"


def test_megatron_split_of_llama_2_70b():
    m = load_model("llama-2-70b")
    s = shard_model(m, 8)
    # column-parallel QKV: 64/8 query heads and 8/8 KV heads of 128; FFN 28672/8; vocabulary 32000/8
    assert (s.num_heads, s.num_kv_heads, s.head_dim, s.intermediate_size, s.vocab_size) == (8, 1, 128, 3584, 4000)
    assert shard_model(m, 16).num_kv_heads == 1  # KV heads replicated beyond 8 chips
    with pytest.raises(ConfigError, match="does not divide the 64 attention heads"):
        shard_model(m, 3)
    assert split_layers(80, 3) == [27, 27, 26]


def test_memory_check_names_bytes():
    # llama-2-70b at tp=2, FP16, per chip (h 8192, q 8192, kv 1024, f 28672, V 32000, 80 layers):
    # layer = h*q + h*kv (half of Q,K,V,O) + 3*h*f/2 + 2*h = 67,108,864 + 8,388,608 + 352,321,536 + 16,384
    #       = 427,835,392; x 80 = 34,226,831,360; + embedding and LM head halves 2 * 16000 * 8192 + final norm
    #       8192 = 34,488,983,552 params = 68,977,967,104 bytes; KV per token 2*80*512*2 = 163,840 bytes
    m = load_model("llama-2-70b")
    dgx = load_system("dgx-a100").with_parallelism(tp=2)
    with pytest.raises(FitError) as err:
        simulate_system(m, dgx, batch=1, prompt=16, generate=3)
    msg = str(err.value)
    assert "68,977,967,104 of weights" in msg and f"{18 * 163_840:,} of KV cache" in msg
    assert "42,949,672,960 bytes" in msg and "\n" not in msg


def test_one_chip_system_equals_one_chip_run(tiny, design):
    ref = simulate_model(tiny, design, quant=design.native_quant, batch=2, prompt=16, generate=4)
    got = simulate_system(tiny, system_of_design(design, num_chips=1), batch=2, prompt=16, generate=4)
    assert got.total_time_s == pytest.approx(ref.total_time_s, rel=1e-12)
    assert got.prefill_time_s == pytest.approx(ref.phase_time_s("prefill"), rel=1e-12)
    assert got.energy_j == pytest.approx(ref.energy_j, rel=1e-9)
    assert got.collective_bytes == 0


def test_tp2_decode_between_half_and_one_of_tp1():
    m = load_model("llama-2-7b")
    board = load_system("mixpe-board4")  # fits one chip and two
    t1 = simulate_system(m, board.with_parallelism(tp=1), prompt=16, generate=3).to_dict()
    t2 = simulate_system(m, board.with_parallelism(tp=2), prompt=16, generate=3).to_dict()
    ratio = t2["time_per_output_token_s"] / t1["time_per_output_token_s"]
    assert 0.5 < ratio < 1.0
    assert t2["collective_time_s"] > 0 and t2["memory_per_chip_bytes"] < t1["memory_per_chip_bytes"]


def test_collective_reuse_gives_the_same_result(tiny, design):
    s = system_of_design(design, num_chips=2, tp=2)
    a = simulate_system(tiny, s, batch=2, prompt=16, generate=3)
    b = simulate_system(tiny, s, batch=2, prompt=16, generate=3, reuse=False)
    assert not a.live_collectives and b.live_collectives
    assert a.total_time_s == pytest.approx(b.total_time_s, rel=1e-12)
    assert a.collective_bytes == b.collective_bytes > 0
    # one all-reduce of T x h FP16 values per row-parallel GEMM; on a ring each chip sends 2(p-1)/p of it,
    # all of it for p = 2 (half in the reduce-scatter, half in the all-gather)
    prefill = a.collectives[(a.collectives["phase"] == "prefill") & (a.collectives["kind"] == "all_reduce")]
    assert int(prefill["count"].iloc[0]) == 2 * tiny.num_layers
    assert float(prefill["bytes_per_chip"].iloc[0]) == 2 * tiny.num_layers * (2 * 16 * 256 * 2)


def _plan(pp: int) -> ReplicaPlan:
    m = load_model("llama-2-7b")
    stages = tuple(Stage(index=s, first_layer=s, num_layers=1, chips=(s,), shard=m, first=s == 0, last=s == pp - 1)
                   for s in range(pp))
    return ReplicaPlan(model=m, tp=1, pp=pp, stages=stages)


def _pass(t: float, act: float, last: bool) -> StagePass:
    return StagePass(num_layers=1, segments=(t, 0.0, 0.0), head_ns=0.0, all_reduce_bytes=0.0, all_gather_bytes=0.0,
                     activation_bytes=0.0 if last else act, energy_j=0.0, op_times_ns=())


def test_pipeline_of_microbatches_hand_computed():
    # M micro-batches of stage time t over pp stages with transfers a < t: (M + pp - 1) t + (pp - 1) a
    pp, m, t, act = 3, 4, 10_000.0, 0.4e6
    graph = build_graph(topo("ring"), pp)
    a = act / B * 1e9 + L
    passes = [Pass("prefill", 0, i, tuple(_pass(t, act, s == pp - 1) for s in range(pp))) for i in range(m)]
    total, _ = pipeline_time_ns(passes, _plan(pp), graph, CollectiveTimer(graph), live=False)
    assert total == pytest.approx((m + pp - 1) * t + (pp - 1) * a)
    # a pass that waits for another's token: two steps of one micro-batch run back to back, 2 (pp t + (pp-1) a)
    chain = [Pass("decode", 1, 0, passes[0].stages), Pass("decode", 2, 0, passes[0].stages, after=0)]
    total, _ = pipeline_time_ns(chain, _plan(pp), graph, CollectiveTimer(graph), live=False)
    assert total == pytest.approx(2 * (pp * t + (pp - 1) * a))


def test_pipeline_run_reports_chips_and_passes(tiny, design):
    s = system_of_design(design, num_chips=4, tp=2, pp=2)
    r = simulate_system(tiny, s, batch=2, prompt=16, generate=3)
    assert list(r.chips["chip"]) == [0, 1, 2, 3] and list(r.chips["stage"]) == [0, 0, 1, 1]
    assert r.live_collectives  # the switch uplinks carry both collectives and activations
    assert (r.chips["compute_s"] + r.chips["collective_s"] <= r.total_time_s + 1e-15).all()
    assert len(r.passes) == 2 * 3 * 2  # micro-batches x steps x stages
    assert plan_replica(tiny, s.config).stages[1].first_layer == 1


def test_cli_run_on_a_system(tmp_path, capsys):
    import json

    from mixpe_sys.cli import main

    model = tmp_path / "tiny.json"
    model.write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 688,
                                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                                 "vocab_size": 1000, "max_position_embeddings": 4096}))
    base = ["run", "--model", str(model), "--prompt", "16", "--generate", "3", "--workers", "1"]
    assert main(base + ["--tp", "2", "--pp", "2", "--microbatches", "2", "--json", "--out", str(tmp_path / "o")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["tp"], d["pp"], d["chips"], d["microbatches"]) == (2, 2, 4, 1)  # batch 1: one micro-batch
    assert d["collective_bytes"] > 0 and d["memory_per_chip_bytes"] < d["dram_capacity_bytes"]
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"chips.csv", "collectives.csv", "passes.csv", "ops.csv",
                                                           "summary.json"}
    assert main(base + ["--system", "mixpe-board4"]) == 0
    assert "per chip:" in capsys.readouterr().out
    assert main(base + ["--system", "mixpe-board4", "--workload", "paper"]) == 2


from hypothesis import given, strategies as st  # noqa: E402


@given(p=st.integers(2, 8), kind=st.sampled_from(["ring", "switch", "torus2d"]),
       algorithm=st.sampled_from(list(CollectiveAlgorithm)), nbytes=st.floats(1e3, 1e8),
       faster=st.floats(1.0, 10.0))
def test_more_link_bandwidth_is_never_slower(p, kind, algorithm, nbytes, faster):
    def t(bw):
        cfg = TopologyConfig(kind=kind, link=LinkConfig(bandwidth_bytes_per_s=bw, latency_ns=L))
        return CollectiveTimer(build_graph(cfg, p), algorithm).time_ns(CollectiveKind.ALL_REDUCE, nodes(p), nbytes)

    slow, fast = t(B), t(B * faster)
    assert fast <= slow * (1 + 1e-12)
    # never below the data one chip must receive over its links, (p-1)/p * n for the ring's reduce-scatter
    assert slow >= (p - 1) / p * nbytes / (B * 4) * 1e9  # at most 4 links into a chip (torus)
