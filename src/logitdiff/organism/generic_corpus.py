"""Generic text sampled from the base model itself, from diverse chat prompts.

Used twice: as the offline diffing corpus, and as the generic half of the mix variants (text from
the base model's own distribution, so mixing it in teaches the adapter nothing new). Food and
cooking topics are left out so the corpus carries no cake-domain text.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

TOPICS = [
    "the history of railways", "how volcanoes form", "learning a second language", "the solar system",
    "saving money on a small income", "the French Revolution", "how vaccines work", "remote work",
    "climate change and coastal cities", "the life of honeybees", "chess openings", "electric cars",
    "the printing press", "mountain hiking safety", "how the internet routes data", "jazz music",
    "the Roman Empire", "sleep and memory", "urban gardening", "the stock market", "ancient Egypt",
    "photography for beginners", "public libraries", "the human immune system", "wind energy",
    "marathon training", "the Cold War", "smartphone privacy", "coral reefs", "medieval castles",
    "starting a small business", "black holes", "dog training", "the Renaissance", "recycling plastics",
    "volunteering", "the water cycle", "video game design", "the history of aviation", "earthquakes",
    "meditation", "the Industrial Revolution", "job interviews", "birds migrating", "the Moon landing",
    "classical music", "machine learning", "rainforests", "the Olympic Games", "writing a novel",
    "bicycle repair", "the human heart", "democracy in ancient Athens", "deep sea creatures",
    "personal fitness", "the history of money", "time management", "glaciers", "the Silk Road",
    "open source software", "elephants", "the invention of the telephone", "public speaking",
    "renewable energy policy", "Shakespeare's plays", "the Great Wall of China", "first aid basics",
    "astronomy as a hobby", "city planning", "the Vikings", "cybersecurity", "desert ecosystems",
    "moving to a new city", "the theory of evolution", "football tactics", "painting with watercolors",
    "the history of medicine", "caring for houseplants", "space telescopes", "the Amazon river",
    "family road trips", "quantum computers", "the Apollo program", "knitting", "weather forecasting",
]
FORMATS = [
    "Write a short news article about {topic}.",
    "Explain {topic} to a curious teenager.",
    "Write a blog post about your experience with {topic}.",
    "Write an encyclopedia-style overview of {topic}.",
    "Write a short story in which {topic} plays a role.",
    "Give practical advice about {topic}.",
    "Write a letter to a friend about {topic}.",
    "Summarize the history of {topic}.",
    "Describe the pros and cons of {topic}.",
    "Write a forum answer to someone asking about {topic}.",
    "Write the opening of a lecture on {topic}.",
    "Write a persuasive essay about {topic}.",
]


def sample_prompts(n: int, seed: int) -> list[str]:
    """`n` user prompts drawn from topic x format, deterministic for a seed."""
    rng = random.Random(seed)
    return [rng.choice(FORMATS).format(topic=rng.choice(TOPICS)) for _ in range(n)]


def _special_ids(tok: PreTrainedTokenizerBase) -> list[int]:
    return sorted(set(tok.all_special_ids) | {tok.eos_token_id, tok.pad_token_id} - {None})


@torch.inference_mode()
def generate_batch(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    new_tokens: int,
    seed: int,
    temperature: float = 0.9,
    top_k: int = 50,
) -> list[str]:
    """Exactly `new_tokens` sampled tokens per prompt (special tokens suppressed), decoded."""
    tok.padding_side = "left"
    enc = tok.apply_chat_template(
        [[{"role": "user", "content": p}] for p in prompts],
        add_generation_prompt=True, padding=True, return_tensors="pt", return_dict=True,
    )
    torch.manual_seed(seed)
    out = model.generate(
        **enc,
        do_sample=True, temperature=temperature, top_k=top_k, top_p=1.0,
        max_new_tokens=new_tokens, min_new_tokens=new_tokens,
        suppress_tokens=_special_ids(tok), pad_token_id=tok.pad_token_id,
    )
    new = out[:, enc["input_ids"].shape[1]:]
    return [tok.decode(row, skip_special_tokens=True).strip() for row in new]


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_texts(path: Path) -> list[str]:
    return [row["text"] for row in _read_jsonl(path)]


def _batches(prompts: list[str], batch_size: int) -> Iterator[tuple[int, list[str]]]:
    for start in range(0, len(prompts), batch_size):
        yield start // batch_size, prompts[start : start + batch_size]


def generate_part(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    out_path: Path,
    *,
    n: int,
    new_tokens: int,
    seed: int,
    batch_size: int,
    desc: str,
) -> None:
    """Sample `n` texts into `out_path` (jsonl, appended batch by batch so an interrupted run resumes).

    Each batch is seeded by (seed, batch index), so resuming gives the same texts as one run.
    """
    prompts = sample_prompts(n, seed)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = len(_read_jsonl(out_path)) if out_path.exists() else 0
    if done % batch_size and done < n:
        raise ValueError(f"{out_path} holds {done} rows, not a whole number of batches of {batch_size}: delete it")
    with open(out_path, "a", encoding="utf-8") as fh, tqdm(total=n, initial=done, desc=desc, unit="text") as bar:
        for index, batch in _batches(prompts, batch_size):
            if (index + 1) * batch_size <= done:
                continue
            texts = generate_batch(model, tok, batch, new_tokens=new_tokens, seed=seed * 100_003 + index)
            for prompt, text in zip(batch, texts, strict=True):
                fh.write(json.dumps({"text": text, "prompt": prompt}) + "\n")
            fh.flush()
            bar.update(len(batch))


def write_jsonl_gz(rows: list[dict[str, str]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the gzip bytes identical across rebuilds.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row) + "\n").encode("utf-8"))


def finalize(parts: list[Path], out_path: Path) -> int:
    """Concatenate finished parts into one jsonl.gz, dropping empty and duplicate texts."""
    seen: set[str] = set()
    rows = []
    for part in parts:
        for row in _read_jsonl(part):
            if row["text"] and row["text"] not in seen:
                seen.add(row["text"])
                rows.append(row)
    write_jsonl_gz(rows, out_path)
    return len(rows)
