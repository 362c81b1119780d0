"""Persistent op-cost cache: warm runs equal cold ones, bad files are ignored, processes share it, CLI."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import re
import sqlite3
import warnings

import pandas as pd
import pytest

from mixpe_sys.cli import main
from mixpe_sys.sim import cost_store
from mixpe_sys.sim.cost_store import DB_NAME, CostStore, CostStoreWarning, design_hash
from mixpe_sys.sim.engine import CostCache
from mixpe_sys.sim.model import model_ops, simulate_model

RUN = dict(batch=1, prompt=16, generate=2)


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    """An empty cache directory that the default store of every run in the test uses."""
    monkeypatch.delenv("MIXPE_SIM_NO_CACHE", raising=False)
    monkeypatch.setenv("MIXPE_SIM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_path(tiny, tmp_path):
    from conftest import TINY_CONFIG

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return path


def _entries(directory) -> int:
    return CostStore(directory).info().entries


def test_warm_run_equals_cold_and_simulates_nothing(tiny, design, store_dir):
    # the pool path writes in one transaction
    cold = simulate_model(tiny, design, quant=design.native_quant, **RUN, workers=2)
    assert cold.simulated_ops == cold.distinct_ops > 0
    assert _entries(store_dir) == cold.distinct_ops  # each distinct op stored once
    for workers in (1, 2):  # one-by-one lookups and the batched lookup of prefetch
        warm = simulate_model(tiny, design, quant=design.native_quant, **RUN, workers=workers)
        assert warm.simulated_ops == 0
        assert warm.distinct_ops == cold.distinct_ops
        pd.testing.assert_frame_equal(warm.ops, cold.ops, check_exact=True)
        pd.testing.assert_frame_equal(warm.layers, cold.layers, check_exact=True)
    off = simulate_model(tiny, design, quant=design.native_quant, **RUN, cache_dir=False)
    assert off.simulated_ops == cold.distinct_ops
    pd.testing.assert_frame_equal(off.ops, cold.ops, check_exact=True)


def test_api_flag_takes_a_directory(tiny, design, tmp_path):
    where = tmp_path / "elsewhere"
    first = simulate_model(tiny, design, quant=design.native_quant, **RUN, cache_dir=where)
    assert (where / DB_NAME).exists()
    again = simulate_model(tiny, design, quant=design.native_quant, **RUN, cache_dir=where)
    assert (first.simulated_ops, again.simulated_ops) == (first.distinct_ops, 0)


def test_corrupt_file_is_reported_and_ignored(tiny, design, store_dir):
    store_dir.mkdir()
    garbage = bytes(range(256)) * 64
    (store_dir / DB_NAME).write_bytes(garbage)
    reference = simulate_model(tiny, design, quant=design.native_quant, **RUN, cache_dir=False)
    with pytest.warns(CostStoreWarning, match="unusable"):
        result = simulate_model(tiny, design, quant=design.native_quant, **RUN)
    assert result.simulated_ops == reference.simulated_ops
    pd.testing.assert_frame_equal(result.ops, reference.ops, check_exact=True)
    assert (store_dir / DB_NAME).read_bytes() == garbage  # left as it was


def test_foreign_database_is_ignored_and_untouched(tiny, design, store_dir):
    store_dir.mkdir()
    with sqlite3.connect(store_dir / DB_NAME) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    with pytest.warns(CostStoreWarning, match="not a mixpe_sys cost database"):
        result = simulate_model(tiny, design, quant=design.native_quant, **RUN)
    assert result.simulated_ops == result.distinct_ops
    with sqlite3.connect(store_dir / DB_NAME) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert tables == ["notes"]
    conn.close()


def test_cli_reports_a_corrupt_cache_in_one_line(tiny_path, store_dir, capsys):
    store_dir.mkdir()
    (store_dir / DB_NAME).write_bytes(b"not a database at all" * 100)
    assert main(["run", "--model", str(tiny_path), "--prompt", "16", "--generate", "2", "--workers", "1",
                 "--json"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("mixpe-sim: warning: op-cost cache") and "ignored" in err[0]


def test_a_stored_value_that_is_no_opcost_is_a_miss(tiny, design, store_dir):
    op = next(o for o in model_ops(tiny, design, quant=design.native_quant, **RUN) if o.kind.on_array)
    key = op.cost_key()
    store = CostStore(store_dir)
    store.put(design_hash(design), key, simulate_op_cost(op, design))  # creates the table
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE op_costs SET cost=?", (pickle.dumps({"time_ns": 1.0}),))
    conn.close()
    assert store.get(design_hash(design), key) is None
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE op_costs SET cost=?", (b"\x80\x05garbage",))
    conn.close()
    assert store.get(design_hash(design), key) is None
    cache = CostCache(design)
    cache.cost(op)
    assert cache.simulated == 1


def simulate_op_cost(op, design):
    from mixpe_sys.sim.op_sim import simulate_op

    return simulate_op(op, design)


def test_design_change_changes_the_key(tiny, design, store_dir):
    from mixpe_sys import load_design

    assert design_hash(load_design("mixpe-w4a8")) == design_hash(design)  # stable across loads
    faster = design.replace(dram=design.dram.replace(bandwidth_bytes_per_s=2 * design.dram.bandwidth_bytes_per_s))
    assert design_hash(faster) != design_hash(design)
    op = next(o for o in model_ops(tiny, design, quant=design.native_quant, **RUN) if o.kind.on_array)
    CostCache(design).cost(op)
    other = CostCache(faster)
    other.cost(op)
    assert other.simulated == 1  # the first design's stored cost is not used
    assert _entries(store_dir) == 2


def test_timing_version_separates_entries(tiny, design, store_dir, monkeypatch):
    op = next(o for o in model_ops(tiny, design, quant=design.native_quant, **RUN) if o.kind.on_array)
    CostCache(design).cost(op)
    monkeypatch.setattr(cost_store, "TIMING_VERSION", cost_store.TIMING_VERSION + 1)
    later = CostCache(design)
    later.cost(op)
    assert later.simulated == 1
    info = CostStore(store_dir).info()
    assert info.entries == 2
    assert info.entries_by_version == {str(cost_store.TIMING_VERSION - 1): 1, str(cost_store.TIMING_VERSION): 1}


def _writer(directory: str, worker: int, count: int, blob: bytes, barrier) -> None:
    cost = pickle.loads(blob)
    store = CostStore(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        barrier.wait()
        for i in range(count):  # one transaction per entry, so the two writers interleave
            store.put("design", ("worker", worker, i), cost)
        found = store.get_many("design", [("worker", worker, i) for i in range(count)])
    raise SystemExit(0 if len(found) == count else 3)


def test_two_processes_write_at_once(tiny, design, tmp_path):
    op = next(o for o in model_ops(tiny, design, quant=design.native_quant, **RUN) if o.kind.on_array)
    blob = pickle.dumps(simulate_op_cost(op, design))
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(2)
    count = 150
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, count, blob, barrier)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    info = CostStore(tmp_path).info()
    assert info.usable and info.entries == 2 * count


def _run_cli(capsys, tiny_path, *extra) -> dict:
    capsys.readouterr()
    assert main(["run", "--model", str(tiny_path), "--prompt", "16", "--generate", "2", "--workers", "1",
                 "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_no_cache_leaves_the_cache_untouched(tiny_path, store_dir, capsys):
    first = _run_cli(capsys, tiny_path, "--no-cache")
    assert not (store_dir / DB_NAME).exists()
    stored = _run_cli(capsys, tiny_path)
    assert stored["simulated_ops"] == first["simulated_ops"] == first["distinct_ops"]
    before = _entries(store_dir)
    assert before == first["distinct_ops"]
    snapshot = (store_dir / DB_NAME).read_bytes()
    again = _run_cli(capsys, tiny_path, "--no-cache")
    assert again["simulated_ops"] == first["distinct_ops"]  # simulated again, nothing read
    assert (store_dir / DB_NAME).read_bytes() == snapshot
    assert _run_cli(capsys, tiny_path)["simulated_ops"] == 0
    assert again["total_time_s"] == first["total_time_s"] == stored["total_time_s"]


def test_cache_info_and_clear(tiny_path, store_dir, capsys):
    run = _run_cli(capsys, tiny_path)
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["path"] == str(store_dir / DB_NAME)
    assert info["entries"] == run["distinct_ops"]
    assert info["entries_by_timing_version"] == {str(cost_store.TIMING_VERSION): run["distinct_ops"]}
    assert info["size_bytes"] > 0 and info["usable"]
    assert main(["cache", "info"]) == 0
    text = capsys.readouterr().out
    assert str(store_dir / DB_NAME) in text
    assert re.search(rf"^  entries +{run['distinct_ops']}$", text, re.M)
    assert main(["cache", "clear"]) == 0
    assert f"cleared {run['distinct_ops']} op costs" in capsys.readouterr().out
    assert main(["cache", "info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["entries"] == 0
    assert _run_cli(capsys, tiny_path)["simulated_ops"] == run["distinct_ops"]


def test_cache_clear_removes_a_corrupt_file(store_dir, capsys):
    store_dir.mkdir()
    (store_dir / DB_NAME).write_bytes(b"\x00garbage" * 50)
    capsys.readouterr()
    assert main(["cache", "info", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["usable"] is False
    assert err.count("mixpe-sim: warning: op-cost cache") == 1
    assert main(["cache", "clear", "--dir", str(store_dir)]) == 0
    assert not (store_dir / DB_NAME).exists()


def test_replay_and_sweep_accept_no_cache():
    from mixpe_sys.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["replay", "t.csv", "--no-cache"]).no_cache
    assert parser.parse_args(["sweep", "s.yaml", "--out", "d", "--no-cache"]).no_cache
    assert not parser.parse_args(["run"]).no_cache


def test_replay_warm_equals_cold_and_no_cache_bypasses(tiny_path, store_dir, tmp_path, capsys):
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:17:03.9799600,40,5\n"
                     "2023-11-16 18:17:03.9799700,12,3\n"
                     "2023-11-16 18:17:03.9900600,7,8\n")

    def replay(*extra, out):
        capsys.readouterr()
        assert main(["replay", str(trace), "--model", str(tiny_path), "--workers", "1", "--json",
                     "--out", str(tmp_path / out), *extra]) == 0
        s = json.loads(capsys.readouterr().out)
        return s, pd.read_csv(tmp_path / out / "iterations.csv")

    (off, off_it) = replay("--no-cache", out="off")
    assert not (store_dir / DB_NAME).exists()
    cold, cold_it = replay(out="cold")
    warm, warm_it = replay(out="warm")
    assert cold["simulated_ops"] == off["simulated_ops"] > 0 and warm["simulated_ops"] == 0
    pd.testing.assert_frame_equal(warm_it, cold_it, check_exact=True)
    pd.testing.assert_frame_equal(off_it, cold_it, check_exact=True)
    drop = {"wall_s", "simulated_ops"}
    assert {k: v for k, v in warm.items() if k not in drop} == {k: v for k, v in cold.items() if k not in drop}


def test_the_store_holds_device_costs_whatever_the_launch_mode(store_dir, tiny):
    """A store filled by a graph-mode run serves an eager run the same figures as a cold eager run:
    the launch cost is the run's, added after the stored device cost."""
    from mixpe_sys import load_design

    design = load_design("a100-like")
    kw = dict(batch=1, prompt=8, generate=2, progress=False)
    graph = simulate_model(tiny, design, quant=design.native_quant, cache_dir=store_dir, **kw)
    eager_warm = simulate_model(tiny, design, quant=design.native_quant, cache_dir=store_dir, launch="eager", **kw)
    eager_cold = simulate_model(tiny, design, quant=design.native_quant, cache_dir=False, launch="eager", **kw)
    assert eager_warm.simulated_ops == 0
    pd.testing.assert_frame_equal(eager_warm.ops, eager_cold.ops, check_exact=True)
    assert eager_warm.total_time_s > graph.total_time_s  # a100-like's host dispatch in eager mode


def test_a_stored_cost_is_keyed_by_the_quant_it_was_simulated_with(tiny, store_dir):
    from mixpe_sys import load_design
    from mixpe_sys.workload.quant import QuantScheme

    gpu = load_design("a100-like")  # runs its native W16A16 and W4A16 on the same hardware (one design hash)
    w4 = QuantScheme.parse("W4A16")
    native = simulate_model(tiny, gpu, quant=gpu.native_quant, **RUN)  # fills the store
    after = simulate_model(tiny, gpu, quant=w4, **RUN)  # the same store, another scheme
    alone = simulate_model(tiny, gpu, quant=w4, **RUN, cache_dir=False)
    assert after.simulated_ops > 0  # the W4A16 GEMMs are not the stored W16A16 ones
    pd.testing.assert_frame_equal(after.ops, alone.ops, check_exact=True)
    lin = native.ops["kind"] == "linear"
    # 4-bit weights (+ FP16 group scales) read about a quarter of the FP16 weight bytes
    assert (after.ops.loc[lin, "dram_read_bytes"].to_numpy() < native.ops.loc[lin, "dram_read_bytes"].to_numpy()).all()
