"""Corpus reading and sample selection (SPEC §2)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import iter_dataset, load_corpus
from logitdiff.engine.sampling import PrefixEncoder, SelectionLog, Slot, select_texts, starts_with_bos
from testkit.tiny_models import english_texts, no_bos_tokenizer, tiny_tokenizer, write_jsonl

TEXTS = ["first text", "", "second one here", "third", "fourth and last text", "fifth"]


def _all_formats(tmp_path: Path) -> list[Path]:
    jsonl = write_jsonl(tmp_path / "c.jsonl", TEXTS)
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(jsonl.read_text())
    parquet = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": TEXTS, "other": list(range(len(TEXTS)))}), parquet)
    txt = tmp_path / "c.txt"
    txt.write_text("\n".join(TEXTS) + "\n")
    return [jsonl, gz, parquet, txt]


def test_every_local_format_gives_datasets_shuffle_order(tmp_path: Path) -> None:
    expected_texts = Dataset.from_dict({"text": TEXTS}).shuffle(seed=7)["text"]
    for path in _all_formats(tmp_path):
        got = list(load_corpus(str(path), seed=7))
        assert [t for _, t in got] == expected_texts, path.name
        assert all(TEXTS[row] == text for row, text in got), path.name


def test_hub_style_dataset_rows_match_local_file(tmp_path: Path) -> None:
    texts = english_texts(50, seed=3)
    local = list(load_corpus(str(write_jsonl(tmp_path / "c.jsonl", texts)), seed=1042))
    assert list(iter_dataset(Dataset.from_dict({"text": texts}), 1042, "test")) == local


def test_seed_changes_order_and_same_seed_repeats(tmp_path: Path) -> None:
    path = str(write_jsonl(tmp_path / "c.jsonl", english_texts(30, seed=0)))
    a, b, c = list(load_corpus(path, 42)), list(load_corpus(path, 42)), list(load_corpus(path, 1042))
    assert a == b
    assert [r for r, _ in a] != [r for r, _ in c]
    assert sorted(r for r, _ in a) == list(range(30))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "does not exist"),
        ("c.csv", "text\nhello\n", "unknown file type"),
        ("bad.jsonl", '{"text": "ok"}\nnot json\n', "line 2 is not valid JSON"),
        ("nofield.jsonl", '{"body": "x"}\n', 'no "text" field'),
    ],
)
def test_bad_local_corpus_is_a_user_error(tmp_path: Path, name: str, content: str | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        load_corpus(str(path), 1)


def test_unreachable_hub_corpus_suggests_local_file() -> None:
    with pytest.raises(UserError, match="nobody/no-such-corpus.*--corpus FILE"):
        load_corpus("nobody/no-such-corpus", 1)


class WordTokenizer:
    """Whitespace tokenizer with a BOS: one id per word, so a token can span many characters."""

    bos_token_id = 1

    def __call__(self, texts: list[str], add_special_tokens: bool = True) -> dict[str, list[list[int]]]:
        return {"input_ids": [[1] + [10 + len(w) for w in t.split(" ") if w] for t in texts]}


def test_prefix_encoder_retokenizes_when_prefix_is_ambiguous() -> None:
    encode = PrefixEncoder(WordTokenizer())  # type: ignore[arg-type]
    text = " ".join(["x" * 25, "y" * 26, "z" * 27])
    # 30 characters cut the second word: its id would be wrong without the full re-tokenization.
    assert encode([text], need=3) == [[1, 35, 36]]
    assert encode(["ab cd"], need=5) == [[1, 12, 12]]


def test_bos_stays_in_the_input() -> None:
    tok = tiny_tokenizer()
    ids = PrefixEncoder(tok)(["the cake is warm"], need=50)[0]
    assert ids[0] == tok.bos_token_id and ids == tok("the cake is warm")["input_ids"]
    assert starts_with_bos(tok) and not starts_with_bos(no_bos_tokenizer())


def _select(texts: list[str], slots: list[Slot]) -> tuple[list, SelectionLog]:
    log = SelectionLog(rows=[[] for _ in slots])
    corpus = list(enumerate(texts))
    return list(select_texts(corpus, PrefixEncoder(WordTokenizer()), slots, log, "mem")), log  # type: ignore[arg-type]


def test_selection_serves_each_slot_its_first_usable_texts() -> None:
    texts = ["a b c", "", "a", "a b c d e f", "a b", "a b c d", "a b c d e"]
    # token counts incl. BOS: 4, -, 2, 7, 3, 5, 6
    selected, log = _select(texts, [Slot(samples=2, positions=5), Slot(samples=3, positions=3)])
    assert log.rows == [[3, 5], [0, 3, 4]]
    assert [(t.row, len(t.ids), t.slots) for t in selected] == [(0, 3, (1,)), (3, 5, (0, 1)), (4, 3, (1,)), (5, 5, (0,))]
    assert (log.texts_empty, log.texts_too_short, log.texts_read) == (1, 1, 6)


def test_whitespace_only_texts_are_skipped_like_empty_ones() -> None:
    """A byte tokenizer turns "   \n\t  " into 7 tokens (+BOS): long enough, but no text to diff on."""
    tok = tiny_tokenizer()
    texts = ["   \n\t  ", "", "the cake", " \u00a0 \n", "is warm"]
    log = SelectionLog(rows=[[]])
    selected = list(select_texts(list(enumerate(texts)), PrefixEncoder(tok), [Slot(2, 3)], log, "mem"))
    assert [t.row for t in selected] == [2, 4]
    assert (log.texts_empty, log.texts_too_short, log.texts_read) == (3, 0, 5)


def test_smaller_samples_are_a_prefix_of_larger_ones() -> None:
    texts = english_texts(60, seed=5, min_words=1, max_words=12)
    _, log = _select(texts, [Slot(5, 4), Slot(20, 4), Slot(12, 8)])
    _, alone = _select(texts, [Slot(20, 4)])
    assert log.rows[0] == log.rows[1][:5]
    assert log.rows[1] == alone.rows[0]


def test_too_small_corpus_names_the_numbers() -> None:
    with pytest.raises(UserError, match=r"only 2 usable texts with at least T=4 tokens, but S=3"):
        _select(["a b", "a b c d", "a", "x y z w"], [Slot(3, 4)])


def test_jsonl_written_by_hand_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"text": "only"}) + "\n\n")  # trailing blank line is not a row
    assert list(load_corpus(str(path), 0)) == [(0, "only")]
