"""Fuzz cases shared by tests/test_fuzz.py (hypothesis, bounded) and benchmarks/bench_fuzz.py (counts).

Each ``run_*`` function takes one drawn input, calls costmodel as a user would, and returns an outcome:
``"ok"`` (a result that passed the physical checks), ``"refused"`` (costmodel's own error, one line naming
the field), or raises :class:`FuzzFailureError` (a traceback-worthy exception, a result that is not finite or
negative, a message that is not one line, or a call over its time bound).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from typing import Any

import hypothesis.strategies as st
import numpy as np

import costmodel as cm
from costmodel.errors import CostmodelError

TIME_BOUND_S = 30.0  # per call, on a loaded 2-core machine; each takes milliseconds to a second when idle
MODELS = ["llama-3-8b", "gpt2", "mixtral-8x7b", "deepseek-v3", "mamba-2.8b", "llama-3.1-405b"]
HARDWARE = ["h100-sxm", "a100-80gb", "l40s", "cpu", "mi300x"]
DTYPES = [*cm.DTYPES, "int3", "", "BF16"]


class FuzzFailureError(AssertionError):
    """What the fuzz suite exists to find."""


def _refusal(error: BaseException, where: str) -> str:
    message = str(error)
    if not message or "\n" in message.strip() or "np." in message or "Traceback" in message:
        raise FuzzFailureError(f"{where}: not one clean line: {message!r}")
    return "refused"


def _timed(where: str, call: Callable[[], Any]) -> Any:
    start = time.monotonic()
    try:
        return call()
    finally:
        took = time.monotonic() - start
        if took > TIME_BOUND_S:
            raise FuzzFailureError(f"{where}: took {took:.1f} s")


def _finite_nonnegative(where: str, values: dict[str, Any], allow_nan: tuple[str, ...] = ()) -> None:
    for key, value in values.items():
        x = np.asarray(value, dtype=np.float64)
        if key in allow_nan:
            x = x[~np.isnan(x)]
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise FuzzFailureError(f"{where}: {key} = {value!r}")


# ---------------------------------------------------------------------------------------- public API

valid_size = st.integers(min_value=1, max_value=4096)
sizes = st.one_of(  # mostly valid, so that valid input is exercised as much as invalid
    valid_size,
    valid_size,
    valid_size,
    valid_size,
    st.integers(min_value=-10, max_value=10**12),
    st.sampled_from([0, 2**31, 2**62, 10**40, 1.5, math.nan, math.inf, True, "8"]),
)
api_inputs = st.fixed_dictionaries(
    {
        "model": st.sampled_from(MODELS),
        "hardware": st.sampled_from(HARDWARE),
        "batch_size": sizes,
        "prompt_len": sizes,
        "output_len": sizes,
        "weight_dtype": st.sampled_from([*cm.DTYPES, *cm.DTYPES, "int3"]),
        "kv_dtype": st.sampled_from([*cm.DTYPES, *cm.DTYPES, "", "BF16"]),
        "sparsity": st.sampled_from(["none", "none", "2:4", "1:2"]),
        "tp": st.sampled_from([1, 1, 2, 4, 8, 0, 3]),
        "pp": st.sampled_from([1, 1, 2, 0]),
        "usd_per_hour": st.sampled_from([None, None, 2.5, 0.0, -1.0, math.nan]),
    }
)


valid_api_inputs = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["llama-3-8b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b"]),
        "hardware": st.sampled_from(["h100-sxm", "a100-80gb", "l40s", "h200"]),  # multi-GPU capable
        "batch_size": st.integers(min_value=1, max_value=512),
        "prompt_len": st.integers(min_value=1, max_value=4096),
        "output_len": st.integers(min_value=1, max_value=2048),
        "weight_dtype": st.sampled_from(list(cm.DTYPES)),
        "kv_dtype": st.sampled_from(["bf16", "fp16", "fp8", "int8", "fp32"]),
        "sparsity": st.sampled_from(["none", "2:4"]),
        "tp": st.sampled_from([1, 2, 4]),
        "pp": st.sampled_from([1, 2]),
        "usd_per_hour": st.sampled_from([None, 2.5]),
    }
)
"""Inputs every one of which is valid: each must give a checked result."""


def run_api(case: dict[str, Any]) -> str:
    """estimate() and size() on one drawn workload."""
    where = f"estimate({case})"

    def call() -> str:
        try:
            w = cm.Workload(
                case["batch_size"],
                case["prompt_len"],
                case["output_len"],
                weight_dtype=case["weight_dtype"],
                kv_dtype=case["kv_dtype"],
                sparsity=case["sparsity"],
            )
            dep = cm.Deployment(tp=case["tp"], pp=case["pp"])
            report = cm.estimate(case["model"], case["hardware"], w, dep, usd_per_hour=case["usd_per_hour"])
            sized = cm.size(
                case["model"],
                case["hardware"],
                batch_size=case["batch_size"],
                prompt_len=case["prompt_len"],
                output_len=case["output_len"],
                weight_dtype=case["weight_dtype"],
                kv_dtype=case["kv_dtype"],
            )
        except ValueError as e:  # CostmodelError, pydantic's ValidationError
            return _refusal(e, where)
        summary = report.summary()
        priced = ("usd_per_hour", "usd_per_million_input_tokens", "usd_per_million_output_tokens")
        _finite_nonnegative(
            where,
            {k: v for k, v in summary.items() if k != "fits"},
            allow_nan=(*priced, "joules_per_million_output_tokens"),
        )
        _finite_nonnegative(where, {k: v for k, v in sized.to_dict().items() if isinstance(v, int | float)})
        if not summary["e2e_s"] >= summary["ttft_s"] > 0:
            raise FuzzFailureError(f"{where}: e2e {summary['e2e_s']} < ttft {summary['ttft_s']}")
        if sized.kv_cache_bytes < 0 or sized.weight_bytes <= 0:
            raise FuzzFailureError(f"{where}: bytes {sized.kv_cache_bytes}, {sized.weight_bytes}")
        return "ok"

    return str(_timed(where, call))


# ---------------------------------------------------------------------------------------- profile loaders

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.sampled_from([0, -1, 2**31, 2**40, 10**11, 10**400, "768", "auto", "", "gelu"])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def base_configs() -> list[dict[str, Any]]:
    from pathlib import Path

    folder = Path(__file__).parent / "data" / "hf_configs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


BASE_CONFIGS = base_configs()
mutations = st.tuples(
    st.integers(min_value=0, max_value=len(BASE_CONFIGS) - 1),
    st.lists(st.tuples(st.integers(min_value=0, max_value=60), json_values), min_size=1, max_size=3),
)


def run_config(mutation: tuple[int, list[tuple[int, Any]]]) -> str:
    """from_hf_config on a published config.json with a few values replaced (any JSON value)."""
    index, changes = mutation
    config = dict(BASE_CONFIGS[index])
    keys = sorted(config)
    for position, value in changes:
        config[keys[position % len(keys)]] = value
    where = f"from_hf_config({BASE_CONFIGS[index].get('_name_or_path', index)} with {changes!r:.200})"

    def call() -> str:
        try:
            model = cm.ModelProfile.from_hf_config(config)
        except CostmodelError as e:
            return _refusal(e, where)
        params = cm.param_count(model)
        if not 0 < params.active <= params.total <= 2**53:
            raise FuzzFailureError(f"{where}: parameters {params.total}")
        if cm.kv_bytes_per_token(model) < 0:
            raise FuzzFailureError(f"{where}: negative KV bytes")
        return "ok"

    return str(_timed(where, call))


# ---------------------------------------------------------------------------------------- CLI

cli_values = st.sampled_from(
    [
        "1",
        "0",
        "-1",
        "8",
        "2048",
        "1e400",
        "nan",
        "",
        "abc",
        "500",
        "500ms",
        "0.5s",
        "10000000",
        "99999999999",
    ]
)
cli_args = st.one_of(
    st.tuples(
        st.just("estimate"),
        st.sampled_from([*MODELS, "llama-9-8b", "/dev/zero", ""]),
        st.sampled_from(["--batch-size", "--prompt-len", "--output-len", "--tp", "--pp", "--usd-per-hour"]),
        cli_values,
    ),
    st.tuples(
        st.just("compare"),
        st.sampled_from(MODELS),
        st.sampled_from(["--hardware", "--batch-size", "--usd-per-hour", "--tp"]),
        st.sampled_from(["", ",", "h100-sxm", "h100-sxm,cpu", "h100", "2", "h100-sxm=1", "-3"]),
    ),
    st.tuples(
        st.just("plan"),
        st.just("gpt2"),
        st.sampled_from(["--ttft-p99", "--tpot-p99", "--rate", "--tp", "--prompt-mean", "--usd-per-hour"]),
        cli_values,
    ),
    st.tuples(
        st.just("speculative"),
        st.just("gpt2"),
        st.sampled_from(["--alpha", "--k-max", "--tp"]),
        cli_values,
    ),
)


def cli_command(args: tuple[str, str, str, str]) -> list[str]:
    command, model, option, value = args
    head = (
        ["speculative", "--target", model, "--draft", "ngram"]
        if command == "speculative"
        else [command, "--model", model]
    )
    extra = {
        "plan": [
            "--rate",
            "2",
            "--hardware",
            "h100-sxm",
            "--tp",
            "1",
            "--prompt-mean",
            "256",
            "--output-mean",
            "64",
        ],
        "speculative": ["--alpha", "0.6", "--prompt-len", "256", "--output-len", "64"],
        "estimate": ["--prompt-len", "256", "--output-len", "64"],
        "compare": ["--prompt-len", "256", "--output-len", "64", "--hardware", "h100-sxm,l40s"],
    }[command]
    return [*head, *extra, option, value, "--json"]


def run_cli(args: tuple[str, str, str, str]) -> str:
    """One ``costmodel`` command line with one option drawn; exit 0 (strict JSON), 1 (no plan) or 2 (one line)."""
    from typer.testing import CliRunner

    from costmodel.cli import app

    command = cli_command(args)
    where = f"costmodel {' '.join(command)}"
    result = _timed(where, lambda: CliRunner().invoke(app, command))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise FuzzFailureError(f"{where}: {type(result.exception).__name__}: {result.exception}")
    if "Traceback" in result.output:
        raise FuzzFailureError(f"{where}: traceback")
    if result.exit_code == 0:

        def refuse(constant: str) -> None:
            raise FuzzFailureError(f"{where}: {constant} in JSON")

        json.loads(result.stdout, parse_constant=refuse)
        return "ok"
    if result.exit_code == 2 and "Error: Invalid value for '--" in result.stderr:
        return "refused"  # the option parser's own usage error: it names the option
    if result.exit_code in (1, 2):
        message = result.stderr.strip()
        if not message.startswith("error: ") or "\n" in message:
            raise FuzzFailureError(f"{where}: exit {result.exit_code} with {message!r}")
        return "refused"
    raise FuzzFailureError(f"{where}: exit code {result.exit_code}")


# ---------------------------------------------------------------------------------------- dashboard links

query_values = st.one_of(
    st.sampled_from(["llama-9-8b", "-5", "1e400", "int3", "0", "true", "[]", "{}", "nan", "", "8", "h100"]),
    st.sampled_from(["llama-3-8b", "h100-sxm", "4", "1", "bf16", "fp8", "0.5", "2", "selective", "ngram"]),
    st.text(max_size=12),
)
queries = st.dictionaries(
    st.sampled_from(
        [
            "model",
            "hardware",
            "batch_size",
            "prompt_len",
            "output_len",
            "weight_dtype",
            "kv_dtype",
            "tp",
            "pp",
            "replicas",
            "n_gpus",
            "alpha",
            "k_max",
            "usd_per_hour",
            "zero_stage",
            "recompute",
            "draft",
        ]
    ),
    query_values,
    min_size=1,
    max_size=3,
)

VALID_LINK_VALUES = {
    "model": ["llama-3-8b", "mistral-7b", "gpt2"],
    "hardware": ["h100-sxm", "l40s", "a100-80gb"],
    "batch_size": ["1", "64", "300"],
    "prompt_len": ["1", "512", "4000"],
    "weight_dtype": ["fp8", "int4", "bf16"],
    "tp": ["1", "2", "4"],
    "replicas": ["1", "3"],
    "alpha": ["0", "0.55", "1"],
    "recompute": ["full", "selective"],
}
valid_queries = st.dictionaries(
    st.sampled_from(sorted(VALID_LINK_VALUES)), st.just(""), min_size=1, max_size=3
).flatmap(lambda keys: st.fixed_dictionaries({key: st.sampled_from(VALID_LINK_VALUES[key]) for key in keys}))
page_queries = st.one_of(queries, valid_queries)
"""Links for the dashboard itself: fuzzed ones, and ones every value of which it must take."""


def run_scenario(query: dict[str, str]) -> str:
    """The dashboard's scenario record from a shared link's values (as the URL carries them: strings, or
    what JSON makes of them): a Scenario, or the dashboard's own error naming the field."""
    import sys
    from pathlib import Path

    app_dir = str(Path(__file__).resolve().parents[1] / "costmodel_app")
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    from scenario import Scenario

    where = f"Scenario from ?{query}"
    data: dict[str, Any] = {}
    for key, raw in query.items():
        try:
            data[key] = json.loads(raw)
        except ValueError:
            data[key] = raw
        if key == "hardware" and not isinstance(data[key], list):
            data[key] = [data[key]]

    def call() -> str:
        try:
            Scenario.from_dict(data, "link")
        except CostmodelError as e:
            message = str(e)
            if "Traceback" in message:
                raise FuzzFailureError(f"{where}: {message!r}") from None
            return "refused"
        return "ok"

    return str(_timed(where, call))


def run_dashboard_link(query: dict[str, str]) -> str:
    """The dashboard itself (streamlit.testing's AppTest) opened on a shared link with these values: no
    exception, and every parameter the Scenario record refuses is named in the page's warning; one it
    takes and does not name is the value the widget holds. "refused" when the warning named one."""
    import re
    import sys
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app_dir = Path(__file__).resolve().parents[1] / "costmodel_app"
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    from scenario import Scenario

    where = f"dashboard at ?{query}"
    at = AppTest.from_file(str(app_dir / "streamlit_app.py"), default_timeout=TIME_BOUND_S)
    for key, raw in query.items():
        at.query_params[key] = raw
    _timed(where, at.run)
    if at.exception:
        raise FuzzFailureError(f"{where}: {[e.value for e in at.exception]}")
    notes = " ".join(re.sub(r"\\(.)", r"\1", w.value) for w in at.warning if w.value.startswith("This link"))
    named = {key for key in query if f"**{key}** = " in notes}
    for key, raw in query.items():
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        candidates = [[raw]] if key == "hardware" else [raw, value]
        taken = []
        for candidate in candidates:
            with contextlib.suppress(CostmodelError):
                taken.append(getattr(Scenario.from_dict({key: candidate}, "link"), key))
        if key == "n_gpus" or not taken:
            if key not in named:
                raise FuzzFailureError(f"{where}: {key}={raw!r} ignored without a word")
        elif key in at.session_state:  # a widget of the page: it holds the value, or the warning says not
            held = at.session_state[key] in taken
            if held == (key in named):
                raise FuzzFailureError(f"{where}: {key}={raw!r}, widget {at.session_state[key]!r}, {notes!r}")
    return "refused" if named else "ok"
