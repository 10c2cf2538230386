"""Fault injection: a small grid judged by a loopback server that cycles through the faults a real
endpoint shows, one run killed mid-judging, then a rerun.

The server answers the k-th chat request with fault k mod 7: 429 (Retry-After 0.2 s) → 500 → a 200
whose body is an HTML page → a 200 with nonsense text → a reply slower than --llm-timeout → a dropped
connection → a correct answer. The grid is topk-depth on the tiny test organism (testkit/tiny_experiment.py),
2 seeds x 3 K values = 6 cells in 2 engine passes, judged with --llm-timeout 1 --llm-retries 3. With 5
of 7 replies unusable many requests exhaust their retries; their lists are recorded as failed and the
next rerun asks again, so the script reruns until nothing fails (at most --max-reruns times).

    .venv/bin/python benchmarks/fault_injection.py [--kill-after 12] [--max-reruns 5]

Prints: requests sent, requests repeated (sent again after an identical one had been answered with a
chat completion; the cache should make this 0), lists failed after each rerun, files corrupt (must be 0).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # testkit/: support code shared with the tests

from logitdiff.results.records import RelevanceResult  # noqa: E402
from testkit.openai_server import ChatServer, Reply, SeenRequest, scripted_judge  # noqa: E402
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, build_tiny_setup  # noqa: E402

FAULTS = ("429", "500", "non-JSON", "nonsense", "slow", "reset", "ok")
COMPLETIONS = ("nonsense", "ok")  # the faults that still answer with a chat completion
TIMEOUT_S = 1.0


def faulty(request: SeenRequest) -> Reply:
    fault = FAULTS[request.index % len(FAULTS)]
    if fault == "429":
        return Reply(status=429, headers={"Retry-After": "0.2"})
    if fault == "500":
        return Reply(status=500)
    if fault == "non-JSON":
        return Reply(raw_body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    if fault == "nonsense":
        return Reply("The quick brown fox jumps over the lazy dog.")
    if fault == "slow":
        return Reply("too late", delay_s=3 * TIMEOUT_S)
    if fault == "reset":
        return Reply(reset=True)
    return scripted_judge(request)


def corrupt_files(results: Path, cache: Path) -> list[str]:
    """Every stored file a later step reads, loaded the way that step loads it."""
    from safetensors.torch import load_file

    bad = []
    for path in sorted([*results.rglob("*"), *(cache / "llm").rglob("*")]):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        try:
            if path.suffix == ".json":
                doc = json.loads(path.read_text())
                if "relevance" in path.parts:
                    RelevanceResult.model_validate(doc)
            elif path.suffix == ".safetensors":
                load_file(str(path))
        except Exception as exc:  # noqa: BLE001  (any failure to load is what we count)
            bad.append(f"{path}: {exc}")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kill-after", type=int, default=12, help="kill the first run once the server has answered this many requests")
    ap.add_argument("--max-reruns", type=int, default=5)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="logitdiff-faults-"))
    tiny = build_tiny_setup(root / "tiny")
    server = ChatServer(faulty)
    server.start()
    cache = root / "cache"
    env = {**tiny.env, "LOGITDIFF_CACHE": str(cache)}
    cmd = [
        sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--model", TINY_MODEL, "--organism", TINY_ORGANISM,
        "--mode", "diffing", "--seeds", "42,1042", "--values", "1,3,10", "--samples", "4", "--positions", "6", "--batch-size", "2",
        "--judge", f"vllm/fault-judge@{server.base_url}", "--llm-timeout", str(TIMEOUT_S), "--llm-retries", "3",
        "--results-dir", str(root / "results"), "--output-dir", str(root / "outputs"),
    ]
    try:
        start = time.monotonic()
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while len(server.answered) < args.kill_after and first.poll() is None:
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        graded_at_kill = len(list((root / "results").rglob("relevance/*.json")))
        sent_first, answered_first = len(server.requests), len(server.answered)
        reruns: list[tuple[int, int, int]] = []  # (exit code, lists failed, lists)
        run_starts = [0]  # index of each run's first request
        while len(reruns) < args.max_reruns and (not reruns or reruns[-1][0] != 0):
            run_starts.append(len(server.requests))
            rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
            lists = [lst for p in (root / "results").rglob("relevance/*.json") for lst in RelevanceResult.model_validate_json(p.read_text()).lists]
            reruns.append((rerun.returncode, sum(bool(lst.failed) for lst in lists), len(lists)))
            if rerun.returncode not in (0, 1):
                print(rerun.stderr[-3000:])
                break
        elapsed = time.monotonic() - start
    finally:
        server.stop()

    bodies = [json.dumps(r.body, sort_keys=True) for r in server.requests]
    first_answer: dict[str, int] = {}
    for i in sorted(server.answered):
        if FAULTS[i % len(FAULTS)] in COMPLETIONS:
            first_answer.setdefault(bodies[i], i)
    run_of = [sum(i >= start for start in run_starts) for i in range(len(bodies))]
    repeated = [i for i, body in enumerate(bodies) if body in first_answer and i > first_answer[body]]
    across = sum(run_of[i] > run_of[first_answer[bodies[i]]] for i in repeated)
    docs = [RelevanceResult.model_validate_json(p.read_text()) for p in (root / "results").rglob("relevance/*.json")]
    lists = [lst for doc in docs for lst in doc.lists]
    failed = [lst for lst in lists if lst.failed]
    bad = corrupt_files(root / "results", cache)
    stray = list(root.rglob("*.tmp"))

    print(f"grid: topk-depth, 6 cells (2 seeds x K 1,3,10) on {TINY_MODEL}; faults cycled per request: {' -> '.join(FAULTS)}")
    print(f"first run killed after {answered_first} answered requests ({sent_first} sent, {graded_at_kill} of 6 cells graded); "
          f"{len(reruns)} rerun(s), total {elapsed:.0f} s")
    for n, (code, n_failed, n_lists) in enumerate(reruns, 1):
        print(f"  rerun {n}: exit code {code}, lists failed {n_failed} of {n_lists}")
    print(f"requests sent:      {len(bodies)} ({len(set(bodies))} distinct, {sent_first} by the killed run)")
    print(f"requests repeated:  {across} by a later run after an earlier run's answer (the cache makes this 0); "
          f"{len(repeated) - across} within one run (identical requests in flight at once, e.g. the orderings of a "
          f"1-token list, or an answer that arrived after --llm-timeout)")
    print(f"lists failed:       {len(failed)} of {len(lists)} after the last rerun" + "".join(f"\n  {lst.list_id}: {lst.failed}" for lst in failed))
    print(f"files corrupt:      {len(bad)}" + "".join(f"\n  {b}" for b in bad))
    print(f"stray temp files:   {len(stray)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
