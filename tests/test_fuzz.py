"""Fuzzing the inputs a user writes: design YAML and request-trace rows never give a traceback or a hang.

The generation is structured, not only random bytes: design overrides set real field paths of shipped
designs to perturbed, extreme or wrongly typed values (and sometimes break the YAML text itself);
request traces are rows of the three formats with good, extreme and malformed cells. Every example runs
through the command line, which must answer with exit code 0 (and its normal output) or 2 (and one
line on stderr). The default run draws a few hundred examples; ``-m slow`` draws many more.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpe_sys import load_design
from mixpe_sys.cli import main

PRESETS = ("mixpe-w4a8", "paper-int8", "qserve-w4a8", "fp16")


def _leaves(data, prefix=()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, prefix + (k,))
    else:
        yield prefix, data


LEAVES = sorted({path for name in PRESETS for path, _ in _leaves(load_design(name).to_dict())
                 if path[0] not in ("name", "description")})
ORIGINAL = {path: value for name in PRESETS for path, value in _leaves(load_design(name).to_dict())}


def perturbed(path, low: int, high: int):
    """Values near (scale 2**low .. 2**high) the field's own: scaled by powers of two, or negated."""
    value = ORIGINAL.get(path)
    scale = st.integers(low, high).map(lambda e: 2.0 ** e)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return st.just(value)
    if isinstance(value, int):
        return weighted((5, scale.map(lambda s: int(max(-2 ** 70, min(2 ** 70, value * s))))), (1, st.just(-value)))
    return weighted((5, scale.map(lambda s: value * s)), (1, st.just(-value)))


def weighted(*choices):
    """One of the strategies, each ``(weight, strategy)`` drawn in proportion to its weight."""
    return st.sampled_from([s for w, s in choices for _ in range(w)]).flatmap(lambda s: s)


ODD = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.just(0), st.just(1),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e300, -1e300, 1e-300, 5e-324]),
    st.text(max_size=12), st.sampled_from(["1e9", "0x10", "nan", "inf", "many", ""]),
    st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.sampled_from(["a", "kind", "rows"]),
                                                              st.integers(-2, 2), max_size=2))


@st.composite
def design_override(draw):
    """YAML text of a ``--config`` override (or a whole design) that may be broken in any field."""
    data: dict = {}
    if draw(st.booleans()):
        data["extends"] = draw(st.sampled_from(PRESETS + ("nope", "./missing.yaml")))
    for path in draw(st.lists(st.sampled_from(LEAVES), min_size=1, max_size=3)):
        value = draw(weighted((6, perturbed(path, -2, 2)), (2, perturbed(path, -60, 80)), (2, ODD)))
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
        node[path[-1]] = value
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.sampled_from(["num_tile", "tile.rows", "quantt"]))] = 1
    text = yaml.safe_dump(data, sort_keys=False)
    mutation = draw(st.integers(0, 29))
    if mutation == 0:  # a duplicate key
        text += text.splitlines()[0] + "\n"
    elif mutation == 1:  # an alias and an anchor
        text = "x: &a {rows: 8}\n" + text.replace("{}", "*a")
    elif mutation == 2:  # a tag
        text += "tile: !!python/object:os.system {}\n"
    elif mutation == 3:  # cut in the middle
        text = text[:draw(st.integers(0, len(text)))]
    elif mutation == 4:  # a tab, or a stray character
        text = text.replace("  ", "\t", 1) + draw(st.sampled_from(["", ":", "- ", "{", "]"]))
    return text


_HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
FEW = settings(deadline=None, suppress_health_check=_HEALTH, max_examples=150)
MANY = settings(deadline=None, suppress_health_check=_HEALTH, max_examples=2000)


def answer(capsys, argv):
    """Exit code, stdout and stderr of ``mixpe-sim argv``: 0 with output, or 2 with one line, nothing else."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code in (0, 2), (argv, code, err)
    if code == 2:
        assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("mixpe-sim"), err
    return code, out, err


def check_design(tmp_path, capsys, text, shape):
    path = tmp_path / "over.yaml"
    path.write_text(text, encoding="utf-8")
    m, n, k = shape
    code, out, _ = answer(capsys, ["gemm", "--config", str(path), "--m", str(m), "--n", str(n), "--k", str(k),
                                   "--json"])
    if code == 0:
        figures = json.loads(out)
        assert figures["time_s"] > 0 and math.isfinite(figures["time_s"])
        assert figures["time_s"] >= figures["roofline_time_s"] * (1 - 1e-12)
        assert figures["macs"] == m * n * k


SHAPES = st.tuples(st.integers(1, 64), st.integers(1, 300), st.integers(1, 300))


@FEW
@given(text=design_override(), shape=SHAPES)
def test_fuzzed_design_yaml(tmp_path, capsys, text, shape):
    check_design(tmp_path, capsys, text, shape)


@pytest.mark.slow
@MANY
@given(text=design_override(), shape=SHAPES)
def test_fuzzed_design_yaml_many(tmp_path, capsys, text, shape):
    check_design(tmp_path, capsys, text, shape)


# -- request traces ---------------------------------------------------------------------------------------------

TOKENS = weighted((12, st.integers(1, 40).map(str)), (1, st.integers(-5, 2 ** 40).map(str)),
                  (1, st.sampled_from(["", " 7", "7.0", "1e3", "x", "99999999999", "4096", "5000", "-0", "0"])))
SECONDS = weighted((12, st.floats(0, 5).map(repr)), (1, st.sampled_from(["", "nan", "inf", "-1", "1e308", "2e-300",
                                                                          "a", "1e9", "1.5e9"])))
STAMPS = weighted((12, st.integers(0, 59).map(lambda s: f"2023-11-16 18:17:{s:02d}.5")),
                  (1, st.sampled_from(["", "2023-02-30 00:00:00", "2023-11-16", "yesterday", "2023-11-16T18:17:03",
                                       "2023-11-16 18:17:03.123456789123", "1970-01-01 00:00:00.0"])))


@st.composite
def request_trace(draw):
    """(file name, text) of a request trace in one of the three formats, rows good or broken."""
    fmt = draw(st.sampled_from(["csv", "azure", "jsonl"]))
    n = draw(st.integers(0, 5))
    if fmt == "jsonl":
        value = weighted((12, st.integers(1, 40)), (1, st.integers(-3, 5000)), (1, st.floats(allow_nan=True)),
                         (1, st.one_of(st.text(max_size=4), st.none(), st.booleans())))
        rows = []
        for _ in range(n):
            keys = ["arrival_s", "prompt_tokens", "output_tokens"]
            if draw(st.integers(0, 9)) == 0:
                keys = draw(st.lists(st.sampled_from(keys + ["x"]), min_size=1, max_size=4, unique=True))
            row = {k: draw(value) for k in keys}
            rows.append(json.dumps(row) if draw(st.integers(0, 19)) else draw(st.sampled_from(["[1]", "{", "3"])))
        return "trace.jsonl", "\n".join(rows) + "\n"
    header = "arrival_s,prompt_tokens,output_tokens" if fmt == "csv" else "TIMESTAMP,ContextTokens,GeneratedTokens"
    first = STAMPS if fmt == "azure" else SECONDS
    rows = [",".join([draw(first), draw(TOKENS), draw(TOKENS)] + (draw(st.lists(TOKENS, max_size=1))
                                                                 if draw(st.integers(0, 19)) == 0 else []))
            for _ in range(n)]
    if draw(st.integers(0, 19)) == 0:
        header = draw(st.sampled_from(["", "a,b,c", header.upper(), header + ",extra"]))
    return f"trace_{fmt}.csv", "\n".join([header] + rows) + draw(st.sampled_from(["\n", "", "\r\n"]))


TINY = {"architectures": ["LlamaForCausalLM"], "hidden_size": 128, "intermediate_size": 256,
        "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 256,
        "max_position_embeddings": 4096}


def check_trace(tmp_path, capsys, name, text, options):
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY))
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    code, out, _ = answer(capsys, ["replay", str(path), "--model", str(model), "--json", "--workers", "1",
                                   "--shape-buckets", "4", *options])
    if code == 0:
        s = json.loads(out)
        assert s["completed"] == s["requests"] >= 1
        assert math.isfinite(s["duration_s"]) and s["duration_s"] > 0 and s["energy_j"] > 0


OPTIONS = st.sampled_from([[], ["--batching", "static"], ["--chunked-prefill", "--max-batched-tokens", "64"],
                           ["--max-batch", "2"], ["--rate-scale", "1e-300"], ["--rate-scale", "1e300"]])


@FEW
@given(trace=request_trace(), options=OPTIONS)
def test_fuzzed_request_traces(tmp_path, capsys, trace, options):
    check_trace(tmp_path, capsys, *trace, options)


@pytest.mark.slow
@MANY
@given(trace=request_trace(), options=OPTIONS)
def test_fuzzed_request_traces_many(tmp_path, capsys, trace, options):
    check_trace(tmp_path, capsys, *trace, options)
