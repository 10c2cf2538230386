"""NMF ordering: topics of tokens that the finetuned model promotes together.

A pass feeds the top-K positive entries of d = logits_ft − logits_base into a TopKMatrix, one row per
position; fit_topics factorises that (position × token) matrix V ≈ H · Wᵀ into R topics and turns each
column of W (a topic's token weights) into one token ordering ("topic_0", "topic_1", ...).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse

if TYPE_CHECKING:  # the registry reads NmfOptions at `--check`, before torch (or scikit-learn) may load
    import torch

MODES = ("logit_diff_magnitude", "binary_occurrence")
MIN_WEIGHT = 1e-6  # weights below this are numerical leftovers of the fit, not members of the topic
_EPS = 1e-12  # keeps multiplicative updates finite where a numerator and denominator are both 0


@dataclass(frozen=True)
class NmfOptions:
    topics: int = 3
    beta: float = 2.0  # only 2.0 (Frobenius) is supported; anything else -> ValueError in fit_topics
    mode: Literal["logit_diff_magnitude", "binary_occurrence"] = "logit_diff_magnitude"
    orthogonality: float = 0.0
    max_iter: int = 200
    top_n: int = 200
    seed: int = 0


class TopKMatrix:
    """Collects the sparse (position × token) matrix during a pass; memory: 12 bytes per kept entry
    (int32 row, int32 column, float32 value) plus the column map, i.e. at most 12·S·T·K bytes.

    Every id passed to `add` gets a column, even if all its entries are dropped (≤ 0 after summing),
    as in the reference: the columns are the tokens that were ever in a top-K set. In binary mode
    every (position, id) pair counts 1.0 whatever the sign of d, since membership in the top-K set is
    what is counted (like the top_k_occurring ordering)."""

    def __init__(self, mode: str = "logit_diff_magnitude") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown NMF mode {mode!r}; expected one of {MODES}")
        self._mode = mode
        self._rows = 0
        # vocab id -> column (-1: not seen yet); grown on demand since the vocabulary size is not passed in
        self._column_of = np.full(0, -1, dtype=np.int32)
        self._vocab_of: list[np.ndarray] = []  # column -> vocab id, one chunk per call that added columns
        self._columns = 0
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, columns, values)

    @property
    def rows(self) -> int:
        return self._rows

    def add(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        """ids, values: [N, k] top-k positive token ids and their d values of N positions (any device);
        appends N rows. k may differ between calls."""
        ids_np, values_np = _to_numpy(ids, values)
        n, k = ids_np.shape
        columns = self._columns_for(ids_np.reshape(-1)).reshape(n, k)
        if self._mode == "binary_occurrence":
            values_np = np.ones_like(values_np)
        self._chunks.append(_kept_entries(columns, values_np, self._rows, self._columns))
        self._rows += n

    def matrix(self) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
        """(V [rows × columns] float32 CSR, column -> vocab id int64 array)."""
        if self._chunks:
            rows = np.concatenate([c[0] for c in self._chunks])
            columns = np.concatenate([c[1] for c in self._chunks])
            values = np.concatenate([c[2] for c in self._chunks])
        else:
            rows = columns = np.zeros(0, dtype=np.int32)
            values = np.zeros(0, dtype=np.float32)
        # chunks cover disjoint rows and were summed per chunk, so no duplicates remain to merge
        v = scipy.sparse.csr_matrix((values, (rows, columns)), shape=(self._rows, self._columns), dtype=np.float32)
        vocab = np.concatenate(self._vocab_of) if self._vocab_of else np.zeros(0, dtype=np.int64)
        return v, vocab.astype(np.int64)

    def _columns_for(self, flat_ids: np.ndarray) -> np.ndarray:
        """Columns of flat_ids (row-major over (row, rank)), numbering unseen ids by first appearance."""
        if flat_ids.size == 0:
            return flat_ids.astype(np.int32)
        self._grow_column_map(int(flat_ids.max()) + 1)
        unseen = flat_ids[self._column_of[flat_ids] < 0]
        if unseen.size:
            new_ids, first_at = np.unique(unseen, return_index=True)
            new_ids = new_ids[np.argsort(first_at)]  # np.unique sorts by id; restore appearance order
            self._column_of[new_ids] = np.arange(self._columns, self._columns + new_ids.size, dtype=np.int32)
            self._vocab_of.append(new_ids.astype(np.int64))
            self._columns += new_ids.size
        return self._column_of[flat_ids]

    def _grow_column_map(self, size: int) -> None:
        if size <= self._column_of.size:
            return
        grown = np.full(max(size, 2 * self._column_of.size), -1, dtype=np.int32)  # doubling: O(1) amortised
        grown[: self._column_of.size] = self._column_of
        self._column_of = grown


def _to_numpy(ids: torch.Tensor, values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The one place torch is touched: int64 ids and float32 values on the CPU (bf16 has no numpy dtype)."""
    if ids.ndim != 2 or ids.shape != values.shape:
        raise ValueError(f"ids and values must both be [N, k]; got {tuple(ids.shape)} and {tuple(values.shape)}")
    import torch

    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(f"token ids must be integers; got {ids.dtype}")
    ids_np = ids.detach().to("cpu", torch.int64).numpy()
    values_np = values.detach().to("cpu", torch.float32).numpy()
    if ids_np.size and ids_np.min() < 0:
        raise ValueError("token ids must be non-negative")
    if not np.isfinite(values_np).all():
        raise ValueError("d values must be finite (NaN/inf in the logit difference)")
    return ids_np, values_np


def _kept_entries(
    columns: np.ndarray, values: np.ndarray, row_offset: int, n_columns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One call's entries with duplicates summed and entries ≤ 0 dropped (relu), rows shifted to global."""
    n, k = columns.shape
    local_rows = np.repeat(np.arange(n, dtype=np.int32), k)
    # COO -> CSR sums duplicate (row, column) pairs, vectorised; summing before the relu is the reference order
    summed = (
        scipy.sparse.coo_matrix((values.reshape(-1), (local_rows, columns.reshape(-1))), shape=(n, n_columns))
        .tocsr()
        .tocoo()
    )
    keep = summed.data > 0
    return (
        (summed.row[keep] + row_offset).astype(np.int32),
        summed.col[keep].astype(np.int32),
        summed.data[keep].astype(np.float32),
    )


@dataclass(frozen=True)
class Topic:
    index: int
    token_ids: list[int]
    weights: list[float]
    mass: float
    prevalence: float
    concentration: float


def fit_topics(matrix: scipy.sparse.csr_matrix, column_ids: np.ndarray, options: NmfOptions) -> list[Topic]:
    """R topics of V ≈ H · Wᵀ (H [rows × R], W [tokens × R]), each with its token ordering and metrics."""
    _check_options(options)
    column_ids = np.asarray(column_ids, dtype=np.int64)
    v = _checked_matrix(matrix, column_ids, options.topics)
    h0, w0 = _random_init(v, options.topics, options.seed)
    if options.orthogonality > 0:
        h, w = _fit_orthogonal(v, h0, w0, options.orthogonality, options.max_iter)
    else:
        h, w = _fit_sklearn(v, h0, w0, options)
    mass, prevalence, concentration = _topic_metrics(h, w)
    topics = []
    for t in range(options.topics):
        ids, weights = _ordering(w[:, t], column_ids, options.top_n)
        topics.append(
            Topic(
                index=t,
                token_ids=ids,
                weights=weights,
                mass=float(mass[t]),
                prevalence=float(prevalence[t]),
                concentration=float(concentration[t]),
            )
        )
    return topics


def _check_options(options: NmfOptions) -> None:
    if options.beta != 2.0:
        raise ValueError(f"NMF beta={options.beta} is not supported; only beta=2 (Frobenius loss)")
    if options.topics < 1:
        raise ValueError(f"NMF needs at least one topic; got topics={options.topics}")
    if options.max_iter < 1 or options.top_n < 1:
        raise ValueError(f"NMF max_iter and top_n must be ≥ 1; got {options.max_iter} and {options.top_n}")
    if not np.isfinite(options.orthogonality) or options.orthogonality < 0:
        raise ValueError(f"NMF orthogonality must be a finite number ≥ 0; got {options.orthogonality}")


def _checked_matrix(matrix: scipy.sparse.spmatrix, column_ids: np.ndarray, topics: int) -> scipy.sparse.csr_matrix:
    v = scipy.sparse.csr_matrix(matrix, dtype=np.float32)
    rows, columns = v.shape
    if v.nnz == 0 or not np.any(v.data):
        raise ValueError(f"NMF matrix is empty ({rows} rows × {columns} tokens, no positive entries)")
    if rows < topics or columns < topics:
        raise ValueError(f"NMF matrix {rows} rows × {columns} tokens is too small for {topics} topics")
    if len(column_ids) != columns:
        raise ValueError(f"column_ids has {len(column_ids)} entries for a matrix with {columns} columns")
    if v.data.min() < 0 or not np.isfinite(v.data).all():
        raise ValueError("NMF matrix entries must be finite and non-negative")
    return v


def _random_init(v: scipy.sparse.csr_matrix, topics: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(H0 [rows × R], W0 [tokens × R]): |N(0, 1)| scaled so H0 · W0ᵀ has V's mean; sklearn's 'random'
    scheme, made here so both fits start from the same point."""
    rows, columns = v.shape
    scale = np.sqrt(v.sum(dtype=np.float64) / (rows * columns) / topics)
    rng = np.random.default_rng(seed)
    w0 = scale * np.abs(rng.standard_normal((columns, topics)))
    h0 = scale * np.abs(rng.standard_normal((rows, topics)))
    return h0, w0


def _fit_sklearn(
    v: scipy.sparse.csr_matrix, h0: np.ndarray, w0: np.ndarray, options: NmfOptions
) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's coordinate descent; sklearn writes X ≈ W_sk · H_sk, so H = W_sk and W = H_skᵀ."""
    from sklearn.decomposition import NMF  # loaded only when topics are fitted
    from sklearn.exceptions import ConvergenceWarning

    model = NMF(
        n_components=options.topics,
        init="custom",
        beta_loss="frobenius",
        solver="cd",
        max_iter=options.max_iter,
        random_state=options.seed,
    )
    with warnings.catch_warnings():
        # a fixed iteration budget is the contract (as in the reference); stopping short of sklearn's
        # tolerance is expected on large matrices and the topics are still usable, so the warning is noise
        warnings.simplefilter("ignore", ConvergenceWarning)
        h = model.fit_transform(v, W=h0.astype(v.dtype), H=np.ascontiguousarray(w0.T, dtype=v.dtype))
    return h.astype(np.float64), model.components_.T.astype(np.float64)


def _fit_orthogonal(
    v: scipy.sparse.csr_matrix, h: np.ndarray, w: np.ndarray, weight: float, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicative updates for

        min over H, W ≥ 0 of  ‖V − H Wᵀ‖²_F / s  +  weight · Σ_{i≠j} W_iᵀ W_j,   s = ‖V‖²_F,

    with W's columns kept at unit L2 norm. Each step (⊙ ⊘ elementwise, J the all-ones R × R matrix):

        H ← H ⊙ (V W) ⊘ (H WᵀW + ε)
        W ← W ⊙ (Vᵀ H) ⊘ (W HᵀH + r · s · weight · W (J − I) + ε)
        W_t ← W_t / ‖W_t‖,  H_t ← H_t · ‖W_t‖        (H Wᵀ unchanged)

    r (_penalty_ramp) is 0 for the first half of the steps, then rises linearly to 1 over a quarter.

    The W step splits the gradient into its positive and negative parts, as plain MU does; the penalty's
    gradient W (J − I) (column t: the sum of the other topics' columns) is non-negative, so it joins the
    denominator and shrinks a token's weight in one topic in proportion to its weight in the others.
    Why the normalisation: otherwise the penalty is minimised by shrinking W and growing H, which leaves
    the fit unchanged and penalises scale rather than overlap. Why divide by s: so that `weight` means
    the same thing whatever the matrix's size and the magnitude of d. Why the ramp: a full penalty from
    the random start locks each token into whichever topic it happens to start heavier in, and MU cannot
    revive a weight once it is near 0; on planted groups that merged two groups into one topic for some
    seeds, while plain steps first and then a gradual penalty separated them for every seed tried.
    """
    vt = v.T  # a CSC view: its product scatters into the small [tokens × R] output, ~10x faster than a CSR copy
    s = float(np.dot(v.data, v.data))
    h, w = _normalised(h, w)
    for step in range(steps):
        h *= (v @ w) / (h @ (w.T @ w) + _EPS)
        others = w.sum(axis=1, keepdims=True) - w  # W (J − I)
        penalty = s * weight * _penalty_ramp(step, steps)
        w *= (vt @ h) / (w @ (h.T @ h) + penalty * others + _EPS)
        h, w = _normalised(h, w)
    return h, w


def _penalty_ramp(step: int, steps: int) -> float:
    start = steps // 2
    return float(np.clip((step - start + 1) / max(1, steps // 4), 0.0, 1.0))


def _normalised(h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    norms = np.linalg.norm(w, axis=0)
    norms[norms == 0] = 1.0  # a dead topic stays dead; nothing to move into H
    return h * norms, w / norms


def _topic_metrics(h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mass, prevalence, concentration) per topic; all three are invariant to moving scale between H and W."""
    token_mass = w.sum(axis=0)
    mass = h.sum(axis=0) * token_mass
    # argmax over an all-zero row is topic 0 (as in the reference): positions with no kept entry count there
    dominant = np.argmax(h * token_mass, axis=1)
    prevalence = np.bincount(dominant, minlength=w.shape[1]) / h.shape[0]
    concentration = np.array([_concentration(w[:, t]) for t in range(w.shape[1])])
    return mass, prevalence, concentration


def _concentration(weights: np.ndarray) -> float:
    """1 − normalised entropy: 1 when the topic is one token, 0 when it is spread evenly (or empty)."""
    total = weights.sum()
    if weights.size <= 1 or total <= 0:
        return 0.0
    p = weights[weights > 0] / total
    return float(1.0 - (-np.sum(p * np.log(p))) / np.log(weights.size))


def _ordering(weights: np.ndarray, column_ids: np.ndarray, top_n: int) -> tuple[list[int], list[float]]:
    """Tokens by weight desc, vocab id asc (ties are common at 0 and in binary mode, so the order is total)."""
    order = np.lexsort((column_ids, -weights))
    order = order[weights[order] >= MIN_WEIGHT][:top_n]
    return [int(i) for i in column_ids[order]], [float(x) for x in weights[order]]
