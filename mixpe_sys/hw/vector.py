"""The vector unit's timing rule (softmax, norms, activations, elementwise ops)."""

from __future__ import annotations

from math import ceil

from .config import VectorUnitConfig


def vector_cycles(element_ops: int, config: VectorUnitConfig) -> int:
    """Cycles for ``element_ops`` element operations: ``ceil(ops / lanes) + depth`` (0 if none)."""
    if element_ops <= 0:
        return 0
    return ceil(element_ops / config.lanes) + config.latency_cycles
