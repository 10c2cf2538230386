"""NMF ordering (logitdiff.methods.nmf): the collected matrix and topics recovered from planted groups."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from logitdiff.methods import nmf
from logitdiff.methods.nmf import NmfOptions, Topic, TopKMatrix, fit_topics

GROUP_A = set(range(10, 20))
GROUP_B = set(range(30, 40))
SHARED = [20, 21, 22, 23, 24]
NOISE = [50, 51]


def planted_topk(n_a: int, n_b: int, seed: int = 0, shared: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k sets of n_a kind-A then n_b kind-B positions: 4 tokens of the position's group (3 plus one
    strong SHARED token when shared) with d in [1, 3], and one NOISE token shared by both kinds with d = 0.1."""
    rng = np.random.default_rng(seed)
    ids: list[list[int]] = []
    values: list[list[float]] = []
    for group in [sorted(GROUP_A)] * n_a + [sorted(GROUP_B)] * n_b:
        row = list(rng.choice(group, 3 if shared else 4, replace=False))
        if shared:
            row.append(int(rng.choice(SHARED)))
        values.append([*rng.uniform(1.0, 3.0, len(row)), 0.1])
        ids.append([*row, int(rng.choice(NOISE))])
    return torch.tensor(ids, dtype=torch.int64), torch.tensor(values, dtype=torch.float32)


def collect(ids: torch.Tensor, values: torch.Tensor, mode: str = "logit_diff_magnitude", chunk: int = 37) -> TopKMatrix:
    """Added in chunks, as a pass over batches would."""
    m = TopKMatrix(mode)
    for start in range(0, len(ids), chunk):
        m.add(ids[start : start + chunk], values[start : start + chunk])
    return m


def fit(m: TopKMatrix, **options: object) -> list[Topic]:
    v, column_ids = m.matrix()
    return fit_topics(v, column_ids, NmfOptions(**options))  # type: ignore[arg-type]


def top_sets(topics: list[Topic], n: int) -> list[set[int]]:
    return [set(t.token_ids[:n]) for t in topics]


def assert_recovers(topics: list[Topic], a: set[int], b: set[int]) -> None:
    assert sorted(top_sets(topics, len(a)), key=min) == sorted([a, b], key=min)


def weighted_overlap(topics: list[Topic]) -> float:
    """Σ_token min(p_0, p_1) of the two topics' weights normalised to sum 1: 0 disjoint, 1 identical."""
    p = [dict(zip(t.token_ids, np.asarray(t.weights) / sum(t.weights), strict=True)) for t in topics]
    return sum(min(p[0].get(i, 0.0), p[1].get(i, 0.0)) for i in set(p[0]) | set(p[1]))


def core_sets(topics: list[Topic], fraction: float = 0.1) -> list[set[int]]:
    """The tokens carrying at least `fraction` of the topic's largest weight."""
    return [{i for i, w in zip(t.token_ids, t.weights, strict=True) if w >= fraction * t.weights[0]} for t in topics]


def test_planted_groups_are_recovered_with_their_prevalence() -> None:
    topics = fit(collect(*planted_topk(60, 40)), topics=2)
    assert_recovers(topics, GROUP_A, GROUP_B)
    by_group = {min(t.token_ids[:10]): t for t in topics}
    assert by_group[10].prevalence == pytest.approx(0.6, abs=0.05)
    assert by_group[30].prevalence == pytest.approx(0.4, abs=0.05)
    assert [t.index for t in topics] == [0, 1]
    for t in topics:
        assert t.weights == sorted(t.weights, reverse=True)
        assert min(t.weights) >= 1e-6 and len(t.token_ids) <= 200


def test_realistic_logit_difference_is_split_into_the_promoted_groups() -> None:
    torch.manual_seed(0)
    vocab, hidden, n = 64, 16, 400
    perm = torch.randperm(vocab)
    group_a, group_b = perm[:6], perm[6:12]
    w_base = torch.randn(vocab, hidden)
    u = torch.nn.functional.normalize(torch.randn(hidden), dim=0)
    w_ft = w_base + 0.05 * torch.randn(vocab, hidden)  # every token drifts a little in finetuning
    w_ft[group_a] += 5 * u
    w_ft[group_b] -= 5 * u
    h = torch.randn(n, hidden)
    d = h @ w_ft.T - h @ w_base.T  # as the pass computes it: logits_ft − logits_base
    values, ids = torch.topk(d, k=8)
    a, b = set(group_a.tolist()), set(group_b.tolist())

    topics = fit(collect(ids, values), topics=2)

    assert_recovers(topics, a, b)
    raises_a = float((h @ u > 0).float().mean())
    by_group = {frozenset(t.token_ids[:6]): t for t in topics}
    assert by_group[frozenset(a)].prevalence == pytest.approx(raises_a, abs=0.05)


def test_matrix_entries_modes_relu_and_first_appearance_columns() -> None:
    ids = torch.tensor([[5, 2, 9], [2, 7, 5]])
    values = torch.tensor([[1.0, -0.5, 2.0], [0.0, 3.0, 1.5]])
    later_ids = torch.tensor([[300, 4, 300, 8, 8]])  # a wider k, an id past the map's size, duplicates
    later_values = torch.tensor([[1.0, 2.0, 0.5, 1.0, -2.0]])

    magnitude = TopKMatrix()
    magnitude.add(ids, values)
    magnitude.add(later_ids, later_values)
    v, column_ids = magnitude.matrix()
    assert magnitude.rows == 3 and v.shape == (3, 7)
    assert v.dtype == np.float32 and column_ids.dtype == np.int64
    assert column_ids.tolist() == [5, 2, 9, 7, 300, 4, 8]  # row-major first appearance, not sorted
    expected = [
        [1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0],  # -0.5 dropped
        [1.5, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0],  # 0.0 dropped
        [0.0, 0.0, 0.0, 0.0, 1.5, 2.0, 0.0],  # 300: 1.0 + 0.5; 8: 1.0 − 2.0 ≤ 0 dropped, column kept
    ]
    np.testing.assert_array_equal(v.toarray(), np.array(expected, dtype=np.float32))
    assert v.nnz == 6  # dropped entries are not stored as explicit zeros

    binary = TopKMatrix("binary_occurrence")
    binary.add(ids, values)
    binary.add(later_ids, later_values)
    vb, binary_ids = binary.matrix()
    np.testing.assert_array_equal(binary_ids, column_ids)
    np.testing.assert_array_equal(
        vb.toarray(),
        [[1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0], [0, 0, 0, 0, 2, 1, 2]],  # duplicates summed
    )

    empty = TopKMatrix()
    v0, ids0 = empty.matrix()
    assert v0.shape == (0, 0) and ids0.shape == (0,) and empty.rows == 0


def test_bf16_values_on_any_dtype_are_accepted() -> None:
    m = TopKMatrix()
    m.add(torch.tensor([[3, 1]], dtype=torch.int32), torch.tensor([[2.0, 0.5]], dtype=torch.bfloat16))
    v, column_ids = m.matrix()
    assert column_ids.tolist() == [3, 1]
    np.testing.assert_array_equal(v.toarray(), [[2.0, 0.5]])


def test_metrics_have_known_values_on_disjoint_blocks() -> None:
    # two positions, each with a token of its own: a perfect 2-topic fit, so mass = each block's sum
    m = TopKMatrix()
    m.add(torch.tensor([[7], [9]]), torch.tensor([[2.0], [3.0]]))
    topics = sorted(fit(m, topics=2), key=lambda t: t.token_ids)
    assert [t.token_ids for t in topics] == [[7], [9]]
    assert [t.mass for t in topics] == pytest.approx([2.0, 3.0], rel=1e-3)
    assert [t.prevalence for t in topics] == [0.5, 0.5]
    assert [t.concentration for t in topics] == pytest.approx([1.0, 1.0])


def test_same_seed_same_topics_and_orthogonality_separates_shared_tokens() -> None:
    m = collect(*planted_topk(60, 40))
    assert fit(m, topics=2, seed=3) == fit(m, topics=2, seed=3)
    ortho = fit(m, topics=2, seed=3, orthogonality=1.0)
    assert ortho == fit(m, topics=2, seed=3, orthogonality=1.0)
    assert_recovers(ortho, GROUP_A, GROUP_B)

    overlapping = collect(*planted_topk(60, 40, shared=True))
    plain = fit(overlapping, topics=2)
    ortho = fit(overlapping, topics=2, orthogonality=1.0)
    plain_shared = set.intersection(*core_sets(plain))
    assert plain_shared  # the case does have overlap to remove
    assert len(set.intersection(*core_sets(ortho))) < len(plain_shared)
    assert weighted_overlap(ortho) < weighted_overlap(plain)
    # each group stays in one topic; the shared tokens only move between them
    grouped = [s & (GROUP_A | GROUP_B) for s in top_sets(ortho, 15)]
    assert sorted(grouped, key=min) == [GROUP_A, GROUP_B]


def test_hitting_the_iteration_budget_warns_nothing() -> None:
    m = collect(*planted_topk(60, 40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's ConvergenceWarning would fire at 2 iterations
        assert len(fit(m, topics=2, max_iter=2)) == 2
        assert len(fit(m, topics=2, max_iter=2, orthogonality=1.0)) == 2


def test_top_n_and_dead_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    m = collect(*planted_topk(60, 40))
    assert all(len(t.token_ids) == 3 for t in fit(m, topics=2, top_n=3))

    # a fit that leaves topic 1 unused (W column all 0) must still give a topic, with no tokens
    def dead_second_topic(
        v: object, h0: np.ndarray, w0: np.ndarray, options: NmfOptions
    ) -> tuple[np.ndarray, np.ndarray]:
        h, w = h0.copy(), w0.copy()
        w[:, 1] = 0.0
        return h, w

    monkeypatch.setattr(nmf, "_fit_sklearn", dead_second_topic)
    alive, dead = fit(m, topics=2)
    assert alive.token_ids and dead.token_ids == [] and dead.weights == []
    assert dead.mass == 0.0 and dead.prevalence == 0.0 and dead.concentration == 0.0


@pytest.mark.parametrize(
    ("ids", "values", "options", "message"),
    [
        (None, None, NmfOptions(topics=1), "empty"),
        ([[1, 2]], [[-1.0, 0.0]], NmfOptions(topics=1), "empty"),
        ([[1, 2], [2, 1], [1, 1]], [[1.0, 1.0]] * 3, NmfOptions(topics=3), "too small"),
        ([[1, 2, 3]], [[1.0, 1.0, 1.0]], NmfOptions(topics=2), "too small"),
        ([[1, 2], [2, 1]], [[1.0, 1.0]] * 2, NmfOptions(topics=2, beta=1.0), "beta"),
        ([[1, 2], [2, 1]], [[1.0, 1.0]] * 2, NmfOptions(topics=0), "topic"),
        ([[1, 2], [2, 1]], [[1.0, 1.0]] * 2, NmfOptions(topics=2, orthogonality=-1.0), "orthogonality"),
    ],
)
def test_fit_rejects_what_it_cannot_factorise(
    ids: list[list[int]] | None, values: list[list[float]] | None, options: NmfOptions, message: str
) -> None:
    m = TopKMatrix()
    if ids is not None and values is not None:
        m.add(torch.tensor(ids), torch.tensor(values))
    v, column_ids = m.matrix()
    with pytest.raises(ValueError, match=message):
        fit_topics(v, column_ids, options)


def test_collector_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="mode"):
        TopKMatrix("counts")
    m = TopKMatrix()
    with pytest.raises(ValueError, match=r"\[N, k\]"):
        m.add(torch.tensor([1, 2]), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="integers"):
        m.add(torch.tensor([[1.0]]), torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="finite"):
        m.add(torch.tensor([[1]]), torch.tensor([[float("nan")]]))
    assert m.rows == 0  # a rejected call adds nothing


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        NmfOptions().topics = 4  # type: ignore[misc]
