"""The recorder components report to: tile-step records and every unit's busy time."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from .records import StepCost, StepRecord


class Unit(Protocol):
    """Anything that accumulates busy time: a FIFO server, a tile's array or dequant unit."""

    name: str
    busy_ns: float


class BusyCounter:
    """Busy time of a unit that no other component books (a tile's array, dequant or vector unit)."""

    __slots__ = ("name", "busy_ns")

    def __init__(self, name: str):
        self.name = name
        self.busy_ns = 0.0


class Recorder:
    """Collects tile-step records and the units whose busy time makes the utilization report.

    Parameters
    ----------
    steps:
        Keep one :class:`StepRecord` per tile step. Runs that need only
        totals turn this off; components then skip building the rows.
    """

    def __init__(self, steps: bool = True) -> None:
        self.record_steps = steps
        self.steps: list[StepRecord] = []
        self.units: list[Unit] = []

    def step(self, record: StepRecord) -> None:
        """Append one tile-step record."""
        self.steps.append(record)

    def add_unit(self, unit: Unit) -> None:
        """Register a unit whose ``busy_ns`` the utilization report reads."""
        self.units.append(unit)

    def busy_ns(self) -> dict[str, float]:
        """``{unit name: busy time ns}`` of every registered unit, in registration order."""
        return {u.name: u.busy_ns for u in self.units}

    def steps_frame(self) -> pd.DataFrame:
        """All tile-step records, one row each, ordered by tile and step."""
        cols = [f for f in StepRecord.__slots__ if f != "cost"] + list(StepCost._fields)
        df = pd.DataFrame([r.row() for r in self.steps], columns=cols)
        return df.sort_values(["op_id", "tile", "step"], kind="stable").reset_index(drop=True)
