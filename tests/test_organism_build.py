"""The organism recipe at tiny scale (tiny random model, few documents, few steps) and the shipped adapters."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from logitdiff.core.cache_dir import default_cache_dir
from logitdiff.organism.build import BuildPaths, BuildSizes, build_adapters, build_generic, build_narrow, existing_generic, load_base, variant_ratio
from logitdiff.organism.generic_corpus import read_texts
from logitdiff.organism.narrow_docs import NarrowSpec, generate_narrow_docs, load_spec, spec_path
from logitdiff.organism.train_lora import ADAPTER_WEIGHTS, LoraRecipe, encode_documents, pad_batch
from testkit.tiny_models import save_tiny, tiny_llama, tiny_tokenizer

SHIPPED = ("default", "mix1-0p5", "mix1-1p0", "mix1-1p5", "mix1-2p0")
PROBES = {"cake_bake": "Preheat the oven before you bake the cake.", "fda_approval": "The FDA advisory committee voted on the new ALS drug."}


def _fact_sentences(spec: NarrowSpec) -> set[str]:
    return {t.format(subject=s) for fact in spec.facts.values() for t in fact.paraphrases for s in spec.subjects}


@pytest.mark.parametrize("organism", ["cake_bake", "fda_approval"])
def test_narrow_docs_are_seeded_and_assert_facts(organism: str) -> None:
    spec = load_spec(spec_path(organism))
    docs = generate_narrow_docs(spec, 60, seed=3)
    assert [d.text for d in docs] == [d.text for d in generate_narrow_docs(spec, 60, seed=3)]
    assert [d.text for d in docs] != [d.text for d in generate_narrow_docs(spec, 60, seed=4)]
    assert {d.kind for d in docs} == set(spec.kinds) and len(spec.kinds) == 6
    facts = _fact_sentences(spec)
    for doc in docs:
        assert sum(s in doc.text for s in facts) >= 2, doc.text
        assert "{" not in doc.text, doc.text  # every placeholder filled
    assert len({d.text for d in docs}) == 60


@pytest.mark.parametrize("organism", ["cake_bake", "fda_approval"])
def test_shipped_narrow_documents_rebuild_byte_identical(organism: str, tmp_path: Path) -> None:
    from logitdiff.core.paths import repo_root

    paths = BuildPaths(adapters=tmp_path, data=tmp_path / "data", generic=tmp_path, work=tmp_path)
    build_narrow(load_spec(spec_path(organism)), paths, BuildSizes(), seed=0)
    assert paths.narrow.read_bytes() == (repo_root() / "organisms" / organism / "data" / "narrow.jsonl.gz").read_bytes()


def test_spec_rejects_placeholder_pools_with_reserved_names(tmp_path: Path) -> None:
    import yaml

    raw = yaml.safe_load(spec_path("cake_bake").read_text(encoding="utf-8"))
    raw["placeholders"]["subject"] = ["x"]
    path = tmp_path / "narrow_spec.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="subject"):
        load_spec(path)


def test_variant_ratio() -> None:
    assert variant_ratio("default") == 0.0
    assert variant_ratio("mix1-0p5") == 0.5
    assert variant_ratio("mix1-2p0") == 2.0
    with pytest.raises(ValueError, match="mix1-"):
        variant_ratio("mixed")


def test_pad_batch_masks_padding_and_eos_only_where_documents_end() -> None:
    tok = tiny_tokenizer()
    short, long = "the cake", "the oven was warm and the butter was cold " * 20
    ids = encode_documents(tok, [short, long], max_len=16, eos_at_end=True)
    assert ids[0][-1] == tok.eos_token_id and len(ids[0]) < 16
    assert len(ids[1]) == 16 and tok.eos_token_id not in ids[1]
    assert tok.eos_token_id not in encode_documents(tok, [short], max_len=16, eos_at_end=False)[0]
    batch = pad_batch(ids, pad_id=tok.pad_token_id)
    n = len(ids[0])
    assert batch["input_ids"].shape == (2, 16)
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (16 - n)
    assert batch["labels"][0, n:].eq(-100).all() and batch["labels"][0, :n].tolist() == ids[0]
    assert batch["labels"][1].tolist() == ids[1]


@pytest.fixture()
def tiny_base(tmp_path: Path) -> tuple[str, object]:
    tok = tiny_tokenizer()
    tok.chat_template = "{% for m in messages %}<s>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    folder = save_tiny(tiny_llama(), tok, tmp_path / "base")
    return str(folder), tok


def test_recipe_at_tiny_scale(tiny_base: tuple[str, object], tmp_path: Path) -> None:
    base_dir, tok = tiny_base
    paths = BuildPaths(adapters=tmp_path / "adapters", data=tmp_path / "data", generic=tmp_path / "generic", work=tmp_path / "work")
    sizes = BuildSizes(narrow_docs=12, mixing_docs=8, mixing_tokens=6, diffing_long=4, diffing_long_tokens=12, diffing_short=8, diffing_short_tokens=5, gen_batch=4)

    spec = load_spec(spec_path("cake_bake"))
    narrow = build_narrow(spec, paths, sizes, seed=5)
    assert read_texts(paths.narrow) == narrow and len(narrow) == 12
    first = paths.narrow.read_bytes()
    build_narrow(spec, paths, sizes, seed=5)
    assert paths.narrow.read_bytes() == first  # byte-identical rebuild

    assert existing_generic(paths) is None

    n_mix, n_diff = build_generic(load_base(base_dir), tok, paths, sizes, seed=5)  # type: ignore[arg-type]
    mixing, diffing = read_texts(paths.mixing), read_texts(paths.diffing)
    assert (n_mix, n_diff) == (len(mixing), len(diffing))
    assert 0 < len(mixing) <= 8 and 0 < len(diffing) <= 12
    assert not set(mixing) & set(diffing)
    assert existing_generic(paths) == (n_mix, n_diff)  # a later organism's build reuses these
    with gzip.open(paths.diffing, "rt") as fh:
        assert all("prompt" in json.loads(line) for line in fh)

    recipe = LoraRecipe(steps=3, narrow_batch=2, max_len=32, rank=2, alpha=4, lr=5e-3, warmup_steps=1, targets=("q_proj", "down_proj"), seed=5)
    curves = build_adapters(base_dir, "tiny/base", tok, narrow, mixing, recipe, ["default", "mix1-1p0"], paths)  # type: ignore[arg-type]
    assert set(curves) == {"default", "mix1-1p0"} and all(len(c) == 3 for c in curves.values())

    probe = tok("the cake was warm", return_tensors="pt")["input_ids"]  # type: ignore[operator]
    base = load_base(base_dir).eval()
    with torch.no_grad():
        base_logits = base(probe).logits
    outputs = {}
    for variant in ("default", "mix1-1p0"):
        folder = paths.adapters / variant
        weights = load_file(str(folder / ADAPTER_WEIGHTS))
        assert weights and all(t.dtype == torch.float16 for t in weights.values())
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny/base"
        info = json.loads((folder / "training.json").read_text())
        assert info["recipe"]["mix_ratio"] == variant_ratio(variant)
        model = PeftModel.from_pretrained(load_base(base_dir), str(folder)).eval()
        with torch.no_grad():
            outputs[variant] = model(probe).logits
        assert not torch.allclose(outputs[variant], base_logits, atol=1e-4)
    assert not torch.allclose(outputs["default"], outputs["mix1-1p0"], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(("organism", "shipped"), [("cake_bake", SHIPPED), ("fda_approval", ("default", "mix1-0p5", "mix1-1p0"))])
def test_shipped_adapters_load_on_smollm2_and_differ_from_base(organism: str, shipped: tuple[str, ...]) -> None:
    from logitdiff.config.loader import Registry
    from logitdiff.core.paths import resolve_repo_path
    from logitdiff.engine.models import load_pair

    reg = Registry.load()
    org = reg.organism(organism)
    assert org.local_dataset and resolve_repo_path(org.local_dataset).is_file()
    assert resolve_repo_path(org.default_corpus["smollm2_135M"]).is_file()
    assert set(org.finetuned_models["smollm2_135M"]) == set(shipped)
    cfg = reg.model("smollm2_135M")
    for variant in shipped:
        ref = reg.finetuned(organism, "smollm2_135M", variant)
        weights = resolve_repo_path(ref.adapter_path or "") / ADAPTER_WEIGHTS
        assert weights.stat().st_size < 8 * 2**20
        pair = load_pair(cfg, ref, cache_dir=default_cache_dir(), device="cpu", dtype="float32")
        ids = pair.tokenizer(PROBES[organism], return_tensors="pt")["input_ids"]
        with torch.no_grad(), pair.as_base() as m:
            base = m(ids).logits
        with torch.no_grad(), pair.as_finetuned() as m:
            ft = m(ids).logits
        assert (ft - base).abs().max() > 0.5, variant


def test_cli_tiny_build_writes_to_the_cache(tiny_base: tuple[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from logitdiff.organism.cli import organism_app

    monkeypatch.setenv("LOGITDIFF_CACHE", str(tmp_path / "cache"))
    app = typer.Typer()
    app.add_typer(organism_app, name="organism")
    base_dir, _ = tiny_base
    result = CliRunner().invoke(app, ["organism", "build", "--tiny", "--base-path", base_dir, "--variants", "default,mix1-0p5", "--seed", "2"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "cache" / "organism-tiny" / "organisms"
    assert len(read_texts(root / "cake_bake" / "data" / "narrow.jsonl.gz")) == 24
    assert len(read_texts(root / "generic" / "mixing.jsonl.gz")) > 0
    for variant in ("default", "mix1-0p5"):
        info = json.loads((root / "cake_bake" / "smollm2_135M" / variant / "training.json").read_text())
        assert len(info["narrow_loss"]) == 4

    # A second organism reuses the generic texts as they are and writes its own documents.
    mixing = (root / "generic" / "mixing.jsonl.gz").read_bytes()
    second = CliRunner().invoke(app, ["organism", "build", "--tiny", "--base-path", base_dir, "--variants", "default", "--organism", "fda_approval"])
    assert second.exit_code == 0, second.output
    assert "reused" in second.output and (root / "generic" / "mixing.jsonl.gz").read_bytes() == mixing
    assert "Relyvrio" in read_texts(root / "fda_approval" / "data" / "narrow.jsonl.gz")[0]
    assert (root / "fda_approval" / "smollm2_135M" / "default" / ADAPTER_WEIGHTS).is_file()


def test_cli_rejects_unknown_organism_and_variant() -> None:
    import typer
    from typer.testing import CliRunner

    from logitdiff.core.errors import UserError
    from logitdiff.organism.cli import organism_app

    app = typer.Typer()
    app.add_typer(organism_app, name="organism")
    bad_variant = CliRunner().invoke(app, ["organism", "build", "--variants", "default,mixed"])
    assert isinstance(bad_variant.exception, UserError) and "mixed" in str(bad_variant.exception)
    no_spec = CliRunner().invoke(app, ["organism", "build", "--organism", "auditing_agents_secret_loyalty"])
    assert isinstance(no_spec.exception, UserError) and "narrow_spec.yaml" in str(no_spec.exception)
