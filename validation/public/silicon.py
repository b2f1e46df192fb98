"""Predict the public end-to-end serving measurements (``silicon_sample.csv``) with the closed-loop model.

Each row of NVIDIA aiconfigurator's silicon sample (Apache-2.0) is one deployment measured by a closed
loop of clients: backend and version, model (Hugging Face id), formats, ``isl`` / ``osl``, parallelism,
the per-worker ``batch_size``, the client concurrency (``silicon_concurrency=`` in
``silicon_data_source``), and the measured mean TTFT and TPOT in milliseconds.

A row is *covered* when costmodel can express it: its model's ``config.json`` is in ``DIR/model_configs``
and of a supported architecture, its system maps to a hardware profile, its formats to costmodel dtypes,
and its deployment to a :class:`costmodel.Deployment`. Every other row is counted with the reason, never
dropped. Covered aggregated rows are predicted by :func:`costmodel.closed_loop.closed_loop` on an engine
of the row's model, device, formats and parallelism. Disaggregated rows (``mode == "disagg"``) and
attention data parallelism are not modelled yet and are counted as not covered.

Assumptions, stated once: the KV cache is stored in bf16 (the engines' default ``auto`` for bf16 and most
fp8 checkpoints); the engine's token budget is 8192 tokens per iteration (vLLM's
``max_num_batched_tokens``, TensorRT-LLM's ``max_num_tokens`` and SGLang's ``chunked_prefill_size`` for
large GPUs are 8192 or more), and its sequence limit the row's ``batch_size``; no per-iteration overhead
is added (uncalibrated). Nothing is fitted here: every row is held out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from costmodel.closed_loop import closed_loop
from costmodel.errors import CostmodelError
from costmodel.registry import load_hardware
from costmodel.serving import Engine
from costmodel.specs import Deployment, ModelProfile, Workload
from validation.public.reader import SYSTEM_PROFILES

SILICON_FILE = "silicon_sample.csv"
TOKEN_BUDGET = 8192

CONFIG_ALIASES: dict[str, str] = {
    "meta-llama/Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B",
    "zhipuai/GLM-5": "zai-org/GLM-5",
    "nvidia/DeepSeek-R1-NVFP4": "deepseek-ai/DeepSeek-R1",
    "nvidia/Qwen3-32B-NVFP4": "Qwen/Qwen3-32B",
}
"""Hugging Face ids whose ``config.json`` ships under another id with the same architecture (an instruct
or quantized variant of the same weights' shapes)."""

WEIGHT_DTYPES: dict[str, str] = {"fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4", "int4_wo": "int4"}
"""``gemm_quant_mode`` -> costmodel weight dtype."""
ACTIVATION_DTYPES: dict[str, str] = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "fp8", "int4_wo": "bf16"}
"""``gemm_quant_mode`` -> the dtype the matmuls run in (fp8 for nvfp4 until fp4 peaks are modelled)."""

ROW_COLUMNS = ("id", "system", "backend", "mode", "model_path", "isl", "osl", "concurrency", "covered",
               "reason", "split", "ttft_ms", "tpot_ms", "predicted_ttft_ms", "predicted_tpot_ms")  # fmt: skip


def read_silicon(data_dir: Path) -> pd.DataFrame:
    """The silicon sample of ``data_dir`` with the client concurrency parsed into ``concurrency``."""
    path = Path(data_dir) / SILICON_FILE
    table = pd.read_csv(path)
    missing = {"id", "backend", "model_path", "system", "mode", "isl", "osl", "silicon_ttft_ms"} - set(
        table.columns
    )
    if missing:
        raise CostmodelError(f"{path}: missing columns {sorted(missing)}")
    found = table["silicon_data_source"].astype(str).str.extract(r"silicon_concurrency=(\d+)")[0]
    table["concurrency"] = pd.to_numeric(found, errors="coerce")
    return table


def _config_path(configs: Path, model_path: str) -> Path:
    org_name = CONFIG_ALIASES.get(model_path, model_path)
    return configs / (org_name.replace("/", "--") + "_config.json")


def _load_models(configs: Path, model_paths: list[str]) -> dict[str, ModelProfile | str]:
    """Model profile per id, or the reason it cannot be loaded."""
    out: dict[str, ModelProfile | str] = {}
    for model_path in model_paths:
        path = _config_path(configs, model_path)
        if not path.is_file():
            out[model_path] = f"no config.json for {model_path}"
            continue
        try:
            out[model_path] = ModelProfile.from_hf_config(path)
        except (CostmodelError, ValueError) as error:
            first = str(error).splitlines()[0]
            out[model_path] = f"model not supported: {re.sub(r'^.*?: ', '', first)[:120]}"
    return out


@dataclass
class _Group:
    model: ModelProfile
    hardware: str
    workload: Workload
    deployment: Deployment
    batch_size: int


def predict_silicon(data_dir: Path) -> pd.DataFrame:
    """Every row of the silicon sample with its prediction or the reason it is not covered."""
    table = read_silicon(data_dir)
    models = _load_models(Path(data_dir) / "model_configs", sorted(table["model_path"].unique()))
    reason = pd.Series("", index=table.index, dtype=object)

    def refuse(mask: Any, why: str) -> None:
        reason[mask & (reason == "")] = why

    refuse(table["mode"] != "agg", "disaggregated serving is not modelled yet")
    refuse(~table["system"].isin(list(SYSTEM_PROFILES)), "system without a hardware profile")
    refuse(table["attention_dp_size"].fillna(1) > 1, "attention data parallelism is not modelled yet")
    refuse(table["concurrency"].isna(), "no silicon_concurrency in silicon_data_source")
    refuse(~table["gemm_quant_mode"].isin(list(WEIGHT_DTYPES)), "gemm_quant_mode not mapped")
    for model_path, model in models.items():
        if isinstance(model, str):
            refuse(table["model_path"] == model_path, model)
    moe_split = table["moe_tp_size"].fillna(1) * table["moe_ep_size"].fillna(1)
    refuse(moe_split != table["tp_size"].fillna(1), "moe_tp x moe_ep differs from tp")

    predicted_ttft = np.full(len(table), np.nan)
    predicted_tpot = np.full(len(table), np.nan)
    keys = ["model_path", "system", "gemm_quant_mode", "tp_size", "pp_size", "moe_ep_size", "batch_size"]
    for key, rows in table[reason == ""].groupby(keys, sort=True):
        model_path, system, quant, tp, pp, ep, batch = key
        model = models[str(model_path)]
        assert isinstance(model, ModelProfile)
        try:
            engine = Engine(
                model,
                load_hardware(SYSTEM_PROFILES[str(system)]),
                Workload(
                    1,
                    1,
                    1,
                    weight_dtype=WEIGHT_DTYPES[str(quant)],
                    activation_dtype=ACTIVATION_DTYPES[str(quant)],
                ),
                Deployment(tp=int(tp), pp=int(pp), ep=int(ep) if model.moe is not None else 1),
                max_batch_size=int(batch),
                max_batched_tokens=max(TOKEN_BUDGET, int(batch)),
            )
            result = closed_loop(
                engine,
                concurrency=rows["concurrency"].to_numpy(float),
                isl=rows["isl"].to_numpy(float),
                osl=np.maximum(rows["osl"].to_numpy(float), 2.0),
            )
        except (CostmodelError, ValueError) as error:
            reason[rows.index] = f"not expressible: {str(error).splitlines()[0][:120]}"
            continue
        where = table.index.get_indexer(rows.index)
        predicted_ttft[where] = result.ttft_s * 1e3
        predicted_tpot[where] = result.tpot_s * 1e3

    out = pd.DataFrame(
        {
            "id": table["id"],
            "system": table["system"],
            "backend": table["backend"],
            "mode": table["mode"],
            "model_path": table["model_path"],
            "isl": table["isl"],
            "osl": table["osl"],
            "concurrency": table["concurrency"],
            "covered": np.isfinite(predicted_ttft),
            "reason": reason.where(reason != "", None),
            "split": "held-out",
            "ttft_ms": table["silicon_ttft_ms"],
            "tpot_ms": table["silicon_tpot_ms"],
            "predicted_ttft_ms": predicted_ttft,
            "predicted_tpot_ms": predicted_tpot,
        }
    )
    return out[list(ROW_COLUMNS)]


def silicon_summary(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """One entry per (system, engine, mode, metric, split): coverage and error figures (fractions)."""
    entries: list[dict[str, Any]] = []
    for (system, engine, mode), group in rows.groupby(["system", "backend", "mode"], sort=True):
        total = len(group)
        for metric in ("ttft", "tpot"):
            covered = group[group["covered"]]
            ratio = covered[f"predicted_{metric}_ms"].to_numpy(float) / covered[f"{metric}_ms"].to_numpy(
                float
            )
            error = ratio - 1.0
            error = error[np.isfinite(error)]
            entries.append(
                {
                    "system": str(system),
                    "engine": str(engine),
                    "mode": str(mode),
                    "metric": metric,
                    "split": "held-out",
                    "n": len(error),
                    "covered": len(covered),
                    "total": total,
                    "median_abs_err": float(np.median(np.abs(error))) if len(error) else None,
                    "p90_abs_err": float(np.percentile(np.abs(error), 90)) if len(error) else None,
                    "median_signed_err": float(np.median(error)) if len(error) else None,
                }
            )
    return entries


def uncovered_reasons(rows: pd.DataFrame) -> pd.Series:
    """Rows not covered, counted by reason."""
    return rows.loc[~rows["covered"], "reason"].fillna("no prediction").value_counts()
