"""The speedup/energy experiment script runs and writes its tables (paper section, one model)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "paper_speedup_energy.py"


def _load():
    spec = importlib.util.spec_from_file_location("paper_speedup_energy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_paper_section_writes_tables_and_chart(tmp_path):
    mod = _load()
    assert mod.main([str(tmp_path), "--models", "opt-6.7b", "--sections", "paper"]) == 0
    for name in ("paper.csv", "summary.csv", "report.md", "paper_speedup_energy.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    df = pd.read_csv(tmp_path / "paper.csv")
    assert list(df["label"]) == ["MixPE-W4A8", "ANT", "BitFusion", "INT8", "MixPE-W4A16", "FP16"]
    fp16 = df[df["label"] == "FP16"].iloc[0]
    assert fp16["norm_time_s"] == 1.0 and fp16["norm_energy_j"] == 1.0
    assert (df["time_error_pct"].abs() < 5).all()
    assert (df["energy_error_pct"].abs() < 15).all()
    report = (tmp_path / "report.md").read_text()
    assert "Where the conclusions differ" in report and "published" in report


def test_published_table_sums():
    mod = _load()
    assert mod.published("opt-6.7b", "INT8")["energy"] == pytest.approx(0.49)
    assert mod.published("llama-2-13b", "INT8")["energy"] == pytest.approx(0.51)
    assert mod.published("opt-6.7b", "FP16")["energy"] == pytest.approx(1.0)
