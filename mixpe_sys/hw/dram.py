"""DRAM: address-interleaved channels, each a FIFO server, with latency and optional row-buffer timing."""

from __future__ import annotations

from ..metrics.recorder import Recorder
from .config import DramConfig
from .fifo import FifoServer


def channel_spans(addr: int, nbytes: int, interleave_bytes: int, channels: int) -> list[tuple[int, int, int]]:
    """``(channel, bytes, first block)`` for each channel that ``[addr, addr + nbytes)`` touches.

    Block ``b = address // interleave_bytes`` lives in channel ``b % channels``;
    a channel's share is contiguous in its local address space, starting at
    its first block.
    """
    if nbytes <= 0:
        return []
    end = addr + nbytes
    first, last = addr // interleave_bytes, (end - 1) // interleave_bytes
    n = last - first + 1  # blocks touched
    if n == 1:
        return [(first % channels, nbytes, first)]
    if n <= channels:  # one block in each of n channels
        spans = [(b % channels, interleave_bytes, b) for b in range(first, last + 1)]
    else:  # channel first + t holds q + 1 blocks for t < r, q blocks otherwise
        q, r = divmod(n, channels)
        more, fewer, split = (q + 1) * interleave_bytes, q * interleave_bytes, first + r
        spans = [(b % channels, more if b < split else fewer, b) for b in range(first, first + channels)]
    # less the part of the first block before addr, and of the last block after end
    c, share, b = spans[0]
    spans[0] = (c, share - (addr - first * interleave_bytes), b)
    t = (n - 1) % channels  # the span holding the last block
    c, share, b = spans[t]
    spans[t] = (c, share - ((last + 1) * interleave_bytes - end), b)
    return spans


def channel_bytes(addr: int, nbytes: int, interleave_bytes: int, channels: int) -> list[int]:
    """Bytes of ``[addr, addr + nbytes)`` that fall in each channel under block interleaving."""
    out = [0] * channels
    for c, share, _ in channel_spans(addr, nbytes, interleave_bytes, channels):
        out[c] = share
    return out


def row_activation_ns(config: DramConfig) -> float:
    """Channel time of one row activation: ``(tRP + tRCD) / banks`` (bank parallelism hides the rest); 0
    without row-buffer timing."""
    rb = config.row_buffer
    return (rb.t_rp_ns + rb.t_rcd_ns) / rb.banks_per_channel if rb is not None else 0.0


def streaming_channel_bytes_per_s(config: DramConfig) -> float:
    """Sustained bandwidth of one channel for a long sequential stream (bytes/s).

    The channel's bandwidth x efficiency; with row-buffer timing, each ``row_bytes`` row also
    costs one activation, ``(tRP + tRCD) / banks`` of channel time (as :class:`Dram` charges it).
    """
    rate = config.channel_bandwidth_bytes_per_s
    rb = config.row_buffer
    if rb is None:
        return rate
    row_s = rb.row_bytes / rate + row_activation_ns(config) * 1e-9
    return rb.row_bytes / row_s


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
        for ch in self.channels:
            recorder.add_unit(ch)
        self._ns_per_byte = 1e9 / config.channel_bandwidth_bytes_per_s
        rb = config.row_buffer
        self._open_rows = [[-1] * rb.banks_per_channel for _ in range(config.channels)] if rb else None
        self._activation_ns = row_activation_ns(config)
        self._row_geometry = (config.channels, config.interleave_bytes, rb.row_bytes, rb.banks_per_channel) if rb else None
        self._n_channels, self._interleave = config.channels, config.interleave_bytes
        self._row_bytes, self._banks = (rb.row_bytes, rb.banks_per_channel) if rb else (0, 0)
        self.read_bytes = 0
        self.write_bytes = 0

    def reserve(self, now_ns: float, addr: int, nbytes: int, write: bool = False) -> float:
        """Book a transfer arriving at ``now_ns``; return when its data is all through (ns), latency excluded.

        Each channel share of :func:`channel_spans` is served by its channel's FIFO server for
        ``share / bandwidth`` plus, with row-buffer timing, :meth:`_activations` row activations; the
        spans and the row rule are worked out inline here (the simulation's hottest loop), exactly as
        those functions do."""
        if write:
            self.write_bytes += nbytes
        else:
            self.read_bytes += nbytes
        if nbytes <= 0:
            return now_ns
        channels = self.channels
        n_ch, interleave = self._n_channels, self._interleave
        end_addr = addr + nbytes
        first, last = addr // interleave, (end_addr - 1) // interleave
        n = last - first + 1
        head_cut = addr - first * interleave  # bytes of the first block before addr
        tail_cut = (last + 1) * interleave - end_addr  # bytes of the last block after the end
        if n == 1:
            spans = ((first, nbytes),)
        else:
            if n <= n_ch:
                shares = [interleave] * n
            else:
                q, r = divmod(n, n_ch)
                shares = [(q + 1) * interleave] * r + [q * interleave] * (n_ch - r)
            shares[0] -= head_cut
            shares[(n - 1) % n_ch] -= tail_cut
            spans = zip(range(first, first + len(shares)), shares)
        ns_per_byte = self._ns_per_byte
        open_rows = self._open_rows
        if open_rows is not None:
            row_bytes, banks, act_ns = self._row_bytes, self._banks, self._activation_ns
        end = now_ns
        for block, share in spans:
            c = block % n_ch
            service = share * ns_per_byte
            if open_rows is not None:  # Dram._activations, inline
                rows_open = open_rows[c]
                local = (block // n_ch) * interleave
                first_row = local // row_bytes
                rows = (local + share - 1) // row_bytes - first_row + 1
                if rows > banks:
                    service += self._activations(rows_open, block, share) * act_ns
                else:
                    group, bank = divmod(first_row, banks)
                    head = banks - bank
                    if rows == 1:
                        misses = 0 if rows_open[bank] == group else 1
                        rows_open[bank] = group
                    elif rows <= head:
                        misses = rows - rows_open[bank:bank + rows].count(group)
                        rows_open[bank:bank + rows] = [group] * rows
                    else:
                        misses = rows - rows_open[bank:].count(group) - rows_open[:rows - head].count(group + 1)
                        rows_open[bank:] = [group] * head
                        rows_open[:rows - head] = [group + 1] * (rows - head)
                    service += misses * act_ns
            finish = channels[c].reserve(now_ns, service, share)
            if finish > end:
                end = finish
        return end

    @property
    def has_row_buffer(self) -> bool:
        """True with row-buffer timing."""
        return self._open_rows is not None

    def open_rows(self) -> list[list[int]]:
        """A copy of every channel's open rows (see :meth:`_activations`); empty without row-buffer timing."""
        return [list(r) for r in self._open_rows] if self._open_rows is not None else []

    def set_open_rows(self, open_rows: list[list[int]]) -> None:
        """Replace the open rows by ``open_rows`` (as :meth:`open_rows` returns them)."""
        self._open_rows = [list(r) for r in open_rows]

    def row_misses(self, open_rows: list[list[int]], addr: int, nbytes: int) -> tuple[int, ...]:
        """Row activations of each channel share of ``[addr, addr + nbytes)`` against ``open_rows``
        (updated), as :meth:`reserve` counts them, without booking anything."""
        cfg = self.config
        return tuple(self._activations(open_rows[c], block, share)
                     for c, share, block in channel_spans(addr, nbytes, cfg.interleave_bytes, cfg.channels))

    def _activations(self, open_rows: list[int], block: int, share: int) -> int:
        """Row activations needed by ``share`` bytes starting at interleave block ``block`` of a
        channel whose banks' open rows are ``open_rows`` (updated).

        The share is contiguous in the channel's local address space, so it
        touches consecutive rows; only the first row per bank can hit an open
        row. Bank ``b`` holds rows ``b, b + banks, ...``; ``open_rows[b]`` keeps
        the open row's number divided by ``banks`` (-1: none open), so the
        consecutive rows of a share, which sit in consecutive banks with the
        same quotient (the next one after wrapping), are checked and opened
        slice-wise.
        """
        channels, interleave, row_bytes, banks = self._row_geometry
        local = (block // channels) * interleave
        first_row = local // row_bytes
        rows = (local + share - 1) // row_bytes - first_row + 1
        if rows > banks:  # later rows of the share reopen the first rows' banks
            last_row = first_row + rows - 1
            misses = rows
            for r in range(first_row, first_row + banks):
                if open_rows[r % banks] == r // banks:
                    misses -= 1
            for r in range(last_row - banks + 1, last_row + 1):
                open_rows[r % banks] = r // banks
            return misses
        group, bank = divmod(first_row, banks)
        head = min(rows, banks - bank)
        misses = rows - open_rows[bank:bank + head].count(group)
        open_rows[bank:bank + head] = [group] * head
        if rows > head:
            misses -= open_rows[:rows - head].count(group + 1)
            open_rows[:rows - head] = [group + 1] * (rows - head)
        return misses

    def transfer(self, addr: int, nbytes: int, write: bool = False):
        """SimPy process body: ``yield from dram.transfer(addr, n)`` waits until the transfer is done."""
        end = self.reserve(self.env.now, addr, nbytes, write)
        yield self.env.timeout(end - self.env.now + self.config.latency_ns)
