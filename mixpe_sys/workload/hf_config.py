"""Hugging Face ``config.json`` parser: converts a config dict into a :class:`ModelSpec`.

Reads LlamaForCausalLM, MistralForCausalLM and OPTForCausalLM configs; errors
name the Hugging Face key, the file and the JSON line.
"""

from __future__ import annotations

import json
import math
import re
from types import MappingProxyType
from typing import Any, Callable, Mapping

from ..config_base import parse_yaml_with_lines
from ..errors import ConfigError
from .model_spec import Activation, ModelFamily, ModelSpec, NormKind, PositionEncoding

_REQUIRED = object()


class _HfReader:
    """Typed access to a Hugging Face config dict; errors name the key, file and JSON line."""

    def __init__(self, data: Mapping[str, Any], source: str | None, lines: Mapping[tuple, int]):
        self.data, self.source, self.lines = data, source, lines

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"field '{key}': {message}", self.source, self.lines.get((key,)))

    def _raw(self, key: str, default: Any) -> Any:
        value = self.data.get(key)
        if value is None:  # absent or JSON null: Hugging Face falls back to its default
            if default is _REQUIRED:
                what = "is null" if key in self.data else "missing required field"
                raise self.error(key, what)
            return default
        return value

    def get_int(self, key: str, default: Any = _REQUIRED) -> int:
        value = self._raw(key, default)
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not math.isfinite(value) or int(value) != value):
            raise self.error(key, f"expected an integer, got {value!r}")
        return int(value)

    def get_bool(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def get_activation(self, key: str, default: str) -> Activation:
        value = self._raw(key, default)
        if value not in _HF_ACTIVATIONS:
            raise self.error(key, f"unsupported activation {value!r} (supported: {', '.join(_HF_ACTIVATIONS)})")
        return _HF_ACTIVATIONS[value]


_HF_ACTIVATIONS: Mapping[str, Activation] = MappingProxyType({
    "silu": Activation.SILU, "swish": Activation.SILU, "relu": Activation.RELU,
    "gelu": Activation.GELU, "gelu_new": Activation.GELU, "gelu_fast": Activation.GELU,
    "gelu_pytorch_tanh": Activation.GELU,
})

# ModelSpec keyword arguments, and the Hugging Face key each one came from.
_Converted = tuple[dict[str, Any], dict[str, str]]


def _llama_like(r: _HfReader, family: ModelFamily) -> _Converted:
    """LlamaForCausalLM / MistralForCausalLM: RMSNorm, rotary, SwiGLU, optional GQA."""
    heads = r.get_int("num_attention_heads")
    kw = dict(hidden_size=r.get_int("hidden_size"), intermediate_size=r.get_int("intermediate_size"),
              num_layers=r.get_int("num_hidden_layers"), num_heads=heads,
              num_kv_heads=r.get_int("num_key_value_heads", heads), head_dim=r.get_int("head_dim", 0),
              vocab_size=r.get_int("vocab_size"), max_position_embeddings=r.get_int("max_position_embeddings"),
              gated_ffn=True, activation=r.get_activation("hidden_act", "silu"), norm=NormKind.RMSNORM,
              tie_word_embeddings=r.get_bool("tie_word_embeddings", False),
              attention_bias=r.get_bool("attention_bias", False), ffn_bias=r.get_bool("mlp_bias", False),
              position_encoding=PositionEncoding.ROPE)
    if family is ModelFamily.MISTRAL:
        kw["sliding_window"] = r.get_int("sliding_window", 0)
    origin = dict(num_layers="num_hidden_layers", num_heads="num_attention_heads",
                  num_kv_heads="num_key_value_heads", activation="hidden_act", ffn_bias="mlp_bias")
    return kw, origin


def _opt(r: _HfReader, family: ModelFamily) -> _Converted:
    """OPTForCausalLM: LayerNorm, learned positions, ReLU fc1/fc2, biases, tied LM head."""
    hidden = r.get_int("hidden_size")
    proj = r.get_int("word_embed_proj_dim", hidden)
    if proj != hidden:
        raise r.error("word_embed_proj_dim", f"must equal hidden_size ({hidden}); OPT variants with "
                                             f"embedding projections (e.g. OPT-350m) are not supported, got {proj}")
    max_pos = r.get_int("max_position_embeddings")
    pre_norm = r.get_bool("do_layer_norm_before", True)
    bias = r.get_bool("enable_bias", True)
    heads = r.get_int("num_attention_heads")
    kw = dict(hidden_size=hidden, intermediate_size=r.get_int("ffn_dim"),
              num_layers=r.get_int("num_hidden_layers"), num_heads=heads, num_kv_heads=heads,
              vocab_size=r.get_int("vocab_size"), max_position_embeddings=max_pos, gated_ffn=False,
              activation=r.get_activation("activation_function", "relu"), norm=NormKind.LAYERNORM,
              tie_word_embeddings=r.get_bool("tie_word_embeddings", True),
              attention_bias=bias, ffn_bias=bias, pre_norm=pre_norm,
              final_norm=pre_norm and not r.get_bool("_remove_final_layer_norm", False),
              # OPT's learned position table holds 2 extra rows: positions are offset by 2.
              position_encoding=PositionEncoding.LEARNED, position_table_rows=max_pos + 2)
    origin = dict(intermediate_size="ffn_dim", num_layers="num_hidden_layers", num_heads="num_attention_heads",
                  num_kv_heads="num_attention_heads", activation="activation_function",
                  pre_norm="do_layer_norm_before", position_table_rows="max_position_embeddings")
    return kw, origin


_ARCHITECTURES: Mapping[str, ModelFamily] = MappingProxyType({
    "LlamaForCausalLM": ModelFamily.LLAMA,
    "MistralForCausalLM": ModelFamily.MISTRAL,
    "OPTForCausalLM": ModelFamily.OPT,
})

_CONVERTERS: Mapping[ModelFamily, Callable[[_HfReader, ModelFamily], _Converted]] = MappingProxyType({
    ModelFamily.LLAMA: _llama_like,
    ModelFamily.MISTRAL: _llama_like,
    ModelFamily.OPT: _opt,
})


def _family(r: _HfReader) -> ModelFamily:
    supported = ", ".join(_ARCHITECTURES)
    archs = r.data.get("architectures")
    if archs is None:
        model_type = r.data.get("model_type")
        if model_type in {f.value for f in ModelFamily}:
            return ModelFamily(model_type)
        raise r.error("architectures", f"missing, and model_type {model_type!r} is not known "
                                       f"(supported architectures: {supported})")
    if isinstance(archs, str):
        archs = [archs]
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise r.error("architectures", f"expected a list of class names, got {archs!r}")
    for arch in archs:
        if arch in _ARCHITECTURES:
            return _ARCHITECTURES[arch]
    raise r.error("architectures", f"unsupported architecture {archs!r} (supported: {supported})")


_FIELD_RE = re.compile(r"^field '([^']+)'")


def model_spec_from_hf_config(data: Mapping[str, Any], name: str, source: str | None = None, *,
                              lines: Mapping[tuple, int] | None = None) -> ModelSpec:
    """Build a :class:`ModelSpec` from a parsed Hugging Face ``config.json``.

    Parameters
    ----------
    data:
        The config mapping (``architectures`` LlamaForCausalLM, MistralForCausalLM or
        OPTForCausalLM; without ``architectures``, ``model_type`` is used).
    name:
        Short name for the spec, e.g. ``llama-2-7b``.
    source:
        File the config came from, named in error messages.
    lines:
        Optional key-path -> 1-based line map of ``source``, for error messages.

    Raises
    ------
    ConfigError
        Naming the Hugging Face key, ``source`` and line of a missing, unsupported
        or inconsistent value.
    """
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a JSON object with model fields, got {type(data).__name__}", source, 1)
    reader = _HfReader(data, source, lines)
    family = _family(reader)
    kwargs, origin = _CONVERTERS[family](reader, family)
    repo = data.get("_source") or data.get("_name_or_path") or ""
    try:
        return ModelSpec(name=name, family=family, hf_repo=repo if isinstance(repo, str) else "", **kwargs)
    except ConfigError as exc:
        # Re-word ModelSpec's field names as the Hugging Face keys the user wrote.
        match = _FIELD_RE.match(exc.reason)
        field = match.group(1) if match else None
        key = origin.get(field, field) if field else None
        reason = exc.reason.replace(f"field '{field}'", f"field '{key}'", 1) if key else exc.reason
        raise ConfigError(reason, source, lines.get((key,)) if key else None) from None


def parse_json_with_lines(text: str, source: str) -> tuple[Any, dict[tuple, int]]:
    """Parse JSON text; return the data and a best-effort key-path -> line map."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"malformed JSON: {exc.msg} (column {exc.colno})", source, exc.lineno) from None
    try:
        # JSON is close enough to YAML flow style to recover key lines; if not, go without.
        _, lines = parse_yaml_with_lines(text, source)
    except ConfigError:
        lines = {}
    return data, lines
