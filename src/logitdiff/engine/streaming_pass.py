"""ONE streaming pass over the corpus that fills every requested LogitDiff and ADL cell of a (pair, corpus, seed).

Per batch: both models run on the same texts; d = logits_ft − logits_base in fp32; the top-K_max and
bottom-K_max ids of every position are taken once; each (S, T) slot adds its positions to its counters.
Texts are grouped by how many tokens they are run for, so batches need no padding. Nothing of
vocabulary size is kept per position, so host memory does not grow with S.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import torch
from tqdm.auto import tqdm

from logitdiff.engine.accumulators import AdlAccumulator, LogitDiffAccumulator, TopKCodes
from logitdiff.engine.corpus import load_corpus
from logitdiff.engine.forward import PairReadout, run_body
from logitdiff.engine.models import ModelPair
from logitdiff.engine.record import PassRecord, RequestRecord, library_versions
from logitdiff.engine.sampling import PrefixEncoder, SelectedText, SelectionLog, Slot, select_texts
from logitdiff.engine.stats import AdlStats, LogitDiffCounters
from logitdiff.errors import UserError
from logitdiff.methods.adl import absolute_layer

# Elements of one [tokens, V] fp32 tensor per batch when batch_size is not given.
_AUTO_BATCH_ELEMENTS = {"cpu": 2**25, "cuda": 2**28}
_MAX_AUTO_TEXTS = 256


@dataclass(frozen=True)
class LogitDiffRequest:
    samples: int
    positions: int
    top_k: int


@dataclass(frozen=True)
class AdlRequest:
    samples: int
    positions: int
    layer: float  # relative layer r; the block is floor(r·(L−1))


@dataclass(frozen=True)
class PassResult:
    logitdiff: dict[LogitDiffRequest, LogitDiffCounters]
    adl: dict[AdlRequest, AdlStats]
    record: PassRecord


class _SlotState:
    """Accumulators of one (S, T) slot: LogitDiff (if any request needs it) and one ADL sum per block."""

    def __init__(self, slot: Slot, codes: TopKCodes | None, adl_layers: set[int], hidden: int, device: torch.device):
        self.slot = slot
        self.logitdiff = LogitDiffAccumulator(codes, device) if codes is not None else None
        self.adl = {layer: AdlAccumulator(slot.positions, hidden, device) for layer in sorted(adl_layers)}


def _validate(pair: ModelPair, logitdiff: Sequence[LogitDiffRequest], adl: Sequence[AdlRequest]) -> None:
    if not logitdiff and not adl:
        raise UserError("nothing to compute: give at least one LogitDiff or ADL request")
    vocab = pair.model.get_output_embeddings().weight.shape[0]
    for r in logitdiff:
        if min(r.samples, r.positions, r.top_k) < 1:
            raise UserError(f"LogitDiff needs S, T, K ≥ 1; got S={r.samples} T={r.positions} K={r.top_k}")
        if r.top_k > vocab:
            raise UserError(f"top-K {r.top_k} exceeds the vocabulary size {vocab}; use a smaller --top-k")
    for a in adl:
        if a.samples < 1 or a.positions <= 5:
            raise UserError(f"ADL needs S ≥ 1 and T > 5 (norms use positions ≥ 5); got S={a.samples} T={a.positions}")
        if not 0.0 <= a.layer <= 1.0:
            raise UserError(f"ADL relative layer must be within [0, 1], got {a.layer}")


def _revision(model: torch.nn.Module) -> str | None:
    """The hub commit the weights came from (None for local folders)."""
    return getattr(getattr(model, "config", None), "_commit_hash", None)


class _Pass:
    def __init__(self, pair: ModelPair, logitdiff: Sequence[LogitDiffRequest], adl: Sequence[AdlRequest], batch_size: int | None):
        self.pair = pair
        self.readout = PairReadout(pair)
        self.vocab = self.readout.ft.head.weight.shape[0]
        self.batch_size = batch_size
        ks = sorted({r.top_k for r in logitdiff})
        self.codes = TopKCodes(ks, self.vocab, pair.device) if ks else None
        self.slots = sorted({Slot(r.samples, r.positions) for r in (*logitdiff, *adl)}, key=lambda s: (s.positions, s.samples))
        needs_ld = {Slot(r.samples, r.positions) for r in logitdiff}
        hidden = pair.model.get_input_embeddings().weight.shape[1]
        self.state = [
            _SlotState(
                s,
                self.codes if s in needs_ld else None,
                {absolute_layer(a.layer, pair.num_layers) for a in adl if Slot(a.samples, a.positions) == s},
                hidden,
                pair.device,
            )
            for s in self.slots
        ]
        self.forward_s = 0.0
        self.stats_s = 0.0
        self.texts_run = 0
        self.tokens_run = 0

    def auto_batch(self, run_length: int) -> int:
        if self.batch_size:
            return self.batch_size
        budget = _AUTO_BATCH_ELEMENTS.get(self.pair.device.type, _AUTO_BATCH_ELEMENTS["cpu"])
        return max(1, min(_MAX_AUTO_TEXTS, budget // (self.vocab * run_length)))

    def _sync(self) -> None:
        if self.pair.device.type == "cuda":
            torch.cuda.synchronize(self.pair.device)

    def run_batch(self, texts: list[SelectedText]) -> None:
        """All texts have the same run length R; each slot takes its first T positions of its own texts."""
        t0 = time.perf_counter()
        ids = torch.tensor([t.ids for t in texts], device=self.pair.device)
        used_layers = frozenset(l for i, st in enumerate(self.state) for l in st.adl if any(i in t.slots for t in texts))
        ro = self.readout
        with torch.inference_mode():
            with self.pair.as_base() as m:
                base = run_body(m, ids, used_layers)
                z_base = None if ro.shared else ro.base.logits(base.hidden)
            with self.pair.as_finetuned() as m:
                ft = run_body(m, ids, used_layers)
                d = ro.shared_diff(base.hidden, ft.hidden) if ro.shared else ro.ft.logits(ft.hidden) - z_base
            del z_base
            self._sync()
            t1 = time.perf_counter()
            self._accumulate(texts, d, base.residuals, ft.residuals)
            self._sync()
        self.forward_s += t1 - t0
        self.stats_s += time.perf_counter() - t1
        self.texts_run += len(texts)
        self.tokens_run += ids.numel()

    def _accumulate(self, texts: list[SelectedText], d: torch.Tensor, res_base: dict, res_ft: dict) -> None:
        n, r, v = d.shape
        flat = d.view(n * r, v)
        pos_codes = neg_codes = None
        if self.codes is not None:
            k_max = self.codes.ks[-1]
            pos_codes = self.codes.encode(torch.topk(flat, k_max, dim=-1, sorted=True).indices).view(n, r, k_max)
            neg_codes = self.codes.encode(torch.topk(flat, k_max, dim=-1, largest=False, sorted=True).indices).view(n, r, k_max)
        for i, st in enumerate(self.state):
            rows = [j for j, t in enumerate(texts) if i in t.slots]
            if not rows:
                continue
            t_len = st.slot.positions
            sel = slice(None) if len(rows) == n else torch.tensor(rows, device=d.device)
            if st.logitdiff is not None:
                assert pos_codes is not None and neg_codes is not None
                st.logitdiff.add(
                    d[sel, :t_len].reshape(-1, v),
                    pos_codes[sel, :t_len],
                    neg_codes[sel, :t_len],
                )
            for layer, acc in st.adl.items():
                acc.add(res_base[layer][sel, :t_len], res_ft[layer][sel, :t_len])


def run_pass(
    pair: ModelPair,
    corpus: str,
    seed: int,
    logitdiff: Sequence[LogitDiffRequest],
    adl: Sequence[AdlRequest],
    *,
    batch_size: int | None = None,
    drop_bos: bool = False,
    progress: bool = True,
) -> PassResult:
    """Walk the seeded corpus once and fill every request (see module docstring)."""
    _validate(pair, logitdiff, adl)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    work = _Pass(pair, logitdiff, adl, batch_size)
    log = SelectionLog(rows=[[] for _ in work.slots])
    texts = select_texts(load_corpus(corpus, seed), PrefixEncoder(pair.tokenizer, drop_bos), work.slots, log, corpus)

    pending: dict[int, list[SelectedText]] = {}
    bar = tqdm(total=max(s.samples for s in work.slots), desc="engine pass", unit="text", disable=not progress)
    for text in texts:
        bucket = pending.setdefault(len(text.ids), [])
        bucket.append(text)
        if len(bucket) >= work.auto_batch(len(text.ids)):
            work.run_batch(pending.pop(len(text.ids)))
            bar.update(len(bucket))
    for run_length in sorted(pending):
        work.run_batch(pending[run_length])
        bar.update(len(pending[run_length]))
    bar.close()

    by_slot = {st.slot: st for st in work.state}
    ld_out = {}
    for r in logitdiff:
        acc = by_slot[Slot(r.samples, r.positions)].logitdiff
        assert acc is not None
        ld_out[r] = acc.result(r.samples, r.positions, r.top_k)
    adl_out = {}
    for a in adl:
        layer = absolute_layer(a.layer, pair.num_layers)
        adl_out[a] = by_slot[Slot(a.samples, a.positions)].adl[layer].result(a.layer, layer)

    total = time.perf_counter() - t_start
    rows_by_t: dict[int, list[int]] = {}
    for slot, rows in zip(work.slots, log.rows, strict=True):  # sorted by (T, S): the largest S per T wins
        rows_by_t[slot.positions] = list(rows)
    record = PassRecord(
        started_at=started,
        base_id=pair.base_id,
        base_revision=_revision(pair.model),
        finetuned_id=pair.finetuned_id,
        finetuned_revision=_revision(pair.finetuned_full) if pair.finetuned_full is not None else None,
        corpus=corpus,
        seed=seed,
        drop_bos=drop_bos,
        device=str(pair.device),
        dtype=str(pair.dtype).removeprefix("torch."),
        batch_size=batch_size,
        shared_head=work.readout.shared,
        requests=[RequestRecord(method="logitdiff", samples=r.samples, positions=r.positions, top_k=r.top_k) for r in logitdiff]
        + [
            RequestRecord(
                method="adl", samples=a.samples, positions=a.positions, relative_layer=a.layer, layer=absolute_layer(a.layer, pair.num_layers)
            )
            for a in adl
        ],
        rows_by_positions=rows_by_t,
        texts_read=log.texts_read,
        texts_empty=log.texts_empty,
        texts_too_short=log.texts_too_short,
        texts_run=work.texts_run,
        tokens_run=work.tokens_run,
        timings_s={
            "total": total,
            "forward": work.forward_s,
            "statistics": work.stats_s,
            "corpus_and_tokenize": total - work.forward_s - work.stats_s,
        },
        versions=library_versions(),
    )
    return PassResult(logitdiff=ld_out, adl=adl_out, record=record)
