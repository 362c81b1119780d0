"""The mixpe-sim command line: output formats and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from mixpe_sys import design_names
from mixpe_sys.cli import main

JSON_KEYS = {"time_s", "core_cycles", "macs", "compute_cycles", "stall_cycles", "dram_read_bytes",
             "dram_write_bytes", "sram_read_bytes", "sram_write_bytes", "memory_time_s", "compute_time_s",
             "bottleneck", "bottleneck_utilization", "roofline_time_s", "roofline_bound", "units"}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``mixpe-sim argv`` in-process; return (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_gemm_json_has_every_figure(capsys):
    code, out, err = run_cli(capsys, "gemm", "--m", "4", "--n", "256", "--k", "512", "--json")
    assert code == 0 and err == ""
    figures = json.loads(out)
    assert JSON_KEYS <= set(figures)
    assert figures["macs"] == 4 * 256 * 512
    assert figures["roofline_bound"] in ("memory", "compute")
    assert figures["roofline_time_s"] == max(figures["memory_time_s"], figures["compute_time_s"])
    assert figures["time_s"] >= figures["roofline_time_s"]
    # mixpe-w4a8 runs at 1 GHz: one core cycle per ns
    assert figures["core_cycles"] == round(figures["time_s"] * 1e9)
    assert figures["stall_cycles"] == figures["core_cycles"] - figures["compute_cycles"]
    # 4 x 256 INT8 outputs written once
    assert figures["dram_write_bytes"] == 4 * 256


def test_gemm_json_on_another_design_and_quant(capsys):
    code, out, _ = run_cli(capsys, "gemm", "--design", "paper-int8", "--m", "64", "--n", "64", "--k", "64",
                           "--json")
    assert code == 0
    figures = json.loads(out)
    assert figures["design"] == "paper-int8"
    assert (figures["weight_bits"], figures["activation_bits"], figures["group_size"]) == (8, 8, 0)
    # 64 x 64 x 64 MACs at 32 x 32 PEs x 1 MAC/cycle (8x8 on an (8,4) PE) x 500 MHz
    assert figures["compute_time_s"] == pytest.approx(64 ** 3 / (32 * 32 * 500e6), rel=1e-12)


def test_gemm_human_table(capsys):
    code, out, err = run_cli(capsys, "gemm", "--m", "1", "--n", "512", "--k", "512")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "GEMM 1x512 @ 512x512 (W4A8, group 128) on mixpe-w4a8"
    labels = [line.split("  ")[1] for line in lines[1:]]
    for label in ("time", "roofline", "MACs", "DRAM read / write", "SRAM read / write", "tiling"):
        assert label in labels
    assert "262144" in out  # 512 x 512 MACs


def test_gemm_steps_csv(capsys, tmp_path):
    path = tmp_path / "steps.csv"
    code, _, _ = run_cli(capsys, "gemm", "--m", "8", "--n", "128", "--k", "256", "--steps-csv", str(path))
    assert code == 0
    header, *rows = path.read_text().splitlines()
    assert "compute_start_ns" in header.split(",")
    assert len(rows) >= 1


def test_designs_lists_every_preset(capsys):
    code, out, err = run_cli(capsys, "designs")
    assert code == 0 and err == ""
    for name in design_names():
        assert name in out
    code, out, _ = run_cli(capsys, "designs", "--json")
    assert code == 0
    assert sorted(row["design"] for row in json.loads(out)) == sorted(design_names())


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)


def assert_one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("argv, fragment", [
    (["--m", "0"], "argument --m: must be a positive integer, got '0'"),
    (["--m", "-3"], "argument --m: must be a positive integer, got '-3'"),
    (["--m", "abc"], "argument --m: expected a positive integer, got 'abc'"),
    (["--k", "1.5"], "argument --k: expected a positive integer, got '1.5'"),
    (["--design", "no-such-design"], "unknown design 'no-such-design'"),
    (["--quant", "X9"], "field 'quant': cannot parse 'X9'"),
    (["--config", "/nonexistent/dir/x.yaml"], "cannot read config"),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, fragment):
    err = assert_one_line_error(*run_cli(capsys, "gemm", *argv))
    assert fragment in err


def test_unknown_command(capsys):
    err = assert_one_line_error(*run_cli(capsys, "frobnicate"))
    assert "invalid choice" in err


def test_unknown_field_in_config_names_field_and_line(capsys, tmp_path):
    path = write(tmp_path, "over.yaml", """
        num_tiles: 4
        tile:
          pe_array:
            rowz: 32
        """)
    err = assert_one_line_error(*run_cli(capsys, "gemm", "--config", path))
    assert f"{path}:4:" in err  # 'rowz' is on line 4
    assert "field 'tile.pe_array.rowz'" in err


def test_bad_value_in_config_names_field_value_and_line(capsys, tmp_path):
    path = write(tmp_path, "over.yaml", """
        dram:
          bandwidth_bytes_per_s: -1e9
        """)
    err = assert_one_line_error(*run_cli(capsys, "gemm", "--config", path))
    assert f"{path}:2:" in err
    assert "field 'dram.bandwidth_bytes_per_s'" in err and "-1000000000.0" in err


def test_malformed_config_yaml(capsys, tmp_path):
    path = write(tmp_path, "broken.yaml", """
        num_tiles: 2
        tile: {pe_array: {rows: 8
        """)
    err = assert_one_line_error(*run_cli(capsys, "gemm", "--config", path))
    assert f"{path}:" in err and "malformed YAML" in err


def test_weight_buffer_too_small(capsys, tmp_path):
    path = write(tmp_path, "tiny.yaml", """
        tile:
          weight_buffer: {capacity_bytes: 64}
        """)
    err = assert_one_line_error(*run_cli(capsys, "gemm", "--config", path))
    # a slot is half of 64 B; one group of 128 INT4 weights with its 16-bit scale and 4-bit zero needs 67 B
    assert "tile.weight_buffer.capacity_bytes" in err
    assert "32 B" in err and "67 B" in err


def test_config_merges_over_design(capsys, tmp_path):
    path = write(tmp_path, "slow-dram.yaml", """
        dram: {bandwidth_bytes_per_s: 204.8e9}
        """)
    _, fast, _ = run_cli(capsys, "gemm", "--json")
    code, slow, _ = run_cli(capsys, "gemm", "--json", "--config", path)
    assert code == 0
    fast, slow = json.loads(fast), json.loads(slow)
    assert slow["design"] == "mixpe-w4a8+slow-dram"
    # half the bandwidth: the memory bound doubles
    assert slow["memory_time_s"] == pytest.approx(2 * fast["memory_time_s"], rel=1e-12)
    assert slow["time_s"] > fast["time_s"]


def test_subprocess_entry_point():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    ok = subprocess.run([sys.executable, "-m", "mixpe_sys.cli", "gemm", "--m", "2", "--n", "128", "--k", "128",
                         "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert JSON_KEYS <= set(json.loads(ok.stdout))
    bad = subprocess.run([sys.executable, "-m", "mixpe_sys.cli", "gemm", "--m", "0"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_gemm_text_shows_energy_and_area(capsys):
    from mixpe_sys import load_design, simulate_gemm
    from mixpe_sys.area import area_mm2

    code, out, _ = run_cli(capsys, "gemm", "--m", "1", "--n", "512", "--k", "512")
    assert code == 0
    rows = {line.split("  ")[1]: line for line in out.splitlines()[1:]}
    r = simulate_gemm(1, 512, 512)
    assert f"{r.energy_j * 1e6:.4g} uJ" in rows["energy"] and "pJ/MAC" in rows["energy"]
    assert f"{area_mm2(load_design('mixpe-w4a8')):.3f} mm^2" in rows["area"]


@pytest.mark.parametrize("argv, stated", [
    (["--k", "3"], "W4A8, group 128: one partial group of 3 weights per column"),
    (["--k", "4096", "--group-size", "100"], "group 100: 41 groups per column, the last of 96 weights"),
    (["--group-size", "0"], "per-channel scales (applied with the output; not simulated)"),
])
def test_gemm_states_what_a_group_size_means(capsys, argv, stated):
    code, out, _ = run_cli(capsys, "gemm", "--n", "128", *argv)
    assert code == 0 and stated in out.splitlines()[0]
