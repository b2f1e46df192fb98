"""Bad input below the specs: refused with costmodel's own error naming the argument, in bounded time and
memory; never a silently wrong number (issue 17, items 4-6, 12, 13)."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import pytest

import costmodel as cm
from costmodel import queueing
from costmodel.dtypes import MAX_EXACT_BYTES, storage_bytes
from costmodel.errors import CostmodelError
from costmodel.serving import kv_capacity_tokens, max_concurrency

LLAMA = cm.load_model("llama-3-8b")
H100 = cm.load_hardware("h100-sxm")


# ---------------------------------------------------------------------------------------- int64 overflow


def test_storage_bytes_is_exact_up_to_its_limit_and_refuses_beyond() -> None:
    assert int(storage_bytes(2**53, "fp32")) == 2**55  # exact, where float64 would round
    assert int(storage_bytes(2**53, "fp8")) == 2**53
    assert int(storage_bytes(2**53 - 1, "int4")) == math.ceil(
        ((2**53 - 1) * 4 + math.ceil((2**53 - 1) / 128) * 20) / 8
    )  # Python integers as the oracle
    for n in (2**62, 2**53 + 1, -1, 1.5, math.nan, 2**80, "12"):
        with pytest.raises(CostmodelError, match="n_elements"):
            storage_bytes(n, "fp8")
    with pytest.raises(CostmodelError, match="group_size"):
        storage_bytes(10, "int4", group_size=-128)


def test_kv_cache_past_the_exact_range_is_an_error_not_a_negative_number() -> None:
    model = cm.load_model("llama-3.1-405b")
    exact = 10_000 * 131_072 * cm.kv_bytes_per_token(model)  # Python ints: the oracle
    assert int(cm.kv_cache_bytes(model, batch_size=10_000, context_len=131_072)) == exact
    with pytest.raises(CostmodelError, match="2\\*\\*53"):  # 676 PB: past the stated limit
        cm.kv_cache_bytes(model, batch_size=10_000_000, context_len=131_072)
    with pytest.raises(CostmodelError, match="2\\*\\*53"):
        cm.kv_cache_bytes(model, batch_size=2**31 - 1, context_len=131_072)
    assert MAX_EXACT_BYTES == 2**53


@pytest.mark.parametrize(
    ("model", "batch_size", "prompt_len"),
    [("llama-3.1-405b", 10_000_000, 10_000_000), ("llama-3-8b", 1, 100_000_000_000_000)],
)
def test_the_reported_overflows_are_refused(model: str, batch_size: int, prompt_len: int) -> None:
    with pytest.raises(CostmodelError):
        cm.estimate(model, "h100-sxm", cm.Workload(batch_size, prompt_len, 256))
    with pytest.raises(CostmodelError):
        cm.size(model, "h100-sxm", batch_size=batch_size, prompt_len=prompt_len, output_len=256)


# ---------------------------------------------------------------------------------------- one context rule


def test_one_context_rule_for_estimate_size_and_the_cli() -> None:
    from typer.testing import CliRunner

    from costmodel.cli import app

    rule = "exceeds llama-3-8b's context of 8,192 tokens"
    with pytest.raises(CostmodelError, match=rule):
        cm.estimate(LLAMA, H100, cm.Workload(1, 8000, 193))
    cm.estimate(LLAMA, H100, cm.Workload(1, 8000, 192))  # exactly the context: allowed
    with pytest.raises(CostmodelError, match=rule):
        cm.size(LLAMA, H100, batch_size=1, prompt_len=10_000_000, output_len=1)
    with pytest.raises(CostmodelError, match=rule):  # one point of a grid past the context
        cm.estimate(LLAMA, H100, cm.Workload(1, np.array([1024, 9000]), 1))
    runner = CliRunner()
    for args in (
        ["estimate", "--model", "llama-3-8b", "--prompt-len", "10000000"],
        ["plan", "--model", "llama-3-8b", "--rate", "1", "--prompt-mean", "20000", "--hardware", "h100-sxm"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert rule in " ".join(result.stderr.split())


# ---------------------------------------------------------------------------------------- below Workload


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: cm.weight_bytes(LLAMA, sparsity="1:2"), "sparsity"),
        (lambda: cm.weight_bytes(LLAMA, keep_dtype="int3"), "int3"),
        (lambda: cm.training_memory(LLAMA, batch_size=1, seq_len=128, recompute="some"), "recompute"),
        (lambda: cm.training_memory(LLAMA, batch_size=1, seq_len=128, method="adapter"), "method"),
        (lambda: cm.training_memory(LLAMA, batch_size=1, seq_len=128, zero_stage=4), "zero_stage"),
        (lambda: cm.training_memory(LLAMA, batch_size=-1, seq_len=128), "batch_size"),
        (
            lambda: cm.training_memory(
                LLAMA, batch_size=1, seq_len=128, method="lora", lora_rank=LLAMA.d_model + 1
            ),
            "lora_rank",
        ),
        (lambda: cm.training_memory(LLAMA, batch_size=1, seq_len=LLAMA.max_context + 1), "seq_len"),
        (lambda: cm.training_flop(LLAMA, batch_size=1, seq_len=10, recompute="some"), "recompute"),
        (lambda: cm.kv_cache_bytes(LLAMA, batch_size=-1, context_len=10), "batch_size"),
        (lambda: cm.kv_cache_bytes(LLAMA, batch_size=1, context_len=-10), "context_len"),
        (lambda: cm.kv_cache_bytes(LLAMA, batch_size=1.5, context_len=10), "batch_size"),
        (lambda: cm.forward_flop(LLAMA, batch_size=1, new_tokens=-3), "new_tokens"),
        (lambda: cm.forward_flop(LLAMA, batch_size=1, new_tokens=3, past_tokens=-1), "past_tokens"),
        (lambda: cm.forward_flop(LLAMA, batch_size=1, new_tokens=3, attention="sparse"), "attention"),
        (lambda: cm.inference_activation_bytes(LLAMA, batch_size=math.nan, new_tokens=1), "batch_size"),
        (lambda: cm.fit(LLAMA, H100, batch_size=1, context_len=1, tp=0), "tp"),
        (lambda: cm.fit(LLAMA, H100, batch_size=1, context_len=1, usable_fraction=1.5), "usable_fraction"),
        (lambda: cm.estimate(LLAMA, H100, usd_per_hour=-2.0), "usd_per_hour"),
        (lambda: cm.estimate(LLAMA, H100, usd_per_hour=math.inf), "usd_per_hour"),
        (lambda: cm.estimate(LLAMA, H100, attention_impl="paged"), "attention_impl"),
        (lambda: cm.Workload(sparsity="1:2"), "sparsity"),  # type: ignore[arg-type]
        (lambda: cm.Workload(batch_size=2**31), "batch_size"),
        (lambda: cm.Workload(batch_size=10**40), "batch_size"),
        (lambda: cm.Workload(batch_size=True), "batch_size"),
        # review 20c: each named its own field only after these checks (-1 named new_tokens; 2.5 passed;
        # "0.9" and "x" raised numpy's or Python's own TypeError / ValueError wording)
        (lambda: kv_capacity_tokens(LLAMA, H100, prefill_chunk_tokens=-1), "prefill_chunk_tokens"),
        (lambda: kv_capacity_tokens(LLAMA, H100, prefill_chunk_tokens=2.5), "prefill_chunk_tokens"),
        (lambda: kv_capacity_tokens(LLAMA, H100, usable_fraction="0.9"), "usable_fraction"),
        (lambda: kv_capacity_tokens(LLAMA, H100, usable_fraction=math.nan), "usable_fraction"),
        (lambda: max_concurrency(LLAMA, H100, context_len="x"), "context_len"),
        (lambda: max_concurrency(LLAMA, H100, context_len=[1000, -1]), "context_len"),
        (lambda: max_concurrency(LLAMA, H100, context_len=1000, usable_fraction="0.9"), "usable_fraction"),
    ],
)
def test_invalid_arguments_are_refused_naming_the_argument(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=field) as raised:  # CostmodelError is a ValueError
        call()
    assert "\n" not in str(raised.value)
    assert "np." not in str(raised.value)


# ---------------------------------------------------------------------------------------- config.json


def gpt2_config(**changes: object) -> dict[str, object]:
    return {
        "model_type": "gpt2",
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "vocab_size": 50257,
        "n_positions": 1024,
    } | changes


def test_a_config_json_with_the_right_types_reads() -> None:
    assert cm.param_count(cm.ModelProfile.from_hf_config(gpt2_config())).total == 124_439_808  # GPT-2 small


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"n_embd": "768"}, "'n_embd' must be a whole number, got string '768'"),
        ({"n_embd": 768.5}, "'n_embd' must be a whole number"),
        ({"n_embd": math.nan}, "'n_embd' must be a whole number"),
        ({"n_embd": True}, "'n_embd' must be a whole number"),
        ({"n_layer": [12]}, "'n_layer' must be a whole number"),
        ({"n_layer": {"a": 1}}, "'n_layer' must be a whole number"),
        ({"n_embd": 10**5000}, "'n_embd' must lie in"),
        ({"n_inner": 10**11}, "'n_inner' must lie in [0, 16,777,216]"),
        ({"tie_word_embeddings": "yes"}, "'tie_word_embeddings' must be true or false"),
        ({"activation_function": ["gelu"]}, "'activation_function' must be a name"),
        ({"model_type": ["gpt2"]}, "unsupported model_type"),
        ({"n_embd": 16_777_216, "n_layer": 16_777_216, "n_head": 1}, "parameters, past"),
    ],
)
def test_config_json_values_of_the_wrong_type_or_size_are_refused(
    changes: dict[str, object], needle: str
) -> None:
    with pytest.raises(CostmodelError) as raised:
        cm.ModelProfile.from_hf_config(gpt2_config(**changes))
    assert needle in str(raised.value)


def test_a_huge_head_dim_is_refused_before_anything_is_sized() -> None:
    """The issue's 200-byte config: a bad head count and a huge head_dim (issue 17, item 12)."""
    config = {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 3,
        "head_dim": 10**11,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 8192,
    }
    with pytest.raises(CostmodelError, match="'head_dim' must lie in"):
        cm.ModelProfile.from_hf_config(config)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[" * 100_000 + "]" * 100_000, "nesting"),
        ('{"model_type": "gpt2", "n_embd": ' + "9" * 5000 + "}", "oversized number"),
        ("\xff\xfe not text", "not UTF-8"),
        ("{" + " " * 16_100_000 + "}", "over 16,000,000 bytes"),
    ],
)
def test_hostile_config_files_end_in_one_error(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(CostmodelError, match=needle):
        cm.load_model(str(path))


def test_paths_that_are_not_profiles_are_refused_without_reading_them(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" * 300_000)  # 1.5 MB: parsing it would take seconds
    secret = tmp_path / "secret.yaml"
    secret.write_text("password hunter2 is not a mapping\n")
    start = time.monotonic()
    for path, needle in [
        ("/dev/zero", "not a regular file"),
        (str(fifo), "not a regular file"),
        (str(tmp_path), "not a regular file"),
        (str(big), "over 1,000,000 bytes"),
    ]:
        with pytest.raises(CostmodelError, match=needle):
            cm.load_model(path)
    with pytest.raises(CostmodelError) as raised:
        cm.load_model(str(secret))
    assert "hunter2" not in str(raised.value)  # the file's content is never echoed
    assert time.monotonic() - start < 10  # generous: the point is that nothing hangs


# ---------------------------------------------------------------------------------------- queueing


def test_erlang_c_with_many_servers_is_closed_form_and_agrees_with_the_recursion() -> None:
    """Above 1,024 servers erlang_c uses the truncated-Poisson closed form; the recursion of erlang_b
    (an independent formula) is the oracle."""
    c = np.arange(1025, 4000, 37, dtype=np.float64)
    a = c * np.linspace(0.3, 0.999, c.size)
    b = queueing.erlang_b(c, a)
    expected = c * b / (c - a * (1 - b))
    np.testing.assert_allclose(queueing.erlang_c(c, a), expected, rtol=1e-9)
    assert float(queueing.erlang_c(10**7, 5.0)) == 0.0  # immediate, not one Python step per server
    assert float(queueing.erlang_c(10**7, 2e7)) == 1.0
    assert float(queueing.erlang_c(2000, 0.0)) == 0.0


def test_json_of_a_device_without_price_has_nulls() -> None:
    report = cm.estimate("gpt2", "cpu", cm.Workload(1, 512, 16))
    assert math.isnan(float(report.usd_per_hour))  # the API's NaN: "no price" ...
    from costmodel.cli import _finite

    assert json.loads(json.dumps(_finite(report.summary()), allow_nan=False))["usd_per_hour"] is None


# ------------------------------------------------------------------ calibrate --out, empty profiles


def test_calibrate_out_that_is_a_file_is_refused_before_the_fit(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from costmodel.cli import app

    out = tmp_path / "profiles"
    out.write_text("mine")
    result = CliRunner().invoke(app, ["calibrate", "--from", str(tmp_path / "nowhere"), "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --out {out}: is a file, not a folder; give a folder for the calibrated profiles"
    ]
    assert out.read_text() == "mine"


@pytest.mark.parametrize(
    ("fail_at", "error", "reason"),
    [
        ("fsync", OSError(28, "No space left on device"), "No space left on device"),
        ("mkstemp", PermissionError(13, "Permission denied"), "Permission denied"),  # a read-only folder
        ("replace", OSError(28, "No space left on device"), "No space left on device"),
    ],
)
def test_a_failed_overlay_write_leaves_no_partial_file_and_replaces_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str, error: OSError, reason: str
) -> None:
    """Written all or nothing: an earlier overlay stays as it was, no temporary or empty file is left
    (root ignores chmod 0o500, so the failures are injected where the operating system reports them)."""
    import tempfile

    from costmodel.calibrate import write_overlays

    calibration = H100.kernel_calibration
    assert calibration is not None  # the committed overlay
    old = tmp_path / "h100-sxm.yaml"
    old.write_text("# the earlier fit\n")

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(tempfile if fail_at == "mkstemp" else os, fail_at, fail)
    with pytest.raises(CostmodelError) as info:
        write_overlays({"h100-sxm": calibration, "h200": calibration}, tmp_path)
    assert str(info.value).startswith(f"--out {tmp_path}: cannot write {tmp_path}/")
    assert reason in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h100-sxm.yaml"]
    assert old.read_text() == "# the earlier fit\n"


def test_overlays_written_whole_load_back(tmp_path: Path) -> None:
    from costmodel.calibrate import write_overlays

    assert H100.kernel_calibration is not None
    paths = write_overlays({"h100-sxm": H100.kernel_calibration}, tmp_path / "new")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["h100-sxm.yaml"]
    assert cm.load_hardware(str(paths[0])).kernel_calibration == H100.kernel_calibration


@pytest.mark.parametrize("content", ["", "{}\n", "# only a comment\n"])
def test_an_empty_profile_is_refused_naming_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "h100-sxm.yaml"
    path.write_text(content)
    for load in (cm.load_hardware, cm.load_model):
        with pytest.raises(CostmodelError, match=f"^{path} is empty: not a profile"):
            load(str(path))
