"""Next-token loss computed from hidden states in chunks, without the full logits tensor.

The output layer of a small language model is its biggest activation: batch x length x vocab
floats (8 x 256 x 50k = 400 MB for GPT-2's vocabulary), and a plain cross-entropy keeps three of
them alive (logits, log-softmax, its gradient). Here the output projection, softmax and their
gradients are done a chunk of tokens at a time, in the forward pass (as Liger's fused linear
cross-entropy does): the gradients for the hidden states and the output weight are accumulated
right away and handed back in ``backward``. Same FLOPs, a small fraction of the memory, and the
chunks stay in cache on CPU.

Used when the model's logits are exactly ``lm_head(hidden)`` (GPT-2, Llama/SmolLM2 and most
causal LMs); :func:`supports_chunked_loss` says when, and the loop falls back otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

IGNORE_INDEX = -100
CHUNK_TOKENS = 256

# Config fields that mean "logits are not just lm_head(hidden)".
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")


def supports_chunked_loss(model: PreTrainedModel) -> bool:
    head = model.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        return False
    if any(getattr(model.config, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return False
    return getattr(model, "base_model", None) is not None and model.base_model is not model


def hidden_states(model: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """The last hidden states, i.e. what the output layer (lm_head) is applied to."""
    return model.base_model(input_ids=input_ids, use_cache=False).last_hidden_state


class _ChunkedLMLoss(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T (+ bias)`` against ``targets``, chunked."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,  # [N, D]
        weight: torch.Tensor,  # [V, D]
        bias: torch.Tensor | None,  # [V]
        targets: torch.Tensor,  # [N], IGNORE_INDEX where no loss
        chunk: int,
        with_grad: bool,  # False under no_grad (evaluation): skip the gradient work
    ) -> torch.Tensor:
        needs_grad = [with_grad and bool(n) for n in ctx.needs_input_grad]
        grad_hidden = torch.zeros_like(hidden) if needs_grad[0] else None
        grad_weight = torch.zeros_like(weight) if needs_grad[1] else None
        grad_bias = (
            torch.zeros_like(bias, dtype=torch.float32)
            if bias is not None and needs_grad[2]
            else None
        )
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            t = targets[start : start + chunk]
            keep = t != IGNORE_INDEX
            h = hidden[start : start + chunk]
            logits = nn.functional.linear(h, weight, bias).float()
            safe_t = t.clamp(min=0)
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, safe_t[:, None]).squeeze(1)
            total += ((lse - picked) * keep).sum()
            if grad_hidden is None and grad_weight is None and grad_bias is None:
                continue
            # d(sum of losses)/d(logits) = softmax - one_hot(target), zero where ignored. An
            # infinite log-normaliser makes an ignored row's softmax exactly zero, no extra pass.
            lse = lse.masked_fill(~keep, float("inf"))
            g = logits.sub_(lse[:, None]).exp_()
            g[torch.arange(g.shape[0], device=g.device), safe_t] -= keep.to(g.dtype)
            g = g.to(weight.dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk] = (g @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(g.T, h.to(g.dtype))  # in place: no vocab x dim temporary
            if grad_bias is not None:
                grad_bias += g.sum(0)
        ctx.save_for_backward(
            *(x if x is not None else torch.empty(0) for x in (grad_hidden, grad_weight, grad_bias))
        )
        ctx.has = (grad_hidden is not None, grad_weight is not None, grad_bias is not None)
        ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        saved = ctx.saved_tensors
        grads = [
            (s * grad_out).to(dtype) if has else None
            for s, has, dtype in zip(saved, ctx.has, ctx.dtypes, strict=True)
        ]
        return grads[0], grads[1], grads[2], None, None, None


def chunked_lm_loss_sum(
    model: PreTrainedModel, hidden: torch.Tensor, labels: torch.Tensor, chunk: int = CHUNK_TOKENS
) -> torch.Tensor:
    """Summed next-token loss over non-ignored labels, like ``token_loss_sum(lm_head(hidden))``."""
    head = model.get_output_embeddings()
    targets = nn.functional.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)
    flat = hidden.reshape(-1, hidden.shape[-1])
    with_grad = torch.is_grad_enabled()
    return _ChunkedLMLoss.apply(flat, head.weight, head.bias, targets, chunk, with_grad)
