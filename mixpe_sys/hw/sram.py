"""On-chip SRAM buffer: capacity, banks x width bytes per cycle, double-buffered slots."""

from __future__ import annotations

from math import ceil

from ..errors import MappingError
from ..metrics.recorder import Recorder
from .config import SramConfig
from .fifo import FifoServer


def port_cycles(nbytes: int, config: SramConfig) -> int:
    """Cycles a port of ``config`` needs for ``nbytes``: ``ceil(bytes / (banks x width))``."""
    return ceil(nbytes / config.bytes_per_cycle) if nbytes > 0 else 0


def check_fits(config: SramConfig, nbytes: int, buffer: str, what: str) -> None:
    """Raise MappingError naming ``buffer``, the tile bytes and the slot bytes if ``nbytes`` overflow a slot."""
    if nbytes > config.slot_bytes:
        raise MappingError(f"{what} tile of {nbytes} B does not fit buffer '{buffer}' "
                           f"(slot {config.slot_bytes} B of {config.capacity_bytes} B"
                           f"{', double-buffered' if config.double_buffered else ''})")


class SramBuffer:
    """An SRAM buffer whose DMA port is a FIFO server; reads by the array go
    through the array-side port and are charged inside the tile step
    (:mod:`mixpe_sys.hw.tile_step`).

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
        self.port = FifoServer(f"{name}.dma_port")
        recorder.add_unit(self.port)
        self.read_bytes = 0
        self.write_bytes = 0

    def check_fits(self, nbytes: int, what: str) -> None:
        """Raise MappingError if a tile of ``nbytes`` does not fit one slot."""
        check_fits(self.config, nbytes, self.name, what)

    def write_ns(self, nbytes: int) -> float:
        """Time to move ``nbytes`` through the port at banks x width bytes/cycle (ns)."""
        return port_cycles(nbytes, self.config) * self.cycle_ns

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
