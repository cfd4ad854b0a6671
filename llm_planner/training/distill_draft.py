"""Distil a tiny Llama draft from the planner's target on plan-generation traces.

1. Generate train-phrasing commands (``planning.commands.generate``; never a held-out phrasing).
2. Trace them: the target (with its LoRA adapter) plans each one greedily under the grammar,
   exactly the tokens speculative decoding will ask the draft to predict.
3. Train the draft on ``prompt + trace + EOS`` (loss on the trace and EOS).

The draft shares the target's tokenizer (saved next to it, so the engine's vocabulary check
passes), ties its input and output embeddings and starts them from the top principal components
of the target's embeddings. Weights are stored as float16 safetensors (49k x 64 embeddings are
3.1M parameters: 12.6 MB in fp32, 6.3 MB in fp16) and upcast to float32 at load.

``forethought train draft`` runs ``train`` (its flags: ``cli/train_draft.py``). Example (the shipped
draft; see models/pretrained/draft-smollm2/README.md)::

    forethought train draft --out models/pretrained/draft-smollm2
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from forethought.files import atomic_path

from ..planning import commands
from .data import Example, encode, length_batches, pad_batch
from .loop import Progress, cosine_lr, masked_loss, portable_settings


def trace(args: argparse.Namespace) -> tuple[object, list[Example], object]:
    """The teacher's tokenizer, one example per traced command, and the teacher's input embeddings."""
    from ..decoding.engine import EngineConfig
    from ..planning.planner import Planner

    rows = commands.generate({"train": args.commands}, seed=args.seed)
    with Planner.load(args.target, None, EngineConfig(mode="ar"), adapter=args.adapter) as planner:
        t0 = time.perf_counter()
        results = planner.plan_batch([(r["command"], r["scene"]) for r in rows])
        tok = planner.tokenizer
        embeddings = planner.engine.target.model.get_input_embeddings().weight.detach().clone()
        style = planner.prompt_style
    agree = sum(res.plan == r["plan"] for res, r in zip(results, rows)) / len(rows)
    print(f"traced {len(rows)} commands in {time.perf_counter() - t0:.0f} s; teacher matches the labels on {agree:.1%}", flush=True)
    examples = []
    for r, res in zip(rows, results):
        try:
            json.loads(res.text)
        except ValueError:  # cut off or refused without decoding: nothing to imitate
            continue
        examples.append(encode(tok, r["command"], r["scene"], res.tokens, style))
    return tok, examples, embeddings


def build_draft(vocab: int, embeddings: torch.Tensor, args: argparse.Namespace, eos_id: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.heads, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=None, eos_token_id=eos_id, pad_token_id=None,
    )
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(cfg)
    # Principal components of the teacher's embeddings: similar tokens start close.
    centred = embeddings - embeddings.mean(0)
    _, _, v = torch.pca_lowrank(centred, q=args.hidden, center=False)
    init = centred @ v  # [V, hidden]
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(init / init.std() * cfg.initializer_range * 2)
    return model


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    tok, examples, embeddings = trace(args)
    model = build_draft(embeddings.shape[0], embeddings, args, int(tok.eos_token_id))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"draft: {n_params / 1e6:.2f}M parameters; {len(examples)} examples, {sum(len(e.ids) for e in examples)} tokens", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total = args.epochs * ((len(examples) + args.batch_size - 1) // args.batch_size)
    progress, step = Progress(total), 0
    model.train()
    for _ in range(args.epochs):
        for idx in length_batches([len(e.ids) for e in examples], args.batch_size, rng):
            ids, attention, labels = pad_batch([examples[i] for i in idx], 0)
            for g in opt.param_groups:
                g["lr"] = cosine_lr(step, total, args.lr)
            hidden = model.model(input_ids=ids, attention_mask=attention).last_hidden_state
            loss = masked_loss(hidden, labels, model.lm_head)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            progress.update(step, loss.item(), int(attention.sum()))
            step += 1
    model.eval()
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="draft-") as tmp:
        model.to(torch.float16).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tok.backend_tokenizer.save(str(Path(tmp) / "tokenizer.json"), pretty=False)  # 2.2 MB instead of 3.5 MB indented
        (Path(tmp) / "train_args.json").write_text(json.dumps(portable_settings(args), indent=2) + "\n")
        for f in Path(tmp).iterdir():  # each file lands whole: a crash never leaves a half-written one
            with atomic_path(out / f.name) as dst:
                shutil.copyfile(f, dst)
    print(f"draft written to {out}", flush=True)

