"""The per-engine parameters of the closed-loop benchmark model, as shipped with costmodel.

:class:`costmodel.closed_loop.LoopParams` carries eight named, calibrated parameters per serving engine
(vLLM, SGLang, TensorRT-LLM): the per-iteration (serial and overlappable) and per-request overheads, the
share of requests that arrive in a wave of all clients, the fixed cost per model layer of every iteration,
the host's cost per layer (and per MLA layer) of an iteration that carries prompt tokens, and the iterations
by which overlapped scheduling delays a first token. They are fitted by ``python -m validation
silicon-calibrate`` on the rule-chosen calibration rows of NVIDIA aiconfigurator's public serving measurements
(Apache-2.0; how they were fitted is written in the file's ``fitted_on``) and written to
:data:`ENGINE_PARAMS_FILE`, a library data file next to the calibrated kernel overlays, so that an installed
costmodel (the Pareto planner, the CLI) finds them without ``validation/``. The same file holds
``disagg_kv_transfer_overhead_s``, the fitted fixed latency of a request's hand-off from the prefill to the
decode pool per engine in a disaggregated deployment
(:attr:`costmodel.disagg.DisaggParams.kv_transfer_overhead_s`: it delays the request, holding no decode
rank's receive resource), ``disagg_burst_fraction``, the disaggregated loop's own wave share (both fitted on
the disaggregated calibration rows), and ``disagg_decode_share_dispersion``, the spread of the clients'
share over the decode workers beyond an even share (:func:`costmodel.disagg.decode_slot_share`; written held
at 0, round robin).
The library only reads the file; validation is the only writer.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

from costmodel.closed_loop import LoopParams
from costmodel.errors import CostmodelError, UnknownNameError

OVERLAPPED_HOST_ENGINES = ("sglang",)
"""Engines whose scheduler, at its defaults, prepares iteration i + 1 on the host while the GPU runs
iteration i, so that the fitted ``overlapped_host_s`` hides behind longer kernels
(:attr:`costmodel.closed_loop.LoopParts.overlap_host`): SGLang's overlap scheduler
(https://lmsys.org/blog/2024-12-04-sglang-v0-4/). For the others the whole host cost adds to each
iteration."""

EAGLE_HOST_PASSES = 3
"""Forward passes SGLang's EAGLE worker prepares on the host per verification
(:attr:`costmodel.closed_loop.LoopParts.host_passes`,
:attr:`costmodel.disagg.DisaggParts.decode_host_passes`): the draft steps, the target's verification and the
draft's extend over the accepted tokens, each a forward batch of its own. The v1 worker
(``EAGLEWorker.forward_batch_generation``) builds each after reading the last one's results back
(``EagleVerifyInput.verify``; ``forward_draft_extend_after_decode``'s ``ForwardBatch.init_new`` and
``.item()``), with the overlap scheduler off, so the passes add to the kernels
(python/sglang/srt/speculative/eagle_worker.py, https://github.com/sgl-project/sglang at 00559ea). The spec-v2
worker (``SGLANG_ENABLE_SPEC_V2``, overlap scheduler on) keeps the three:
``EAGLEWorkerV2.forward_batch_generation`` runs ``EagleDraftWorker.draft`` (``prepare_for_v2_draft``, the
draft's CUDA graph), ``EAGLEWorkerV2.verify`` (``prepare_for_v2_verify`` on the plan stream, the target's
forward) and ``EagleDraftWorker._draft_extend_for_decode`` (``prepare_for_extend_to_fill_draft_kvcache``, the
draft-extend CUDA graph) without a read-back between them, so the host's three plans sit beside the previous
iteration's kernels (python/sglang/srt/speculative/eagle_worker_v2.py, at
006b0e3d317f1cd4a7300e919a4eaa878b1947e7; :func:`costmodel.closed_loop.host_bound_s`)."""

EAGLE_HOST_PASS_ENGINES = ("sglang",)
"""Engines whose speculative worker prepares :data:`EAGLE_HOST_PASSES` passes per iteration on the host
(:func:`host_passes`). vLLM's and TensorRT-LLM's drafting is not separated: their fitted host cost is one
pass."""


def host_passes(engine: str, *, drafts: bool) -> float:
    """The forward passes an iteration of ``engine`` prepares on the host [-] (``host_passes`` of
    :func:`costmodel.closed_loop.loop_parts`, ``decode_host_passes`` of :func:`costmodel.disagg.disagg_loop`):
    :data:`EAGLE_HOST_PASSES` where an engine of :data:`EAGLE_HOST_PASS_ENGINES` ``drafts`` (SGLang runs
    NEXTN/MTP as EAGLE), else 1."""
    return float(EAGLE_HOST_PASSES) if drafts and engine in EAGLE_HOST_PASS_ENGINES else 1.0


ENGINE_PARAMS_NAME = "serving-engines.yaml"
"""File name of the fitted per-engine parameters in the calibrated profiles folder."""


def engine_params_file() -> Path:
    """Where the fitted per-engine parameters live: ``hardware_profiles/calibrated/serving-engines.yaml``
    (in a wheel, ``costmodel/_data/hardware_profiles/calibrated/``)."""
    from costmodel.registry import calibrated_dir

    return calibrated_dir() / ENGINE_PARAMS_NAME


def read_engine_params(path: Path | None = None) -> dict[str, LoopParams]:
    """Every engine's :class:`LoopParams` from ``path`` (default :func:`engine_params_file`); none (an
    empty mapping) when the file is absent. A file without an ``engines`` mapping is refused by name."""
    import yaml

    file = engine_params_file() if path is None else Path(path)
    if not file.is_file():
        return {}
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("engines"), dict):
        raise CostmodelError(
            f"{file} is empty or has no 'engines' mapping (an interrupted write?): "
            "run python -m validation silicon-calibrate again"
        )
    _check_top_level(document, file)
    out: dict[str, LoopParams] = {}
    for name, values in document["engines"].items():
        if not isinstance(values, dict):
            raise CostmodelError(f"{file}: engines.{name} must be a mapping of parameter: value")
        try:
            out[str(name)] = LoopParams(**values)
        except TypeError as e:
            raise CostmodelError(f"{file}: engines.{name}: {e}") from None
    return out


TOP_LEVEL_KEYS = ("fitted_on", "engines", "harness_request_overhead_s")
"""The file's entries besides the ``disagg_<field>`` ones (:data:`costmodel.disagg.BOUNDS`)."""


def _check_top_level(document: dict[object, object], file: Path) -> None:
    """Refuse an entry the file format does not have (a misspelt ``disagg_burstfraction`` would otherwise
    be ignored and its engine fall back to another value without a word)."""
    from costmodel.disagg import BOUNDS

    known = {*TOP_LEVEL_KEYS, *(f"disagg_{field}" for field in BOUNDS)}
    unknown = sorted(str(key) for key in document if key not in known)
    if unknown:
        raise CostmodelError(
            f"{file}: unknown entry {unknown[0]!r} (known: {sorted(known)}): "
            "run python -m validation silicon-calibrate again"
        )


@cache
def _shipped() -> dict[str, LoopParams]:
    return read_engine_params()


def engine_params(engine: str) -> LoopParams:
    """The shipped :class:`LoopParams` of ``engine`` (``"vllm"``, ``"sglang"``, ``"trtllm"``); an unknown
    name is refused with the known ones."""
    shipped = _shipped()
    if engine not in shipped:
        raise UnknownNameError("engine", engine, shipped)
    return shipped[engine]


def overlaps_host(engine: str) -> bool:
    """Whether ``engine`` overlaps an iteration's host work with the previous iteration's kernels at its
    defaults (:data:`OVERLAPPED_HOST_ENGINES`)."""
    return engine in OVERLAPPED_HOST_ENGINES


def read_disagg_entry(key: str, path: Path | None = None) -> dict[str, float]:
    """The per-engine values of ``key`` (``disagg_<field>``, a fitted field of
    :class:`costmodel.disagg.DisaggParams` named in :data:`costmodel.disagg.BOUNDS`) from ``path`` (default
    :func:`engine_params_file`); none when the file or the entry is absent, unless the file fitted an
    engine's transfer overhead (``disagg_kv_transfer_overhead_s``): silicon-calibrate writes every field of
    such an engine, so a missing one is an older or partial file and refused. Each value must be a finite
    number within the field's calibration bounds: anything else is refused in one message naming the
    file, the key and the engine, rather than failing later where the planner would turn it into a
    skipped candidate."""
    import yaml

    from costmodel.disagg import BOUNDS

    file = engine_params_file() if path is None else Path(path)
    if not file.is_file():
        return {}
    document = yaml.safe_load(file.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        return {}
    _check_top_level(document, file)
    entry = document.get(key)
    field = key.removeprefix("disagg_")
    if entry is None and field in BOUNDS and isinstance(document.get("disagg_kv_transfer_overhead_s"), dict):
        entry = {}  # absent altogether: checked below like an entry that lacks an engine
    if entry is None:
        return {}
    if field not in BOUNDS:
        raise CostmodelError(
            f"{file}: {key} is not a fitted disaggregated parameter (disagg_ + one of {sorted(BOUNDS)})"
        )
    if not isinstance(entry, dict):
        raise CostmodelError(f"{file}: {key} must be a mapping of engine: value")
    low, high = BOUNDS[field]
    out: dict[str, float] = {}
    for engine, value in entry.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and low <= value <= high):
            raise CostmodelError(
                f"{file}: {key}.{engine} must be a finite number in [{low}, {high}], got {value!r}: "
                "run python -m validation silicon-calibrate again"
            )
        out[str(engine)] = float(value)
    # silicon-calibrate writes every field of an engine whose disaggregated rows it fitted: an engine with
    # a fitted transfer overhead but no value here is an old or partial file, not "none fitted"
    fitted = document.get("disagg_kv_transfer_overhead_s")
    missing = sorted(set(fitted) - set(entry)) if isinstance(fitted, dict) else []
    if missing:
        raise CostmodelError(
            f"{file}: {key} has no value for {missing[0]!r}, whose disagg_kv_transfer_overhead_s was fitted "
            "(an older or partial file): run python -m validation silicon-calibrate again"
        )
    return out


@cache
def _shipped_disagg(key: str) -> dict[str, float]:
    return read_disagg_entry(key)


def transfer_overhead_s(engine: str) -> float:
    """The shipped fixed cost of one request's KV transfer in a disaggregated deployment of ``engine``
    (:class:`costmodel.disagg.DisaggParams`) [s]; 0 where none was fitted."""
    return _shipped_disagg("disagg_kv_transfer_overhead_s").get(engine, 0.0)


def disagg_burst_fraction(engine: str) -> float | None:
    """The shipped wave share of ``engine``'s disaggregated loop
    (:meth:`costmodel.disagg.DisaggParams.from_loop`) [-]; None where none was fitted (the closed loop's
    ``burst_fraction`` then applies)."""
    return _shipped_disagg("disagg_burst_fraction").get(engine)


def decode_share_dispersion(engine: str) -> float:
    """The shipped effective dispersion of the clients' share over ``engine``'s decode workers in a
    disaggregated deployment, as a share of the binomial variance of uniform random routing
    (:func:`costmodel.disagg.decode_slot_share`) [-]; 0 (an even share) where none was fitted."""
    return _shipped_disagg("disagg_decode_share_dispersion").get(engine, 0.0)
