"""The two rules on a cell's sizes: the plan checks them before any model loads (with the configured
vocabulary) and the engine again before its pass (with the loaded model's), by these same functions.
No torch here: the command line imports it to check a grid."""

from __future__ import annotations

from logitdiff.core.errors import UserError

ADL_NORM_FROM = 5  # SPEC §4: ADL's norms use positions ≥ 5, so an ADL cell needs T > 5


def check_top_k(top_k: int, vocab: int, model: str, where: str = "") -> None:
    """K ≤ the vocabulary: a top-K of more tokens than there are is no ranking."""
    if top_k > vocab:
        raise UserError(f"K={top_k} exceeds the vocabulary of {model} ({vocab} tokens); use a smaller --top-k{where}")


def check_adl_positions(positions: int, where: str = "") -> None:
    """T > ADL_NORM_FROM: the norms δ is scaled by need positions from ADL_NORM_FROM on."""
    if positions <= ADL_NORM_FROM:
        raise UserError(f"ADL needs more than {ADL_NORM_FROM} positions, T > {ADL_NORM_FROM} (its norms use positions ≥ {ADL_NORM_FROM}); "
                        f"got T={positions}{where}")
