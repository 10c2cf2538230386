"""The ADL agent's drill-down tool: the stored logit lens of δ at other positions and layers (free)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from logitdiff.agent.tools import ToolArgumentError
from logitdiff.methods.adl import LENS_TOP_N, DrillLayer, DrillLens

DEFAULT_K = 20


def stored_layers(drill: DrillLens) -> str:
    """e.g. "3 (relative 0.25), 7 (relative 0.5)"."""
    return ", ".join(f"{d.layer} (relative {'/'.join(f'{r:g}' for r in d.relative_layers)})" for d in drill.layers)


@dataclass(frozen=True)
class LensDetails:
    """Reads only the stored drill-down lens; `layer` is an absolute block (int) or a relative depth (float)."""

    drill: DrillLens
    default_layer: int
    dataset: str
    name: str = "get_logitlens_details"

    async def __call__(self, args: dict[str, Any]) -> str:
        unknown = set(args) - {"dataset", "layer", "positions", "k"}
        if unknown:
            raise ToolArgumentError(f'unknown argument(s) {sorted(unknown)}; use {{"positions": [...], "layer": ..., "k": ...}}')
        if args.get("dataset", self.dataset) != self.dataset:
            raise ToolArgumentError(f'"dataset" must be "{self.dataset}" (the only dataset analysed)')
        entry = self._layer(args.get("layer", self.default_layer))
        positions = self._positions(args.get("positions"), entry)
        k = args.get("k", DEFAULT_K)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= LENS_TOP_N:
            raise ToolArgumentError(f'"k" must be an integer from 1 to {LENS_TOP_N}')
        per_position = {}
        for p in positions:
            top = entry.top[entry.positions.index(p)]
            per_position[str(p)] = {"tokens": top.tokens[:k], "probs": [f"{v:.3e}" for v in top.probs[:k]]}
        return json.dumps({"dataset": self.dataset, "layer": entry.layer,
                           "per_position": per_position, "k_limit": LENS_TOP_N}, ensure_ascii=False)

    def _layer(self, value: Any) -> DrillLayer:
        stored = stored_layers(self.drill)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ToolArgumentError(f'"layer" must be an absolute layer number or a relative depth; stored layers: {stored}')
        for d in self.drill.layers:
            if (isinstance(value, int) and value == d.layer) or (isinstance(value, float) and value in d.relative_layers):
                return d
        raise ToolArgumentError(f"layer {value} is not stored; stored layers: {stored}")

    @staticmethod
    def _positions(value: Any, entry: DrillLayer) -> list[int]:
        first, last = entry.positions[0], entry.positions[-1]
        if (not isinstance(value, list) or not value
                or not all(isinstance(p, int) and not isinstance(p, bool) and first <= p <= last for p in value)):
            raise ToolArgumentError(f'"positions" must be a non-empty list of positions from {first} to {last}')
        return list(dict.fromkeys(value))
