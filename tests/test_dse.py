"""Design-space exploration: sweep files, point expansion, resumable results, Pareto fronts, Dask."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys import load_design
from mixpe_sys.cli import main as cli_main
from mixpe_sys.dse import (ResultsStore, design_for_point, expand_points, load_sweep, pareto, pareto_mask,
                           plot_pareto, point_id, read_results, run_sweep)
from mixpe_sys.dse.resolve import workload_content
from mixpe_sys.dse.sweep import WorkloadConfig
from mixpe_sys.errors import ConfigError, MixpeError

SWEEPS = Path(__file__).resolve().parents[1] / "experiments" / "sweeps"

PAPER_WORKLOAD = "workloads:\n  - {model: opt-6.7b, workload: paper, batch: 64}\n"


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def small_sweep(tmp_path) -> Path:
    """Four quick points (the authors' OPT-6.7B workload on two designs x two chip sizes)."""
    return write(tmp_path, "name: small\nbase: mixpe-w4a8\n"
                           "grid:\n  design: [mixpe-w4a8, int8]\n  num_tiles: [2, 4]\n" + PAPER_WORKLOAD)


def csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- Pareto -------------------------------------------------------------------------------------------------------

def brute_force_front(a: np.ndarray) -> np.ndarray:
    """O(n^2) reference: maximize every column; NaN rows are never on the front and dominate nothing."""
    n = len(a)
    valid = ~np.isnan(a).any(axis=1)
    keep = valid.copy()
    for i in range(n):
        if not valid[i]:
            continue
        for j in range(n):
            if j != i and valid[j] and all(a[j] >= a[i]) and any(a[j] > a[i]):
                keep[i] = False
                break
    return keep


values = st.one_of(st.integers(0, 4).map(float), st.just(math.nan), st.just(math.inf))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4).flatmap(lambda d: st.tuples(
    st.just(d), st.lists(st.lists(values, min_size=d, max_size=d), min_size=0, max_size=40),
    st.lists(st.booleans(), min_size=d, max_size=d))))
def test_pareto_matches_brute_force(case):
    d, rows, senses = case
    cols = [f"c{i}" for i in range(d)]
    df = pd.DataFrame(rows, columns=cols, dtype=float)
    maximize = [c for c, up in zip(cols, senses) if up]
    minimize = [c for c, up in zip(cols, senses) if not up]
    signed = np.array([[v if up else -v for v, up in zip(r, senses)] for r in rows], dtype=float).reshape(-1, d)
    expected = brute_force_front(signed)
    assert pareto_mask(df, maximize, minimize).tolist() == expected.tolist()
    out = pareto(df, maximize, minimize)
    assert out["pareto"].dtype == bool and list(out.index) == list(df.index)


def test_pareto_ties_and_subset():
    df = pd.DataFrame({"x": [1.0, 1.0, 1.0, 2.0, 0.5, np.nan], "y": [3.0, 3.0, 2.0, 1.0, 3.0, 9.0]},
                      index=list("abcdef"))
    out = pareto(df, maximize=["x", "y"])
    # equal rows both stay; same x with lower y and lower x with equal y are dominated; NaN never on the front
    assert out["pareto"].to_dict() == {"a": True, "b": True, "c": False, "d": True, "e": False, "f": False}
    front = pareto(df, maximize=["y"], minimize=["x"], only_front=True)
    assert list(front.index) == ["e"]
    with pytest.raises(ValueError, match="no such columns"):
        pareto(df, maximize=["z"])


def test_pareto_thousands_of_rows_fast():
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.standard_normal((5000, 3)), columns=["a", "b", "c"])
    two = pareto_mask(df, ["a", "b"])
    assert two.sum() >= 1
    three = pareto_mask(df, ["a", "b", "c"])
    assert (three | ~two).all()  # a point on the 2-D front (no exact ties here) stays on the 3-D one


def test_plot_pareto_writes_png(tmp_path):
    df = pd.DataFrame({"tokens_per_s_per_mm2": [1.0, 2.0, 3.0, 2.5], "snr_db": [40.0, 30.0, 20.0, 10.0],
                       "energy_per_token_j": [1e-3, 2e-3, 3e-3, 4e-3],
                       "pe_kind": ["fp16_mac", "int8_mac", "mixpe_w4a8", "bitfusion"],
                       "family": ["baseline", "baseline", "MixPE", "baseline"]})
    png = plot_pareto(df, "tokens_per_s_per_mm2", "snr_db", tmp_path / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = plot_pareto(df, "energy_per_token_j", "snr_db", tmp_path / "e.png", minimize=["energy_per_token_j"],
                      logx=True)
    assert png.stat().st_size > 0


# -- sweep files and expansion -------------------------------------------------------------------------------------

def test_grid_expansion_counts(tmp_path):
    path = write(tmp_path, """\
base: mixpe-w4a8
grid:
  - design: [mixpe-w4a8, int8]
    num_tiles: [2, 4, 8]
  - quant.group_size: [64, 256]
    dram.preset: [hbm2e, lpddr5-6400]
points:
  - {design: fp16}
  - {design: int8, num_tiles: 2}      # same as a grid point: counted once
workloads:
  - {model: opt-6.7b, workload: paper, batch: 64}
  - {model: llama-2-7b, batch: 1, prompt: 64, generate: 4}
""")
    sweep = load_sweep(path)
    points = expand_points(sweep, tmp_path)
    assert len(points) == (2 * 3 + 2 * 2 + 1) * 2
    assert len({p.point_id for p in points}) == len(points)
    # a mapping grid is the same as a list holding it
    one = write(tmp_path, "base: int8\ngrid: {num_tiles: [1, 2, 3]}\n" + PAPER_WORKLOAD, "one.yaml")
    lst = write(tmp_path, "base: int8\ngrid:\n  - {num_tiles: [1, 2, 3]}\n" + PAPER_WORKLOAD, "list.yaml")
    assert [p.point_id for p in expand_points(load_sweep(one))] == [p.point_id for p in expand_points(load_sweep(lst))]
    # one empty point: the base design alone, once per workload; no grid and no points is an error
    bare = write(tmp_path, "base: int8\npoints: [{}]\n" + PAPER_WORKLOAD, "bare.yaml")
    assert len(expand_points(load_sweep(bare))) == 1
    with pytest.raises(ConfigError, match="give a grid or points"):
        load_sweep(write(tmp_path, "base: int8\n" + PAPER_WORKLOAD, "none.yaml"))


def test_point_id_is_keyed_by_content(tmp_path):
    wl = WorkloadConfig(model="opt-6.7b", workload="paper", batch=64)
    content = workload_content(wl, tmp_path)
    int8 = load_design("int8")
    a = point_id(int8, content)
    assert len(a) == 12 and a == point_id(load_design("int8"), content)
    # the name and description do not count; any other field does
    assert point_id(int8.replace(name="renamed", description="x"), content) == a
    assert point_id(int8.replace(num_tiles=int8.num_tiles + 1), content) != a
    # fields the workload kind does not use do not change the id; the model's shape does
    assert workload_content(WorkloadConfig(model="opt-6.7b", workload="paper", batch=64, prompt=7), tmp_path) == content
    assert point_id(int8, workload_content(WorkloadConfig(model="opt-13b", workload="paper", batch=64), tmp_path)) != a
    # the same design given as a preset or as a copy of its file: the same id
    copy = tmp_path / "copy.yaml"
    copy.write_text(yaml.safe_dump({**int8.to_dict(), "name": "my-int8"}))
    assert point_id(load_design(copy), content) == a


def test_editing_a_design_file_reruns_exactly_its_points(tmp_path):
    """A resumed sweep keys its points by content: an edited design file gives new figures, not stale ones."""
    design = tmp_path / "mine.yaml"
    design.write_text("extends: mixpe-w4a8\nname: mine\nnum_tiles: 2\n")
    path = write(tmp_path, "base: mixpe-w4a8\npoints:\n  - {design: mine.yaml}\n  - {num_tiles: 4}\n" + PAPER_WORKLOAD)
    out = tmp_path / "out"
    first = run_sweep(path, out, use_dask=False, progress=False)
    assert len(first.computed) == 2
    design.write_text("extends: mixpe-w4a8\nname: mine\nnum_tiles: 8\n")
    second = run_sweep(path, out, use_dask=False, progress=False)
    assert second.skipped == 1 and len(second.computed) == 1 and second.stale == 1
    df = read_results(out)
    new = df[df["point_id"] == second.computed[0]].iloc[0]
    assert new["num_tiles"] == 8 and new["label"] == "mine.yaml"
    old = df[(df["label"] == "mine.yaml") & (df["point_id"] != second.computed[0])].iloc[0]
    assert old["num_tiles"] == 2 and new["total_time_s"] < old["total_time_s"]  # 4x the tiles: faster


def test_shipped_sweeps_load():
    example = expand_points(load_sweep(SWEEPS / "example.yaml"), SWEEPS)
    assert len(example) == 12
    big = expand_points(load_sweep(SWEEPS / "pareto.yaml"), SWEEPS)
    assert 200 <= len(big) <= 500
    assert len(expand_points(load_sweep(SWEEPS / "scaling.yaml"), SWEEPS)) == 20


def test_design_for_point_sets_paths(tmp_path):
    path = write(tmp_path, """\
base: mixpe-w4a8
points:
  - {dram.preset: lpddr5-6400, dram.bandwidth_bytes_per_s: 1.0e11, tile.pe_array.rows: 32,
     tile.weight_buffer.capacity_bytes: 262144, frequency_hz: 8.0e8, quant.group_size: 64}
  - {design: int8, tile.pe_array.pe.kind: bitfusion}
""" + PAPER_WORKLOAD)
    first, second = expand_points(load_sweep(path), tmp_path)
    d = design_for_point(first)
    assert d.dram.kind == "lpddr5-6400" and d.dram.bandwidth_bytes_per_s == 1e11
    assert d.tile.pe_array.rows == 32 and d.tile.pe_array.cols == 64
    assert d.tile.weight_buffer.capacity_bytes == 262144 and d.frequency_hz == 8e8 and d.native_quant.group_size == 64
    assert d.name == first.label and "dram.preset=lpddr5-6400" in d.name
    d2 = design_for_point(second)
    assert d2.native_quant.weight_bits == 8 and d2.tile.pe_array.pe.kind == "bitfusion"


@pytest.mark.parametrize("text, line, field", [
    ("base: mixpe-w4a8\ngrid:\n  num_tiles: [2]\n  tile.pe_array.colz: [8]\n" + PAPER_WORKLOAD, 4,
     "grid.tile.pe_array.colz"),
    ("base: mixpe-w4a8\ngrid:\n  - {num_tiles: [2]}\n  - {tile.pe_array.rows.x: [1]}\n" + PAPER_WORKLOAD, 4,
     "grid.1.tile.pe_array.rows.x"),
    ("base: mixpe-w4a8\ngrid:\n  num_tiles: []\n" + PAPER_WORKLOAD, 3, "grid.num_tiles"),
    ("base: mixpe-w4a8\ngrid:\n  num_tiles: 4\n" + PAPER_WORKLOAD, 3, "grid.num_tiles"),
    ("base: mixpe-w4a8\npoints:\n  - {num_tile: 4}\n" + PAPER_WORKLOAD, 3, "points.0.num_tile"),
    ("base: mixpe-w4a8\nworkloads:\n  - {model: opt-6.7b, workload: papr}\n", 3, "workloads.0.workload"),
    ("base: mixpe-w4a8\nworkloads:\n  - {model: opt-6.7b, batch: 0}\n", 3, "workloads.0.batch"),
    ("base: mixpe-w4a8\nworkloads:\n  - {model: m, requests: r.csv, serving: {max_btch: 4}}\n", 3,
     "workloads.0.serving.max_btch"),
    ("base: mixpe-w4a8\ngrids: {}\n" + PAPER_WORKLOAD, 2, "grids"),
    ("grid: {num_tiles: [1]}\n" + PAPER_WORKLOAD, None, "base"),
])
def test_bad_sweep_names_file_line_field(tmp_path, text, line, field):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    message = str(info.value)
    assert f"field '{field}'" in message
    assert message.startswith(f"{path}:{line}:" if line else f"{path}")


def test_cli_bad_sweep_exits_2(tmp_path, capsys):
    path = write(tmp_path, "base: mixpe-w4a8\ngrid:\n  tile.pe_array.colz: [8]\n" + PAPER_WORKLOAD)
    assert cli_main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-dask"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mixpe-sim sweep: error: ") and f"{path}:3: field 'grid.tile.pe_array.colz'" in err
    assert "\n" not in err and not (tmp_path / "out").exists()
    assert cli_main(["sweep", str(path), "--out", str(tmp_path / "o"), "--no-dask", "--workers", "2"]) == 2


# -- running, resuming, errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("point, line, field, fragment", [
    ("{num_tiles: 0}", 3, "points.0.num_tiles", "must be >= 1"),
    ("{design: no-such-design}", 3, "points.0.design", "unknown design 'no-such-design'"),
    ("{dram.preset: no-such-dram}", 3, "points.0.dram.preset", "unknown DRAM preset 'no-such-dram'"),
    ("{tile.pe_array.rows: many}", 3, "points.0.tile.pe_array.rows", "expected an integer"),
    ("{quant.weight_bits: 3}", 3, "points.0", "does not take 3-bit weights"),
])
def test_bad_point_values_are_errors_on_loading(tmp_path, point, line, field, fragment):
    path = write(tmp_path, f"base: mixpe-w4a8\npoints:\n  - {point}\n" + PAPER_WORKLOAD)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: field '{field}") and fragment in message and "\n" not in message


def test_bad_base_and_workload_are_errors_on_loading(tmp_path):
    with pytest.raises(ConfigError, match="unknown design 'nope'"):
        load_sweep(write(tmp_path, "base: nope\npoints: [{}]\n" + PAPER_WORKLOAD))
    with pytest.raises(ConfigError, match=r"sweep.yaml:4: field 'workloads.0.requests'"):
        load_sweep(write(tmp_path, "base: mixpe-w4a8\npoints: [{}]\nworkloads:\n  - {requests: nothere.csv}\n"))


def test_points_failing_at_run_time_are_recorded_and_exit_2(tmp_path, capsys):
    path = write(tmp_path, """\
base: mixpe-w4a8
points:
  - {num_tiles: 2}
  - {tile.weight_buffer.capacity_bytes: 64}
""" + PAPER_WORKLOAD)
    run = run_sweep(path, tmp_path / "out", use_dask=False, progress=False)
    assert run.points == 2 and len(run.computed) == 2 and run.errors == 1
    df = read_results(tmp_path / "out")
    by = dict(zip(df["label"], zip(df["status"], df["error"].fillna(""))))
    assert by["mixpe-w4a8[num_tiles=2]"] == ("ok", "")
    assert by["mixpe-w4a8[tile.weight_buffer.capacity_bytes=64]"][0] == "error"
    assert "fit" in by["mixpe-w4a8[tile.weight_buffer.capacity_bytes=64]"][1]
    assert all("\n" not in e for e in df["error"].dropna())
    # a retry runs the failed point again, replacing its row
    again = run_sweep(path, tmp_path / "out", use_dask=False, progress=False, retry_errors=True)
    assert len(again.computed) == 1 and again.skipped == 1
    assert len(read_results(tmp_path / "out")) == 2
    # the command line keeps every row and exits 2 with one line naming the failure
    assert cli_main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-dask"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "1 of 2 points ended with an error" in err and "fit" in err
    assert len(read_results(tmp_path / "out")) == 2


def test_resume_recomputes_only_missing_rows(tmp_path, small_sweep):
    out = tmp_path / "out"
    first = run_sweep(small_sweep, out, use_dask=False, progress=False)
    assert first.points == 4 and len(first.computed) == 4 and first.errors == 0
    rows = csv_rows(out / "results.csv")
    header = (out / "results.csv").read_text().splitlines()[0]
    victim = rows[2]
    keep = [r for r in rows if r is not victim]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header.split(","), lineterminator="\n")
        w.writeheader()
        w.writerows(keep)
    second = run_sweep(small_sweep, out, use_dask=False, progress=False)
    assert second.computed == (victim["point_id"],) and second.skipped == 3
    again = csv_rows(out / "results.csv")
    assert len(again) == 4 and len({r["point_id"] for r in again}) == 4
    assert next(r for r in again if r["point_id"] == victim["point_id"]) == victim  # same figures, bit for bit
    third = run_sweep(small_sweep, out, use_dask=False, progress=False)
    assert third.computed == () and third.skipped == 4


def test_killed_mid_row_loses_only_that_row(tmp_path, small_sweep):
    out = tmp_path / "out"
    run_sweep(small_sweep, out, use_dask=False, progress=False)
    data = (out / "results.csv").read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    (out / "results.csv").write_bytes(data[:last_start + 25])  # a half-written last row
    assert len(read_results(out)) == 3  # readers ignore the partial row
    run = run_sweep(small_sweep, out, use_dask=False, progress=False)
    assert len(run.computed) == 1
    assert (out / "results.csv").read_bytes() == data  # the same row again, nothing half-written left


def test_new_parameter_column_keeps_old_rows(tmp_path, small_sweep):
    out = tmp_path / "out"
    run_sweep(small_sweep, out, use_dask=False, progress=False)
    more = write(tmp_path, "base: mixpe-w4a8\ngrid:\n  design: [mixpe-w4a8, int8]\n  num_tiles: [2, 4]\n"
                           "points:\n  - {design: int8, frequency_hz: 5.0e8}\n" + PAPER_WORKLOAD, "more.yaml")
    run = run_sweep(more, out, use_dask=False, progress=False)
    assert len(run.computed) == 1 and run.skipped == 4
    df = read_results(out)
    assert len(df) == 5 and "frequency_hz" in df.columns and df["point_id"].is_unique


def test_results_directory_is_locked(tmp_path):
    with ResultsStore(tmp_path, ["point_id", "status"]):
        with pytest.raises(MixpeError, match="another sweep"):
            ResultsStore(tmp_path, ["point_id", "status"]).open()
    with ResultsStore(tmp_path, ["point_id", "status"]) as store:  # released
        assert store.done_ids() == set()


def test_serving_point(tmp_path):
    (tmp_path / "req.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0.0,16,4\n0.01,8,3\n")
    path = write(tmp_path, "base: mixpe-w4a8\npoints: [{}]\nworkloads:\n"
                           "  - {model: llama-2-7b, requests: req.csv, serving: {max_batch: 4}}\n")
    run_sweep(path, tmp_path / "out", use_dask=False, progress=False)
    row = read_results(tmp_path / "out").iloc[0]
    assert row["status"] == "ok" and row["workload"] == "serving" and row["serving"] == "max_batch=4"
    assert row["tokens_per_s"] > 0 and row["ttft_p50_s"] > 0 and row["energy_per_token_j"] > 0


def test_cli_sweep_runs_and_resumes(tmp_path, small_sweep, capsys):
    out = tmp_path / "out"
    assert cli_main(["sweep", str(small_sweep), "--out", str(out), "--no-dask"]) == 0
    assert "4 points, 4 run now (0 errors), 0 already done" in capsys.readouterr().out
    assert cli_main(["sweep", str(small_sweep), "--out", str(out), "--no-dask"]) == 0
    assert "0 run now (0 errors), 4 already done" in capsys.readouterr().out
    df = read_results(out)
    assert set(df["status"]) == {"ok"}
    for col in ("tokens_per_s", "time_per_output_token_s", "energy_j", "energy_per_token_j", "area_mm2",
                "tokens_per_s_per_mm2", "snr_db", "num_tiles", "design"):
        assert df[col].notna().all(), col
    assert np.allclose(df["tokens_per_s_per_mm2"], df["tokens_per_s"] / df["area_mm2"])
    assert (df.loc[df["design"] == "int8", "snr_db"] > df.loc[df["design"] == "mixpe-w4a8", "snr_db"].max()).all()


@pytest.mark.slow
def test_dask_local_cluster_matches_in_process(tmp_path, small_sweep):
    local = run_sweep(small_sweep, tmp_path / "local", use_dask=False, progress=False)
    dask = run_sweep(small_sweep, tmp_path / "dask", workers=2, processes=True, progress=False)
    assert sorted(local.computed) == sorted(dask.computed)

    def rows(d):
        return sorted(csv_rows(d / "results.csv"), key=lambda r: r["point_id"])
    assert rows(tmp_path / "local") == rows(tmp_path / "dask")
