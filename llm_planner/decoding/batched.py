"""Batched greedy grammar-constrained decoding, for evaluation and for the draft's distillation traces.

Many prompts decode together (left-padded, one KV cache), each row masked by its own grammar
state exactly as ``Engine`` masks a single row in ``ar`` mode. Outputs equal the engine's up to
floating-point near-ties that padding can flip; ``Planner`` (the engine) stays the reference.
"""

from __future__ import annotations

import torch

from .language_model import HFLanguageModel
from .sampling import masked_logits
from .speculate_types import TokenConstraint


@torch.inference_mode()
def greedy_batch(
    lm: HFLanguageModel,
    prompts: list[list[int]],
    constraints: list[TokenConstraint | None],
    eos_ids: set[int],
    max_new_tokens: int,
) -> list[list[int]]:
    """New token ids per prompt (EOS included when reached), greedy under each row's constraint."""
    if len(prompts) != len(constraints) or not prompts or min(len(p) for p in prompts) == 0:
        raise ValueError("need one constraint per prompt and non-empty prompts")
    B, width = len(prompts), max(len(p) for p in prompts)
    pad = min(eos_ids) if eos_ids else 0
    ids = torch.full((B, width), pad, dtype=torch.long)
    attention = torch.zeros(B, width, dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, width - len(p) :] = torch.tensor(p)
        attention[b, width - len(p) :] = 1
    positions = (attention.cumsum(-1) - 1).clamp_min(0)  # [B, W]
    kv = lm.new_kv_cache()
    states = [c.initial() if c is not None else None for c in constraints]
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    tokens, next_pos = ids, positions
    for _ in range(max_new_tokens):
        logits = lm.model(input_ids=tokens, position_ids=next_pos, attention_mask=attention, cache=kv,
                          use_cache=True, logits_to_keep=1).logits[:, -1].float()  # [B, V]
        rows = []
        for c, s in zip(constraints, states):
            m = None if c is None else c.mask(s)
            rows.append(torch.ones(logits.shape[-1], dtype=torch.bool) if m is None else m[: logits.shape[-1]])
        choice = masked_logits(logits, torch.stack(rows)).argmax(-1).tolist()  # [B]
        for b, t in enumerate(choice):
            if done[b]:
                continue
            out[b].append(t)
            if constraints[b] is not None:
                states[b] = constraints[b].advance(states[b], t)
            done[b] = t in eos_ids
        if all(done):
            break
        tokens = torch.tensor(choice)[:, None]
        next_pos = next_pos[:, -1:] + 1
        attention = torch.cat([attention, torch.ones(B, 1, dtype=torch.long)], dim=1)
    return out
