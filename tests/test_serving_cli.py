"""``mixpe-sim replay``: JSON figures, output files, one-line errors with exit code 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mixpe_sys.cli import main
from mixpe_sys.serving.results import ITERATION_COLUMNS, REQUEST_COLUMNS

TINY_CONFIG = {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 688,
               "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
               "max_position_embeddings": 4096}
JSON_KEYS = {"requests", "completed", "throughput_tokens_per_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
             "tpot_p99_s", "e2e_p50_s", "e2e_p99_s", "energy_per_token_j", "preemptions", "iterations",
             "simulated_ops", "wall_s"}


def run(argv) -> int:
    """Exit code of ``mixpe-sim ARGV`` (argparse errors exit through SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.fixture()
def files(tmp_path):
    model = tmp_path / "tiny" / "config.json"
    model.parent.mkdir()
    model.write_text(json.dumps(TINY_CONFIG))
    trace = tmp_path / "trace.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:17:03.9799600,40,5\n"
                     "2023-11-16 18:17:03.9799700,12,3\n"
                     "2023-11-16 18:17:03.9800600,90,1\n"
                     "2023-11-16 18:17:03.9900600,7,8\n")
    return model, trace


def test_replay_json(files, capsys):
    model, trace = files
    assert main(["replay", str(trace), "--model", str(model), "--json", "--max-batch", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert JSON_KEYS <= set(out)
    assert out["requests"] == out["completed"] == 4
    assert out["output_tokens"] == 17 and out["batching"] == "continuous" and out["max_batch"] == 2
    assert out["design"] == "mixpe-w4a8" and out["max_batched_tokens"] == 4096
    assert out["energy_per_token_j"] is None or out["energy_per_token_j"] > 0


@pytest.mark.parametrize("extra", [["--batching", "static"], ["--chunked-prefill", "--max-batched-tokens", "16", "--max-batch", "4"],
                                   ["--cost-model", "interpolated", "--rate-scale", "2", "--limit", "3"]])
def test_replay_out_dir_and_table(files, tmp_path, capsys, extra):
    model, trace = files
    out = tmp_path / "res"
    assert main(["replay", str(trace), "--model", str(model), "--out", str(out), *extra]) == 0
    text = capsys.readouterr().out
    assert "TTFT p50 / p99" in text and "throughput" in text
    req = pd.read_csv(out / "requests.csv")
    it = pd.read_csv(out / "iterations.csv")
    assert tuple(req.columns) == REQUEST_COLUMNS and tuple(it.columns) == ITERATION_COLUMNS
    assert len(req) == (3 if "--limit" in extra else 4)
    assert it["output_tokens"].sum() == req["output_tokens"].sum()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    if "--rate-scale" in extra:
        assert req["arrival_s"].max() == pytest.approx(0.00010 / 2)


def test_bad_trace_row_exits_2_with_file_and_line(files, tmp_path, capsys):
    model, _ = files
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                   "2023-11-16 18:17:03.9799600,40,5\n"
                   "2023-11-16 18:17:04.0000000,-3,5\n")
    assert main(["replay", str(bad), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bad}:3: field 'ContextTokens'" in err


@pytest.mark.parametrize("argv,message", [
    (["--batching", "static", "--chunked-prefill"], "chunked_prefill"),
    (["--max-batch", "0"], "--max-batch"),
    (["--rate-scale", "-1"], "--rate-scale"),
    (["--batching", "dynamic"], "--batching"),
    (["--design", "no-such-design"], "no-such-design"),
])
def test_bad_options_exit_2(files, capsys, argv, message):
    model, trace = files
    assert run(["replay", str(trace), "--model", str(model), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_request_larger_than_the_kv_cache_exits_2(files, tmp_path, capsys):
    model, trace = files
    design = tmp_path / "small.yaml"
    design.write_text("dram: {capacity_bytes: 1050000}\n")
    assert main(["replay", str(trace), "--model", str(model), "--config", str(design)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "request 2 needs 90 KV-cache tokens" in err
