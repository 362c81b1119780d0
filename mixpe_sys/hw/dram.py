"""DRAM: address-interleaved channels, each a FIFO server, with latency and optional row-buffer timing."""

from __future__ import annotations

from ..metrics.recorder import Recorder
from .config import DramConfig
from .fifo import FifoServer


def channel_bytes(addr: int, nbytes: int, interleave_bytes: int, channels: int) -> list[int]:
    """Bytes of ``[addr, addr + nbytes)`` that fall in each channel under block interleaving.

    Block ``b = address // interleave_bytes`` lives in channel ``b % channels``.
    """
    out = [0] * channels
    if nbytes <= 0:
        return out
    end = addr + nbytes
    first, last = addr // interleave_bytes, (end - 1) // interleave_bytes
    if first == last:
        out[first % channels] = nbytes
        return out
    out[first % channels] += (first + 1) * interleave_bytes - addr
    out[last % channels] += end - last * interleave_bytes
    inner_first, inner_count = first + 1, last - first - 1
    full_rounds, rest = divmod(inner_count, channels)
    for c in range(channels):
        out[c] += full_rounds * interleave_bytes
    for r in range(rest):
        out[(inner_first + r) % channels] += interleave_bytes
    return out


class Dram:
    """Off-chip DRAM with ``channels`` FIFO channels sharing the peak bandwidth.

    A transfer is split over the channels by address interleaving; each
    channel serves its share at its bandwidth in arrival order; the transfer
    completes when its last share is done, plus the access latency (which
    does not occupy a channel: requests are pipelined). With row-buffer timing
    each row activation adds ``(tRP + tRCD) / banks`` to the channel's
    service time (bank-level parallelism hides the rest).
    """

    def __init__(self, env, config: DramConfig, recorder: Recorder):
        self.env = env
        self.config = config
        self.recorder = recorder
        self.channels = [FifoServer(f"dram.ch{c}") for c in range(config.channels)]
        self._ns_per_byte = 1e9 / config.channel_bandwidth_bytes_per_s
        rb = config.row_buffer
        self._open_rows = [[-1] * rb.banks_per_channel for _ in range(config.channels)] if rb else None
        self._activation_ns = (rb.t_rp_ns + rb.t_rcd_ns) / rb.banks_per_channel if rb else 0.0
        self.read_bytes = 0
        self.write_bytes = 0

    def reserve(self, now_ns: float, addr: int, nbytes: int, write: bool = False) -> float:
        """Book a transfer arriving at ``now_ns``; return when its data is all through (ns), latency excluded."""
        cfg = self.config
        end = now_ns
        shares = channel_bytes(addr, nbytes, cfg.interleave_bytes, cfg.channels)
        ns_per_byte = self._ns_per_byte
        open_rows = self._open_rows
        for c, share in enumerate(shares):
            if share:
                service = share * ns_per_byte
                if open_rows is not None:
                    service += self._activations(c, addr, share) * self._activation_ns
                finish = self.channels[c].reserve(now_ns, service, share)
                if finish > end:
                    end = finish
        if write:
            self.write_bytes += nbytes
        else:
            self.read_bytes += nbytes
        return end

    def _activations(self, channel: int, addr: int, share: int) -> int:
        """Row activations needed by ``share`` bytes of channel ``channel`` for a transfer at ``addr``.

        The share is contiguous in the channel's local address space, so it
        touches consecutive rows; only the first row per bank can hit an open row.
        """
        cfg, rb = self.config, self.config.row_buffer
        first_block = addr // cfg.interleave_bytes
        block = first_block + (channel - first_block) % cfg.channels
        local = (block // cfg.channels) * cfg.interleave_bytes
        first_row, last_row = local // rb.row_bytes, (local + share - 1) // rb.row_bytes
        banks = rb.banks_per_channel
        open_rows = self._open_rows[channel]
        misses = last_row - first_row + 1
        for r in range(first_row, min(last_row, first_row + banks - 1) + 1):
            if open_rows[r % banks] == r:
                misses -= 1
        for r in range(max(first_row, last_row - banks + 1), last_row + 1):
            open_rows[r % banks] = r
        return misses

    def transfer(self, addr: int, nbytes: int, write: bool = False):
        """SimPy process body: ``yield from dram.transfer(addr, n)`` waits until the transfer is done."""
        end = self.reserve(self.env.now, addr, nbytes, write)
        yield self.env.timeout(end - self.env.now + self.config.latency_ns)
