"""Flat record rows and the recorder components append them to."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True, slots=True)
class StepRecord:
    """Timeline of one tile step (times in ns from the start of its operation)."""

    op_id: int
    tile: int
    step: int
    inst: int
    i: int
    j: int
    kk: int
    m: int
    n: int
    k: int
    load_start_ns: float
    load_end_ns: float
    compute_start_ns: float
    compute_end_ns: float
    done_ns: float  # dequantized and (when last along K) written back
    macs: int
    compute_cycles: int
    array_cycles: int
    dequant_cycles: int
    dequant_stall_ns: float  # array waited for the dequant unit
    dram_read_bytes: int
    dram_write_bytes: int
    sram_read_bytes: int
    sram_write_bytes: int


class Recorder:
    """Collects record rows; reports turn them into DataFrames.

    Parameters
    ----------
    steps:
        Keep one :class:`StepRecord` per tile step. Runs that need only
        totals turn this off; components then skip building the rows.
    """

    def __init__(self, steps: bool = True) -> None:
        self.record_steps = steps
        self.steps: list[StepRecord] = []

    def step(self, record: StepRecord) -> None:
        """Append one tile-step record."""
        self.steps.append(record)

    def steps_frame(self) -> pd.DataFrame:
        """All tile-step records, one row each, ordered by tile and step."""
        cols = [f.name for f in dataclasses.fields(StepRecord)]
        df = pd.DataFrame([dataclasses.astuple(r) for r in self.steps], columns=cols)
        return df.sort_values(["op_id", "tile", "step"], kind="stable").reset_index(drop=True)
