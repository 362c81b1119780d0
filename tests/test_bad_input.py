"""Bad input on the command line: exit code 2, one line on stderr naming the file, line and field where
there is one, no traceback, no hang, and nothing already written lost.

Each row is one input a user can give (design YAML, CLI numbers, output paths, operator traces, request
traces, sweep files). Every case runs in a fresh folder holding the files of the table below, an output
folder ``out/`` with a file already in it, and a file ``afile``; after the error those are unchanged and
no other file has appeared.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixpe_sys.cli import EXIT_BROKEN_PIPE, main

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
TRACE_HEAD = '{"schema": "mixpe-op-trace", "version": 1}\n'


def op_row(**fields) -> str:
    base = {"name": "x", "kind": "linear", "m": 1, "n": 64, "k": 128, "weight_bits": 4, "activation_bits": 8,
            "output_bits": 8}
    base.update(fields)
    return TRACE_HEAD + "{" + ", ".join(f'"{k}": {v!r}'.replace("'", '"') for k, v in base.items()) + "}\n"


FILES = {
    "bin.yaml": b"\xff\xfe\x00 not text",
    "bomb.yaml": BOMB,
    "dup.yaml": "num_tiles: 2\nnum_tiles: 4\n",
    "dup.json": '{"num_tiles": 2, "num_tiles": 4}',
    "tag.yaml": "num_tiles: !!python/object:os.system {}\n",
    "ext.yaml": "name: mine\nextends: ./missing.yaml\n",
    "ext2.yaml": "extends: nope\n",
    "tiles.yaml": "dram: {channels: 4}\nnum_tiles: 1000000000000\n",
    "freq.yaml": "frequency_hz: 1.0e30\n",
    "freq300.yaml": "frequency_hz: 1.0e300\n",
    "nanint.yaml": "dram:\n  capacity_bytes: .nan\n",
    "infint.yaml": "num_tiles: .inf\n",
    "w3.yaml": "quant:\n  weight_bits: 3\n",
    "channels.yaml": "dram:\n  channels: 1000000000\n",
    "tiny.yaml": "tile:\n  weight_buffer: {capacity_bytes: 64}\n",
    "linkbw.yaml": "noc:\n  dram_link_bandwidth_bytes_per_s: 1.0e-300\n",
    "efficiency.yaml": "dram:\n  bandwidth_efficiency: 1.0e-300\n",
    "smalldram.yaml": "dram: {capacity_bytes: 14000000000}\n",
    "header_only.csv": "# mixpe-op-trace v1 {}\nname,kind,m,n,k\n",
    "m1e20.jsonl": op_row(m=1e20),
    "bits.jsonl": op_row(weight_bits=1000),
    "w3op.jsonl": op_row(weight_bits=3),
    "hugeop.jsonl": op_row(m=100000, n=100000, k=100000),
    "long.csv": "arrival_s,prompt_tokens,output_tokens\n0,50000,10\n",
    "kv.csv": "arrival_s,prompt_tokens,output_tokens\n0,100,10\n0.5,3000,10\n",
    "ok.csv": "arrival_s,prompt_tokens,output_tokens\n0,16,4\n",
    "sweep_base.yaml": "base: nope\npoints: [{}]\nworkloads:\n  - {model: opt-6.7b, workload: paper, batch: 64}\n",
    "sweep_value.yaml": "base: mixpe-w4a8\npoints:\n  - {num_tiles: 0}\n"
                        "workloads:\n  - {model: opt-6.7b, workload: paper, batch: 64}\n",
    "sweep_grid.yaml": "base: mixpe-w4a8\ngrid:\n  num_tiles: [2, 100000]\n"
                       "workloads:\n  - {model: opt-6.7b, workload: paper, batch: 64}\n",
    "sweep_empty.yaml": "base: mixpe-w4a8\nworkloads:\n  - {model: opt-6.7b, workload: paper, batch: 64}\n",
    "sweep_model.yaml": "base: mixpe-w4a8\npoints: [{}]\nworkloads:\n  - {model: no-such-model}\n",
    "sweep_fit.yaml": "base: mixpe-w4a8\npoints:\n  - {tile.weight_buffer.capacity_bytes: 64}\n"
                      "workloads:\n  - {model: opt-6.7b, workload: paper, batch: 64}\n",
}

# (id, argv, fragments the one line must contain)
CASES = [
    # output paths: refused before any work
    ("steps-csv-missing-folder", ["gemm", "--steps-csv", "missing/x.csv"], ["--steps-csv", "'missing' does not exist"]),
    ("steps-csv-under-a-file", ["gemm", "--steps-csv", "afile/x.csv"], ["--steps-csv", "'afile' is a file"]),
    ("steps-csv-a-folder", ["gemm", "--steps-csv", "out"], ["--steps-csv", "'out' is a folder"]),
    ("trace-o-missing-folder", ["trace", "--model", "llama-2-7b", "-o", "missing/x.jsonl"], ["--output", "missing"]),
    ("trace-o-a-folder", ["trace", "--model", "llama-2-7b", "-o", "out"], ["--output", "'out' is a folder"]),
    ("trace-o-txt", ["trace", "--model", "llama-2-7b", "-o", "x.txt"], ["--output", "'.txt'", ".jsonl or .csv"]),
    ("run-out-under-a-file", ["run", "--workload", "paper", "--out", "afile/x"], ["--out", "'afile' is a file"]),
    ("run-out-a-file", ["run", "--workload", "paper", "--out", "afile"], ["--out", "'afile' is a file"]),
    ("run-out-missing-parent", ["run", "--out", "missing/deeper"], ["--out", "'missing' does not exist"]),
    ("replay-out-a-file", ["replay", "ok.csv", "--out", "afile"], ["--out", "'afile' is a file"]),
    ("sweep-out-a-file", ["sweep", "sweep_fit.yaml", "--no-dask", "--out", "afile"], ["--out", "'afile' is a file"]),
    # design files
    ("design-binary", ["gemm", "--design", "bin.yaml"], ["bin.yaml:1:", "not UTF-8"]),
    ("config-binary", ["gemm", "--config", "bin.yaml"], ["bin.yaml:1:", "not UTF-8"]),
    ("alias-bomb", ["gemm", "--config", "bomb.yaml"], ["bomb.yaml:", "expands to more than"]),
    ("duplicate-key", ["gemm", "--config", "dup.yaml"], ["dup.yaml:2:", "field 'num_tiles'", "duplicate key"]),
    ("duplicate-key-json", ["gemm", "--config", "dup.json"], ["dup.json", "field 'num_tiles'", "duplicate key"]),
    ("python-tag", ["gemm", "--config", "tag.yaml"], ["tag.yaml:1:", "unsupported tag '!!python/object"]),
    ("extends-missing-file", ["gemm", "--design", "ext.yaml"], ["ext.yaml:2:", "field 'extends'", "missing.yaml"]),
    ("extends-unknown", ["gemm", "--config", "ext2.yaml"], ["ext2.yaml:1:", "field 'extends'", "unknown design 'nope'"]),
    ("num-tiles-huge", ["gemm", "--config", "tiles.yaml"], ["tiles.yaml:2:", "field 'num_tiles'", "<= 4096"]),
    ("frequency-1e30", ["gemm", "--config", "freq.yaml"], ["freq.yaml:1:", "field 'frequency_hz'"]),
    ("frequency-1e300", ["run", "--config", "freq300.yaml"], ["freq300.yaml:1:", "field 'frequency_hz'"]),
    # found by the slow fuzz draw: int() of a NaN or infinity raised before the message was written
    ("integer-nan", ["gemm", "--config", "nanint.yaml"], ["nanint.yaml:2:", "field 'dram.capacity_bytes'", "integer"]),
    ("integer-inf", ["gemm", "--config", "infint.yaml"], ["infint.yaml:1:", "field 'num_tiles'", "integer"]),
    ("design-weight-bits-3", ["gemm", "--config", "w3.yaml"], ["w3.yaml:2:", "field 'quant.weight_bits'", "3-bit"]),
    ("dram-channels-huge", ["gemm", "--config", "channels.yaml"], ["channels.yaml:2:", "field 'dram.channels'"]),
    ("link-bandwidth-tiny", ["gemm", "--config", "linkbw.yaml"],
     ["linkbw.yaml:2:", "field 'noc.dram_link_bandwidth_bytes_per_s'", "below 1 byte/s"]),
    ("dram-efficiency-tiny", ["gemm", "--config", "efficiency.yaml"], ["efficiency.yaml:", "field 'dram.", "per channel"]),
    ("no-tile-fits", ["gemm", "--config", "tiny.yaml"],
     ["tiny.yaml:2:", "field 'tile.weight_buffer.capacity_bytes'", "fits"]),
    ("no-tile-fits-run", ["run", "--config", "tiny.yaml", "--prompt", "16", "--generate", "2", "--workers", "1"],
     ["tiny.yaml:2:", "field 'tile.weight_buffer.capacity_bytes'"]),
    # GEMM numbers and precisions
    ("gemm-m-huge", ["gemm", "--m", "99999999999999999999999"], ["field 'm'", "limit"]),
    ("gemm-1e5-cubed", ["gemm", "--m", "100000000", "--n", "100000", "--k", "100000"], ["tile steps", "limit"]),
    ("gemm-batch-huge", ["gemm", "--batch", "1000000000"], ["tile steps", "limit"]),
    ("gemm-W3A7", ["gemm", "--quant", "W3A7"], ["field 'weight_bits'", "3-bit weights"]),
    ("gemm-W4A8-on-fp16", ["gemm", "--quant", "W4A8", "--design", "fp16"], ["field 'activation_format'", "fp16"]),
    ("gemm-W16A16-on-mixpe", ["gemm", "--quant", "W16A16"], ["field 'activation_format'", "FP activations"]),
    ("gemm-W4A8-on-int8", ["gemm", "--quant", "W4A8", "--design", "int8"], ["field 'weight_bits'", "4-bit"]),
    ("gemm-group-negative", ["gemm", "--group-size", "-1"], ["--group-size"]),
    # model runs
    ("run-prompt-1e6", ["run", "--prompt", "1000000"], ["field 'prompt'", "4096-token context"]),
    ("run-prompt-beyond-context", ["run", "--prompt", "5000"], ["field 'prompt'", "max_position_embeddings"]),
    ("run-batch-1e5", ["run", "--batch", "100000"], ["field 'batch'", "KV-cache tokens"]),
    ("run-batch-600", ["run", "--batch", "600", "--prompt", "128"], ["field 'batch'", "153,000 KV-cache tokens"]),
    ("run-batch-4000", ["run", "--batch", "4000", "--prompt", "128"], ["field 'batch'", "KV-cache"]),
    ("run-out-kept", ["run", "--prompt", "5000", "--out", "out"], ["field 'prompt'"]),
    ("trace-prompt-beyond-context", ["trace", "--model", "llama-2-7b", "--prompt", "5000", "-o", "t.jsonl"],
     ["field 'prompt'"]),
    # operator traces
    ("op-trace-header-only", ["run", "--trace", "header_only.csv"], ["header_only.csv:2:", "no ops"]),
    ("op-trace-m-1e20", ["run", "--trace", "m1e20.jsonl"], ["m1e20.jsonl:2:", "field 'm'"]),
    ("op-trace-bits-1000", ["run", "--trace", "bits.jsonl"], ["bits.jsonl:2:", "field 'weight_bits'"]),
    ("op-trace-weight-bits-3", ["run", "--trace", "w3op.jsonl"], ["w3op.jsonl:2:", "field 'weight_bits'"]),
    ("op-trace-huge-op", ["run", "--trace", "hugeop.jsonl"], ["hugeop.jsonl:2:", "tile steps"]),
    # request traces
    ("replay-50k-prompt", ["replay", "long.csv"], ["long.csv:2:", "field 'prompt_tokens'", "4096-token context"]),
    ("replay-50k-prompt-chunked", ["replay", "long.csv", "--chunked-prefill"], ["long.csv:2:", "context"]),
    ("replay-max-batched-tokens-1", ["replay", "ok.csv", "--max-batched-tokens", "1"],
     ["field 'max_batched_tokens'", "max_batch"]),
    ("replay-kv-does-not-fit", ["replay", "kv.csv", "--design", "fp16", "--config", "smalldram.yaml"],
     ["kv.csv:3:", "request 1 needs 3009 KV-cache tokens", "dram.capacity_bytes"]),
    ("replay-design-weight-bits-3", ["replay", "ok.csv", "--config", "w3.yaml"], ["w3.yaml:2:", "weight_bits"]),
    # sweep files
    ("sweep-bad-base", ["sweep", "sweep_base.yaml", "--no-dask", "--out", "sw"], ["sweep_base.yaml:", "'nope'"]),
    ("sweep-bad-value", ["sweep", "sweep_value.yaml", "--no-dask", "--out", "sw"],
     ["sweep_value.yaml:3:", "field 'points.0.num_tiles'"]),
    ("sweep-bad-grid-value", ["sweep", "sweep_grid.yaml", "--no-dask", "--out", "sw"],
     ["sweep_grid.yaml:3:", "field 'grid.num_tiles'", "num_tiles=100000"]),
    ("sweep-no-points", ["sweep", "sweep_empty.yaml", "--no-dask", "--out", "sw"],
     ["sweep_empty.yaml:", "field 'grid'", "give a grid or points"]),
    ("sweep-unknown-model", ["sweep", "sweep_model.yaml", "--no-dask", "--out", "sw"],
     ["sweep_model.yaml:4:", "field 'workloads.0.model'"]),
    ("sweep-bomb", ["sweep", "bomb.yaml", "--no-dask", "--out", "sw"], ["bomb.yaml:", "expands"]),
]

KEPT = {"afile": "already here\n", "out/summary.json": '{"earlier": "run"}\n'}


def prepare(folder: Path) -> dict[str, bytes]:
    for name, text in {**FILES, **KEPT}.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return snapshot(folder)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_line_error(code, out: str, err: str, fragments: list[str]) -> None:
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("mixpe-sim"), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_loses_nothing(tmp_path, monkeypatch, capsys, argv, fragments):
    before = prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors exit from inside parse_args
        code = exc.code
    out, err = capsys.readouterr()
    assert_one_line_error(code, out, err, fragments)
    assert snapshot(tmp_path) == before  # nothing written, nothing lost, no stray temporary file
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}*"))


def test_failing_sweep_point_exits_2_and_keeps_its_row(tmp_path, monkeypatch, capsys):
    prepare(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "sweep_fit.yaml", "--no-dask", "--out", "sw"]) == 2
    out, err = capsys.readouterr()
    assert_one_line_error(2, "", err, ["1 of 1 points ended with an error", "--retry-errors", "fit"])
    rows = (tmp_path / "sw" / "results.csv").read_text().splitlines()
    assert len(rows) == 2 and ",error," in rows[1]  # header and the failed point's row, kept
    assert main(["sweep", "sweep_fit.yaml", "--no-dask", "--out", "sw"]) == 2  # resumed: the row stays
    assert (tmp_path / "sw" / "results.csv").read_text().splitlines() == rows


def test_piping_into_a_closed_reader_exits_quietly():
    """``mixpe-sim designs | head -1``: the reader is gone before the output is written."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "mixpe_sys.cli", "designs"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # like `head` that has read its line and left
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_BROKEN_PIPE
    assert err == ""
