"""Benchmark: costmodel.sweep over a million grid points, and per-configuration time beside llm-analysis.

Run: ``make bench`` (it installs llm-analysis 0.2.2 into .venv-bench and passes its interpreter).
Prints medians over repeats, measured side by side in one process. Targets (issue 3): >= 1,000,000
points (dense model, decode and prefill) in under 2 s on a 2-core machine; the ratio to llm-analysis'
time for one configuration of the same workload.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile

import numpy as np

import costmodel
from benchmarks.timing import median_s
from costmodel.estimate import estimate, sweep
from costmodel.specs import Workload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--llm-analysis-python", help="interpreter with llm-analysis==0.2.2 installed")
    args = parser.parse_args()
    model, hw = costmodel.load_model("llama-2-7b"), costmodel.load_hardware("a100-80gb")
    batch = np.arange(1, 101)  # 100 batch sizes
    prompt = np.linspace(16, 32_768, 100).astype(np.int64)  # 100 prompt lengths
    output = np.linspace(1, 4096, 100).astype(np.int64)  # 100 output lengths -> 1,000,000 points
    w = Workload(batch[:, None, None], prompt[None, :, None], output[None, None, :])
    estimate(model, hw, w)  # warm caches
    t_grid = median_s(lambda: estimate(model, hw, w), repeats=5)
    n = batch.size * prompt.size * output.size
    print(
        f"estimate() over {n:,} (batch, prompt, output) points, prefill + exact decode sum: "
        f"median {t_grid:.2f} s over 5 runs ({n / t_grid / 1e6:.2f} M points/s; target < 2 s)"
    )
    t_df = median_s(
        lambda: sweep(model, hw, batch_size=batch, prompt_len=prompt, output_len=output), repeats=3
    )
    print(f"sweep() to a tidy DataFrame of {n:,} rows: median {t_df:.2f} s over 3 runs")

    one = Workload(8, 2048, 256)
    t_one = median_s(lambda: estimate(model, hw, one), repeats=50)
    print(
        f"costmodel, one configuration (llama-2-7b, a100-80gb, batch 8, 2048 + 256 tokens): "
        f"median {t_one * 1e3:.2f} ms over 50 runs"
    )
    if not args.llm_analysis_python:
        print("no --llm-analysis-python given (make bench sets it up): no side-by-side figure")
        return
    done = subprocess.run(
        [args.llm_analysis_python, "-c", LLM_ANALYSIS_TIMER],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    t_la = float(done.stdout.strip().splitlines()[-1])
    print(
        f"llm-analysis 0.2.2 (its own venv, same machine, same run), same configuration: "
        f"median {t_la * 1e3:.2f} ms over 50 runs"
    )
    print(
        f"ratio llm-analysis / costmodel per configuration: {t_la / t_one:.2f}x; "
        f"per point of the vectorised grid: {t_la / (t_grid / n):,.0f}x"
    )


# Timed in llm-analysis' own interpreter: it pins an old transformers that costmodel's tests cannot use.
LLM_ANALYSIS_TIMER = """
import contextlib, io, logging, statistics, time
from llm_analysis.analysis import infer
logging.disable(logging.CRITICAL)
def run():
    with contextlib.redirect_stdout(io.StringIO()):
        infer(model_name="NousResearch_Llama-2-7b-hf", gpu_name="a100-sxm-80gb", dtype_name="w16a16e16",
              batch_size_per_gpu=8, seq_len=2048, num_tokens_to_generate=256, log_level="CRITICAL")
run()
times = []
for _ in range(50):
    t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


if __name__ == "__main__":
    main()
