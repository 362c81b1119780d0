"""On-chip SRAM buffer: capacity, banks x width bytes per cycle, double-buffered slots."""

from __future__ import annotations

from math import ceil

from ..errors import MappingError
from ..metrics.recorder import Recorder
from .config import SramConfig
from .fifo import FifoServer


class SramBuffer:
    """An SRAM buffer whose write port is a FIFO server; reads by the array are
    charged inside the tile step (see :mod:`mixpe_sys.mapping.gemm`).

    Parameters
    ----------
    env:
        The SimPy environment.
    config:
        Capacity, banks, width, double buffering.
    recorder:
        Where records go.
    name:
        Label, e.g. ``tile0.weight``.
    cycle_ns:
        Core clock period (ns).
    """

    def __init__(self, env, config: SramConfig, recorder: Recorder, name: str, cycle_ns: float):
        self.env = env
        self.config = config
        self.recorder = recorder
        self.name = name
        self.cycle_ns = cycle_ns
        self.port = FifoServer(name)
        self._bytes_per_cycle = config.bytes_per_cycle
        self.read_bytes = 0
        self.write_bytes = 0

    def check_fits(self, nbytes: int, what: str) -> None:
        """Raise MappingError if a tile of ``nbytes`` does not fit one slot."""
        if nbytes > self.config.slot_bytes:
            raise MappingError(f"{what} tile of {nbytes} B does not fit {self.name} "
                               f"(slot {self.config.slot_bytes} B of {self.config.capacity_bytes} B)")

    def write_ns(self, nbytes: int) -> float:
        """Time to write ``nbytes`` through the port at banks x width bytes/cycle (ns)."""
        return ceil(nbytes / self._bytes_per_cycle) * self.cycle_ns

    def reserve_write(self, now_ns: float, nbytes: int) -> float:
        """Book a write of ``nbytes`` arriving at ``now_ns``; return its finish (ns)."""
        self.write_bytes += nbytes
        return self.port.reserve(now_ns, self.write_ns(nbytes), nbytes)

    def reserve_read(self, now_ns: float, nbytes: int) -> float:
        """Book a read of ``nbytes`` through the same port (a DMA out of the buffer); return its finish (ns)."""
        self.read_bytes += nbytes
        return self.port.reserve(now_ns, self.write_ns(nbytes), nbytes)

    @property
    def latency_ns(self) -> float:
        """Access latency (ns)."""
        return self.config.latency_cycles * self.cycle_ns
