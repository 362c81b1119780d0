"""The serving simulator: SimPy processes for request arrivals and the accelerator's iteration loop.

Two processes share one :class:`simpy.Environment` (time in ns):

* arrivals (:func:`~.replica.arrivals`): waits until each request's arrival
  time and hands it to the server, waking it if it is idle;
* server (a :class:`~.replica.Replica`): asks the scheduler for the next
  iteration, holds for the iteration's time from the
  :class:`IterationCostModel`, then applies it (tokens produced at the end
  of the iteration); the replay ends when every request has finished.
"""

from __future__ import annotations

import time

import pandas as pd
import simpy
from tqdm.auto import tqdm

from ..hw.config import AcceleratorConfig
from ..hw.precision import check_quant
from ..sim.engine import CostCache
from ..workload.models import ModelSpec
from ..workload.quant import QuantScheme
from .config import ServingConfig
from .iteration_cost import IterationCostModel
from .kv_cache import kv_budget
from .replica import Replica, arrivals
from .results import ReplayResult, iterations_frame, served_requests_frame, serving_fields, summarise
from .sequence import Sequence, check_kv_fits, trace_sequences


class ServingSimulator:
    """Replays a request trace on one accelerator.

    Parameters
    ----------
    requests:
        Request trace frame (``request_id, arrival_s, prompt_tokens, output_tokens``).
    model, design:
        Model shape and accelerator.
    config:
        Serving options.
    quant:
        Quantization scheme of the run.
    cache:
        Op cost cache to share between replays on the same design.
    progress:
        Progress bar over completed requests (None: only on a terminal, after a second).
    workers:
        Processes that simulate an iteration's new ops in parallel, when no ``cache`` is given (a
        given cache brings its own); the results do not depend on it.
    """

    def __init__(self, requests: pd.DataFrame, model: ModelSpec, design: AcceleratorConfig,
                 config: ServingConfig, *, quant: QuantScheme, cache: CostCache | None = None,
                 progress: bool | None = None, workers: int = 1, cache_dir=None, fast_forward: bool = True):
        self.seqs = trace_sequences(requests)
        self.model, self.design, self.config = model, design, config
        self.quant = quant
        check_quant(design, self.quant)
        self.budget = kv_budget(model, design, self.quant)
        check_kv_fits(self.seqs, self.budget.capacity_tokens,
                      f"the cache holds {self.budget.capacity_tokens} ({self.budget.kv_capacity_bytes} bytes)")
        self._own_cache = cache is None
        cache = CostCache(design, workers=workers, launch=config.launch, cache_dir=cache_dir,
                          fast_forward=fast_forward) if cache is None else cache
        self.costs = IterationCostModel(model, design, quant=self.quant, config=config, cache=cache)
        self.progress = progress
        self.env = simpy.Environment()
        self.server = Replica(self.env, 0, self.costs, config, self.budget.capacity_tokens, self._finished, name="")
        self.kv, self.scheduler = self.server.kv, self.server.scheduler
        self._remaining = len(self.seqs)
        self._all_done = self.env.event()
        self._bar = None

    def _finished(self, replica: Replica, seqs: list[Sequence], now: float) -> None:
        self._remaining -= len(seqs)
        self._bar.update(len(seqs))
        if not self._remaining:
            self._all_done.succeed()

    def run(self) -> ReplayResult:
        """Run the replay to the last request's finish."""
        wall = time.perf_counter()
        disable = True if self.progress is False else (False if self.progress else None)
        self._bar = tqdm(total=len(self.seqs), desc="replaying", unit="req", leave=False, delay=1.0, disable=disable)
        try:
            self.env.process(arrivals(self.env, self.seqs, self.server.add))
            self.env.process(self.server.serve())
            self.env.run(until=self._all_done)
        finally:
            self._bar.close()
            if self._own_cache:
                self.costs.cache.close()
        requests = served_requests_frame(self.seqs)
        iterations = iterations_frame(self.server.iterations)
        summary = {"model": self.model.name, "design": self.design.name, "quant": self.quant.name,
                   **serving_fields(self.config),
                   "launch": self.config.launch.value, "attention": self.config.attention.value}
        summary.update(summarise(requests, iterations))
        summary.update({"kv_capacity_tokens": self.budget.capacity_tokens,
                        "kv_peak_tokens": self.kv.peak_tokens, "weight_bytes": self.budget.weight_bytes})
        summary.update(self.costs.stats())
        summary["wall_s"] = time.perf_counter() - wall
        return ReplayResult(requests=requests, iterations=iterations, summary=summary, config=self.config,
                            design=self.design)
