"""What a replay accepts, checked before it starts: precision, the model's context, the KV cache.

- The design must run the quantization scheme (:mod:`mixpe_sys.hw.precision`).
- A request whose prompt and output do not fit the model's context
  (``prompt + output - 1 > max_position_embeddings``) is rejected and not
  served, as vLLM rejects a prompt longer than its ``max_model_len`` (the
  request ends as ``FINISHED_IGNORED`` there); the summary counts them
  (``rejected_requests``) and a trace of nothing else is an error.
- A request whose whole context can never fit the KV cache is an error
  naming the trace file and line and what to change.
"""

from __future__ import annotations

import pandas as pd

from ..hw.config import AcceleratorConfig
from ..hw.precision import check_quant
from ..workload.model_spec import ModelSpec
from ..workload.quant import QuantScheme
from .config import ServingError
from .kv_cache import kv_budget


def _where(requests: pd.DataFrame, request_id: int) -> str:
    """``FILE:LINE: `` of a request of a loaded trace (``load_request_trace`` keeps both), or ``""``."""
    source, lines = requests.attrs.get("source"), requests.attrs.get("lines")
    if source and lines is not None and 0 <= request_id < len(lines):
        return f"{source}:{lines[request_id]}: "
    return f"{source}: " if source else ""


def within_context(requests: pd.DataFrame, model: ModelSpec) -> pd.DataFrame:
    """The requests whose prompt and output fit the model's context (see the module docstring).

    Raises
    ------
    ServingError
        When no request fits.
    """
    need = requests["prompt_tokens"] + requests["output_tokens"].clip(lower=1) - 1
    fits = need <= model.max_position_embeddings
    if len(requests) and not fits.any():
        first = requests.loc[~fits].iloc[0]
        raise ServingError(f"{_where(requests, int(first['request_id']))}field 'prompt_tokens': every request is "
                           f"beyond the {model.max_position_embeddings}-token context of {model.name} "
                           f"(max_position_embeddings), e.g. request {int(first['request_id'])} with "
                           f"{int(first['prompt_tokens'])} + {int(first['output_tokens'])} tokens; use a model "
                           f"with a longer context")
    if fits.all():
        return requests
    kept = requests.loc[fits]
    kept.attrs = dict(requests.attrs)
    return kept


def check_requests(requests: pd.DataFrame, model: ModelSpec, design: AcceleratorConfig,
                   quant: QuantScheme) -> None:
    """Precision, and every request's whole context within the KV cache (errors name file and line)."""
    check_quant(design, quant)
    budget = kv_budget(model, design, quant)
    need = requests["prompt_tokens"] + requests["output_tokens"].clip(lower=1) - 1
    over = need > budget.capacity_tokens
    if over.any():
        row = requests.loc[over].iloc[0]
        rid = int(row["request_id"])
        raise ServingError(
            f"{_where(requests, rid)}field 'prompt_tokens': request {rid} needs {int(need.loc[over].iloc[0])} "
            f"KV-cache tokens (prompt {int(row['prompt_tokens'])} + output {int(row['output_tokens'])} - 1) but "
            f"design '{design.name}' holds {budget.capacity_tokens} for {model.name} ({budget.kv_capacity_bytes} "
            f"bytes of DRAM after the weights, {budget.kv_bytes_per_token:g} bytes per token); give the design "
            f"more DRAM (dram.capacity_bytes), fewer KV bits (quant.kv_bits) or use a smaller model")
