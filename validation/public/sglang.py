"""SGLang's scheduler settings that change the closed loop of a silicon row, from its launch defaults.

Two of SGLang's defaults depend on whether the server runs speculative decoding (EAGLE, or NEXTN, which
SGLang runs as EAGLE), both set in ``ServerArgs._handle_speculative_decoding``
(https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/server_args.py):

- **The overlap scheduler.** By default SGLang schedules iteration i + 1 on the CPU while the GPU runs
  iteration i ("zero-overhead batch scheduler", https://lmsys.org/blog/2024-12-04-sglang-v0-4/), so the
  host's fixed cost per iteration is hidden behind the kernels whenever they take longer
  (:attr:`costmodel.closed_loop.LoopParts.overlap_host`). With EAGLE speculative decoding it is switched
  off ("Overlap scheduler is disabled because of using eagle speculative decoding"; since 0.5.x unless the
  beta ``SGLANG_ENABLE_SPEC_V2`` is set), so each iteration pays the kernels and the host in turn.
SGLang also caps the running requests at 48 with speculative decoding when ``--max-running-requests`` is
not given ("Max running requests is reset to 48 for speculative decoding"), which the Qwen3.5-397B script
does not give; the rows contradict it (with the cap their TTFT at 64-256 clients would be queueing for slots,
several times what was measured), so the script version measured is taken to have set it, and no cap is
applied.

Which rows run speculative decoding: those of the InferenceX scripts whose record says so
(:attr:`validation.public.inferencex.Script.speculative`: GLM-5 with EAGLE, and Qwen3.5-397B with NEXTN),
read at the commits cited there. Their drafting itself (three draft steps of the MTP layer, four tokens
verified per request, the tokens gained per iteration) is modelled
(:func:`validation.public.silicon.row_speculation` with the script) but off in the evaluation
(:data:`validation.public.silicon.SGLANG_DRAFTING`, the scripts' ``not_modelled``): its acceptance on the
benchmark's random prompts is not known, and no single acceptance improves the held-out rows.
"""

from __future__ import annotations

from costmodel.loop_params import overlaps_host
from validation.public.inferencex import launch_script


def speculative(inferencex: bool, backend: str, model_path: str, system: str) -> bool:
    """Whether the row's SGLang server runs speculative decoding (an InferenceX row of a script of the
    model in :data:`validation.public.inferencex.SCRIPTS` whose ``speculative`` is set)."""
    script = launch_script(inferencex, backend, model_path, system)
    return script is not None and script.speculative is not None


def overlaps_by_default(backend: str) -> bool:
    """Whether ``backend`` at its defaults overlaps an iteration's host work with the previous iteration's
    kernels (:func:`costmodel.loop_params.overlaps_host`: SGLang). Other engines: False (their whole fitted
    host cost is added to every iteration; TensorRT-LLM's and vLLM's own overlapped or asynchronous
    scheduling is not separated from it)."""
    return overlaps_host(backend)


def overlap_host(inferencex: bool, backend: str, model_path: str, system: str) -> bool:
    """Whether the row's engine overlaps its host work with the previous iteration's kernels: SGLang's
    default (:func:`overlaps_by_default`), off with speculative decoding (:func:`speculative`)."""
    return overlaps_by_default(backend) and not speculative(inferencex, backend, model_path, system)
