"""Collect candidate lists from real result folders (orderings.json / lens.json, never relevance files,
so no judge's labels are seen) into tests/data/real_lists/lists.jsonl.

python benchmarks/extract_real_lists.py RESULTS_DIR [RESULTS_DIR ...] --out tests/data/real_lists/lists.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TOP_N = 20  # the graded length (registry/spec.py GRADED_TOKENS)
ADL_POSITIONS = 5


def lists_of(results: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path in sorted(results.rglob("orderings.json")) + sorted(results.rglob("lens.json")):
        doc = json.loads(path.read_text())
        cell = doc["cell"]
        where = {"organism": cell["organism"], "model": cell["model"], "variant": cell["variant"], "seed": cell["seed"],
                 "S": cell["samples"], "T": cell["positions"]}
        if path.name == "orderings.json":
            for name, entries in doc["orderings"].items():
                out.append({**where, "method": "logitdiff", "K": cell["top_k"], "list_id": name,
                            "tokens": [e["token"] for e in entries[:TOP_N]]})
        else:
            for pos in doc["delta"][:ADL_POSITIONS]:
                out.append({**where, "method": "adl", "layer": cell["adl_layer"], "list_id": f"adl_pos{pos['position']}",
                            "tokens": pos["positive"]["tokens"][:TOP_N]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = [row for r in args.results for row in lists_of(r)]
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} lists, {sum(len(r['tokens']) for r in rows)} tokens -> {args.out}")


if __name__ == "__main__":
    main()
