"""Kernel-level validation (experiments/validate_kernels.py), the measurement CSV reader, and the H200 script."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mixpe_sys import load_design, simulate_gemm
from mixpe_sys.errors import TraceError
from mixpe_sys.measurements import read_measurements
from experiment_module import load_experiment

ROOT = Path(__file__).resolve().parents[1]


vk = load_experiment("validate_kernels")


def test_measure_script_stands_alone():
    path = ROOT / "experiments" / "measure_h200.py"
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "mixpe_sys" not in imported and "torch" in imported
    assert not path.name.startswith("test_")  # never collected by pytest
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(a.name != "torch" for n in top for a in getattr(n, "names", []))  # torch only imported in main


def test_reader_names_file_line_and_field(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("# source: here\nm,time_us\n4,1.5\n8,abc\n")
    with pytest.raises(TraceError, match=r"m.csv:4: field 'time_us': expected float, got 'abc'"):
        read_measurements(path, {"m": int, "time_us": float})
    path.write_text("# source: here\nm\n4\n")
    with pytest.raises(TraceError, match=r"m.csv:2: field 'time_us': missing column"):
        read_measurements(path, {"m": int, "time_us": float})
    path.write_text("# source: here\n# timing: events\nm,time_us\n4,1.5\n")
    meta, df = read_measurements(path, {"m": int, "time_us": float})
    assert meta == {"source": "here", "timing": "events"} and df.m.tolist() == [4] and df.time_us.tolist() == [1.5]


def test_kernel_validation_on_a_measurement_folder(tmp_path):
    measured = tmp_path / "h200"
    measured.mkdir()
    (measured / "gemm.csv").write_text("# source: test\nname,dtype,m,n,k,graph_us\no_proj,fp16,1,4096,4096,20.0\n")
    (measured / "copy.csv").write_text("# source: test\nbytes_copied,reps,time_us\n1073741824,3,500.0\n")
    (measured / "launch.csv").write_text("# source: test\nkernel,reps,graph_us,eager_us,host_sync_us\n"
                                         "add_1_element,1000,2.0,4.0,10.0\n")
    out = vk.run(tmp_path / "out", measured, "h200-like")
    df = out["points"].set_index("kind")
    d = load_design("h200-like")
    sim = simulate_gemm(1, 4096, 4096, d).time_s * 1e6  # graph launch by default
    assert df.loc["gemm", "simulated_us"] == pytest.approx(sim)
    assert df.loc["gemm", "error_pct"] == pytest.approx((sim - 20.0) / 20.0 * 100)
    copy_us = 2 * 2**30 / (4.8e12 * d.dram.bandwidth_efficiency) * 1e6
    assert df.loc["copy", "simulated_us"] == pytest.approx(copy_us)
    assert df.loc["launch_graph", "simulated_us"] == pytest.approx(d.launch.graph_launch_ns * 1e-3)
    md = (tmp_path / "out" / "kernel_validation.md").read_text()
    assert "Summary" in md and (tmp_path / "out" / "kernel_validation.csv").exists()


def test_kernel_validation_without_measurements(tmp_path):
    out = vk.run(tmp_path / "out", tmp_path / "missing", "h200-like")
    assert len(out["points"]) == 0
    assert "No measurement files found" in (tmp_path / "out" / "kernel_validation.md").read_text()
