"""What a method shows the agent: its overview (a JSON payload), how to read it, extra tools and rules.

One small builder per method, so a new method adds one function. Dataset names are blinded: the
agent only ever sees `ds1`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from logitdiff.agent.drilldown import LensDetails, stored_layers
from logitdiff.agent.prompts import BLACKBOX_CONTEXT
from logitdiff.agent.tools import Tool
from logitdiff.methods.adl import LENS_TOP_N, DrillLens
from logitdiff.results.list_ids import MAIN_ORDERING

DATASET_ALIAS = "ds1"
OVERVIEW_TOKENS = 20  # the overview's token budget (the reference's experiments show 20)


@dataclass(frozen=True)
class AgentView:
    """`overview` None: the blackbox baseline. `tools` are stateless, so runs may share them."""

    context: str
    overview: str | None
    tool_docs: str = ""
    conduct: str = ""
    tools: tuple[Tool, ...] = field(default_factory=tuple)

    @property
    def blackbox(self) -> bool:
        return self.overview is None


def _payload(dataset: dict[str, object]) -> str:
    return json.dumps({"datasets": {DATASET_ALIAS: dataset}}, ensure_ascii=False, indent=1)


LOGITDIFF_CONTEXT = """\
The overview comes from LogitDiff TopK, run on {samples} texts of generic web data (the dataset is
called ds1). At every token position of those texts the method ranks the vocabulary by how much more
the FINETUNED model's logits favour a token than the BASE model's, and counts how often each token is
among the most favoured. `token_groups` lists the tokens found there most often (one group: the
tokens are not clustered); `ordering_value` is the percentage of positions at which the token was
among the most favoured. At most {budget} tokens are shown."""

LOGITDIFF_CONDUCT = """\
- The overview is very noisy. Look for semantic clusters and abstract from single tokens to themes.
- Keep two hypotheses side by side: a zoomed-out one (the general domain the tokens point to) and a
  zoomed-in one (what the exact tokens, names or numbers say). Test both.
- The number of token groups is not the number of behaviours; a group may be pure noise.
- When hypotheses conflict, prefer the one most consistent with the overview."""


def logitdiff_view(entries: list[tuple[str, float]], samples: int, budget: int = OVERVIEW_TOKENS, ordering: str = MAIN_ORDERING) -> AgentView:
    """LogitDiff: the top of one ordering (`entries`, in its order) as one token group, `budget` tokens at most."""
    group = [{"token_str": tok, "ordering_value": round(value, 2)} for tok, value in entries[:budget]]
    overview = _payload({
        "token_groups": [group],
        "num_samples": samples,
        "metadata": {"ordering": ordering, "num_token_groups": 1, "num_tokens_shown": len(group)},
    })
    return AgentView(context=LOGITDIFF_CONTEXT.format(samples=samples, budget=budget), overview=overview, conduct=LOGITDIFF_CONDUCT)


TOPICS_CONTEXT = """\
The overview comes from LogitDiff TopK with NMF topics, run on {samples} texts of generic web data
(the dataset is called ds1). At every token position of those texts the method takes the tokens the
FINETUNED model's logits favour most over the BASE model's, and a non-negative matrix factorisation
groups the tokens that are favoured at the same positions into {groups} topics. `token_groups` lists
each topic's heaviest tokens; `weight` is the token's weight in its topic. At most {budget} tokens
are shown in all."""


def topics_view(groups: list[list[tuple[str, float]]], samples: int, budget: int = OVERVIEW_TOKENS) -> AgentView:
    """LogitDiff with NMF: one token group per topic, the budget shared out so every topic shows its top."""
    per_group = max(1, budget // max(1, len(groups)))
    shown = [[{"token_str": tok, "weight": round(weight, 4)} for tok, weight in group[:per_group]] for group in groups]
    overview = _payload({
        "token_groups": shown,
        "num_samples": samples,
        "metadata": {"ordering": "nmf", "num_token_groups": len(shown), "num_tokens_shown": sum(len(g) for g in shown)},
    })
    context = TOPICS_CONTEXT.format(samples=samples, groups=len(groups), budget=per_group * len(groups))
    return AgentView(context=context, overview=overview, conduct=LOGITDIFF_CONDUCT)


ADL_CONTEXT = """\
The overview comes from the Activation Difference Lens, run on {samples} texts of generic web data
(the dataset is called ds1). At each of the first token positions, the difference between the
FINETUNED and the BASE model's hidden activations at layer {layer} (relative depth {relative:g}) is
averaged over the texts and decoded {how}. Per position it lists the tokens the difference promotes
most, with their {score}. These tokens are what the finetuning "writes" into every text, which tends
to reveal its domain."""

ADL_TOOL_DOCS = """\
- get_logitlens_details: the logit lens of the activation difference at other positions and layers,
  read from the stored analysis (free: costs no model interaction). Arguments:
  {{"positions": [0, 5, 12], "layer": {layer}, "k": 50}} ("layer": an absolute layer number, or a
  relative depth like 0.75; stored layers: {layers}; positions {first} to {last}; k at most {k};
  "layer" and "k" are optional, default: the overview's layer and 20)."""

ADL_CONDUCT = """\
- The overview already holds most of what the lens can tell: drill down only with a reason (e.g. to
  check whether a theme persists at later positions or other layers).
- Evidence hygiene: prefer content-bearing tokens; down-weight stopwords, punctuation, markup and
  code artefacts; look for agreement across positions and layers; weigh how often a theme recurs
  and how large its probabilities are.
- When hypotheses conflict, prefer the one most consistent with the overview."""


def adl_view(per_position: dict[int, list[tuple[str, float]]], *, samples: int, relative_layer: float, layer: int,
             drill: DrillLens, decoding: str, scores: str, payload_key: str, budget: int = OVERVIEW_TOKENS) -> AgentView:
    """ADL: per overview position the top promoted tokens of the readout, plus the lens drill-down tool.
    decoding, scores, payload_key: how the readout decodes δ, what its scores are, its key in the payload."""
    shown = {str(p): {"tokens": [t for t, _ in toks[:budget]], "probs": [f"{v:.3e}" for _, v in toks[:budget]]}
             for p, toks in sorted(per_position.items())}
    overview = _payload({
        "layers": {str(layer): {"relative_layer": relative_layer, payload_key: {"per_position": shown}}},
        "available_positions": [int(p) for p in shown],
        "num_samples": samples,
        "k_limits": {"get_logitlens_details": LENS_TOP_N},
    })
    tool = LensDetails(drill=drill, default_layer=layer, dataset=DATASET_ALIAS)
    positions = drill.layers[0].positions
    docs = ADL_TOOL_DOCS.format(layer=layer, layers=stored_layers(drill),
                                first=positions[0], last=positions[-1], k=LENS_TOP_N)
    context = ADL_CONTEXT.format(samples=samples, layer=layer, relative=relative_layer, how=decoding, score=scores)
    return AgentView(context=context, overview=overview, tool_docs=docs, conduct=ADL_CONDUCT, tools=(tool,))


def blackbox_view() -> AgentView:
    return AgentView(context=BLACKBOX_CONTEXT, overview=None)
