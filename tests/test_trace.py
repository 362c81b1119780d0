"""Operator traces: JSONL/CSV round trips, row errors naming file:line:field, CLI replay, shipped examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixpe_sys import load_design
from mixpe_sys.cli import main
from mixpe_sys.errors import TraceError
from mixpe_sys.sim.model import WorkloadKind, model_ops, simulate_ops_result
from mixpe_sys.workload.models import load_model
from mixpe_sys.workload.ops import Op, OpKind, Phase
from mixpe_sys.workload.quant import NumberFormat
from mixpe_sys.workload.trace import read_trace, write_trace
from mixpe_sys.workload.transformer import layer_ops

EXAMPLES = Path(__file__).resolve().parent.parent / "traces" / "examples"

META = {"model": "llama-2-7b", "design": "mixpe-w4a8", "batch": 1, "prompt": 8, "generate": 3,
        "workload": "full", "quant": "W4A8"}


@pytest.fixture(scope="module")
def full_ops() -> list[Op]:
    """Llama-2-7B prefill of 8 tokens and 2 decode steps: every full-workload kind, layer -1 included."""
    design = load_design("mixpe-w4a8")
    ops = list(model_ops(load_model("llama-2-7b"), design, batch=1, prompt=8, generate=3,
                         workload=WorkloadKind.FULL, quant=design.native_quant))
    # a label that needs CSV quoting, and an FP-activation op
    extra = Op(name='odd, "quoted" name', kind=OpKind.LINEAR, phase=Phase.DECODE, layer=7, step=2, m=3, n=256,
               k=384, batch=2, weight_bits=4, activation_bits=16, output_bits=16,
               activation_format=NumberFormat.FP, group_size=128,
               scale_bits=16, zero_bits=4)
    # the unfused vector kinds, which the generator no longer writes but traces may hold
    unfused = [Op(name=kind.value, kind=kind, phase=Phase.DECODE, layer=3, step=1, elements=4096,
                  ops_per_element=4, read_bytes=8192, write_bytes=4096)
               for kind in (OpKind.NORM, OpKind.RESIDUAL, OpKind.KV_WRITE)]
    # the three kernels of unfused attention (the generator writes them with attention="unfused")
    attention = [op for op in layer_ops(load_model("llama-2-7b"), load_design("mixpe-w4a8").native_quant, batch=1,
                                        q_tokens=1,
                                        kv_len=9, phase=Phase.DECODE, attention="unfused")
                 if op.name in ("attn_qk", "softmax", "attn_pv")]
    return ops + [extra] + unfused + attention


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip(tmp_path, full_ops, suffix):
    path = tmp_path / f"run{suffix}"
    assert write_trace(iter(full_ops), path, **META) == len(full_ops) == 3 * (32 * 9 + 2) + 4 + 3
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    # one header line (two for CSV: the schema line and the column names) + one line per op
    assert len(path.read_text().splitlines()) == len(full_ops) + (2 if suffix == ".csv" else 1)
    meta, ops = read_trace(path)
    assert meta == META
    assert ops == full_ops
    kinds = {op.kind for op in ops}
    assert kinds == set(OpKind) - {OpKind.DEQUANT_GEMM}
    assert min(op.layer for op in ops) == -1


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_round_trip_paper_workload(tmp_path, suffix):
    design = load_design("paper-mixpe-w4a8")
    ops = list(model_ops(load_model("opt-6.7b"), design, batch=64, prompt=0, generate=1,
                         workload=WorkloadKind.PAPER, quant=design.native_quant))
    path = tmp_path / f"paper{suffix}"
    write_trace(ops, path)
    meta, back = read_trace(path)
    assert meta == {} and back == ops
    assert sum(op.kind is OpKind.DEQUANT_GEMM for op in back) == 32 * 4


def test_optional_fields_take_op_defaults(tmp_path):
    path = tmp_path / "min.jsonl"
    path.write_text('{"schema": "mixpe-op-trace", "version": 1}\n'
                    '{"name": "up", "kind": "linear", "m": 2, "n": 64, "k": 128, "weight_bits": 4, '
                    '"activation_bits": 8, "output_bits": 16}\n'
                    '\n'
                    '{"name": "sm", "kind": "softmax", "elements": 100}\n')
    meta, ops = read_trace(path)
    assert meta == {}
    assert ops == [Op(name="up", kind=OpKind.LINEAR, m=2, n=64, k=128, weight_bits=4, activation_bits=8,
                      output_bits=16),
                   Op(name="sm", kind=OpKind.SOFTMAX, elements=100)]
    assert ops[0].phase is Phase.PREFILL and ops[0].batch == 1 and ops[0].layer == 0


# --------------------------------------------------------------------------- bad traces

JSONL_HEAD = '{"schema": "mixpe-op-trace", "version": 1, "model": "x"}'
GOOD_ROW = ('{"name": "qkv", "kind": "linear", "m": 1, "n": 64, "k": 128, "weight_bits": 4, "activation_bits": 8, '
            '"output_bits": 16}')


def _bad_jsonl(tmp_path, row: str, head: str = JSONL_HEAD) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([head, GOOD_ROW, row]) + "\n")
    return path


def _expect(path: Path, line: int, field: str) -> str:
    with pytest.raises(TraceError) as info:
        read_trace(path)
    msg = str(info.value)
    assert f"{path}:{line}:" in msg, msg
    assert f"'{field}'" in msg, msg
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("row, field, words", [
    ('{"name": "conv", "kind": "conv2d", "m": 1, "n": 1, "k": 1}', "kind", "conv2d"),
    ('{"name": "qkv", "kind": "linear", "m": -4, "n": 64, "k": 128, "weight_bits": 4, "activation_bits": 8, '
     '"output_bits": 16}', "m", ">= 0"),
    ('{"name": "qkv", "kind": "linear", "m": 1, "n": 2.5, "k": 128, "weight_bits": 4, "activation_bits": 8, '
     '"output_bits": 16}', "n", "integer"),
    ('{"name": "qkv", "kind": "linear", "m": 1, "n": "many", "k": 128, "weight_bits": 4, "activation_bits": 8, '
     '"output_bits": 16}', "n", "integer"),
    ('{"name": "qkv", "kind": "linear", "m": true, "n": 64, "k": 128, "weight_bits": 4, "activation_bits": 8, '
     '"output_bits": 16}', "m", "integer"),
    ('{"kind": "softmax", "elements": 10}', "name", "missing"),
    ('{"name": "sm", "kind": "softmax", "elements": 10, "flops": 3}', "flops", "unknown field"),
    ('{"name": "qkv", "kind": "linear", "m": 0, "n": 64, "k": 128, "weight_bits": 4, "activation_bits": 8, '
     '"output_bits": 16}', "m", "> 0"),
    ('{"name": "sm", "kind": "softmax"}', "elements", "> 0"),
    ('{"name": "sm", "kind": "softmax", "elements": 10, "phase": "warmup"}', "phase", "warmup"),
    ('{"name": "sm", "kind": "softmax", "elements": 10', "<row>", "malformed JSON"),
    ('["sm", "softmax", 10]', "<row>", "object"),
])
def test_bad_jsonl_rows(tmp_path, row, field, words):
    msg = _expect(_bad_jsonl(tmp_path, row), 3, field)
    assert words in msg


@pytest.mark.parametrize("head, field", [
    ('{"schema": "some-other-trace", "version": 1}', "schema"),
    ('{"version": 1}', "schema"),
    ('name,kind,m', "schema"),
    ('{"schema": "mixpe-op-trace", "version": 2}', "version"),
    ('{"schema": "mixpe-op-trace"}', "version"),
])
def test_bad_jsonl_headers(tmp_path, head, field):
    _expect(_bad_jsonl(tmp_path, GOOD_ROW, head=head), 1, field)


CSV_HEAD = "# mixpe-op-trace v1 {\"model\": \"x\"}"
CSV_COLUMNS = "name,kind,m,n,k,weight_bits,activation_bits,output_bits,elements"
CSV_GOOD = "qkv,linear,1,64,128,4,8,16,"


def _bad_csv(tmp_path, row: str, head: str = CSV_HEAD, columns: str = CSV_COLUMNS) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([head, columns, CSV_GOOD, row]) + "\n")
    return path


def test_good_csv_with_a_column_subset(tmp_path):
    meta, ops = read_trace(_bad_csv(tmp_path, "sm,softmax,,,,,,,40"))
    assert meta == {"model": "x"}
    assert ops == [Op(name="qkv", kind=OpKind.LINEAR, m=1, n=64, k=128, weight_bits=4, activation_bits=8,
                      output_bits=16), Op(name="sm", kind=OpKind.SOFTMAX, elements=40)]


@pytest.mark.parametrize("row, field, words", [
    ("qkv,linear,1,64", "n", "expected 9 columns, got 4"),
    ("qkv,linear,1,64,128,4,8,16,,extra", "elements", "expected 9 columns, got 10"),
    ("qkv,linear,1,1.5,128,4,8,16,", "n", "integer"),
    ("qkv,linear,-1,64,128,4,8,16,", "m", ">= 0"),
    ("qkv,matmul,1,64,128,4,8,16,", "kind", "matmul"),
    (",linear,1,64,128,4,8,16,", "name", "missing"),
])
def test_bad_csv_rows(tmp_path, row, field, words):
    msg = _expect(_bad_csv(tmp_path, row), 4, field)
    assert words in msg


def test_bad_csv_headers(tmp_path):
    _expect(_bad_csv(tmp_path, CSV_GOOD, head="# some-trace v1"), 1, "schema")
    _expect(_bad_csv(tmp_path, CSV_GOOD, head=CSV_COLUMNS, columns=CSV_GOOD), 1, "schema")
    _expect(_bad_csv(tmp_path, CSV_GOOD, head="# mixpe-op-trace v2"), 1, "version")
    _expect(_bad_csv(tmp_path, CSV_GOOD, head="# mixpe-op-trace v1 {not json"), 1, "metadata")
    _expect(_bad_csv(tmp_path, CSV_GOOD, columns=CSV_COLUMNS + ",flops"), 2, "flops")  # the header names it
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("\n".join([CSV_HEAD, CSV_COLUMNS + ",flops", CSV_GOOD + ",0"]) + "\n")
    assert "unknown column" in _expect(unknown, 2, "flops")  # reported at the header row


def test_unreadable_and_empty_files(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(TraceError, match=r"nope\.jsonl: cannot read trace"):
        read_trace(missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(TraceError, match=r"empty\.csv:1: empty trace"):
        read_trace(empty)


# --------------------------------------------------------------------------- command line


def _run_json(capsys, argv) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    return json.loads(out[0])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_cli_trace_then_replay_matches_model_run(tmp_path, capsys, suffix):
    path = tmp_path / f"llama{suffix}"
    wl = ["--model", "llama-2-7b", "--prompt", "64", "--generate", "4"]
    assert main(["trace", *wl, "-o", str(path)]) == 0
    assert f"wrote {32 * 9 * 4 + 2 * 4} ops" in capsys.readouterr().err
    replay = _run_json(capsys, ["run", "--trace", str(path), "--json"])
    direct = _run_json(capsys, ["run", *wl, "--json"])
    assert replay["total_time_s"] == direct["total_time_s"] > 0
    for key in ("model", "batch", "prompt_tokens", "generate_tokens", "prefill_time_s", "decode_time_s",
                "time_per_output_token_s", "tokens_per_s", "dram_read_bytes", "dram_write_bytes", "macs",
                "memory_bound_share_prefill", "memory_bound_share_decode", "ops"):
        assert replay[key] == direct[key], key


def test_cli_paper_trace_replay_matches(tmp_path, capsys):
    path = tmp_path / "paper.jsonl"
    common = ["--model", "opt-6.7b", "--workload", "paper", "--batch", "64", "--design", "paper-mixpe-w4a8"]
    assert main(["trace", *common, "-o", str(path)]) == 0
    replay = _run_json(capsys, ["run", "--trace", str(path), "--design", "paper-mixpe-w4a8", "--json"])
    direct = _run_json(capsys, ["run", *common, "--json"])
    assert replay == direct


def test_cli_phase_filter(tmp_path, capsys):
    path = tmp_path / "decode.jsonl"
    assert main(["trace", "--model", "llama-2-7b", "--phase", "decode", "--prompt", "16", "--generate", "3",
                 "-o", str(path)]) == 0
    _, ops = read_trace(path)
    assert {op.phase for op in ops} == {Phase.DECODE}
    assert sorted({op.step for op in ops}) == [1, 2]
    assert len(ops) == 2 * (32 * 9 + 2)


def test_cli_bad_trace_row_exit_2_one_line(tmp_path):
    good = tmp_path / "ok.jsonl"
    write_trace([Op(name="sm", kind=OpKind.SOFTMAX, elements=64)] * 3, good)
    lines = good.read_text().splitlines()
    row = json.loads(lines[2])
    row["m"] = -1
    lines[2] = json.dumps(row)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "-m", "mixpe_sys.cli", "run", "--trace", str(bad), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert f"{bad}:3:" in err[0] and "'m'" in err[0]
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- shipped example traces


def _examples() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".jsonl", ".csv"))


def test_examples_are_documented():
    files = _examples()
    assert len(files) >= 3
    readme = (EXAMPLES / "README.md").read_text()
    for path in files:
        assert path.name in readme, path.name
        assert f"-o traces/examples/{path.name}" in readme, path.name


@pytest.mark.parametrize("name", [p.name for p in _examples()])
def test_example_trace_loads_and_runs(name):
    path = EXAMPLES / name
    meta, ops = read_trace(path)
    model = load_model(meta["model"])
    design = load_design(meta["design"])
    header_lines = 2 if path.suffix == ".csv" else 1
    assert len(ops) == len(path.read_text().splitlines()) - header_lines
    if meta["workload"] == "paper":
        assert len(ops) == model.num_layers * 8
        assert all(op.batch == 1 and op.m == meta["batch"] for op in ops)
    else:
        phases = {op.phase for op in ops}
        # traces written before fused attention hold its three unfused kernels per layer
        fused = any(op.kind is OpKind.ATTENTION for op in ops)
        per_phase = model.num_layers * (9 if fused else 11) + 2
        steps = len({(op.phase, op.step) for op in ops})
        assert len(ops) == steps * per_phase
        if phases == {Phase.DECODE}:
            assert steps == meta["generate"] - 1
            qk = [op for op in ops if op.kind in (OpKind.ATTN_QK, OpKind.ATTENTION)]
            assert all(op.n == meta["prompt"] + op.step for op in qk)
        if Phase.PREFILL in phases:
            qkv = next(op for op in ops if op.name == "qkv")
            assert qkv.m == meta["batch"] * meta["prompt"]
    res = simulate_ops_result(ops, design, model_name=meta["model"], workload=meta["workload"],
                              batch=meta["batch"], prompt=meta["prompt"], generate=meta["generate"])
    assert len(res.ops) == len(ops)
    assert res.total_time_s > 0
    assert res.simulated_ops < len(ops)  # repeated layers reuse their costs
