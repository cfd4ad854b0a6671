"""Fine-tune the planner's target (SmolLM2-135M-Instruct) with a LoRA adapter on labelled commands.

The adapter covers the top ``--layers`` decoder layers only, so the frozen bottom of the network
runs once per example (hidden states cached, no gradient) and each epoch back-propagates through
the top layers alone: this is what makes training fit minutes on a 2-core CPU. The loss is the
cross-entropy under the scene's plan grammar (``loop.masked_loss``), as decoding sees it, and
``--init-from`` continues training an adapter of the same shape.

``forethought train planner-lora`` runs ``train`` (its flags: ``cli/train_planner_lora.py``). Example (the
shipped adapter; see models/pretrained/planner-lora-smollm2/README.md)::

    forethought train planner-lora --out models/pretrained/planner-lora-smollm2
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from torch import nn

from forethought.files import atomic_path

from ..decoding.language_model import SMOLLM2_GGUF, ModelSpec
from ..planning.grammar import GrammarConstraint, token_strings
from ..planning.schema import SCENES, plan_dfa
from .data import encode, grammar_masks, length_batches, pad_batch, training_rows
from .loop import Progress, cosine_lr, masked_loss, portable_settings
from .lora import WEIGHTS, LoraConfig, add_lora, load_config, save_adapter


class _Layers:
    """Run a contiguous slice of an HF Llama's decoder layers (swapped in for the duration of a call)."""

    def __init__(self, model: nn.Module, start: int, stop: int, final_norm: bool) -> None:
        self.inner, self.start, self.stop, self.final_norm = model.model, start, stop, final_norm

    def __call__(self, attention: torch.Tensor, ids: torch.Tensor | None = None, hidden: torch.Tensor | None = None) -> torch.Tensor:
        layers, norm = self.inner.layers, self.inner.norm
        self.inner.layers = nn.ModuleList(layers[self.start : self.stop])
        if not self.final_norm:
            self.inner.norm = nn.Identity()
        try:
            out = self.inner(input_ids=ids, inputs_embeds=hidden, attention_mask=attention, use_cache=False)
        finally:
            self.inner.layers, self.inner.norm = layers, norm
        return out.last_hidden_state


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    lm = ModelSpec(path=args.target).load()
    model, tok = lm.model, lm.tokenizer
    n_layers = model.config.num_hidden_layers
    if not 1 <= args.layers <= n_layers:
        raise ValueError(f"--layers must be in [1, {n_layers}], got {args.layers}")
    split = n_layers - args.layers
    config = LoraConfig(rank=args.rank, alpha=args.alpha, layers=list(range(split, n_layers)),
                        base=SMOLLM2_GGUF if args.target == "smollm2" else args.target, prompt_style="compact")
    rows = training_rows(args.generated, args.seed, args.composed)
    examples = [encode(tok, r["command"], r["scene"], r["plan"], config.prompt_style) for r in rows]
    tokens, eos = token_strings(tok), {int(tok.eos_token_id)}
    constraints = {scene: GrammarConstraint(plan_dfa(blocks), tokens, eos, lm.vocab_size) for scene, blocks in SCENES.items()}
    masks = [grammar_masks(e, constraints[r["scene"]]) for e, r in zip(examples, rows)]
    print(f"{len(examples)} examples, {sum(len(e.ids) for e in examples)} tokens; LoRA on layers {split}..{n_layers - 1}", flush=True)

    # 1. Frozen bottom: hidden states after layer split-1, once per example.
    bottom = _Layers(model, 0, split, final_norm=False)
    cached: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    t0 = time.perf_counter()
    with torch.no_grad():
        for idx in length_batches([len(e.ids) for e in examples], 32, rng):
            ids, attention, _ = pad_batch([examples[i] for i in idx], int(tok.pad_token_id or 0))
            h = bottom(attention, ids=ids)  # [B, L, D]
            for b, i in enumerate(idx):
                cached[i] = h[b, : len(examples[i].ids)].clone()
    print(f"bottom {split} layers cached in {time.perf_counter() - t0:.0f} s", flush=True)

    # 2. Train the adapter on the top layers.
    params = add_lora(model, config)
    if args.init_from:
        _load_factors(model, config, args.init_from)
    top = _Layers(model, split, n_layers, final_norm=True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    per_epoch = (len(examples) + args.batch_size - 1) // args.batch_size
    total = per_epoch * args.epochs
    progress = Progress(total)
    step = 0
    model.train()
    for _ in range(args.epochs):
        for idx in length_batches([len(e.ids) for e in examples], args.batch_size, rng):
            batch = [examples[i] for i in idx]
            _, attention, labels = pad_batch(batch, 0)
            hidden = torch.zeros(len(batch), labels.shape[1], cached[idx[0]].shape[-1])
            for b, i in enumerate(idx):
                hidden[b, : len(examples[i].ids)] = cached[i]
            for g in opt.param_groups:
                g["lr"] = cosine_lr(step, total, args.lr)
            allowed = torch.stack([m for i in idx for m in masks[i]])  # [N, V], label order
            loss = masked_loss(top(attention, hidden=hidden), labels, model.lm_head, allowed)
            opt.zero_grad()
            loss.backward()
            opt.step()
            progress.update(step, loss.item(), int(attention.sum()))
            step += 1
    model.eval()
    save_adapter(model, config, args.out)
    with atomic_path(Path(args.out) / "train_args.json") as tmp:
        tmp.write_text(json.dumps(portable_settings(args), indent=2) + "\n")
    print(f"adapter written to {args.out}", flush=True)


def _load_factors(model: nn.Module, config: LoraConfig, directory: str) -> None:
    """Copy the LoRA factors of the adapter in ``directory`` into ``model`` (prepared by ``add_lora`` with ``config``)."""
    from safetensors.torch import load_file

    saved = load_config(directory)
    if (saved.rank, saved.layers, saved.modules, saved.prompt_style) != (config.rank, config.layers, config.modules, config.prompt_style):
        raise ValueError(f"--init-from {directory}: rank {saved.rank}, layers {saved.layers} do not match --rank {config.rank}, "
                         f"layers {config.layers}")
    tensors = load_file(f"{directory}/{WEIGHTS}")
    with torch.no_grad():
        for path in config.paths():
            module = model.get_submodule(path)
            module.lora_a.copy_(tensors[f"{path}.lora_a"])
            module.lora_b.copy_(tensors[f"{path}.lora_b"] * saved.scale / config.scale)

