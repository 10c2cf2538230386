"""ONE streaming pass over the corpus that fills every request (`requests.Request`) of a (pair, corpus, seed).

Several finetunes of one base (views from `load_finetunes`: LoRA adapters of any organisms on one base
copy, full-weight models beside it) share a pass: per batch the base model runs once and each
finetune's forward runs on the rows its own requests need, so N finetunes cost N + 1 forwards instead of 2N.
Per batch and variant: both models run on the same texts; the residuals of the blocks the slots present
read are hooked; d = logits_ft − logits_base in fp32; the top-K and bottom-K ids of every position are
taken once, only as deep as the requests counting it need (`ranked`); each (S, T) slot hands its rows
and positions to its accumulators, one per accumulator key of its requests.
Texts are grouped by how many tokens they are run for, so batches need no padding. The head, the diff
and the top-K run on the model's device in chunks of positions sized to a memory budget
(`memory_plan`); nothing of vocabulary size is kept per position or copied to the host, so memory
does not grow with S, and an explicit batch size cannot push the readout past the budget. Freed heap
memory is handed back to the OS after every batch (`allocator`), so fragmentation does not grow it either.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import torch

from logitdiff.core.progress import progress as progress_bar
from logitdiff.core.errors import UserError
from logitdiff.engine.accumulators import TopKCodes
from logitdiff.engine.allocator import release_freed_memory
from logitdiff.engine.corpus import load_corpus
from logitdiff.engine.forward import PairReadout, SideOutput, run_body
from logitdiff.engine.memory_plan import MAX_FORWARD_TEXTS, available_bytes, readout_blocks, readout_positions
from logitdiff.engine.models import ModelPair
from logitdiff.engine.ranked import ranked_codes
from logitdiff.engine.record import PassRecord, library_versions
from logitdiff.engine.requests import Accumulator, Request
from logitdiff.engine.sampling import PrefixEncoder, SelectedText, SelectionLog, Slot, select_texts, starts_with_bos


VariantKey = Hashable  # names one finetune of a shared pass: a variant, or (organism, variant)


def auto_batch_size(vocab: int, run_length: int, device: torch.device, budget_bytes: int | None = None) -> int:
    """Texts per forward batch: as many as one readout chunk of the budget holds, at most 256.

    The budget is `memory_plan.available_bytes` (free GPU memory, or 384 MiB of host memory on CPU:
    2**25 fp32 elements of [tokens, V]); the vocabulary-sized readout dominates the activations.
    """
    positions = readout_positions(budget_bytes or available_bytes(device), vocab)
    return max(1, min(MAX_FORWARD_TEXTS, positions // run_length))


@dataclass(frozen=True)
class PassResult:
    results: dict[Request, object]  # each request's `read`
    record: PassRecord


class _SlotState:
    """One (S, T) slot of one variant: one accumulator per accumulator key of its requests."""

    def __init__(self, slot: Slot, requests: list[Request], num_layers: int, hidden: int, device: torch.device, first_position: int) -> None:
        self.slot = slot
        self.accumulators: dict[Hashable, Accumulator] = {}
        for r in requests:
            key = r.accumulator_key(num_layers)
            if key not in self.accumulators:
                self.accumulators[key] = r.new_accumulator(num_layers, hidden, device, first_position)
        reads_logits = {r.accumulator_key(num_layers) for r in requests if r.depth > 0}
        self.logit_readers = [acc for key, acc in self.accumulators.items() if key in reads_logits]
        self.residual_readers = [acc for acc in self.accumulators.values() if acc.layers]
        self.layers = frozenset[int]().union(*(acc.layers for acc in self.accumulators.values()))
        # How deep this slot's positions are ranked (`ranked_codes`): its deepest request.
        self.depth = max(r.depth for r in requests)


def _validate(pair: ModelPair, requests: Sequence[Request]) -> None:
    if not requests:
        raise UserError("nothing to compute: give at least one request")
    vocab = pair.model.get_output_embeddings().weight.shape[0]
    for r in requests:
        r.validate(vocab, pair.base_model or pair.base_id)


def _revision(model: torch.nn.Module) -> str | None:
    """The hub commit the weights came from (None for local folders)."""
    return getattr(getattr(model, "config", None), "_commit_hash", None)


def _rows_of(texts: list[SelectedText], slot_index: int, device: torch.device) -> slice | torch.Tensor:
    """Rows of `texts` that count for the slot (some do)."""
    rows = [j for j, t in enumerate(texts) if slot_index in t.slots]
    return slice(None) if len(rows) == len(texts) else torch.tensor(rows, device=device)


class _Variant:
    """One finetuned side of the pass: its readout, its top-K codes and its slots' accumulators.

    `state` is keyed by the index of the slot in the pass's (shared) slot list, which is what
    `SelectedText.slots` holds.
    """

    def __init__(
        self, pair: ModelPair, readout: PairReadout, requests: Sequence[Request], slots: list[Slot], device: torch.device, first_position: int
    ) -> None:
        self.pair = pair
        self.first_position = first_position
        self.readout = readout
        # A bucket per depth: the counts of a K are the histogram's buckets up to its own (`TopKCodes`).
        ks = sorted({r.depth for r in requests if r.depth > 0})
        self.codes = TopKCodes(ks, readout.ft.head.weight.shape[0], device) if ks else None
        by_slot: dict[Slot, list[Request]] = {}
        for r in requests:
            by_slot.setdefault(Slot(r.samples, r.positions), []).append(r)
        hidden = pair.model.get_input_embeddings().weight.shape[1]
        self.state = {
            i: _SlotState(s, by_slot[s], pair.num_layers, hidden, device, first_position) for i, s in enumerate(slots) if s in by_slot
        }
        self.texts_run = 0
        self.tokens_run = 0

    def present(self, texts: list[SelectedText]) -> set[int]:
        return {i for t in texts for i in t.slots if i in self.state}

    def layers(self, present: set[int]) -> frozenset[int]:
        return frozenset[int]().union(*(self.state[i].layers for i in present))

    def accumulate_residuals(self, texts: list[SelectedText], res_base: dict[int, torch.Tensor], res_ft: dict[int, torch.Tensor]) -> None:
        for i, st in self.state.items():
            if not st.layers or not any(i in t.slots for t in texts):
                continue  # run_batch hooked only the blocks of slots present in this batch
            t_len = st.slot.positions
            base: dict[int, torch.Tensor] = {}
            ft: dict[int, torch.Tensor] = {}
            for layer in st.layers:
                sel = _rows_of(texts, i, res_base[layer].device)
                base[layer], ft[layer] = res_base[layer][sel, :t_len], res_ft[layer][sel, :t_len]
            for acc in st.residual_readers:
                acc.add_residuals(base, ft)

    def accumulate_logits(self, texts: list[SelectedText], first_position: int, d: torch.Tensor) -> None:
        """d: [n, c, V] for positions first_position … first_position + c − 1 of `texts`."""
        assert self.codes is not None
        n, c, v = d.shape
        skip = max(0, self.first_position - first_position)  # the BOS column, if this block holds it and it is left out
        counted: list[tuple[_SlotState, slice | torch.Tensor, slice]] = []  # the slots with positions in this block: rows, columns
        depth = torch.zeros(n, c, dtype=torch.int64, device=d.device)
        for i, st in self.state.items():
            take = st.slot.positions - first_position  # this slot's positions inside the block
            if not st.logit_readers or take <= skip or not any(i in t.slots for t in texts):
                continue
            sel, cols = _rows_of(texts, i, d.device), slice(skip, take)
            depth[sel, cols] = depth[sel, cols].clamp(min=st.depth)
            counted.append((st, sel, cols))
        if not counted:
            return
        pos, neg = ranked_codes(d.view(n * c, v), depth.view(-1), self.codes)
        k = pos.shape[-1]
        pos_codes, neg_codes = pos.view(n, c, k), neg.view(n, c, k)
        for st, sel, cols in counted:
            mine = d[sel, cols].reshape(-1, v)
            # Row i of the codes belongs to row i of d. Flattening copies only a subset of the columns,
            # which the histograms' bincount would flatten anyway.
            mine_pos, mine_neg = pos_codes[sel, cols].reshape(-1, k), neg_codes[sel, cols].reshape(-1, k)
            for acc in st.logit_readers:
                acc.add_logits(mine, mine_pos, mine_neg, self.codes)


class _Pass:
    def __init__(
        self,
        pairs: Mapping[VariantKey, ModelPair],
        requests: Mapping[VariantKey, Sequence[Request]],
        batch_size: int | None,
        memory_budget: int | None,
        first_position: int,
    ):
        self.base_pair = next(iter(pairs.values()))
        if any(not p.shares_base_with(self.base_pair) for p in pairs.values()) and len(pairs) > 1:
            raise ValueError("finetunes share a pass only as views of one base model (load_finetunes)")
        first = PairReadout(self.base_pair)
        readouts = {key: first if p is self.base_pair else PairReadout(p, base=first.base) for key, p in pairs.items()}
        self.vocab = first.ft.head.weight.shape[0]
        # The counters live where the logits are made (the head's device under a device_map).
        readout_device = first.ft.head.weight.device
        self.batch_size = batch_size
        self.budget = memory_budget or available_bytes(self.base_pair.device)  # measured once the fp32 heads exist
        self.block_positions = readout_positions(self.budget, self.vocab)
        every = [r for reqs in requests.values() for r in reqs]
        self.slots = sorted({Slot(r.samples, r.positions) for r in every}, key=lambda s: (s.positions, s.samples))
        self.variants = {key: _Variant(pairs[key], readouts[key], requests[key], self.slots, readout_device, first_position) for key in pairs}
        self.forward_s = 0.0
        self.stats_s = 0.0
        self.texts_run = 0
        self.tokens_run = 0

    def auto_batch(self, run_length: int) -> int:
        return self.batch_size or auto_batch_size(self.vocab, run_length, self.base_pair.device, self.budget)

    def _sync(self) -> None:
        if self.base_pair.device.type == "cuda":
            torch.cuda.synchronize(self.base_pair.device)

    def run_batch(self, texts: list[SelectedText]) -> None:
        """All texts have the same run length R; each variant runs on the rows its slots need, up to its largest T."""
        ids = torch.tensor([t.ids for t in texts], device=self.base_pair.device)
        present = {key: var.present(texts) for key, var in self.variants.items()}
        layers = frozenset().union(*(var.layers(present[key]) for key, var in self.variants.items()))
        with torch.inference_mode():
            t0 = time.perf_counter()
            with self.base_pair.as_base() as m:
                base = run_body(m, ids, layers)
            self._sync()
            self.forward_s += time.perf_counter() - t0
            for key, var in self.variants.items():
                if present[key]:
                    self._run_variant(var, texts, ids, base, present[key])
        self.texts_run += len(texts)
        self.tokens_run += ids.numel()
        del base
        release_freed_memory()

    def _run_variant(self, var: _Variant, texts: list[SelectedText], ids: torch.Tensor, base: SideOutput, present: set[int]) -> None:
        t0 = time.perf_counter()
        rows = [j for j, t in enumerate(texts) if any(i in present for i in t.slots)]
        run_length = max(var.state[i].slot.positions for i in present)
        if len(rows) == len(texts):
            mine, sel = texts, slice(None)
        else:
            mine, sel = [texts[j] for j in rows], torch.tensor(rows, device=ids.device)
        with var.pair.as_finetuned() as m:
            ft = run_body(m, ids[sel, :run_length], var.layers(present))
        self._sync()
        self.forward_s += time.perf_counter() - t0
        t1 = time.perf_counter()
        base_res = {layer: base.residuals[layer][sel, :run_length] for layer in ft.residuals}
        var.accumulate_residuals(mine, base_res, ft.residuals)
        if var.codes is not None:
            base_hidden = base.hidden[sel, :run_length]
            for rows_b, cols in readout_blocks(len(mine), run_length, self.block_positions):
                d = self._diff(var, base_hidden[rows_b, cols], ft.hidden[rows_b, cols])
                var.accumulate_logits(mine[rows_b], cols.start, d)
                del d
        self._sync()
        self.stats_s += time.perf_counter() - t1
        var.texts_run += len(mine)
        var.tokens_run += len(mine) * run_length

    def _diff(self, var: _Variant, h_base: torch.Tensor, h_ft: torch.Tensor) -> torch.Tensor:
        """fp32 d of one readout block; the head matmuls count as forward time, like before chunking."""
        self._sync()
        t0 = time.perf_counter()
        ro = var.readout
        if ro.shared:
            d = ro.shared_diff(h_base, h_ft)
        else:
            with var.pair.as_base():
                z_base = ro.base.logits(h_base)
            with var.pair.as_finetuned():
                d = ro.ft.logits(h_ft)
            d.sub_(z_base.to(d.device))  # in place: two [positions, V] tensors alive, not three
            del z_base
        self._sync()
        dt = time.perf_counter() - t0
        self.forward_s += dt
        self.stats_s -= dt  # _run_variant times the whole readout loop as statistics
        return d


def run_pass(
    pair: ModelPair,
    corpus: str,
    seed: int,
    requests: Sequence[Request],
    *,
    batch_size: int | None = None,
    drop_bos: bool = False,
    progress: bool = True,
    memory_budget: int | None = None,
) -> PassResult:
    """Walk the seeded corpus once and fill every request of one pair (see module docstring).

    batch_size: texts per forward batch (default: from the budget). memory_budget: bytes the
    vocabulary-sized readout of one chunk may use (default: `memory_plan.available_bytes`).
    drop_bos: the texts still run with their BOS token (the models' logits and activations at every
    other position stay what they are); position 0 is left out of what the accumulators are given
    from the logits (S·(T−1) positions), and the residual accumulators leave it out of their sums
    (`first_position`). A tokenizer that adds no BOS has no BOS position: nothing is left out, and a
    notice says so.
    """
    results = run_variants_pass(
        {"": pair}, {"": requests}, corpus, seed,
        batch_size=batch_size, drop_bos=drop_bos, progress=progress, memory_budget=memory_budget,
    )  # fmt: skip
    return results[""]


def run_variants_pass(
    pairs: Mapping[VariantKey, ModelPair],
    requests: Mapping[VariantKey, Sequence[Request]],
    corpus: str,
    seed: int,
    *,
    batch_size: int | None = None,
    drop_bos: bool = False,
    progress: bool = True,
    memory_budget: int | None = None,
) -> dict[VariantKey, PassResult]:
    """One walk of the seeded corpus for several finetunes' views of one base (or a single pair of any kind).

    Each variant gets exactly the results a pass of its own would give it (same texts per slot);
    the base forward of a batch is shared by all of them.
    """
    if set(pairs) != set(requests) or not pairs:
        raise ValueError("give requests for exactly the variants of the pass")
    for key, pair in pairs.items():
        _validate(pair, requests[key])
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    base_pair = next(iter(pairs.values()))
    first_position = 0
    if drop_bos:
        if starts_with_bos(base_pair.tokenizer):
            first_position = 1
        else:
            print(f"notice: --drop-bos: the tokenizer of {base_pair.base_id} adds no BOS token, so no position is left out", file=sys.stderr)
    if first_position and any(r.depth > 0 and r.positions < 2 for reqs in requests.values() for r in reqs):
        raise UserError("--drop-bos leaves position 0 out: LogitDiff needs T ≥ 2 positions")
    work = _Pass(pairs, requests, batch_size, memory_budget, first_position)
    log = SelectionLog(rows=[[] for _ in work.slots])
    texts = select_texts(load_corpus(corpus, seed), PrefixEncoder(work.base_pair.tokenizer), work.slots, log, corpus)

    pending: dict[int, list[SelectedText]] = {}
    bar = progress_bar(max(s.samples for s in work.slots), "engine pass", "text", enabled=progress)
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

    total = time.perf_counter() - t_start
    timings = {
        "total": total,
        "forward": work.forward_s,
        "statistics": work.stats_s,
        "corpus_and_tokenize": total - work.forward_s - work.stats_s,
    }
    shared_with = [p.finetuned_id for p in pairs.values()] if len(pairs) > 1 else []
    return {
        key: _result(work.variants[key], requests[key], work, log, corpus, seed, drop_bos, batch_size, started, timings, shared_with)
        for key in pairs
    }


def _result(
    var: _Variant,
    reqs: Sequence[Request],
    work: _Pass,
    log: SelectionLog,
    corpus: str,
    seed: int,
    drop_bos: bool,
    batch_size: int | None,
    started: str,
    timings: dict[str, float],
    shared_with: list[str],
) -> PassResult:
    pair, num_layers = var.pair, var.pair.num_layers
    by_slot = {st.slot: st for st in var.state.values()}
    results = {r: r.read(by_slot[Slot(r.samples, r.positions)].accumulators[r.accumulator_key(num_layers)], num_layers) for r in reqs}

    rows_by_t: dict[int, list[int]] = {}
    for i, slot in enumerate(work.slots):  # sorted by (T, S): the largest S per T wins
        if i in var.state:
            rows_by_t[slot.positions] = list(log.rows[i])
    record = PassRecord(
        started_at=started,
        base_id=pair.base_id,
        base_model=pair.base_model,
        base_revision=_revision(pair.model),
        finetuned_id=pair.finetuned_id,
        finetuned_revision=_revision(pair.finetuned_full) if pair.finetuned_full is not None else None,
        corpus=corpus,
        seed=seed,
        drop_bos=drop_bos,
        first_counted_position=var.first_position,
        device=str(pair.device),
        dtype=str(pair.dtype).removeprefix("torch."),
        batch_size=batch_size,
        shared_head=var.readout.shared,
        requests=[r.record(num_layers) for r in reqs],
        rows_by_positions=rows_by_t,
        texts_read=log.texts_read,
        texts_empty=log.texts_empty,
        texts_too_short=log.texts_too_short,
        texts_run=var.texts_run,
        tokens_run=var.tokens_run,
        timings_s=timings,
        versions=library_versions(),
        base_shared_with=shared_with,
    )
    return PassResult(results=results, record=record)
