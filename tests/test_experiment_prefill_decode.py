import pytest
"""experiments/prefill_vs_decode.py runs and its figures follow from its own rows."""

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "prefill_vs_decode.py"


def load_script():
    spec = importlib.util.spec_from_file_location("prefill_vs_decode", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_writes_its_files(tmp_path):
    assert load_script().main([str(tmp_path), "--designs", "mixpe-w4a8", "--quick"]) == 0
    for name in ("roofline_ops.csv", "roofline.png", "batch_sweep.csv", "batch_sweep.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    sweep = pd.read_csv(tmp_path / "batch_sweep.csv")
    assert list(sweep["batch"]) == [1, 16, 256]
    # tokens/s is batch over step time, and batching never makes a step shorter
    assert (abs(sweep["tokens_per_s"] - sweep["batch"] / sweep["step_time_s"]) < 1e-9 * sweep["tokens_per_s"]).all()
    assert sweep["step_time_s"].is_monotonic_increasing
    assert sweep.loc[0, "memory_bound_share"] > 0.9
    ops = pd.read_csv(tmp_path / "roofline_ops.csv")
    dram = ops["dram_read_bytes"] + ops["dram_write_bytes"]
    assert ((ops["intensity_macs_per_byte"] - ops["macs"] / dram).abs() <= 1e-9 * ops["intensity_macs_per_byte"]).all()
