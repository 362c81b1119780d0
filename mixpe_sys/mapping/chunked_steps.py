"""A compute tile's steps made on demand, a chunk of output blocks at a time.

A GPU-scale GEMM lays out millions of tile steps (Llama-2-70B's prefill FFN at batch 16 on
``h100-like``: 7.3 M). Held at once they take gigabytes; the pipeline only ever looks at a few
steps around its loads, so a large plan hands each tile a :class:`ChunkedSteps` instead of a
tuple: the same steps, made again when asked for, with only the chunks in use kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Iterator

from ..hw.plan import TileStep

#: steps made at a time (rounded to whole output blocks)
CHUNK_STEPS = 2048
#: chunks kept (the pipeline's window, and a look ahead by the fast-forward)
CHUNKS_KEPT = 4


class ChunkedSteps(Sequence):
    """The steps of items ``lo .. hi - 1`` of a tile, ``nk`` steps each, made by ``make(q0, q1)`` (the
    steps of items ``q0 .. q1 - 1``, in order) a chunk of items at a time and indexed like a tuple."""

    positional_index = True  # step ``i`` has index ``i`` (lay_out numbers them so)

    __slots__ = ("_make", "_lo", "_hi", "_nk", "_per_chunk", "_chunks", "_len")

    def __init__(self, make: Callable[[int, int], list[TileStep]], lo: int, hi: int, nk: int):
        self._make = make
        self._lo, self._hi, self._nk = lo, hi, nk
        self._per_chunk = max(1, CHUNK_STEPS // nk)  # items per chunk
        self._chunks: dict[int, list[TileStep]] = {}
        self._len = (hi - lo) * nk

    def __len__(self) -> int:
        return self._len

    def _chunk(self, c: int) -> list[TileStep]:
        chunk = self._chunks.get(c)
        if chunk is None:
            if len(self._chunks) >= CHUNKS_KEPT:
                del self._chunks[next(iter(self._chunks))]  # the oldest made
            q0 = self._lo + c * self._per_chunk
            chunk = self._chunks[c] = self._make(q0, min(self._hi, q0 + self._per_chunk))
        return chunk

    def __getitem__(self, i):
        span = self._per_chunk * self._nk
        try:  # a step of a chunk kept (the pipeline's usual request)
            return self._chunks[i // span][i % span]
        except (KeyError, TypeError):
            pass
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._len))]
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("step index out of range")
        c, r = divmod(i, span)
        return self._chunk(c)[r]

    def __iter__(self) -> Iterator[TileStep]:
        per = self._per_chunk
        for q0 in range(self._lo, self._hi, per):
            yield from self._make(q0, min(self._hi, q0 + per))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or len(other) != self._len:
            return NotImplemented if not isinstance(other, Sequence) else False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None
