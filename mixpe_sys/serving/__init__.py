"""Serving: replay LLM request traces with static or continuous batching.

:func:`replay` runs a request trace (see
:func:`mixpe_sys.workload.requests.load_request_trace`) through a SimPy model
of one accelerator serving one model: requests arrive, a scheduler forms
iterations (static or continuous batching, a token budget, optional chunked
prefill), the KV cache bounds how many tokens stay resident (admission
control and recompute preemption), and each iteration's time and energy come
from the hardware model through exact cost caches.
"""

from __future__ import annotations

import pandas as pd

from ..hw.config import AcceleratorConfig
from ..sim.engine import CostCache
from ..workload.models import ModelSpec
from ..workload.quant import QuantScheme
from .admission import check_requests, within_context
from .config import Batching, CostModel, ServingConfig, ServingError
from .iteration_cost import IterationCostModel
from .iteration_ops import IterationOps, SeqWork
from .kv_cache import KvBudget, kv_budget, kv_bytes_per_token, weight_bytes
from .results import ITERATION_COLUMNS, REQUEST_COLUMNS, ReplayResult
from .simulator import ServingSimulator


def replay(requests: pd.DataFrame, model: ModelSpec | str = "llama-2-7b",
           design: AcceleratorConfig | str = "mixpe-w4a8", *, config: ServingConfig | None = None,
           quant: QuantScheme | str | None = None, cache: CostCache | None = None, progress: bool | None = None,
           workers: int = 1, cache_dir=None, fast_forward: bool = True, **options) -> ReplayResult:
    """Replay a request trace on a design.

    Parameters
    ----------
    requests:
        Request trace frame: ``request_id, arrival_s`` (s), ``prompt_tokens, output_tokens``. A request
        with 0 output tokens is served as one with 1 (its prefill produces one token).
    model:
        A ModelSpec, a shipped model name or a ``config.json`` path.
    design:
        An AcceleratorConfig, a preset name or a YAML path.
    config:
        Serving options; or give them as keywords (``batching``, ``max_batch``,
        ``max_batched_tokens``, ``chunked_prefill``, ``cost_model``, ...; see
        :class:`ServingConfig`).
    quant:
        Quantization scheme (``"W4A8"`` or a QuantScheme); default the design's.
    cache:
        Op cost cache for ``design``, to share between replays.
    progress:
        Progress bar over completed requests (None: only on a terminal, after a second).
    workers:
        Processes that simulate new ops in parallel (when no ``cache`` is given); the
        results do not depend on it.
    cache_dir:
        Persistent op-cost store of a new cache: None the default directory, a path, False none.
    fast_forward:
        Skip whole repeated periods of each GEMM's steady state (same results, bit for bit).

    Returns
    -------
    ReplayResult
        ``requests`` and ``iterations`` DataFrames (times in s) and the ``summary`` dict.

    Raises
    ------
    ConfigError
        A bad option.
    ServingError
        A request that can never fit the KV cache, weights that do not fit the DRAM, or no request
        within the model's context. Requests beyond the context are rejected (not served) and counted
        in ``summary["rejected_requests"]`` (see :mod:`.admission`).
    """
    from ..designs import load_design
    from ..hw.precision import run_quant
    from ..workload.models import load_model

    if config is not None and options:
        raise ServingError(f"give serving options either as config= or as keywords, not both "
                           f"({', '.join(sorted(options))})")
    cfg = config if config is not None else ServingConfig.from_dict(options)
    spec = model if isinstance(model, ModelSpec) else load_model(model)
    accel = design if isinstance(design, AcceleratorConfig) else load_design(design)
    q = run_quant(accel, quant)
    served = within_context(requests, spec)
    check_requests(served, spec, accel, q)
    result = ServingSimulator(served, spec, accel, cfg, quant=q, cache=cache, progress=progress,
                              workers=workers, cache_dir=cache_dir, fast_forward=fast_forward).run()
    result.summary["rejected_requests"] = int(len(requests) - len(served))
    result.summary["context_tokens"] = spec.max_position_embeddings
    return result


__all__ = ["replay", "ReplayResult", "ServingConfig", "Batching", "CostModel", "ServingError",
           "ServingSimulator", "IterationCostModel", "IterationOps", "SeqWork", "KvBudget", "kv_budget",
           "kv_bytes_per_token", "weight_bytes", "REQUEST_COLUMNS", "ITERATION_COLUMNS"]
