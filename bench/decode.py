"""Decoding speed of the LLM planner: AR, SD, SSD and HF assisted generation on the embedded pair.

The pair is SmolLM2-135M-Instruct with the shipped LoRA adapter merged (target) and the shipped
distilled draft (``--target``, ``--adapter``, ``--draft`` name another pair). Every mode plans the same held-out commands greedily under the plan grammar
(HF ``generate(assistant_model=draft)`` gets the same grammar as a logits processor), so all
modes emit the same tokens. Thread budget: 2 cores for every mode; AR, SD and HF run with 2 torch
threads, SSD with 1 thread in the target process and 1 in the draft process
(``--ssd-target-threads 2`` gives the target both cores and lets the mostly idle draft share them).

Each figure is the median over ``--runs`` passes over all prompts (after a one-prompt warm-up).
Grammar-forced tokens (one legal token) are counted apart: ``forced`` is their share of the
output, ``free acc. len`` the acceptance length counting only tokens the grammar left open, and
``AR+JF fwd/tok`` the target forwards per token an AR decoder that appends forced tokens without
a forward ("jump-forward", not implemented in the engine) would need. The modes draft with the draft model
alone unless ``--lookup`` adds the planner's reference lookup (``decoding/lookup.py``). The prompt past the
cached prefix runs in the first round's forward, which ``fwd/tok`` counts.

    .venv/bin/python bench/decode.py [--prompts 24] [--runs 5] [--k 4] [--fixed-accept-rate] [--lookup] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from typing import Any

import torch
from transformers import LogitsProcessorList

from forethought.llm_planner.decoding.engine import Engine, EngineConfig
from forethought.llm_planner.decoding.language_model import ModelSpec, load_tokenizer
from forethought.llm_planner.planning import commands
from forethought.llm_planner.planning.grammar import GrammarConstraint
from forethought.llm_planner.planning.planner import DEFAULT_ADAPTER, DEFAULT_DRAFT, DEFAULT_TARGET, Planner
from forethought.llm_planner.planning.schema import SCENES
from forethought.llm_planner.training.lora import load_config
from forethought.runtime import apply_defaults

MODES = ("ar", "sd", "ssd", "hf-assisted")


class GrammarProcessor:
    """HF logits processor applying a ``GrammarConstraint`` to rows that start after ``prompt_len`` tokens."""

    def __init__(self, constraint: GrammarConstraint, prompt_len: int) -> None:
        self.constraint, self.prompt_len = constraint, prompt_len
        self.states: dict[tuple[int, ...], Any] = {(): constraint.initial()}

    def _state(self, generated: tuple[int, ...]) -> Any:
        if generated not in self.states:
            self.states[generated] = self.constraint.advance(self._state(generated[:-1]), generated[-1])
        return self.states[generated]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for b in range(input_ids.shape[0]):
            mask = self.constraint.mask(self._state(tuple(input_ids[b, self.prompt_len :].tolist())))
            if mask is not None:
                scores[b, ~mask[: scores.shape[-1]]] = float("-inf")
        return scores


def forced_flags(constraint: GrammarConstraint, tokens: list[int]) -> list[bool]:
    """Whether each emitted token was the only one the grammar allowed at its position."""
    state, out = constraint.initial(), []
    for t in tokens:
        mask = constraint.mask(state)
        out.append(mask is not None and int(mask.sum()) == 1)
        state = constraint.advance(state, t)
    return out


def run_engine(planner: Planner, items: list[tuple[str, str]]) -> dict[str, Any]:
    """One pass over ``items``: summed counts and times, plus per-token forced flags and per-round emitted counts."""
    tot = {"tokens": 0, "decode_s": 0.0, "wall_s": 0.0, "rounds": 0, "forwards": 0, "hits": 0, "slack": [], "free_emitted": 0, "forced": 0}
    outputs = []
    for command, scene in items:
        t0 = time.perf_counter()
        res = planner.plan(command, scene)
        tot["wall_s"] += time.perf_counter() - t0
        s = res.stats
        tokens = res.tokens + [min(planner.eos_ids)]
        flags = forced_flags(planner.constraint(SCENES[scene]), tokens)
        tot["tokens"] += s["new_tokens"]
        tot["decode_s"] += s["decode_s"]
        tot["rounds"] += s["rounds"]
        tot["forwards"] += s["target_forwards"]
        tot["hits"] += s["cache_hits"]
        tot["forced"] += sum(flags)
        tot["free_emitted"] += len(flags) - sum(flags)
        if s["draft_slack_ms"] is not None:
            tot["slack"].append(s["draft_slack_ms"])
        outputs.append(res.tokens)
    return {**tot, "outputs": outputs}


def run_hf(planner: Planner, draft_model: Any, items: list[tuple[str, str]], lookahead: int) -> dict[str, Any]:
    target = planner.engine.target.model
    draft_model.generation_config.num_assistant_tokens = lookahead
    draft_model.generation_config.num_assistant_tokens_schedule = "constant"
    tot = {"tokens": 0, "wall_s": 0.0, "outputs": []}
    eos = min(planner.eos_ids)
    for command, scene in items:
        present, _, ids = planner._prepare(command, scene)
        proc = GrammarProcessor(planner.constraint(present), len(ids))
        t0 = time.perf_counter()
        out = target.generate(torch.tensor([ids]), assistant_model=draft_model, max_new_tokens=planner.max_new_tokens,
                              do_sample=False, logits_processor=LogitsProcessorList([proc]), eos_token_id=eos, pad_token_id=eos)
        tot["wall_s"] += time.perf_counter() - t0
        new = out[0, len(ids) :].tolist()
        tot["tokens"] += len(new)
        tot["outputs"].append([t for t in new if t != eos])
    return tot


def summarise(mode: str, passes: list[dict[str, Any]]) -> dict[str, Any]:
    med = lambda key: statistics.median(p[key] for p in passes)  # noqa: E731
    p = passes[0]
    row: dict[str, Any] = {"mode": mode, "tokens": p["tokens"], "e2e_tok_per_s": statistics.median(x["tokens"] / x["wall_s"] for x in passes)}
    if mode == "hf-assisted":
        return row
    emitted = p["forced"] + p["free_emitted"]
    row.update({
        "decode_tok_per_s": statistics.median(x["tokens"] / x["decode_s"] for x in passes),
        "tpot_ms": 1e3 * med("decode_s") / p["tokens"],
        "acceptance_length": emitted / p["rounds"],
        "free_acceptance_length": p["free_emitted"] / p["rounds"],
        "hit_rate": p["hits"] / p["rounds"] if mode == "ssd" else None,
        "target_forwards_per_token": p["forwards"] / emitted,
        "draft_slack_ms": statistics.median(s for x in passes for s in x["slack"]) if p["slack"] else None,
        "forced_fraction": p["forced"] / emitted,
        "ar_jf_forwards_per_token": p["free_emitted"] / emitted,
    })
    return row


def bench(args: argparse.Namespace) -> dict[str, Any]:
    rows = commands.load("heldout")[: args.prompts]
    items = [(r["command"], r["scene"]) for r in rows]
    tok = load_tokenizer(args.target)
    target = ModelSpec(path=args.target, adapter=args.adapter).load()
    draft_spec = ModelSpec(path=args.draft)
    style = load_config(args.adapter).prompt_style if args.adapter else "fewshot"
    results, outputs = [], {}
    for mode in args.modes:
        torch.set_num_threads(args.ssd_target_threads if mode == "ssd" else 2)
        if mode == "hf-assisted":
            planner = Planner(tok, Engine(target, EngineConfig(mode="ar")), prompt_style=style)
            draft_model = draft_spec.load().model
            run_hf(planner, draft_model, items[:1], args.lookahead)  # warm-up
            passes = [run_hf(planner, draft_model, items, args.lookahead) for _ in range(args.runs)]
        else:
            config = EngineConfig(mode=mode, lookahead=args.lookahead, branch_budget=args.branch_budget,
                                  adapt_accept_rate=not args.fixed_accept_rate, lookup=args.lookup)
            engine = Engine(target, config, draft=None if mode == "ar" else draft_spec, target_tokenizer=tok)
            with Planner(tok, engine, prompt_style=style) as planner:
                run_engine(planner, items[:1])  # warm-up
                passes = [run_engine(planner, items) for _ in range(args.runs)]
        outputs[mode] = passes[0]["outputs"]
        row = summarise(mode, passes)
        row["threads"] = f"{args.ssd_target_threads}+1 (two processes)" if mode == "ssd" else "2"
        results.append(row)
        print(f"{mode}: {row['e2e_tok_per_s']:.1f} tok/s end to end", file=sys.stderr, flush=True)
    by = {r["mode"]: r for r in results}
    ratios = {}
    for a, b in (("ssd", "sd"), ("ssd", "ar"), ("sd", "ar")):
        if a in by and b in by:
            ratios[f"{a}/{b}"] = by[a]["e2e_tok_per_s"] / by[b]["e2e_tok_per_s"]
    same = {m: outputs[m] == outputs[args.modes[0]] for m in args.modes}
    return {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_interop_threads()} interop threads",
            "prompts": len(items), "runs": args.runs, "k": args.lookahead, "branch_budget": args.branch_budget,
            "accept_rate": "fixed 0.7" if args.fixed_accept_rate else "estimated from the rounds (prior 0.7)",
            "results": results, "ratios": ratios, "same_output_as_first_mode": same}


def markdown(report: dict[str, Any]) -> str:
    cols = [("mode", "mode", "{}"), ("threads", "threads", "{}"), ("e2e_tok_per_s", "tok/s (e2e)", "{:.1f}"),
            ("decode_tok_per_s", "tok/s (decode)", "{:.1f}"), ("tpot_ms", "TPOT ms", "{:.1f}"),
            ("acceptance_length", "acc. len", "{:.2f}"), ("free_acceptance_length", "free acc. len", "{:.2f}"),
            ("hit_rate", "hit rate", "{:.0%}"), ("target_forwards_per_token", "fwd/tok", "{:.3f}"),
            ("draft_slack_ms", "slack ms", "{:.1f}"), ("forced_fraction", "forced", "{:.0%}"),
            ("ar_jf_forwards_per_token", "AR+JF fwd/tok", "{:.3f}")]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in report["results"]:
        lines.append("| " + " | ".join("–" if r.get(k) is None else f.format(r[k]) for k, _, f in cols) + " |")
    goals = {"ssd/sd": 1.6, "ssd/ar": 5.0}
    lines.append("")
    for name, value in report["ratios"].items():
        goal = f" (goal ≥ {goals[name]})" if name in goals else ""
        lines.append(f"- {name.upper()}: {value:.2f}×{goal}")
    lines.append(f"- same tokens in every mode: {report['same_output_as_first_mode']}")
    lines.append(f"- {report['prompts']} held-out commands × {report['runs']} runs (median), K={report['k']}, "
                 f"branch budget {report['branch_budget']}; {report['machine']}")
    return "\n".join(lines)


def main() -> None:
    apply_defaults()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET)
    parser.add_argument("--adapter", default=DEFAULT_ADAPTER, help="LoRA adapter merged into the target ('' for none)")
    parser.add_argument("--draft", default=DEFAULT_DRAFT)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--k", dest="lookahead", metavar="K", type=int, default=4, help="draft tokens per round")
    parser.add_argument("--branch-budget", type=int, default=12)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--ssd-target-threads", type=int, default=1,
                        help="torch threads of the SSD target process (its draft process always has 1); 2 oversubscribes 2 cores")
    parser.add_argument("--fixed-accept-rate", action="store_true",
                        help="ssd: keep the geometric fan-out's acceptance rate at 0.7 instead of estimating it from the rounds")
    parser.add_argument("--lookup", action="store_true", help="propose the planner's reference plan too (decoding/lookup.py)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.adapter = args.adapter or None
    report = bench(args)
    print(json.dumps(report) if args.json else markdown(report))


if __name__ == "__main__":
    main()
