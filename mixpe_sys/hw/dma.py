"""DMA engine: moves operand tiles DRAM -> (global buffer ->) tile buffers, and outputs back.

A transfer streams through every stage on its path at once (DRAM channels,
interconnect links, SRAM ports), so it ends when its slowest stage ends, plus
the sum of the stages' latencies.
"""

from __future__ import annotations

from .dram import Dram
from .noc import DRAM_NODE, GBUF_NODE, Interconnect, tile_node
from .sram import SramBuffer


class Dma:
    """Moves data between DRAM, the optional global buffer and the tiles' buffers.

    Parameters
    ----------
    env:
        The SimPy environment.
    dram:
        The DRAM.
    noc:
        The interconnect, or None when tiles are wired straight to DRAM.
    global_buffer:
        The shared activation staging buffer, or None.
    """

    def __init__(self, env, dram: Dram, noc: Interconnect | None, global_buffer: SramBuffer | None):
        self.env = env
        self.dram = dram
        self.noc = noc
        self.global_buffer = global_buffer
        self._staged: dict = {}  # activation tile key -> when it is in the global buffer (ns)

    def staged_ns(self, key) -> float | None:
        """When activation tile ``key`` is (or will be) in the global buffer (ns); None if never staged."""
        return self._staged.get(key)

    def staged_times(self):
        """Staging times (ns) of every staged activation tile."""
        return self._staged.values()

    def add_staged(self, staged: dict) -> None:
        """Record activation tiles staged outside the simulation (``{key: ns}``, e.g. skipped periods)."""
        self._staged.update(staged)

    def _path(self, now: float, src: str, dst: str, nbytes: int) -> tuple[float, float]:
        if self.noc is None:
            return now, 0.0
        return self.noc.reserve(now, src, dst, nbytes)

    def book_load(self, now: float, tile: int, buffer: SramBuffer, addr: int, nbytes: int) -> float:
        """Book DRAM -> tile buffer for ``nbytes`` arriving at ``now``; return when it lands (ns)."""
        end = self.dram.reserve(now, addr, nbytes)
        noc_end, noc_lat = self._path(now, DRAM_NODE, tile_node(tile), nbytes)
        end = max(end, noc_end, buffer.reserve_write(now, nbytes))
        return end + self.dram.config.latency_ns + noc_lat + buffer.latency_ns

    def stage(self, now: float, key, addr: int, nbytes: int) -> tuple[float, int]:
        """Stage activation tile ``key`` in the global buffer, reading DRAM only on first request.

        Returns (when it is in the global buffer ns, DRAM bytes this call read:
        ``nbytes`` for the first request, 0 after).
        """
        staged = self._staged.get(key)
        if staged is not None:
            return staged, 0
        gbuf = self.global_buffer
        end = self.dram.reserve(now, addr, nbytes)
        noc_end, noc_lat = self._path(now, DRAM_NODE, GBUF_NODE, nbytes)
        end = max(end, noc_end, gbuf.reserve_write(now, nbytes))
        staged = self._staged[key] = end + self.dram.config.latency_ns + noc_lat + gbuf.latency_ns
        return staged, nbytes

    def book_copy(self, now: float, tile: int, buffer: SramBuffer, nbytes: int) -> float:
        """Book a staged activation tile's copy global buffer -> tile buffer at ``now``; return when it lands (ns)."""
        gbuf = self.global_buffer
        noc_end, noc_lat = self._path(now, GBUF_NODE, tile_node(tile), nbytes)
        end = max(gbuf.reserve_read(now, nbytes), noc_end, buffer.reserve_write(now, nbytes))
        return end + gbuf.latency_ns + noc_lat + buffer.latency_ns

    def book_keep(self, now: float, tile: int, buffer: SramBuffer, key, nbytes: int) -> float:
        """Book tile buffer -> global buffer for ``nbytes`` at ``now``, kept there under ``key`` (a split-K
        partial sum, which :meth:`stage` then finds staged); return when it is written (ns)."""
        gbuf = self.global_buffer
        noc_end, noc_lat = self._path(now, tile_node(tile), GBUF_NODE, nbytes)
        end = max(gbuf.reserve_write(now, nbytes), noc_end, buffer.reserve_read(now, nbytes))
        done = self._staged[key] = end + gbuf.latency_ns + noc_lat + buffer.latency_ns
        return done

    def book_store(self, now: float, tile: int, buffer: SramBuffer, addr: int, nbytes: int) -> float:
        """Book tile buffer -> DRAM for ``nbytes`` at ``now``; return when it is written (ns)."""
        end = self.dram.reserve(now, addr, nbytes, write=True)
        noc_end, noc_lat = self._path(now, tile_node(tile), DRAM_NODE, nbytes)
        end = max(end, noc_end, buffer.reserve_read(now, nbytes))
        return end + self.dram.config.latency_ns + noc_lat + buffer.latency_ns
