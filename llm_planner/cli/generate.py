"""``forethought generate``: run the decoding engine unconstrained on any pair of local models.

Examples::

    forethought generate --target smollm2 --prompt "The capital of France is" --max-new-tokens 32 --mode ar
    forethought generate --target ./llama-8b --draft ./llama-1b --prompt "..." --max-new-tokens 256 \\
        --mode ssd --k 5 --temperature 0.7 --json

The prompt is tokenised as ``tokenizer(prompt)`` does; ``--chat`` applies the target's chat template.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..decoding.engine import DECODE_MODES
from .options import add_device_arguments, add_engine_arguments, engine_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, help="target model: HF directory, .gguf file or 'smollm2'")
    parser.add_argument("--draft", help="draft model directory or .gguf file (sd, ssd)")
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-new-tokens", type=int, required=True)
    parser.add_argument("--chat", action="store_true", help="apply the target's chat template to the prompt")
    parser.add_argument("--json", action="store_true", help='print {"tokens": ..., "text": ..., "stats": ...}')
    add_engine_arguments(parser, default_mode="ar", modes=DECODE_MODES)
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..decoding.engine import Engine
    from ..decoding.language_model import ModelSpec, load_tokenizer

    try:
        config = engine_config(args)
        if config.mode != "ar" and not args.draft:
            raise ValueError(f"--mode {config.mode} needs --draft")
        tokenizer = load_tokenizer(args.target)
        if args.chat:
            ids = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], add_generation_prompt=True, tokenize=True)
            ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        else:
            ids = list(tokenizer(args.prompt)["input_ids"])
        target = ModelSpec(path=args.target, device=args.device, dtype=args.dtype).load()
        draft = None
        draft_tokenizer = None
        if config.mode != "ar":
            draft_tokenizer = load_tokenizer(args.draft)
            draft = ModelSpec(path=args.draft, device=args.device, dtype=args.dtype)
        eos = tokenizer.eos_token_id
        with Engine(target, config, draft=draft, target_tokenizer=tokenizer, draft_tokenizer=draft_tokenizer) as engine:
            out = engine.generate(ids, args.max_new_tokens, eos_ids=set() if eos is None else {int(eos)})
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = tokenizer.decode(out.tokens, skip_special_tokens=True)
    if args.json:
        print(json.dumps({"tokens": out.tokens, "text": text, "stats": out.stats.summary()}))
    else:
        print(text)
        print(json.dumps(out.stats.summary()), file=sys.stderr)
    return 0
