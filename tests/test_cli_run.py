"""``mixpe-sim models | run``: JSON figures, report files, Chrome trace, argument errors."""

from __future__ import annotations

import contextlib
import io
import json
import math

import pandas as pd
import pytest

from mixpe_sys.cli import main

RUN = ["run", "--model", "llama-2-7b", "--prompt", "64", "--generate", "4"]
KEYS = ("prefill_time_s", "decode_time_s", "total_time_s", "time_per_output_token_s", "tokens_per_s",
        "dram_read_bytes", "dram_write_bytes", "memory_bound_share_prefill", "memory_bound_share_decode")
OPS_PER_STEP = 32 * 9 + 2  # Llama-2-7B: 32 layers x 9 kernels (fused attention), final add-norm, LM head


def _one_json(capsys, argv) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """``run ... --json --out DIR`` once: (figures, DIR)."""
    out = tmp_path_factory.mktemp("run")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*RUN, "--json", "--out", str(out)]) == 0
    return json.loads(buf.getvalue()), out


def test_run_json_figures(run_dir):
    fig, _ = run_dir
    for key in KEYS:
        assert key in fig, key
    assert (fig["model"], fig["design"], fig["workload"]) == ("llama-2-7b", "mixpe-w4a8", "full")
    assert (fig["batch"], fig["prompt_tokens"], fig["generate_tokens"]) == (1, 64, 4)
    assert fig["ops"] == 4 * OPS_PER_STEP
    assert math.isclose(fig["prefill_time_s"] + fig["decode_time_s"], fig["total_time_s"], rel_tol=1e-12)
    # 4 tokens per sequence; the first comes from prefill, the other 3 from decode steps
    assert fig["time_per_output_token_s"] == pytest.approx(fig["decode_time_s"] / 3, rel=1e-12)
    assert fig["tokens_per_s"] == pytest.approx(4 / fig["total_time_s"], rel=1e-12)
    # every decode step reads at least the ~3.5 GB of INT4 weights, scales and zero points
    assert fig["dram_read_bytes"] > 4 * 3.4e9
    assert 0.0 <= fig["memory_bound_share_prefill"] < 0.5 < 0.9 < fig["memory_bound_share_decode"] <= 1.0
    assert fig["simulated_ops"] < fig["ops"]


def test_run_out_dir_reports(run_dir):
    fig, out = run_dir
    assert {p.name for p in out.iterdir()} == {"ops.csv", "layers.csv", "phases.csv", "timeline.json", "summary.json",
                                                 "utilization.csv"}
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    ops = pd.read_csv(out / "ops.csv")
    layers = pd.read_csv(out / "layers.csv")
    phases = pd.read_csv(out / "phases.csv")
    assert len(ops) == fig["ops"]
    assert len(layers) == 4 * 33  # (prefill + 3 decode steps) x (32 layers + the LM-head group)
    assert list(phases["phase"]) == ["prefill", "decode"]
    assert ops["time_s"].sum() == pytest.approx(fig["total_time_s"], rel=1e-9)
    assert phases["time_s"].sum() == pytest.approx(fig["total_time_s"], rel=1e-9)
    assert int(ops["dram_read_bytes"].sum()) == fig["dram_read_bytes"]
    assert set(ops["roofline_bound"]) <= {"memory", "compute"}

    timeline = json.loads((out / "timeline.json").read_text())
    events = timeline["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == fig["ops"]
    for e in spans:
        assert isinstance(e["ts"], (int, float)) and isinstance(e["dur"], (int, float))
        assert e["ts"] >= 0 and e["dur"] > 0
        assert "name" in e and "pid" in e and "tid" in e
    # microseconds, back to back: the last span ends at the total time
    last = spans[-1]
    assert last["ts"] + last["dur"] == pytest.approx(fig["total_time_s"] * 1e6, rel=1e-9)
    assert {e["tid"] for e in spans} == {0, 1}  # PE arrays and vector units
    assert any(e["ph"] == "M" for e in events)
    assert json.loads((out / "summary.json").read_text()) == fig  # the headline figures, as printed


def test_run_text_output(capsys):
    capsys.readouterr()
    assert main(RUN) == 0
    text = capsys.readouterr().out
    assert text.startswith("llama-2-7b on mixpe-w4a8")
    for label in ("prefill", "decode", "total", "time per output token", "tokens/s", "DRAM read / write"):
        assert label in text
    # energy (total and per output token) and the design's area, as --json gives them
    capsys.readouterr()
    assert main([*RUN, "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    rows = {line.split("  ")[1]: line for line in text.splitlines()[1:] if line.startswith("  ") and
            not line.startswith("    ")}
    assert fig["output_tokens"] == 4  # batch 1: the first token from prefill, then 3 decode steps
    assert fig["energy_per_output_token_j"] == pytest.approx(fig["energy_j"] / 4, rel=1e-12)
    assert f"{fig['energy_j'] * 1e3:.4g} mJ" in rows["energy"]
    assert f"{fig['energy_per_output_token_j'] * 1e3:.4g} mJ (4 tokens)" in rows["energy per output token"]
    assert f"{fig['area_mm2']:.3f} mm^2" in rows["area"]


def test_models_lists_seven(capsys):
    rows = _one_json(capsys, ["models", "--json"])
    names = [r["name"] for r in rows]
    assert sorted(names) == sorted(["llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "mistral-7b",
                                    "opt-6.7b", "opt-13b"])
    by_name = {r["name"]: r for r in rows}
    assert (by_name["llama-2-70b"]["layers"], by_name["llama-2-70b"]["kv_heads"]) == (80, 8)
    capsys.readouterr()
    assert main(["models"]) == 0
    table = capsys.readouterr().out.strip().splitlines()
    assert len(table) == 1 + 7


def test_paper_workload_needs_no_prompt(capsys):
    fig = _one_json(capsys, ["run", "--model", "opt-6.7b", "--workload", "paper", "--batch", "64",
                             "--design", "paper-mixpe-w4a8", "--json"])
    assert fig["workload"] == "paper"
    assert fig["ops"] == 32 * 8
    assert fig["prefill_time_s"] == 0.0 and fig["memory_bound_share_prefill"] is None
    assert fig["total_time_s"] > 0
    assert fig["decode_time_s"] == pytest.approx(fig["total_time_s"], rel=1e-12)
    # one token per sequence: 64 tokens in the whole run
    assert fig["tokens_per_s"] == pytest.approx(64 / fig["total_time_s"], rel=1e-12)
    # 4 linear layers x 32 layers at 64 x K x N, plus the dequant GEMMs 64 x K/8 x N/128
    h = 4096
    shapes = [(h, 3 * h), (h, h), (h, 4 * h), (4 * h, h)]
    macs = 32 * sum(64 * k * n + 64 * (k // 8) * (n // 128) for k, n in shapes)
    assert fig["macs"] == macs


@pytest.mark.parametrize("argv, words", [
    (["run", "--model", "llama-2-7b", "--generate", "0"], "--generate"),
    (["run", "--model", "llama-2-7b", "--prompt", "-1"], "--prompt"),
    (["run", "--trace", "no-such-trace.jsonl"], "no-such-trace.jsonl"),
    (["run", "--model", "no-such-model", "--prompt", "8", "--generate", "2"], "no-such-model"),
    (["run", "--model", "llama-2-7b", "--prompt", "0", "--generate", "2"], "positive"),
    (["run", "--model", "llama-2-7b", "--prompt", "8", "--generate", "2", "--workload", "half"], "half"),
    (["run", "--model", "llama-2-7b", "--prompt", "8", "--generate", "2", "--attention", "partly"], "partly"),
])
def test_run_errors_exit_2_one_line(capsys, argv, words):
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors leave through parser.exit
        code = exc.code
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert words in lines[0]
    assert lines[0].startswith("mixpe-sim")


def test_run_attention_unfused(capsys):
    """``--attention unfused``: QK^T, softmax and PV as three kernels per layer, labelled in the figures."""
    argv = ["run", "--model", "llama-2-7b", "--prompt", "16", "--generate", "2", "--json", "--no-cache"]
    fused = _one_json(capsys, argv)
    unfused = _one_json(capsys, [*argv, "--attention", "unfused"])
    assert (fused["attention"], unfused["attention"]) == ("fused", "unfused")
    assert fused["ops"] == 2 * OPS_PER_STEP and unfused["ops"] == 2 * (32 * 11 + 2)
    # the scores go through DRAM only when unfused
    assert unfused["dram_read_bytes"] + unfused["dram_write_bytes"] > fused["dram_read_bytes"] + fused[
        "dram_write_bytes"]
