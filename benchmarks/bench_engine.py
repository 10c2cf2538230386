"""Engine benchmark on smollm2_135M (CPU, fp32) with a LoRA pair.

(a) one pass filling all 9 topk_depth cells (K = 5 … 5000, S, T=30) vs the 9 cells run one by one;
(b) the pass vs bare forward passes of both models over the same tokens;
(c) peak RSS of a pass at three sample counts (T=30): host memory must not grow with S;
(d) the mix-ratio grid of one seed (5 variants × LogitDiff K=100 and ADL r=0.5): one pair pass per
    variant (before the multi-variant pass) vs one multi-variant pass (one base forward per batch);
(e) the four experiments' grids of one seed: run one after another with pair passes (results one
    experiment stored are reused by the next, as the store does) vs planned as one study.

(d) and (e) use the bundled organism (five cake_bake adapters) and its diffing corpus, with S divided
by --scale (T and K as in configs/experiments), and time adapter/model loading with the passes, as a
run does; they time the engine only (no judge).

Measurements run in fresh subprocesses: one for all timings (model loaded once, warmed up by a tiny
untimed pass) and one per RSS reading (so each peak RSS is that pass's own); loading is never timed.
Without --adapter a seeded random LoRA is made on the fly (r=16 on every linear projection), because
the project's own organism adapters may not exist yet. Without --corpus a throwaway jsonl of
random English-like text is generated. Results: a markdown table on stdout and in --out.

    python benchmarks/bench_engine.py --samples 100            # the full-size run (GPU box / quiet CPU)
    python benchmarks/bench_engine.py --samples 6 --rss 25,75 --threads 1  # fits 10 min on 2 shared cores
    python benchmarks/bench_engine.py --parts de --scale 25 --threads 1   # only (d) and (e), S/25

Every S in --rss should fill at least one forward batch (22 texts at T=30 with smollm2's vocabulary on
CPU): below that the batch, and with it the peak RSS, still grows with S by design.
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
import time
from pathlib import Path

from logitdiff.core.cache_dir import default_cache_dir

TOPK_DEPTH = (5, 10, 20, 50, 100, 200, 500, 1000, 5000)
POSITIONS = 30
STUDY = ("mix-ratio", "topk-depth", "token-positions", "n-samples")  # the order the launchers run them
LORA_SEED = 1234
WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more can time about than into "
    "people year over new just years some could them other only first also after two most like made world city "
    "water between state history work during school life early found music family government public small "
    "river house system market second research company power local century light large several region number "
    "bread cake oven butter garden winter summer village station mountain island science library festival"
).split()


def english_corpus(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(n):
            sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + "." for _ in range(rng.randint(4, 10))]
            fh.write(json.dumps({"text": " ".join(sentences)}) + "\n")
    return path


def make_random_adapter(folder: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from logitdiff.config.loader import Registry
    from logitdiff.config.schema import FinetunedRef
    from logitdiff.engine.models import load_pair, offline_copy

    cfg = Registry.load().model("smollm2_135M")
    pair = load_pair(cfg, FinetunedRef(model_path=str(offline_copy(cfg, default_cache_dir()))), cache_dir=default_cache_dir(), device="cpu")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(pair.model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    gen = torch.Generator().manual_seed(LORA_SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter); make it a small real change
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------- worker (one measurement per process)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _load(adapter: str):  # noqa: ANN202
    from logitdiff.config.loader import Registry
    from logitdiff.config.schema import FinetunedRef
    from logitdiff.engine.models import load_pair

    return load_pair(Registry.load().model("smollm2_135M"), FinetunedRef(adapter_path=adapter), cache_dir=default_cache_dir(), device="cpu")


def _bare_forwards(pair, corpus: str, samples: int) -> tuple[float, float]:  # noqa: ANN001
    """Both models' plain forward (logits) over the same texts and batches as the pass; tokenization not timed."""
    import torch

    from logitdiff.engine.corpus import load_corpus
    from logitdiff.engine.sampling import PrefixEncoder, SelectionLog, Slot, select_texts
    from logitdiff.engine.streaming_pass import auto_batch_size

    slot = Slot(samples, POSITIONS)
    texts = list(select_texts(load_corpus(corpus, 42), PrefixEncoder(pair.tokenizer), [slot], SelectionLog(rows=[[]]), corpus))
    vocab = pair.model.get_output_embeddings().weight.shape[0]
    batch = auto_batch_size(vocab, POSITIONS, pair.device)  # the same batches as the pass
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            ids = torch.tensor([t.ids for t in texts[i : i + batch]])
            with pair.as_base() as m:
                m(input_ids=ids).logits
            with pair.as_finetuned() as m:
                m(input_ids=ids).logits
    return time.perf_counter() - t0, time.process_time() - c0


def _timed_pass(pair, corpus: str, samples: int, ks: list[int]) -> dict:  # noqa: ANN001
    from logitdiff.engine.requests import TopKCountsRequest
    from logitdiff.engine.streaming_pass import run_pass

    t0, c0 = time.perf_counter(), time.process_time()
    result = run_pass(pair, corpus, 42, [TopKCountsRequest(samples, POSITIONS, k) for k in ks], progress=False)
    return {
        "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "timings": result.record.timings_s,
        "shared_head": result.record.shared_head,
    }


def timing_worker(pair, corpus: str, samples: int) -> dict:  # noqa: ANN001
    """(a) and (b) in one process, model loaded once. An untimed pass of the same shape first: the
    first batches of a process pay one-off costs (kernel setup, the allocator growing) that a real
    pass of S=1000 amortizes but a short benchmark would charge to whichever measurement runs first."""
    _timed_pass(pair, corpus, samples, list(TOPK_DEPTH))
    # The pass and the bare forwards are measured before and after the single cells and averaged, so a
    # change of load on a shared machine during the run hits both sides of each ratio alike.
    combined, bare = [_timed_pass(pair, corpus, samples, list(TOPK_DEPTH))], [_bare_forwards(pair, corpus, samples)]
    singles = {k: _timed_pass(pair, corpus, samples, [k]) for k in TOPK_DEPTH}
    combined.append(_timed_pass(pair, corpus, samples, list(TOPK_DEPTH)))
    bare.append(_bare_forwards(pair, corpus, samples))
    mean_combined = {
        "seconds": (combined[0]["seconds"] + combined[1]["seconds"]) / 2,
        "cpu_seconds": (combined[0]["cpu_seconds"] + combined[1]["cpu_seconds"]) / 2,
        "timings": combined[1]["timings"],
        "shared_head": combined[1]["shared_head"],
    }
    mean_bare = {"seconds": (bare[0][0] + bare[1][0]) / 2, "cpu_seconds": (bare[0][1] + bare[1][1]) / 2}
    return {"combined": mean_combined, "bare": mean_bare, "singles": singles}


def rss_worker(pair, corpus: str, samples: int) -> dict:  # noqa: ANN001
    """(c): a pass like a mix_ratio cell pair (LogitDiff K=100 and ADL r=0.5); peak RSS of this process."""
    from logitdiff.engine.requests import ResidualMeansRequest, TopKCountsRequest
    from logitdiff.engine.streaming_pass import run_pass

    loaded = _peak_rss_mib()
    t0 = time.perf_counter()
    run_pass(pair, corpus, 42, [TopKCountsRequest(samples, POSITIONS, 100), ResidualMeansRequest(samples, POSITIONS, 0.5)], progress=False)
    return {"seconds": time.perf_counter() - t0, "rss_after_load_mib": loaded, "peak_rss_mib": _peak_rss_mib()}


def _study_grids(scale: int, only: tuple[str, ...] = STUDY) -> list:
    """The experiments' grids for seed 42 on the bundled organism, every S divided by `scale`."""
    from logitdiff.config.loader import Registry
    from logitdiff.experiments.grid import GridOptions, expand

    reg = Registry.load()
    grids = []
    for name in only:
        exp = reg.experiment(name)
        common = {"model": "smollm2_135M", "organism": "cake_bake", "seeds": [42]}
        if exp.swept == "samples":
            values = [str(v) for v in dict.fromkeys(max(1, round(v / scale)) for v in exp.values)]
            opts = GridOptions(**common, values=values)
        else:
            opts = GridOptions(**common, samples=max(1, exp.fixed.samples // scale))
        grids.append(expand(reg, exp, opts))
    return grids


def _requests(cells: list) -> dict:
    from logitdiff.engine.requests import Request, ResidualMeansRequest, TopKCountsRequest

    out: dict[str, list[Request]] = {}
    for v in dict.fromkeys(c.variant for c in cells):
        mine = [c for c in cells if c.variant == v]
        ld = [TopKCountsRequest(c.samples, c.positions, c.top_k) for c in mine if c.method == "logitdiff"]
        adl = [ResidualMeansRequest(c.samples, c.positions, c.adl_layer) for c in mine if c.method == "adl"]
        out[v] = list(dict.fromkeys([*ld, *adl]))
    return out


def pair_passes(grids: list) -> dict:
    """Before the multi-variant pass: experiment after experiment, one pair pass per (variant, seed) of the
    cells not stored yet, the pair reloaded whenever the variant changes (as the runner's pair cache did)."""
    from logitdiff.config.loader import Registry
    from logitdiff.engine.models import load_pair
    from logitdiff.engine.streaming_pass import run_pass
    from logitdiff.registry import result_key

    reg = Registry.load()
    t0, c0 = time.perf_counter(), time.process_time()
    done: set = set()
    loaded: tuple | None = None
    pair = None
    passes = 0
    for cells in grids:
        todo = [c for c in cells if result_key(c) not in done]
        groups: dict = {}
        for c in todo:
            groups.setdefault(c.pass_key, []).append(c)
        for group in groups.values():
            first = group[0]
            if loaded != (first.variant,):
                pair = None
                pair = load_pair(reg.model(first.model), reg.finetuned(first.organism, first.model, first.variant), cache_dir=default_cache_dir(), device="cpu")
                loaded = (first.variant,)
            req = _requests(group)[first.variant]
            run_pass(pair, first.corpus, first.seed, req, progress=False)
            passes += 1
        done.update(result_key(c) for c in todo)
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "passes": passes}


def planned_passes(grids: list) -> dict:
    """Now: the grids planned together (each result once), one multi-variant pass per (model, organism, corpus, seed)."""
    from logitdiff.config.loader import Registry
    from logitdiff.engine.models import load_adapters
    from logitdiff.engine.streaming_pass import run_variants_pass
    from logitdiff.experiments.grid import pass_groups, plan_cells

    reg = Registry.load()
    t0, c0 = time.perf_counter(), time.process_time()
    groups = pass_groups(plan_cells(grids))
    for group in groups:
        first = group[0]
        requests = _requests(group)
        pairs = load_adapters(reg.model(first.model), {v: reg.finetuned(first.organism, first.model, v) for v in requests}, cache_dir=default_cache_dir(), device="cpu")
        run_variants_pass(pairs, requests, first.corpus, first.seed, progress=False)
        del pairs
    return {"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0, "passes": len(groups)}


def grid_worker(job: dict) -> dict:
    """(d) or (e): before and now alternated (before, now, now, before) so load drift hits both alike."""
    grids = _study_grids(job["scale"], ("mix-ratio",) if job["kind"] == "mix" else STUDY)
    warm = _study_grids(200, ("mix-ratio",))  # untimed: one-off costs of a fresh process
    planned_passes(warm)
    before, now = [pair_passes(grids)], [planned_passes(grids)]
    now.append(planned_passes(grids))
    before.append(pair_passes(grids))

    def mean(runs: list[dict]) -> dict:
        return {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}

    cells = sum(len(g) for g in grids)
    return {"before": mean(before), "now": mean(now), "cells": cells}


def worker(job: dict) -> dict:
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    if job["kind"] in ("mix", "study"):
        return grid_worker(job)
    pair = _load(job["adapter"])
    run = timing_worker if job["kind"] == "timing" else rss_worker
    return run(pair, job["corpus"], job["samples"])


def run_job(job: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed ({job['kind']}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def _ratio_rows(label: str, res: dict, goal: float) -> list[str]:
    b, n = res["before"], res["now"]
    wall, cpu = n["seconds"] / b["seconds"], n["cpu_seconds"] / b["cpu_seconds"]
    return [
        f"| {label}: before, {b['passes']:.0f} pair passes ({res['cells']} cells) | {b['seconds']:.1f} s | {b['cpu_seconds']:.1f} s | | |",
        f"| {label}: now, {n['passes']:.0f} multi-variant pass(es) | {n['seconds']:.1f} s | {n['cpu_seconds']:.1f} s | | |",
        f"| {label}: now / before | {wall:.2f}× | {cpu:.2f}× | ≤ {goal}× | {_yes(wall <= goal)} / {_yes(cpu <= goal)} |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="abcde", help="which measurements to run: any of a, b (together), c, d, e")
    ap.add_argument("--samples", type=int, default=100, help="S for (a) and (b) (default 100)")
    ap.add_argument("--rss", default="100,1000,3000", help="comma-separated S values for (c)")
    ap.add_argument("--scale", type=int, default=1, help="(d), (e): every S of the grids divided by this (default 1: full size)")
    ap.add_argument("--corpus", help="a local corpus file for (a)-(c) (default: a generated throwaway jsonl)")
    ap.add_argument("--adapter", help="a peft LoRA folder for smollm2_135M for (a)-(c) (default: a seeded random LoRA)")
    ap.add_argument(
        "--threads", type=int, help="torch threads per worker (default: torch's choice); 1 is steadier on a busy shared machine"
    )
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_engine.md")))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    parts = set(args.parts)
    rss_samples = [int(x) for x in args.rss.split(",")]
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    timing, rss, grids = None, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        if parts & {"a", "b", "c"}:
            corpus = args.corpus or str(english_corpus(Path(tmp) / "corpus.jsonl", 2 * max(rss_samples + [args.samples]) + 100))
            adapter = args.adapter or str(make_random_adapter(Path(tmp) / "adapter"))
            base = {"corpus": corpus, "adapter": adapter, "samples": args.samples, "threads": args.threads}
        if parts & {"a", "b"}:
            print(f"(a)+(b): one pass with 9 cells, bare forwards, 9 single cells, S={args.samples} …", file=sys.stderr, flush=True)
            timing = run_job({**base, "kind": "timing"})
        if "c" in parts:
            for s in rss_samples:
                print(f"(c): peak RSS at S={s} …", file=sys.stderr, flush=True)
                rss.append(run_job({**base, "samples": s, "kind": "rss"}))
        for part, kind in (("d", "mix"), ("e", "study")):
            if part in parts:
                print(f"({part}): {kind} grid of one seed, S/{args.scale}, before vs now …", file=sys.stderr, flush=True)
                grids[part] = run_job({"kind": kind, "scale": args.scale, "threads": args.threads})

    lines = [
        "# Engine benchmark (smollm2_135M, CPU fp32)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average at start {load_start:.1f} "
        f"(shared with other jobs: wall times are noisy, CPU times of the process are the steadier comparison). "
        f"Seed 42, automatic batch size, torch threads: {args.threads or 'default'}. Parts run: {''.join(sorted(parts))}.",
    ]
    if timing or rss:
        lines.append(
            f"(a)-(c): T={POSITIONS}, LoRA pair; adapter: {'`' + args.adapter + '`' if args.adapter else 'seeded random LoRA (r=16, all linear projections, B ~ N(0, 0.02)) made on the fly'}; "
            f"corpus: {'`' + args.corpus + '`' if args.corpus else 'generated throwaway English-like jsonl'}. "
            "(a)/(b): the 9-cell pass and the bare forwards are each the mean of a run before and after the single cells."
        )
    if grids:
        lines.append(
            f"(d)/(e): the bundled cake_bake adapters and diffing corpus; every S divided by {args.scale} (T, K as configured); "
            "loading included; each side is the mean of two runs (before, now, now, before); engine only, no judge."
        )
    lines += ["", "| measurement | wall | CPU | goal | met (wall / CPU) |", "|---|---|---|---|---|"]
    if timing:
        combined, singles, bare = timing["combined"], timing["singles"], timing["bare"]

        def ratios(key: str) -> tuple[float, float, float]:
            one_by_one = sum(r[key] for r in singles.values())
            return one_by_one, one_by_one / combined[key], combined[key] / bare[key]

        (wall_1b1, wall_speedup, wall_over), (cpu_1b1, cpu_speedup, cpu_over) = ratios("seconds"), ratios("cpu_seconds")
        lines += [
            f"| (a) one pass, 9 topk_depth cells (S={args.samples}) | {combined['seconds']:.1f} s | {combined['cpu_seconds']:.1f} s | | |",
            f"| (a) the 9 cells one by one | {wall_1b1:.1f} s | {cpu_1b1:.1f} s | | |",
            f"| (a) speed-up | {wall_speedup:.2f}× | {cpu_speedup:.2f}× | ≥ 6× | {_yes(wall_speedup >= 6)} / {_yes(cpu_speedup >= 6)} |",
            f"| (b) bare forwards of both models, same tokens | {bare['seconds']:.1f} s | {bare['cpu_seconds']:.1f} s | | |",
            f"| (b) pass / bare | {wall_over:.2f}× | {cpu_over:.2f}× | ≤ 1.3× | {_yes(wall_over <= 1.3)} / {_yes(cpu_over <= 1.3)} |",
        ]
    if rss:
        growth = rss[-1]["peak_rss_mib"] / rss[0]["peak_rss_mib"] - 1
        for s, r in zip(rss_samples, rss, strict=True):
            lines.append(f"| (c) peak RSS, S={s} (K=100 + ADL r=0.5; {r['rss_after_load_mib']:.0f} MiB after load; {r['seconds']:.0f} s) | {r['peak_rss_mib']:.0f} MiB | | | |")
        lines.append(f"| (c) growth S={rss_samples[-1]} vs S={rss_samples[0]} (default allocator) | {100 * growth:+.1f}% | | ≤ +10% | {_yes(growth <= 0.10)} |")
    if "d" in grids:
        lines += _ratio_rows("(d) mix-ratio, one seed", grids["d"], 0.65)
    if "e" in grids:
        lines += _ratio_rows("(e) study (4 experiments), one seed", grids["e"], 0.85)
    lines.append("")
    if timing:
        t = timing["combined"]["timings"]
        per_cell = ", ".join(f"K={k}: {r['seconds']:.0f}" for k, r in timing["singles"].items())
        lines.append(
            f"Cells one by one (wall s): {per_cell}. The pass's own split: forward {t['forward']:.1f} s, "
            f"top-K and counters {t['statistics']:.1f} s, corpus and tokenization {t['corpus_and_tokenize']:.1f} s."
        )
    lines.append(f"Total benchmark time {time.perf_counter() - started:.0f} s.")
    table = "\n".join(lines) + "\n"
    print(table)
    Path(args.out).write_text(table)


if __name__ == "__main__":
    main()
