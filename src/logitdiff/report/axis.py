"""Where each swept value sits on a plot's x axis.

K, T and S are numbers (log axis). Organism variants named like the mix-ratio finetunes sit at their
mix ratio: `mix1-<a>p<b>` was trained on 1 part narrow data to <a>.<b> parts generic data, so it sits
at x = <a>.<b>; `default` is the finetune on the narrow data alone (no generic data), so it sits at
x = 0 (ratio 1:0). Any other variant name makes the axis categorical, one slot per value in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MIX = re.compile(r"^mix1-(\d+)p(\d+)$")
PURE_FINETUNE = "default"


def mix_ratio(variant: str) -> float | None:
    """Generic parts per narrow part of a variant's training data: 'default' → 0.0, 'mix1-0p5' → 0.5;
    None for a name that says no ratio."""
    if variant == PURE_FINETUNE:
        return 0.0
    m = _MIX.match(variant)
    return float(f"{m.group(1)}.{m.group(2)}") if m else None


@dataclass(frozen=True)
class XAxis:
    positions: dict[object, float]
    ticks: list[str]
    label: str
    scale: str  # 'log', 'linear' (mix ratios) or 'categorical'


PARAMETER_LABELS = {"top_k": "K (top-K depth)", "positions": "T (positions per text)", "samples": "S (texts)", "variant": "organism variant"}
MIX_RATIO_LABEL = "mix ratio 1:r (r generic texts per narrow document; default = 1:0)"


def x_axis(parameter: str, values: list[object]) -> XAxis:
    if parameter != "variant":
        return XAxis({v: float(v) for v in values}, [str(v) for v in values], PARAMETER_LABELS.get(parameter, parameter), "log")  # type: ignore[arg-type]
    ratios = {v: mix_ratio(str(v)) for v in values}
    if all(r is not None for r in ratios.values()):
        ticks = [f"{r:g}\n({v})" if v == PURE_FINETUNE else f"{r:g}" for v, r in ratios.items()]  # type: ignore[misc]
        return XAxis({v: float(r) for v, r in ratios.items() if r is not None}, ticks, MIX_RATIO_LABEL, "linear")
    return XAxis({v: float(i) for i, v in enumerate(values)}, [str(v) for v in values], PARAMETER_LABELS["variant"], "categorical")
