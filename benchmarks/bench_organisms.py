"""Many organisms in one pass: N organisms × 1 variant, one seed, planned into one pass vs one pass per organism.

Each organism contributes the cells of one finetune that mix-ratio computes per variant (LogitDiff
K=100 and ADL r=0.5, T=30, S = 1000 / --scale). Two set-ups, both on the CPU:

(f) the bundled smollm2_135M organism: N of cake_bake's LoRA adapters loaded as N organisms (a
    throwaway config folder names them cake_bake_1 … cake_bake_N), planned by the real grid
    (`--organism cake_bake_1,…`) and run as the stages do: `load_finetunes` + one `run_variants_pass`,
    against `load_pair` + `run_pass` per organism. Loading is included on both sides.
(g) random-init Gemma-3-1B shapes (testkit/architectures.py; real vocabulary 262,144 and hidden
    size, --gemma-layers decoder blocks): N seeded random LoRA adapters on one base copy; the
    planned pass against N single-adapter passes over the same loaded weights (no loading on
    either side: the models are built, not loaded).

Both sides run in one fresh subprocess per set-up, warmed up by an untimed pass, alternated (separate,
planned, planned, separate) so a change of load on the shared machine hits both alike; the counts of
every cell are compared between the two (`identical counts`). Goal: planned / separate ≤ (N+1)/(2N) + 0.05.

    python benchmarks/bench_organisms.py --parts f --scale 100 --threads 1
    python benchmarks/bench_organisms.py --parts g --gemma-layers 26 --gemma-samples 6 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testkit/: support code shared with the tests

SEED = 42
TOP_K = 100
POSITIONS = 30
ADAPTERS = ("default", "mix1-1p0", "mix1-2p0", "mix1-0p5", "mix1-1p5")  # cake_bake's bundled adapters, one per organism


def _requests(samples: int):  # noqa: ANN202
    from logitdiff.engine.requests import ResidualMeansRequest, TopKCountsRequest

    return [TopKCountsRequest(samples, POSITIONS, TOP_K), ResidualMeansRequest(samples, POSITIONS, 0.5)]


def _counts(results: dict) -> dict:
    """Exact integer counts of every LogitDiff cell, by finetune, as lists (JSON-able)."""
    from logitdiff.engine.requests import TopKCountsRequest

    return {
        str(key): {name: [int(x) for x in getattr(c, name).tolist()] for name in ("count_pos", "count_neg", "npos")}
        for key, res in results.items()
        for req, c in res.results.items()
        if isinstance(req, TopKCountsRequest)
    }


def _timed(fn) -> tuple[float, float, dict]:  # noqa: ANN001
    t0, c0 = time.perf_counter(), time.process_time()
    counts = fn()
    return time.perf_counter() - t0, time.process_time() - c0, counts


# ---------------------------------------------------------------- (f) bundled organism


def _organism_configs(root: Path, n: int) -> Path:
    """The repository's configs plus cake_bake_1 … cake_bake_n, each with one of cake_bake's adapters as its 'default'."""
    import shutil

    import yaml

    from logitdiff.core.paths import configs_dir, repo_root

    configs = root / "configs"
    shutil.copytree(configs_dir(), configs)
    cake = yaml.safe_load((configs / "organisms" / "cake_bake.yaml").read_text())
    for i in range(n):
        name = f"cake_bake_{i + 1}"
        org = {**cake, "name": name}
        org["default_corpus"] = {"smollm2_135M": str(repo_root() / cake["default_corpus"]["smollm2_135M"])}
        org["local_dataset"] = str(repo_root() / cake["local_dataset"])
        path = repo_root() / cake["finetuned_models"]["smollm2_135M"][ADAPTERS[i]]["adapter_path"]
        org["finetuned_models"] = {"smollm2_135M": {"default": {"adapter_path": str(path)}}}
        (configs / "organisms" / f"{name}.yaml").write_text(yaml.safe_dump(org, sort_keys=False))
    return configs


def bundled_worker(job: dict) -> dict:
    from logitdiff.config.loader import Registry
    from logitdiff.core.cache_dir import default_cache_dir
    from logitdiff.engine.models import load_finetunes, load_pair
    from logitdiff.engine.streaming_pass import run_pass, run_variants_pass
    from logitdiff.experiments.grid import GridOptions, expand, pass_groups

    reg = Registry.load(Path(job["configs"]))
    organisms = ",".join(f"cake_bake_{i + 1}" for i in range(job["n"]))
    exp = reg.experiment("mix-ratio")
    cells = expand(reg, exp, GridOptions(model="smollm2_135M", organism=organisms, seeds=[SEED], values=["default"], samples=job["samples"]))
    groups = pass_groups(cells)
    assert len(groups) == 1, "the N organisms must plan into one pass"
    finetunes = list(dict.fromkeys((c.organism, c.variant) for c in cells))
    refs = {f: reg.finetuned(f[0], "smollm2_135M", f[1]) for f in finetunes}
    model_cfg, corpus = reg.model("smollm2_135M"), cells[0].corpus
    req = _requests(job["samples"])

    def separate() -> dict:
        out = {}
        for f, ref in refs.items():
            pair = load_pair(model_cfg, ref, cache_dir=default_cache_dir(), device="cpu")
            out.update(_counts({f: run_pass(pair, corpus, SEED, req, progress=False)}))
            del pair
        return out

    def planned() -> dict:
        pairs = load_finetunes(model_cfg, refs, cache_dir=default_cache_dir(), device="cpu")
        return _counts(run_variants_pass(pairs, {f: req for f in refs}, corpus, SEED, progress=False))

    return _alternate(separate, planned, warm=lambda: run_variants_pass(
        load_finetunes(model_cfg, refs, cache_dir=default_cache_dir(), device="cpu"), {f: _requests(4) for f in refs}, corpus, SEED, progress=False))


# ---------------------------------------------------------------- (g) Gemma-3-1B shapes


def gemma_worker(job: dict) -> dict:
    import dataclasses

    import torch

    from logitdiff.engine.streaming_pass import run_pass, run_variants_pass
    from testkit.architectures import LORA_TARGETS, random_pair

    pair = random_pair("gemma3_1B", layers=job["layers"], seed=0)  # adapter "default" (seed 1)
    from peft import LoraConfig

    names = ["default"] + [f"organism{i}" for i in range(1, job["n"])]
    for i, name in enumerate(names[1:], start=2):
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules=list(LORA_TARGETS), init_lora_weights=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(i)
            pair.model.add_adapter(name, cfg)  # type: ignore[operator]
    pair.model.eval().requires_grad_(False)
    views = {name: dataclasses.replace(pair, adapter=name, finetuned_id=f"random-lora:{name}") for name in names}
    req = _requests(job["samples"])

    def separate() -> dict:
        out = {}
        for name, view in views.items():
            res = run_pass(view, job["corpus"], SEED, req, progress=False)
            out.update(_counts({name: res}))
        return out

    def planned() -> dict:
        return _counts(run_variants_pass(views, {n: req for n in views}, job["corpus"], SEED, progress=False))

    return _alternate(separate, planned, warm=lambda: run_variants_pass(views, {n: _requests(2) for n in views}, job["corpus"], SEED, progress=False))


def _alternate(separate, planned, warm) -> dict:  # noqa: ANN001
    warm()
    runs = {"separate": [], "planned": []}
    for side in ("separate", "planned", "planned", "separate"):
        runs[side].append(_timed(separate if side == "separate" else planned))
    counts_sep, counts_plan = runs["separate"][0][2], runs["planned"][0][2]
    return {
        side: {"seconds": sum(r[0] for r in rs) / len(rs), "cpu_seconds": sum(r[1] for r in rs) / len(rs)} for side, rs in runs.items()
    } | {"identical": counts_sep == counts_plan and all(r[2] == counts_sep for rs in runs.values() for r in rs)}


def worker(job: dict) -> dict:
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    return bundled_worker(job) if job["kind"] == "f" else gemma_worker(job)


def run_job(job: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark worker failed ({job['kind']}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="fg", help="f (bundled organism), g (Gemma-3-1B shapes), or both")
    ap.add_argument("--organisms", type=int, default=3, help="N (at most 5 for f: cake_bake has five adapters)")
    ap.add_argument("--scale", type=int, default=100, help="(f): S = 1000 / scale")
    ap.add_argument("--gemma-samples", type=int, default=6, help="(g): S")
    ap.add_argument("--gemma-layers", type=int, default=26, help="(g): decoder blocks (26 = the real depth)")
    ap.add_argument("--threads", type=int, help="torch threads per worker (1 is steadier on a busy shared machine)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_organisms.md")))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    from benchmarks.bench_engine import english_corpus

    n = args.organisms
    goal = (n + 1) / (2 * n) + 0.05
    load_start, started = os.getloadavg()[0], time.perf_counter()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "f" in args.parts:
            samples = max(1, 1000 // args.scale)
            print(f"(f): {n} bundled organisms, S={samples} …", file=sys.stderr, flush=True)
            res = run_job({"kind": "f", "n": n, "samples": samples, "threads": args.threads, "configs": str(_organism_configs(Path(tmp), n))})
            rows += _rows(f"(f) smollm2_135M, bundled cake_bake adapters as {n} organisms, S={samples}, loading included", res, goal)
        if "g" in args.parts:
            corpus = str(english_corpus(Path(tmp) / "corpus.jsonl", 4 * args.gemma_samples + 50))
            print(f"(g): Gemma-3-1B shapes, {args.gemma_layers} layers, {n} organisms, S={args.gemma_samples} …", file=sys.stderr, flush=True)
            res = run_job({"kind": "g", "n": n, "samples": args.gemma_samples, "layers": args.gemma_layers, "threads": args.threads, "corpus": corpus})
            rows += _rows(f"(g) random-init Gemma-3-1B shapes ({args.gemma_layers} blocks), {n} organisms, S={args.gemma_samples}", res, goal)
    lines = [
        f"# Many organisms in one pass: N = {n} organisms × 1 variant, one seed (CPU fp32)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average at start {load_start:.1f}, at end {os.getloadavg()[0]:.1f} "
        f"(shared with other developers: wall times are noisy; CPU times of the process are the steadier comparison). "
        f"Torch threads: {args.threads or 'default'}. Cells per organism: LogitDiff K={TOP_K} and ADL r=0.5, T={POSITIONS}. "
        "Each side is the mean of two runs (separate, planned, planned, separate).",
        "",
        "| measurement | wall | CPU | goal | met (wall / CPU) |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Total benchmark time {time.perf_counter() - started:.0f} s.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    Path(args.out).write_text(table)


def _rows(label: str, res: dict, goal: float) -> list[str]:
    s, p = res["separate"], res["planned"]
    wall, cpu = p["seconds"] / s["seconds"], p["cpu_seconds"] / s["cpu_seconds"]
    yes = lambda ok: "yes" if ok else "no"  # noqa: E731
    return [
        f"| {label}: one pass per organism | {s['seconds']:.1f} s | {s['cpu_seconds']:.1f} s | | |",
        f"| {label}: planned, one pass | {p['seconds']:.1f} s | {p['cpu_seconds']:.1f} s | | |",
        f"| {label}: planned / separate (identical counts: {yes(res['identical'])}) | {wall:.2f}× | {cpu:.2f}× | ≤ {goal:.2f}× | {yes(wall <= goal)} / {yes(cpu <= goal)} |",
    ]


if __name__ == "__main__":
    main()
