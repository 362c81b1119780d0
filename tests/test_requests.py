"""Request traces: Azure/CSV/JSONL loading, error messages, synthesis, round trips."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixpe_sys.errors import ConfigError, MixpeError, TraceError
from mixpe_sys.workload.requests import (
    COLUMNS, LogNormalTokens, Request, load_request_trace, requests_from_frame,
    synthetic_requests, trace_summary, write_request_trace)

TRACES = Path(__file__).resolve().parent.parent / "traces" / "azure-llm-2023"
CODE = TRACES / "AzureLLMInferenceTrace_code.csv"
CONV = TRACES / "AzureLLMInferenceTrace_conv.csv"
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens"
CSV_HEADER = "arrival_s,prompt_tokens,output_tokens"


def _write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_text(newline.join(lines) + newline, encoding="utf-8", newline="")
    return path


def _check_trace(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == COLUMNS
    assert [str(t) for t in df.dtypes] == ["int64", "float64", "int64", "int64"]
    assert df["arrival_s"].iloc[0] == 0.0
    assert df["arrival_s"].is_monotonic_increasing
    assert sorted(df["request_id"]) == list(range(len(df)))
    assert (df["prompt_tokens"] >= 1).all() and (df["output_tokens"] >= 0).all()


# --- Azure traces ------------------------------------------------------------

@pytest.mark.parametrize("path, rows", [(CODE, 8819), (CONV, 19366)])
def test_azure_trace_loads_every_row(path, rows):
    df = load_request_trace(path)
    _check_trace(df)
    # Rows counted independently: non-blank lines after the header (the last line has no newline).
    data_lines = [ln for ln in path.read_text().split("\n")[1:] if ln.strip()]
    assert len(df) == len(data_lines) == rows
    # These files are already in time order, so ids follow row order.
    assert df["request_id"].tolist() == list(range(rows))


def test_code_trace_second_request_is_exactly_52_ms_later():
    # 18:17:03.9799600 -> 18:17:04.0319600
    df = load_request_trace(CODE)
    assert df["arrival_s"].iloc[1] == 0.052
    assert df.iloc[1][["request_id", "prompt_tokens", "output_tokens"]].tolist() == [1, 3180, 8]


def test_conv_trace_duration_is_exact():
    # 18:15:46.6805900 -> 19:14:08.4025270
    df = load_request_trace(CONV)
    assert trace_summary(df)["duration_s"] == 3501.721937


def test_azure_timestamps_keep_sub_microsecond_precision(tmp_path):
    path = _write(tmp_path / "az.csv", [AZURE_HEADER, "2023-11-16 23:59:59.9999999,10,1",
                                        "2023-11-17 00:00:00.0000001,10,1",
                                        "2023-11-17T00:00:01,10,1"])
    df = load_request_trace(path)
    assert df["arrival_s"].tolist() == [0.0, 2e-7, 1.0000001]


# --- generic CSV / JSONL ------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_azure_subset_round_trips(tmp_path, suffix):
    df = load_request_trace(CONV, limit=500)
    out = tmp_path / f"conv{suffix}"
    write_request_trace(df, out)
    pd.testing.assert_frame_equal(load_request_trace(out), df)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_unsorted_arrivals_are_sorted_stably_and_round_trip(tmp_path, suffix):
    src = _write(tmp_path / "in.csv", [CSV_HEADER, "5,1,1", "3,2,2", "3,3,3", "4,4,4"])
    df = load_request_trace(src)
    assert df["arrival_s"].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert df["request_id"].tolist() == [1, 2, 3, 0]
    assert df["prompt_tokens"].tolist() == [2, 3, 4, 1]
    out = tmp_path / f"out{suffix}"
    write_request_trace(df, out)
    pd.testing.assert_frame_equal(load_request_trace(out), df)


def test_csv_accepts_crlf_blank_lines_and_any_column_order(tmp_path):
    path = _write(tmp_path / "t.csv", ["output_tokens, arrival_s ,prompt_tokens", "7,1.5,3", "",
                                       " 8 , 2.25 , 4 "], newline="\r\n")
    df = load_request_trace(path)
    assert df["arrival_s"].tolist() == [0.0, 0.75]
    assert df["prompt_tokens"].tolist() == [3, 4]
    assert df["output_tokens"].tolist() == [7, 8]


def test_jsonl_ignores_extra_keys(tmp_path):
    path = _write(tmp_path / "t.jsonl", ['{"arrival_s": 0.5, "prompt_tokens": 3, "output_tokens": 0, "x": 1}',
                                         '{"arrival_s": 2, "prompt_tokens": 4, "output_tokens": 5}'])
    df = load_request_trace(path)
    assert df.values.tolist() == [[0, 0.0, 3, 0], [1, 1.5, 4, 5]]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 50), seed=st.integers(0, 2**32), suffix=st.sampled_from([".csv", ".jsonl"]))
def test_synthetic_trace_round_trips(tmp_path_factory, n, seed, suffix):
    df = synthetic_requests(n, rate_per_s=3.0, seed=seed)
    out = tmp_path_factory.mktemp("rt") / f"t{suffix}"
    write_request_trace(df, out)
    pd.testing.assert_frame_equal(load_request_trace(out), df)


def test_write_rejects_unknown_extension(tmp_path):
    with pytest.raises(TraceError, match=r"\.txt"):
        write_request_trace(synthetic_requests(3, rate_per_s=1.0), tmp_path / "t.txt")


# --- rate_scale and limit -----------------------------------------------------

def test_rate_scale_divides_arrival_times():
    base = load_request_trace(CODE, limit=1000)
    fast = load_request_trace(CODE, limit=1000, rate_scale=2.0)
    np.testing.assert_array_equal(fast["arrival_s"].to_numpy(), base["arrival_s"].to_numpy() / 2.0)
    assert trace_summary(fast)["mean_arrival_rate_per_s"] == pytest.approx(
        2 * trace_summary(base)["mean_arrival_rate_per_s"])


def test_limit_keeps_first_rows_and_does_not_read_further(tmp_path):
    full = load_request_trace(CODE)
    head = load_request_trace(CODE, limit=100)
    pd.testing.assert_frame_equal(head, full.head(100))
    path = _write(tmp_path / "t.csv", [CSV_HEADER, "0,1,1", "1,1,1", "oops,1,1"])
    assert len(load_request_trace(path, limit=2)) == 2
    with pytest.raises(TraceError):
        load_request_trace(path, limit=3)


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": 1.5}, {"rate_scale": 0.0},
                                    {"rate_scale": -1.0}, {"rate_scale": math.inf}])
def test_bad_limit_or_rate_scale(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        load_request_trace(CODE, **kwargs)


# --- malformed files ----------------------------------------------------------

AZ_OK = "2023-11-16 18:17:03.9799600,4808,10"
CSV_OK = "0.5,10,2"
JSON_OK = '{"arrival_s": 0.5, "prompt_tokens": 10, "output_tokens": 2}'

# (file name, header, bad row, field named in the message); the bad row lands on line 4.
BAD_ROWS = [
    ("az_ts.csv", AZURE_HEADER, "2023-11-16 18:17:xx.9799600,4808,10", "TIMESTAMP"),
    ("az_date.csv", AZURE_HEADER, "2023-02-30 18:17:03.9799600,4808,10", "TIMESTAMP"),
    ("az_tz.csv", AZURE_HEADER, "2023-11-16 18:17:03.97+01:00,4808,10", "TIMESTAMP"),
    ("az_float.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,4808.5,10", "ContextTokens"),
    ("az_neg.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,4808,-3", "GeneratedTokens"),
    ("az_zero.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,0,10", "ContextTokens"),
    ("az_empty.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,,10", "ContextTokens"),
    ("az_huge.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,99999999999999999999,10", "ContextTokens"),
    ("az_missing.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,4808", "GeneratedTokens"),
    ("az_extra.csv", AZURE_HEADER, "2023-11-16 18:17:04.0,4808,10,7", "GeneratedTokens"),
    ("csv_text.csv", CSV_HEADER, "abc,10,2", "arrival_s"),
    ("csv_neg.csv", CSV_HEADER, "-1.0,10,2", "arrival_s"),
    ("csv_nan.csv", CSV_HEADER, "nan,10,2", "arrival_s"),
    ("csv_zero.csv", CSV_HEADER, "1.0,0,2", "prompt_tokens"),
    ("csv_word.csv", CSV_HEADER, "1.0,10,two", "output_tokens"),
    ("csv_missing.csv", CSV_HEADER, "1.0", "prompt_tokens"),
    ("js_missing.jsonl", None, '{"arrival_s": 1.0, "prompt_tokens": 10}', "output_tokens"),
    ("js_str.jsonl", None, '{"arrival_s": 1.0, "prompt_tokens": "10", "output_tokens": 2}',
     "prompt_tokens"),
    ("js_float.jsonl", None, '{"arrival_s": 1.0, "prompt_tokens": 10.0, "output_tokens": 2}',
     "prompt_tokens"),
    ("js_bool.jsonl", None, '{"arrival_s": true, "prompt_tokens": 10, "output_tokens": 2}',
     "arrival_s"),
    ("js_inf.jsonl", None, '{"arrival_s": Infinity, "prompt_tokens": 10, "output_tokens": 2}',
     "arrival_s"),
    ("js_neg.jsonl", None, '{"arrival_s": 1.0, "prompt_tokens": 10, "output_tokens": -2}',
     "output_tokens"),
]


@pytest.mark.parametrize("name, header, bad, field", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_row_message_names_file_line_and_field(tmp_path, name, header, bad, field):
    ok = {AZURE_HEADER: AZ_OK, CSV_HEADER: CSV_OK, None: JSON_OK}[header]
    # Header (JSONL: a first record), a good row, a blank line, the bad row twice.
    lines = [header or JSON_OK, ok, "", bad, bad]
    path = _write(tmp_path / name, lines, newline="\r\n")
    with pytest.raises(TraceError) as info:
        load_request_trace(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:4: field '{field}': ")
    assert "(got '" in msg and "\n" not in msg and "\r" not in msg
    assert isinstance(info.value, MixpeError)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '{"arrival_s": 1.0,'])
def test_jsonl_non_object_or_invalid_json(tmp_path, text):
    path = _write(tmp_path / "bad.jsonl", [JSON_OK, text])
    with pytest.raises(TraceError, match=r"bad\.jsonl:2: "):
        load_request_trace(path)


def test_first_bad_row_is_reported_even_if_a_later_row_is_worse(tmp_path):
    path = _write(tmp_path / "two.csv", [AZURE_HEADER, AZ_OK, "2023-11-16 18:17:04.0,1,x",
                                         "2023-11-16 18:17:04.0"])
    with pytest.raises(TraceError, match=r"two\.csv:3: field 'GeneratedTokens': not an integer \(got 'x'\)"):
        load_request_trace(path)


def test_unknown_header(tmp_path):
    path = _write(tmp_path / "hdr.csv", ["time,prompt,output", "1,2,3"])
    with pytest.raises(TraceError) as info:
        load_request_trace(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:1: ")
    assert AZURE_HEADER in msg and CSV_HEADER in msg and "JSONL" in msg


@pytest.mark.parametrize("lines", [[], ["", "  "], [AZURE_HEADER], [CSV_HEADER, "", ""]])
def test_empty_trace(tmp_path, lines):
    path = tmp_path / "empty.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(TraceError, match=r"empty\.csv:1: "):
        load_request_trace(path)


def test_missing_or_undecodable_file(tmp_path):
    with pytest.raises(TraceError, match="nope.csv"):
        load_request_trace(tmp_path / "nope.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes(f"{CSV_HEADER}\n0,1,1\n1,\xe9,1\n".encode("latin-1"))
    with pytest.raises(TraceError, match=r"latin\.csv:3: "):
        load_request_trace(path)


# --- synthetic requests -------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), seed=st.integers(0, 2**63), rate=st.floats(0.01, 1e4),
       sigma=st.floats(0.0, 3.0), max_tokens=st.integers(1, 5000))
def test_synthetic_is_deterministic_and_valid(n, seed, rate, sigma, max_tokens):
    dist = LogNormalTokens(mean_tokens=200.0, sigma=sigma, max_tokens=max_tokens)
    a = synthetic_requests(n, rate_per_s=rate, prompt_tokens=dist, output_tokens=dist, seed=seed)
    b = synthetic_requests(n, rate_per_s=rate, prompt_tokens=dist, output_tokens=dist, seed=seed)
    pd.testing.assert_frame_equal(a, b)
    _check_trace(a)
    assert a["request_id"].tolist() == list(range(n))
    for col in ("prompt_tokens", "output_tokens"):
        assert a[col].between(1, max_tokens).all()


def test_different_seeds_differ_and_streams_are_independent():
    a = synthetic_requests(100, rate_per_s=5.0, seed=1)
    b = synthetic_requests(100, rate_per_s=5.0, seed=2)
    assert not a.equals(b)
    fixed = synthetic_requests(100, rate_per_s=5.0, output_tokens=64, seed=1)
    assert (fixed["output_tokens"] == 64).all()
    pd.testing.assert_frame_equal(fixed.drop(columns="output_tokens"), a.drop(columns="output_tokens"))


@pytest.mark.parametrize("seed", range(4))
def test_synthetic_mean_rate_and_length(seed):
    dist = LogNormalTokens(mean_tokens=500.0, sigma=1.0, max_tokens=10**6)
    df = synthetic_requests(20_000, rate_per_s=50.0, prompt_tokens=dist, seed=seed)
    summary = trace_summary(df)
    assert summary["mean_arrival_rate_per_s"] == pytest.approx(50.0, rel=0.03)
    assert summary["mean_prompt_tokens"] == pytest.approx(500.0, rel=0.05)


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"rate_per_s": 0.0}, {"prompt_tokens": 0},
                                    {"output_tokens": 2.5}, {"seed": -1}])
def test_synthetic_rejects_bad_arguments(kwargs):
    args = {"n": 10, "rate_per_s": 1.0} | kwargs
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        synthetic_requests(**args)


def test_lognormal_tokens_validates():
    with pytest.raises(ConfigError, match="mean_tokens"):
        LogNormalTokens(mean_tokens=0.0, sigma=1.0, max_tokens=10)


# --- records and summary ------------------------------------------------------

def test_requests_from_frame_and_summary():
    df = pd.DataFrame({"request_id": [0, 1, 2], "arrival_s": [0.0, 1.0, 4.0],
                       "prompt_tokens": [10, 20, 30], "output_tokens": [1, 2, 3]})
    reqs = requests_from_frame(df)
    assert reqs[2] == Request(request_id=2, arrival_s=4.0, prompt_tokens=30, output_tokens=3)
    assert type(reqs[0].prompt_tokens) is int and type(reqs[0].arrival_s) is float
    s = trace_summary(df)
    assert s["requests"] == 3 and s["duration_s"] == 4.0
    assert s["mean_arrival_rate_per_s"] == 0.5
    assert s["mean_prompt_tokens"] == 20.0 and s["p50_prompt_tokens"] == 20.0
    assert s["p99_output_tokens"] == pytest.approx(2.98)
    assert math.isnan(trace_summary(df.head(1))["mean_arrival_rate_per_s"])


@settings(max_examples=60, deadline=None)
@given(cell=st.text(alphabet="0123456789+-.eE naif:T\t", max_size=24), column=st.integers(0, 2),
       azure=st.booleans())
def test_any_cell_loads_or_raises_a_specific_trace_error(tmp_path_factory, cell, column, azure):
    row = (AZ_OK if azure else CSV_OK).split(",")
    row[column] = cell
    path = _write(tmp_path_factory.mktemp("fuzz") / "f.csv",
                  [AZURE_HEADER if azure else CSV_HEADER, ",".join(row)])
    try:
        df = load_request_trace(path)
    except TraceError as exc:
        assert str(exc).startswith(f"{path}:2: field '")
        assert "malformed" not in str(exc)
    else:
        _check_trace(df)
