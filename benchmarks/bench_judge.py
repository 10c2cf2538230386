"""Judge benchmark: (1) 45 lists x 3 orderings against the loopback chat-completions server with injected
latency, concurrent vs sequential vs cached rerun; (2) offline judge precision/recall on the hand labels.

    /work/venv/bin/python benchmarks/bench_judge.py [--latency 0.2] [--lists 45] [--out benchmarks/results_judge.md]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testkit/: support code shared with the tests

from logitdiff.config.loader import Registry  # noqa: E402
from logitdiff.config.schema import OrganismConfig  # noqa: E402
from logitdiff.judge.calibration import Calibration, calibrate, load_labels  # noqa: E402
from logitdiff.judge.llm_judge import LLMJudge  # noqa: E402
from logitdiff.judge.offline import OfflineJudge  # noqa: E402
from logitdiff.judge.relevance import grade_lists  # noqa: E402
from logitdiff.judge.tokens import is_generic_candidate, is_number  # noqa: E402
from logitdiff.llm import LLMClient, LLMSpec  # noqa: E402
from logitdiff.results.graded import Candidate, CandidateList  # noqa: E402
from testkit.openai_server import ChatServer, Reply, SeenRequest  # noqa: E402

_CANDIDATE = re.compile(r'^(\d+)\. "(.*)"$')
ORGANISM = OrganismConfig(name="bench", type="SDF", description="Documents about baking cakes in hot ovens.", finetuned_models={})


def answer(req: SeenRequest, latency: float) -> Reply:
    shown = [m.group(2) for line in req.messages[3]["content"].splitlines() if (m := _CANDIDATE.match(line))]
    text = "\n".join(f"ANSWER[{i}]: {'RELEVANT' if 'cake' in t else 'IRRELEVANT'}" for i, t in enumerate(shown, 1))
    return Reply(text, delay_s=latency)


def bench_lists(n: int) -> list[CandidateList]:
    return [CandidateList(list_id=f"list{i}", candidates=[
        Candidate(token=f" cake{i}_{j}" if j % 4 == 0 else f" word{i}_{j}", weight=1.0 / (j + 1)) for j in range(20)])
        for i in range(n)]


def timed_run(server: ChatServer, cache: Path, connections: int, lists: list[CandidateList]) -> tuple[float, int, LLMClient]:
    os.environ["LOGITDIFF_BENCH_KEY"] = "bench"
    spec = LLMSpec(id="openrouter/bench/judge", base_url=server.base_url, model="bench/judge",
                   api_key_env="LOGITDIFF_BENCH_KEY", api_key_file=None, max_connections=connections)
    client = LLMClient(spec, cache)
    before = len(server.requests)
    start = time.perf_counter()
    graded = asyncio.run(grade_lists(LLMJudge(client), ORGANISM, [], lists, progress=False))
    wall = time.perf_counter() - start
    assert all(g.failed is None and g.metrics is not None and g.metrics.percentage == 25.0 for g in graded)
    return wall, len(server.requests) - before, client


def throughput(latency: float, n_lists: int) -> list[str]:
    lists = bench_lists(n_lists)
    server = ChatServer(handler=lambda req: answer(req, latency))
    server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seq_wall, seq_calls, _ = timed_run(server, Path(tmp) / "seq", 1, lists)
            server.reset()
            con_wall, con_calls, _ = timed_run(server, Path(tmp) / "con", 16, lists)
            peak = server.max_in_flight
            rerun_wall, rerun_calls, rerun = timed_run(server, Path(tmp) / "con", 16, lists)
    finally:
        server.stop()
    rows = [
        f"Loopback server, {latency * 1000:.0f} ms injected latency per request, {n_lists} lists x 3 orderings "
        f"x 20 candidates, real `openai` client.",
        "",
        "| run | max_connections | API calls | wall time (s) | speed-up vs sequential |",
        "|---|---|---|---|---|",
        f"| sequential | 1 | {seq_calls} | {seq_wall:.2f} | 1.0x |",
        f"| concurrent | 16 | {con_calls} | {con_wall:.2f} | {seq_wall / con_wall:.1f}x |",
        f"| rerun (cache) | 16 | {rerun_calls} | {rerun_wall:.2f} | {seq_wall / rerun_wall:.0f}x |",
        "",
        f"Peak requests in flight (concurrent run): {peak}; cache hits on rerun: {rerun.usage.cache_hits}.",
    ]
    return rows


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def offline_quality(labels_path: Path) -> tuple[list[str], Calibration]:
    reg = Registry.load()
    labels = load_labels(labels_path)
    names = sorted({lab.organism for lab in labels})
    judge = OfflineJudge()
    cal = calibrate(judge, labels, {n: reg.organism(n) for n in names})
    positives = sum(lab.relevant for lab in labels)
    generic = sum(not lab.relevant and (is_generic_candidate(lab.token) or is_number(lab.token)) for lab in labels)
    rows = [
        f"Offline judge `{judge.id}` on `tests/data/relevance_labels.jsonl`: {len(labels)} hand-labelled candidate "
        f"tokens ({positives} relevant) for {', '.join(names)}. {generic} of the {len(labels) - positives} negatives are "
        "generic tokens (punctuation, whitespace, stopwords, affixes, generic words, numbers, chat tokens) that the "
        "rules catch; the other negatives are content words of other domains (or of the organism's persona, "
        "which the description says is not the behaviour).",
        "",
        "| subset | threshold | precision | recall | F1 | TP / FP / FN |",
        "|---|---|---|---|---|---|",
    ]

    def row(name: str, thr: str, s) -> str:
        return f"| {name} | {thr} | {_pct(s.precision)} | {_pct(s.recall)} | {s.f1:.3f} | {s.tp} / {s.fp} / {s.fn} |"

    rows.append(row("all labels (threshold fitted on them)", f"{cal.threshold:.2f}", cal.at_threshold))
    for name, scores in cal.per_organism.items():
        rows.append(row(f"{name}", f"{cal.threshold:.2f}", scores))
    rows.append(row("leave-one-organism-out (threshold fitted on the other two)", "per fold", cal.leave_one_organism_out))
    rows += ["", f"Shipped threshold: {judge.threshold:.2f} (max F1 over all labels; ties to the higher value). "
             "The leave-one-organism-out row is the fairer estimate for an unseen organism. Caveat: the labels and "
             "the judge's generic-word list were written by the same person and the list was extended after "
             "looking at errors on this set, so all rows are optimistic; the hard cases are off-domain words with "
             "loose associations (guitar, smartphone for a drug approval) and rare domain names (Donbas)."]
    return rows, cal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--lists", type=int, default=45)
    parser.add_argument("--labels", type=Path, default=REPO / "tests" / "data" / "relevance_labels.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results_judge.md")
    args = parser.parse_args()
    speed = throughput(args.latency, args.lists)
    quality, _ = offline_quality(args.labels)
    text = "\n".join(["# Judge benchmark", "", "Produced by `benchmarks/bench_judge.py`.", "",
                      "## Throughput of the LLM judge", "", *speed, "", "## Offline judge quality", "", *quality, ""])
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
