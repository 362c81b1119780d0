"""Iteration cost from the hardware model, through exact cost caches.

An iteration's time is ``num_layers * layer + head``: every decoder layer of
an iteration has the same ops (a layer boundary is a barrier), and a layer
costs its token ops at ``T`` tokens plus the attention ops of each sequence.
Each part is cached by what decides it (``T``; a sequence's ``(q, kv_len)``;
the number of sequences producing a token), each op by its ``cost_key`` in
one shared :class:`~mixpe_sys.sim.engine.CostCache`, and whole iterations by
their composition (an LRU of bounded size), so each distinct op is simulated
once per design. With :attr:`CostModel.INTERPOLATED`, sizes above
``exact_tokens`` are estimated from anchors (see :mod:`.interpolation`).
"""

from __future__ import annotations

from typing import Sequence

from ..hw.config import AcceleratorConfig
from ..sim.engine import CostCache
from ..workload.models import ModelSpec
from ..workload.quant import QuantScheme
from .config import CostModel, ServingConfig, ServingError
from .interpolation import AnchorGrid, Cost, Interpolator, exact_cost
from .iteration_ops import IterationOps, SeqWork, iteration_key
from .lru import IterationMemo

def bucket(n: int, per_octave: int) -> int:
    """``n`` padded up to the next of ``per_octave`` evenly spaced sizes per doubling.

    Sizes up to ``per_octave`` stay as they are; above, ``n`` rounds up to a
    multiple of ``2 ** floor(log2 n) // per_octave``, adding less than
    ``n / per_octave``. ``per_octave = 0`` leaves every ``n`` as it is.
    """
    if per_octave <= 0 or n <= per_octave:
        return n
    step = max(1, (1 << (n.bit_length() - 1)) // per_octave)
    return -(-n // step) * step


ITERATION_CACHE_SIZE = 4096
"""Iteration compositions remembered (most recently used first)."""


class IterationCostModel(IterationMemo):
    """Time (ns) and energy (J) of serving iterations of ``model`` on ``design``.

    Parameters
    ----------
    model, design:
        Model shape and accelerator.
    quant:
        Quantization scheme of the run.
    config:
        Serving options (for the cost model and its anchors).
    cache:
        Op cost cache to share (default: a new one for ``design``).
    """

    def __init__(self, model: ModelSpec, design: AcceleratorConfig, *, quant: QuantScheme,
                 config: ServingConfig | None = None, cache: CostCache | None = None):
        self.model = model
        self.design = design
        self.config = config or ServingConfig()
        self.ops = IterationOps(model, quant, attention=self.config.attention)
        if cache is not None and cache.design is not design and cache.design != design:
            raise ServingError(f"the cost cache is for design '{cache.design.name}', not '{design.name}'")
        if cache is not None and cache.launch is not self.config.launch:
            raise ServingError(f"the cost cache is for launch mode '{cache.launch.value}', not "
                               f"'{self.config.launch.value}'")
        self.cache = cache if cache is not None else CostCache(design, launch=self.config.launch)
        self._interp = None
        if self.config.cost_model is CostModel.INTERPOLATED:
            grid = AnchorGrid(self.config.exact_tokens, self.config.anchors_per_octave)
            self._interp = Interpolator(design, self.cache, grid)
        self._tokens: dict[int, Cost] = {}
        self._seqs: dict[tuple[int, int], Cost] = {}
        self._heads: dict[int, Cost] = {}
        super().__init__(ITERATION_CACHE_SIZE)
        self._simulated_before = self.cache.simulated

    @property
    def simulated_ops(self) -> int:
        """Distinct ops simulated (DES runs) since this model was made."""
        return self.cache.simulated - self._simulated_before

    def _token_ops(self, tokens: int):
        before, after = self.ops.token_ops(tokens)
        return before + after

    def token_cost(self, tokens: int) -> Cost:
        """One layer's token ops (linear layers, norms, residuals, activation) over ``tokens`` tokens."""
        hit = self._tokens.get(tokens)
        if hit is None:
            if self._interp is None:
                hit = exact_cost(self._token_ops(tokens), self.cache)
            else:
                hit = self._interp.cost("tokens", (tokens,), self._token_ops)
            self._tokens[tokens] = hit
        return hit

    def sequence_cost(self, q: int, kv_len: int) -> Cost:
        """One layer's attention ops of one sequence (``q`` new tokens, ``kv_len`` attended)."""
        key = (q, kv_len)
        hit = self._seqs.get(key)
        if hit is None:
            if self._interp is None:
                hit = exact_cost(self.ops.sequence_ops(q, kv_len), self.cache)
            else:
                hit = self._interp.cost("sequence", key, self.ops.sequence_ops)
            self._seqs[key] = hit
        return hit

    def head_cost(self, sequences: int) -> Cost:
        """Final norm and LM head for ``sequences`` sequences (always simulated exactly)."""
        hit = self._heads.get(sequences)
        if hit is None:
            hit = exact_cost(self.ops.head_ops(sequences), self.cache)
            self._heads[sequences] = hit
        return hit

    def cost(self, works: Sequence[SeqWork]) -> Cost:
        """Cost of an iteration doing ``works`` (in any order)."""
        return self.cost_of_key(iteration_key(works))

    def compute_iteration(self, key: tuple[SeqWork, ...]) -> Cost:
        tokens, shapes, emitting = self._parts(key)
        if self.cache.workers > 1 and self._interp is None:
            self._prefetch(tokens, shapes, emitting)
        t = e = 0.0
        seqs, sequence_cost = self._seqs, self.sequence_cost
        for shape in shapes:
            c = seqs.get(shape) or sequence_cost(*shape)
            t += c.time_ns
            e += c.energy_j
        c = self.token_cost(tokens)
        layers = self.model.num_layers
        head = self.head_cost(emitting)
        cost = Cost((c.time_ns + t) * layers + head.time_ns, (c.energy_j + e) * layers + head.energy_j)
        return cost

    def _parts(self, key: tuple[SeqWork, ...]) -> tuple[int, list[tuple[int, int]], int]:
        """(padded token count, padded ``(q, kv_len)`` of each sequence, sequences emitting a token)."""
        tokens = emitting = 0
        shapes = []
        per_octave = self.config.shape_buckets
        for q, kv_len, emits in key:
            tokens += q
            emitting += emits
            if per_octave:
                q = bucket(q, per_octave)
                kv_len = max(q, bucket(kv_len, per_octave))
            shapes.append((q, kv_len))
        return bucket(tokens, per_octave), shapes, emitting

    def _prefetch(self, tokens: int, shapes: list[tuple[int, int]], emitting: int) -> None:
        """Simulate the uncached ops of an iteration's uncosted parts together (on the cache's workers)."""
        ops = [] if tokens in self._tokens else self._token_ops(tokens)
        for shape in set(shapes) - self._seqs.keys():
            ops += self.ops.sequence_ops(*shape)
        if emitting not in self._heads:
            ops += self.ops.head_ops(emitting)
        self.cache.prefetch(ops)

    def exact_op_keys(self) -> set[tuple]:
        """Distinct op cost keys of every part costed so far: the ops the exact cost model simulates for the
        same iterations (counted without simulating them)."""
        keys = set()
        for tokens in self._tokens:
            keys.update(op.cost_key() for op in self._token_ops(tokens))
        for q, kv_len in self._seqs:
            keys.update(op.cost_key() for op in self.ops.sequence_ops(q, kv_len))
        for n in self._heads:
            keys.update(op.cost_key() for op in self.ops.head_ops(n))
        return keys

    def stats(self) -> dict[str, int]:
        """Counters: DES runs, distinct parts and iteration-cache hits."""
        return {"simulated_ops": self.simulated_ops, "distinct_token_counts": len(self._tokens),
                "distinct_sequence_shapes": len(self._seqs), "distinct_head_sizes": len(self._heads),
                "iteration_cache_hits": self.iteration_hits, "iteration_cache_misses": self.iteration_misses}

