"""GPU check of the engine (≤ 8 minutes on one H100-class GPU): correctness against CPU, then speed and memory.

1. Small case, fp32 on both devices: a random-init LoRA pair with SmolLM2-135M shapes (all 30 blocks,
   V = 49,152) runs the same pass on CPU and on CUDA; the LogitDiff counts must be identical and the
   sums equal to tolerance (TF32 is switched off so both sides compute true fp32).
2. Real scale, bf16 on the GPU: random-init LoRA pairs with the full SmolLM2-135M and Gemma-3-1B
   (26 blocks, V = 262,144) shapes run one pass (LogitDiff K=100 + ADL r=0.5, T=30) after a warm-up
   pass; prints tokens/s, peak GPU memory (torch.cuda.max_memory_allocated) and the share of time
   outside the two models' forward passes (decoders + heads).

    python benchmarks/gpu_check.py                   # S = 2000, prints a markdown table
    python benchmarks/gpu_check.py --samples 500 --out benchmarks/results_gpu.md
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testkit/: support code shared with the tests

SEED = 42
TOP_K = 100
SHAPES = ("smollm2_135M", "gemma3_1B")
WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "people year over new just years some could them other only first also after two most like made world city "
    "water between state history work during school life early found music family government public small"
).split()
GIB = 2**30


def english_corpus(path: Path, n: int) -> Path:
    rng = random.Random(0)
    with path.open("w") as fh:
        for _ in range(n):
            fh.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 40))).capitalize() + "."}) + "\n")
    return path


def check_against_cpu(corpus: str, samples: int, positions: int) -> list[str]:
    import torch

    from logitdiff.engine.requests import TopKCountsRequest
    from logitdiff.engine.streaming_pass import run_pass
    from testkit.architectures import random_pair

    req = TopKCountsRequest(samples, positions, TOP_K)
    got = {}
    for device in ("cpu", "cuda"):
        pair = random_pair("smollm2_135M", seed=0, device=device, dtype=torch.float32)
        got[device] = run_pass(pair, corpus, SEED, [req], progress=False).results[req]
        del pair
    cpu, gpu = got["cpu"], got["cuda"]
    differ = {name: int((getattr(cpu, name) != getattr(gpu, name)).sum()) for name in ("count_pos", "count_neg", "npos")}
    sum_err = float((cpu.sum_diff - gpu.sum_diff).abs().max())
    sum_scale = float(cpu.sum_diff.abs().max())
    counts_ok = not any(differ.values())
    sums_ok = sum_err <= 1e-4 * sum_scale + 1e-3
    verdict = "PASS" if counts_ok and sums_ok else "FAIL"
    return [
        f"**GPU = CPU check ({verdict})**: smollm2_135M shapes, fp32 on both, S={samples}, T={positions}, K={TOP_K}: "
        f"ids whose counts differ: count_pos {differ['count_pos']}, count_neg {differ['count_neg']}, npos {differ['npos']} "
        f"(want 0); max |Δ sum_diff| {sum_err:.2e} vs max |sum_diff| {sum_scale:.2e} (tolerance 1e-4 relative).",
    ]


def measure(name: str, corpus: str, samples: int, positions: int) -> dict:
    import torch

    from logitdiff.engine.requests import ResidualMeansRequest, TopKCountsRequest
    from logitdiff.engine.streaming_pass import run_pass
    from testkit.architectures import random_pair

    pair = random_pair(name, seed=0, device="cuda", dtype=torch.bfloat16)
    weights = torch.cuda.memory_allocated()

    def one_pass(s: int) -> object:
        return run_pass(pair, corpus, SEED, [TopKCountsRequest(s, positions, TOP_K), ResidualMeansRequest(s, positions, 0.5)], progress=False)

    one_pass(8)  # warm-up: CUDA context, cuBLAS handles, allocator
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = one_pass(samples)
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    timings = result.record.timings_s  # type: ignore[attr-defined]
    out = {
        "name": name,
        "tokens": result.record.tokens_run,  # type: ignore[attr-defined]
        "wall": wall,
        "weights": weights,
        "peak": torch.cuda.max_memory_allocated(),
        "forward": timings["forward"],
        "statistics": timings["statistics"],
        "corpus": timings["corpus_and_tokenize"],
        "total": timings["total"],
    }
    del pair, result
    torch.cuda.empty_cache()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="S of the timed passes (default 2000)")
    ap.add_argument("--positions", type=int, default=30, help="T (default 30)")
    ap.add_argument("--check-samples", type=int, default=16, help="S of the GPU = CPU check (default 16)")
    ap.add_argument("--out", help="also write the markdown here")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible, so there is nothing to measure; run it on a GPU machine.")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False  # true fp32 for the fp32 comparison and the fp32 readout
    torch.backends.cudnn.allow_tf32 = False
    started = time.perf_counter()
    gpu = torch.cuda.get_device_name()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = str(english_corpus(Path(tmp) / "corpus.jsonl", max(args.samples, args.check_samples) + 500))
        print("GPU = CPU check on smollm2_135M shapes (fp32) …", file=sys.stderr, flush=True)
        lines = check_against_cpu(corpus, args.check_samples, args.positions)
        rows = []
        for name in SHAPES:
            print(f"timed pass: {name} shapes, bf16, S={args.samples} …", file=sys.stderr, flush=True)
            rows.append(measure(name, corpus, args.samples, args.positions))
    lines = [
        f"# GPU check on {gpu} (torch {torch.__version__})",
        "",
        *lines,
        "",
        f"Timed passes: random-init LoRA pairs (r=16 on every projection) with the full architectures, bf16 weights, "
        f"fp32 readout; LogitDiff K={TOP_K} + ADL r=0.5, S={args.samples}, T={args.positions}, after a warm-up pass; "
        f"default batch plan (budget from free GPU memory).",
        "",
        "| shapes | tokens | pass time | tokens/s (both models) | weights on GPU | peak GPU memory | time outside the two forward passes |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['tokens']:,} | {r['wall']:.2f} s | {r['tokens'] / r['wall']:,.0f} | {r['weights'] / GIB:.2f} GiB | "
            f"{r['peak'] / GIB:.2f} GiB | {(r['total'] - r['forward']) / r['total']:.0%} "
            f"(statistics {r['statistics']:.2f} s, corpus+tokenize {r['corpus']:.2f} s) |"
            for r in rows
        ),
        "",
        f"Whole check: {time.perf_counter() - started:.0f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
