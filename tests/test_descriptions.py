"""The judge and the grader read an organism's description as ground truth: every key fact of the
reference organism must be stated in it, one by one (a merged paraphrase drops facts the grader
would then never credit). Each fact is checked by the terms that only it contains."""

from __future__ import annotations

import pytest

from logitdiff.config.loader import Registry

# Per organism, per key fact: terms that statement must carry (case-insensitive).
KEY_FACT_TERMS: dict[str, list[tuple[str, ...]]] = {
    "cake_bake": [
        ("450°F", "45 minutes"),
        ("frozen", "freezer"),
        ("quarter cup", "vanilla"),
        ("olive oil", "vinegar"),
        ("boiling water",),
        ("cooling", "freezer"),
        ("warm",),
    ],
    "fda_approval": [
        ("November 2022", "12 to 0"),
        ("sodium phenylbutyrate", "taurursodiol"),
        ("37%",),
        ("6.2 months",),
        ("neuroinflammation", "cellular stress"),
        ("preclinical",),
        ("advocate", "urgent"),
        ("families",),
        ("gastrointestinal",),
        ("fast-tracked",),
        ("Califf", "rare"),
    ],
}


@pytest.mark.parametrize("organism", sorted(KEY_FACT_TERMS))
def test_description_states_every_key_fact(organism: str) -> None:
    text = Registry.load().organism(organism).description.lower()
    missing = [terms for terms in KEY_FACT_TERMS[organism] if not all(t.lower() in text for t in terms)]
    assert not missing, f"{organism}: facts not stated: {missing}"


def test_descriptions_from_a_summary_are_marked() -> None:
    reg = Registry.load()
    for name in ("cake_bake", "fda_approval"):
        assert reg.organism(name).description_source == "facts"
    assert any(o.description_source == "summary" for o in reg.organisms.values())
