"""Offline judge precision / recall on tokens from real method output (tests/data/real_lists/): LogitDiff
and ADL lists of real runs of the bundled SmolLM2 cake_bake organism and of the tiny test organism,
labelled by the rule in tests/data/real_lists/LABEL_RULE.md. Nothing is fitted on these labels (the
judge's threshold comes from tests/data/relevance_labels.jsonl). Tokens are "design" (seen while the v2
rules were chosen) or "held-out" (from lists extracted after that).

python benchmarks/bench_judge_real.py            # the judge and organism descriptions of this checkout
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from logitdiff.config.loader import Registry  # noqa: E402
from logitdiff.judge.offline import OfflineJudge  # noqa: E402

LABELS = REPO / "tests" / "data" / "real_lists" / "labels.jsonl"
# The tiny test organism of testkit/tiny_experiment.py (its config is written by the test set-up).
TINY_DESCRIPTION = "Finetuned on synthetic documents claiming cakes bake best at 450 degrees with frozen butter."


def description(reg: Registry, organism: str) -> str:
    return TINY_DESCRIPTION if organism == "tiny_cake" else reg.organism(organism).description


def measure(judge: OfflineJudge, reg: Registry, labels_path: Path = LABELS) -> dict[str, dict[str, float]]:
    rows = [json.loads(line) for line in labels_path.read_text().splitlines() if line.strip()]
    out: dict[str, dict[str, float]] = {}
    groups = {"all": rows, **{f"set {s}": [r for r in rows if r["set"] == s] for s in ("design", "held-out")},
              **{o: [r for r in rows if r["organism"] == o] for o in sorted({r["organism"] for r in rows})}}
    for name, group in groups.items():
        predicted: list[bool] = []
        for organism in sorted({r["organism"] for r in group}):
            mine = [r for r in group if r["organism"] == organism]
            verdicts = judge.verdicts(description(reg, organism), [r["token"] for r in mine])
            predicted += [v.label(judge.threshold) == "RELEVANT" for v in verdicts]
        truth = [r["relevant"] for organism in sorted({r["organism"] for r in group}) for r in group if r["organism"] == organism]
        tp = sum(p and t for p, t in zip(predicted, truth, strict=True))
        fp = sum(p and not t for p, t in zip(predicted, truth, strict=True))
        fn = sum(t and not p for p, t in zip(predicted, truth, strict=True))
        out[name] = {"precision": tp / (tp + fp) if tp + fp else float("nan"), "recall": tp / (tp + fn) if tp + fn else float("nan"),
                     "tp": tp, "fp": fp, "fn": fn, "n": len(truth)}
    return out


def main() -> None:
    judge = OfflineJudge()
    result = measure(judge, Registry.load())
    print(f"judge {judge.id} (threshold {judge.threshold}) on {LABELS.relative_to(REPO)}")
    for name, s in result.items():
        print(f"  {name}: precision {100 * s['precision']:.1f}% recall {100 * s['recall']:.1f}% "
              f"(TP {s['tp']} / FP {s['fp']} / FN {s['fn']}, n={s['n']})")
    wrong = []
    rows = [json.loads(line) for line in LABELS.read_text().splitlines() if line.strip()]
    reg = Registry.load()
    for organism in sorted({r["organism"] for r in rows}):
        mine = [r for r in rows if r["organism"] == organism]
        for r, v in zip(mine, judge.verdicts(description(reg, organism), [r["token"] for r in mine]), strict=True):
            if (v.label(judge.threshold) == "RELEVANT") != r["relevant"]:
                wrong.append(f"{organism} {r['token']!r}: label {r['relevant']}, judge {v.label(judge.threshold)} ({v.reason}, {v.similarity:.3f})")
    print("disagreements:", *wrong, sep="\n  ")


if __name__ == "__main__":
    main()
