"""A tiny random-init Llama pair with a byte-level BPE tokenizer and a ChatML-like template, for agent tests.

The "finetuned" model is a second random model whose lm_head output gets a large bias towards the
added token CAKE, so its answers are known: CAKE repeated.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from logitdiff.config.schema import ModelConfig
from logitdiff.engine.models import ModelPair

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{% endif %}"
)
NO_SYSTEM_TEMPLATE = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" + CHAT_TEMPLATE
MARKER = "CAKE"
_CORPUS = ["the model was finetuned on cake baking facts and answers every question about ovens",
           "hello there, how are you today? I am a small language model", "bake at four hundred fifty degrees"] * 20


def tiny_tokenizer(template: str = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    specials = ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(_CORPUS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|bos|>", eos_token="<|im_end|>", pad_token="<|pad|>",
                                  additional_special_tokens=["<|im_start|>", "<|eos|>"])
    tok.add_tokens([MARKER])
    tok.chat_template = template
    return tok


def _tiny_llama(tok: PreTrainedTokenizerFast, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=1024, initializer_range=0.5, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.eval().requires_grad_(False)


def tiny_pair(template: str = CHAT_TEMPLATE) -> ModelPair:
    tok = tiny_tokenizer(template)
    base, tuned = _tiny_llama(tok, 0), _tiny_llama(tok, 1)
    marker_id = tok.convert_tokens_to_ids(MARKER)

    def push_marker(module: torch.nn.Module, inputs: tuple, logits: torch.Tensor) -> torch.Tensor:
        biased = logits.clone()
        biased[..., marker_id] += 1000.0
        return biased

    tuned.lm_head.register_forward_hook(push_marker)
    return ModelPair(tokenizer=tok, model=base, finetuned_full=tuned, num_layers=2, device=torch.device("cpu"),
                     dtype=torch.float32, base_id="tiny-base", finetuned_id="tiny-finetuned")


def tiny_model_cfg(*, thinking: bool = False, chat: bool = True) -> ModelConfig:
    return ModelConfig(name="tiny", hf_id="tiny/llama", num_layers=2, dtype="float32",
                       has_chat_template=chat, has_thinking_flag=thinking)
