import pytest
"""experiments/serving_azure.py runs on a few requests and records what it replayed."""

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "serving_azure.py"


@pytest.mark.slow
def test_serving_experiment_writes_its_files(tmp_path):
    spec = importlib.util.spec_from_file_location("serving_azure", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(tmp_path), "--limit", "3", "--designs", "mixpe-w4a8"]) == 0
    df = pd.read_csv(tmp_path / "serving.csv")
    assert list(df["trace"]) == ["code", "conv"]
    assert (df["status"] == "ok").all() and (df["completed"] == 3).all()
    assert (df["ttft_p50_s"] <= df["ttft_p99_s"]).all() and (df["tpot_p50_s"] <= df["tpot_p99_s"]).all()
    assert (tmp_path / "serving.png").stat().st_size > 0
    assert "CC-BY" in (tmp_path / "summary.md").read_text()
