"""Base model building, resolving, special-token setup and checkpoint loading (no Django)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from trainer.ml.base_models import (
    build_tiny_gpt2,
    load_checkpoint,
    load_for_training,
    resolve_base,
    smollm2_folder,
)
from trainer.ml.chat_format import CONV, EOC, EOM, PAD, ChatFormat, speaker_token


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core CI box, two OpenMP threads competing with other
    processes run these tiny matmuls several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FORMAT = ChatFormat(speakers={"alice": "Alice", "bob": "Bob Smith"})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2")


def test_tiny_gpt2_is_a_plain_hf_folder_with_real_gpt2_tokenizer(tiny: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny)
    assert len(tok) == 50257
    # GPT-2's own ids for a known string: proves the real merges, not a toy vocab.
    assert tok("hello world")["input_ids"] == [31373, 995]
    assert model.config.n_layer == 2 and model.config.n_embd == 64


def test_tiny_gpt2_is_deterministic_from_seed(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(build_tiny_gpt2(tmp_path / "a", seed=3))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_gpt2(tmp_path / "b", seed=3))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_gpt2(tmp_path / "c", seed=4))
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb)
    assert not torch.equal(wa, wc)


def test_resolve_base(tiny: Path, tmp_path: Path) -> None:
    assert resolve_base(tiny, tmp_path) == tiny
    assert resolve_base(str(tiny), tmp_path) == tiny
    assert resolve_base("gpt2", tmp_path) == "gpt2"
    assert resolve_base("distilgpt2", tmp_path) == "distilgpt2"
    assert resolve_base("HuggingFaceTB/SmolLM2-360M", tmp_path) == "HuggingFaceTB/SmolLM2-360M"
    with pytest.raises(FileNotFoundError):
        resolve_base(tmp_path / "missing", tmp_path)


def test_load_for_training_adds_format_tokens(tiny: Path, tmp_path: Path) -> None:
    model, tok = load_for_training(tiny, FORMAT, tmp_path)
    assert len(tok) == 50257 + len(FORMAT.special_tokens)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.pad_token == PAD
    assert tok.pad_token_id != tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id

    text = FORMAT.session([("alice", "anyone up for pho?"), ("bob", "always")])
    pieces = tok.convert_ids_to_tokens(tok(text)["input_ids"])
    assert pieces[0] == CONV and pieces[1] == speaker_token("alice")
    # The space after a speaker token stays with the word, exactly like GPT-2 text elsewhere.
    assert pieces[2] == "Ġanyone"
    assert pieces.count(EOM) == 2 and pieces[-1] == EOC
    assert tok.decode(tok(text)["input_ids"]) == text


def test_new_speaker_rows_start_from_their_names(tiny: Path, tmp_path: Path) -> None:
    model, tok = load_for_training(tiny, FORMAT, tmp_path)
    emb = model.get_input_embeddings().weight
    bob = tok.convert_tokens_to_ids(speaker_token("bob"))
    name = tok.encode(" Bob Smith", add_special_tokens=False)
    assert torch.allclose(emb[bob], emb[name].mean(0))
    conv = tok.convert_tokens_to_ids(CONV)
    assert torch.allclose(emb[conv], emb[:50257].mean(0), atol=1e-6)
    assert torch.isfinite(emb).all()


def test_load_checkpoint_round_trip(tiny: Path, tmp_path: Path) -> None:
    model, tok = load_for_training(tiny, FORMAT, tmp_path)
    folder = tmp_path / "ckpt"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    FORMAT.save(folder)

    model2, tok2, fmt2 = load_checkpoint(folder)
    assert fmt2 == FORMAT
    assert tok2.pad_token == PAD
    text = FORMAT.session([("bob", "hi")])
    assert tok2(text)["input_ids"] == tok(text)["input_ids"]
    assert not model2.training
    ids = tok2(FORMAT.prompt("alice"), return_tensors="pt")
    out = model2.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 3


@pytest.fixture(scope="module")
def smol_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smol-cache")


@pytest.mark.slow
def test_smollm2_converts_offline_and_generates(smol_cache: Path) -> None:
    folder = smollm2_folder(smol_cache)
    assert (folder / "config.json").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    # Nothing half-written left beside it, and a second call reuses the folder.
    assert [p.name for p in smol_cache.iterdir()] == [folder.name]
    assert smollm2_folder(smol_cache) == folder

    model, tok = load_for_training("smollm2-135m", FORMAT, smol_cache)
    assert getattr(model, "hf_quantizer", None) is None
    assert tok.pad_token == PAD and tok.pad_token_id != tok.eos_token_id
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


@pytest.mark.slow
def test_smollm2_trains_a_step_and_reloads(smol_cache: Path, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from trainer.ml.data import CorpusMessage, DataConfig, build_dataset
    from trainer.ml.loop import TrainConfig, train

    model, tok = load_for_training("smollm2-135m", FORMAT, smol_cache)
    t0 = datetime(2024, 1, 1)
    msgs = [
        CorpusMessage(
            "c", "alice" if i % 2 else "bob", f"pho at {i}?", t0 + timedelta(hours=i // 3)
        )
        for i in range(12)
    ]
    ds = build_dataset(msgs, tok, FORMAT, DataConfig(window_len=32, val_fraction=0.2))
    cfg = TrainConfig(max_steps=2, batch_size=1, lr=1e-4, warmup_steps=0, window_len=32)
    result = train(cfg, model, tok, ds, tmp_path / "run")
    assert result.status == "completed" and result.final_val_loss is not None
    assert math.isfinite(result.final_val_loss)

    model2, tok2, fmt = load_checkpoint(result.checkpoint)
    assert fmt == FORMAT
    ids = tok2(fmt.prompt("alice"), return_tensors="pt")
    with torch.no_grad():
        out = model2.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
