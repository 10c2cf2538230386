"""Peak host memory of one engine pass at a real vocabulary (Gemma-3-1B shapes, V = 262,144) on CPU.

A random-init LoRA pair with Gemma-3-1B's real hidden size, vocabulary and block shapes (only the
number of decoder blocks reduced with --layers, because 26 blocks over 1000×30 tokens are far too
slow on a small CPU) runs one pass (LogitDiff K=100 + ADL at r=0.5) at each S, T=30. Each S runs in a
fresh subprocess, so its peak RSS is its own. The reference instead keeps S·T·V·2 bytes of bf16
logits per model in host RAM; that figure is computed here, never allocated. Weights-only memory of
the full-depth models comes from exact parameter counts (meta-device build, no allocation).

    python benchmarks/bench_realscale.py                       # S = 100 and 1000, 2 layers (~5 min on 1 core)
    python benchmarks/bench_realscale.py --samples 20,200 --layers 1   # a quicker look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testkit/: support code shared with the tests

ARCH = "gemma3_1B"
SEED = 42
TOP_K = 100
WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more can time about than into "
    "people year over new just years some could them other only first also after two most like made world city "
    "water between state history work during school life early found music family government public small "
    "river house system market second research company power local century light large several region number"
).split()
GIB = 2**30
MIB = 2**20


def english_corpus(path: Path, n: int) -> Path:
    """Seeded English-like texts, each long enough for T ≤ 60 byte tokens."""
    rng = random.Random(0)
    with path.open("w") as fh:
        for _ in range(n):
            fh.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(15, 40))).capitalize() + "."}) + "\n")
    return path


# ---------------------------------------------------------------- worker (one pass per process)


class RssSampler:
    """Peak resident set size of this process while the `with` block runs (sampled every 2 ms)."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.002)

    def __enter__(self) -> RssSampler:
        self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def worker(job: dict) -> dict:
    import psutil
    import torch

    from logitdiff.engine.memory_plan import available_bytes, readout_positions
    from logitdiff.engine.requests import ResidualMeansRequest, TopKCountsRequest
    from logitdiff.engine.streaming_pass import auto_batch_size, run_pass
    from testkit.architectures import random_pair

    torch.set_num_threads(job["threads"])
    pair = random_pair(ARCH, layers=job["layers"], seed=0)
    vocab = pair.model.get_output_embeddings().weight.shape[0]
    rss_model = psutil.Process().memory_info().rss
    s, t = job["samples"], job["positions"]
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        result = run_pass(pair, job["corpus"], SEED, [TopKCountsRequest(s, t, TOP_K), ResidualMeansRequest(s, t, 0.5)], progress=False)
        seconds = time.perf_counter() - t0
    budget = available_bytes(pair.device)
    return {
        "samples": s,
        "rss_model": rss_model,
        "rss_peak_pass": sampler.peak,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: KiB
        "seconds": seconds,
        "tokens": result.record.tokens_run,
        "timings": result.record.timings_s,
        "shared_head": result.record.shared_head,
        "params": sum(p.numel() for p in pair.model.parameters()),
        "vocab": vocab,
        "budget": budget,
        "batch_texts": auto_batch_size(vocab, t, pair.device, budget),
        "readout_positions": readout_positions(budget, vocab),
        "threads": torch.get_num_threads(),
    }


def run_job(job: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed (S={job['samples']}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver


def weights_table() -> list[str]:
    from testkit.architectures import ARCHITECTURES, parameter_count

    lines = [
        "| model (full depth) | layers | V | parameters | weights bf16 | weights fp32 | fp32 head copy (GPU, bf16 models) | reference logits S=1000, T=30, per model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, arch in ARCHITECTURES.items():
        n = parameter_count(name)
        head = arch.vocab * arch.hidden * 4
        ref = 1000 * 30 * arch.vocab * 2
        lines.append(
            f"| {name} | {arch.num_layers} | {arch.vocab:,} | {n / 1e9:.3f} B | {2 * n / GIB:.2f} GiB | {4 * n / GIB:.2f} GiB | "
            f"{head / GIB:.2f} GiB | {ref / GIB:.1f} GiB |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="100,1000", help="comma-separated S values (default 100,1000)")
    ap.add_argument("--positions", type=int, default=30, help="T (default 30)")
    ap.add_argument("--layers", type=int, default=2, help="decoder blocks of the Gemma-3-1B shapes (default 2 of 26)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_realscale.md")))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from testkit.architectures import architecture

    samples = [int(x) for x in args.samples.split(",")]
    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = str(english_corpus(Path(tmp) / "corpus.jsonl", max(samples) + 200))  # one corpus for every S
        for s in samples:
            print(f"pass at S={s}, T={args.positions}, {args.layers} layer(s) …", file=sys.stderr, flush=True)
            runs.append(run_job({"samples": s, "positions": args.positions, "layers": args.layers, "threads": args.threads, "corpus": corpus}))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)  # a killed run still shows what it measured

    arch = architecture(ARCH)
    t, v = args.positions, runs[0]["vocab"]
    first, last = runs[0], runs[-1]
    growth = (last["rss_peak_pass"] - first["rss_peak_pass"]) / MIB

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    def mib(x: float) -> str:
        return f"{x / MIB:,.0f} MiB"

    lines = [
        f"# Real-scale memory: {ARCH} shapes (V = {v:,}), CPU fp32, random-init LoRA pair",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with other jobs "
        f"(load average {load_start:.1f} at start), torch threads {first['threads']}, `nice -n 19`. "
        f"Reproduce: `python benchmarks/bench_realscale.py --samples {args.samples} --layers {args.layers}` "
        f"({time.perf_counter() - started:.0f} s here).",
        "",
        f"The pair has Gemma-3-1B's real hidden size ({arch.hidden}), vocabulary ({arch.vocab:,}, tied head), block shapes "
        f"and eager attention, but **{args.layers} of its {arch.num_layers} decoder blocks** ({first['params'] / 1e6:.0f} M parameters "
        f"incl. a random r=16 LoRA on every projection): a full-depth pass over 1000×30 tokens is far too slow on this CPU. "
        f"Memory is dominated by the vocabulary-sized tensors (embedding/head {arch.vocab * arch.hidden * 4 / GIB:.2f} GiB in fp32; "
        f"1 MiB per position for each fp32 [positions, V] tensor in the readout), not by the blocks; the full-depth weights are in the second table. "
        f"One pass = LogitDiff (K={TOP_K}) + ADL (r=0.5), seed {SEED}, T={t}; each S in a fresh process.",
        "",
        "| | " + " | ".join(f"S={r['samples']}" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
        row("tokens run (S·T)", [f"{r['tokens']:,}" for r in runs]),
        row("RSS with the model built (before the pass)", [mib(r["rss_model"]) for r in runs]),
        row("**peak RSS during the pass**", [f"**{mib(r['rss_peak_pass'])}**" for r in runs]),
        row("pass increment (peak − before)", [mib(r["rss_peak_pass"] - r["rss_model"]) for r in runs]),
        row("process peak (ru_maxrss, incl. model build)", [mib(r["ru_maxrss"]) for r in runs]),
        row("reference: S·T·V·2 bytes of bf16 logits, per model", [f"{r['samples'] * t * v * 2 / GIB:,.2f} GiB" for r in runs]),
        row("reference: both models", [f"{2 * r['samples'] * t * v * 2 / GIB:,.2f} GiB" for r in runs]),
        row("pass time", [f"{r['seconds']:.0f} s" for r in runs]),
        row("tokens/s (both models)", [f"{r['tokens'] / r['seconds']:.0f}" for r in runs]),
        row(
            "forward share (decoders + head) / statistics / corpus",
            [
                f"{r['timings']['forward'] / r['timings']['total']:.0%} / {r['timings']['statistics'] / r['timings']['total']:.0%} / "
                f"{r['timings']['corpus_and_tokenize'] / r['timings']['total']:.0%}"
                for r in runs
            ],
        ),
        "",
        f"Host memory is flat in S: the peak grows by {growth:+.0f} MiB from S={first['samples']} to S={last['samples']} "
        f"while the reference's materialization grows {last['samples'] // first['samples']}×. "
        f"At the issue's S=100 / S=1000 the reference would hold {100 * t * v * 2 / GIB:.2f} / {1000 * t * v * 2 / GIB:.2f} GiB per model. "
        f"Batching: budget {first['budget'] / MIB:.0f} MiB → {first['batch_texts']} texts per forward batch, readout chunks of "
        f"≤ {first['readout_positions']} positions; d = W·(h_ft − h_base) with the shared head: {first['shared_head']}.",
        "",
        "## Weights-only memory of the full-depth models (exact parameter counts, tied embeddings once)",
        "",
        *weights_table(),
        "",
        "On GPU the engine keeps an fp32 copy of each plain head for the fp32 readout (one copy for a LoRA pair); "
        "a LoRA pair holds one copy of the weights plus the adapter.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
