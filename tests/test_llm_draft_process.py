"""The SSD draft in its own process: exact output, death mid-generation, timeouts, shutdown."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from forethought.llm_planner.decoding.draft_process import ProcessSpeculator
from forethought.llm_planner.decoding.engine import Engine, EngineConfig
from forethought.llm_planner.decoding.language_model import HFLanguageModel, ModelSpec


@pytest.fixture(scope="module")
def models(tiny_llama):
    cfg, target = tiny_llama(0)
    state = {k: v + 0.01 * torch.randn_like(v) for k, v in target.state_dict().items()}
    return target, ModelSpec(config=cfg, state_dict=state)


def greedy_ref(target, prompt, n):
    out = target.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


def test_process_ssd_is_exact_and_overlaps(models):
    target, spec = models
    prompt = [5, 17, 33, 2, 9]
    ref = greedy_ref(target, prompt, 40)
    with Engine(HFLanguageModel(target), EngineConfig(mode="ssd", lookahead=3, fanout="uniform"), draft=spec) as engine:
        for _ in range(2):  # the process serves several calls
            out = engine.generate(prompt, 40)
            assert out.tokens == ref
            s = out.stats.summary()
            assert s["cache_hits"] > 0 and s["cache_hits"] + s["cache_misses"] == s["rounds"]
            assert s["draft_slack_ms"] is not None and not s["warnings"]
        proc = engine.speculator.proc
    assert not proc.is_alive()


def test_draft_killed_mid_generation_finishes_exactly_with_warning(models, monkeypatch):
    target, spec = models
    prompt = [40, 3]
    ref = greedy_ref(target, prompt, 40)
    engine = Engine(HFLanguageModel(target), EngineConfig(mode="ssd", lookahead=3, timeout_s=20), draft=spec)
    calls = {"n": 0}
    propose = ProcessSpeculator.propose

    def kill_on_third(self, request):
        calls["n"] += 1
        if calls["n"] == 3:
            self.proc.kill()
            self.proc.join(5)
        return propose(self, request)

    monkeypatch.setattr(ProcessSpeculator, "propose", kill_on_third)
    with pytest.warns(RuntimeWarning, match="finishing in ar mode"):
        out = engine.generate(prompt, 40)
    assert out.tokens == ref
    assert out.stats.warnings and out.stats.rounds[2].kind == "ar"
    assert engine.generate(prompt, 10).tokens == ref[:10]  # later calls decode in ar mode
    engine.close()


def test_stalled_draft_times_out_and_shutdown_is_bounded(models):
    target, spec = models
    prompt = [7, 7, 1]
    ref = greedy_ref(target, prompt, 12)
    engine = Engine(HFLanguageModel(target), EngineConfig(mode="ssd", lookahead=3, timeout_s=1.0), draft=spec)
    pid = engine.speculator.proc.pid
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only a receive timeout can notice
    try:
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning, match="sent nothing within"):
            out = engine.generate(prompt, 12)
        assert out.tokens == ref
        engine.close()
        assert time.monotonic() - t0 < 15
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_vocabulary_mismatch_is_refused(tiny_llama):
    _, target = tiny_llama(0, vocab=96)
    _, other = tiny_llama(1, vocab=64)
    with pytest.raises(ValueError, match="share a vocabulary"):
        Engine(HFLanguageModel(target), EngineConfig(mode="sd"), draft=HFLanguageModel(other))


def test_the_process_keeps_only_the_most_recent_constraints_and_stays_exact(tokenizer, tiny_llama):
    """A planner sends a new grammar for every command it decodes a second time: the parent and the child keep
    only ``KEPT_CONSTRAINTS`` of them, and decoding under each stays the target's constrained greedy."""
    from forethought.llm_planner.decoding.draft_process import KEPT_CONSTRAINTS
    from forethought.llm_planner.planning.grammar import GrammarConstraint, token_strings
    from forethought.llm_planner.planning.schema import plan_dfa

    cfg, target = tiny_llama(0, vocab=len(tokenizer))
    spec = ModelSpec(config=cfg, state_dict={k: v + 0.01 * torch.randn_like(v) for k, v in target.state_dict().items()})
    tokens, eos = token_strings(tokenizer), {tokenizer.eos_token_id}
    grammars = [GrammarConstraint(plan_dfa(targets=(region,)), tokens, eos, len(tokenizer))
                for region in ("left", "right", "center") * ((KEPT_CONSTRAINTS + 3) // 3 + 1)]
    prompt = [5, 17, 33, 2, 9]
    ar = Engine(HFLanguageModel(target), EngineConfig(mode="ar"))
    with Engine(HFLanguageModel(target), EngineConfig(mode="ssd", lookahead=3), draft=spec) as engine:
        for g in grammars + grammars[-2:]:  # the last two again: still known to the child
            assert engine.generate(prompt, 24, eos_ids=eos, constraint=g).tokens == ar.generate(prompt, 24, eos_ids=eos, constraint=g).tokens
            assert len(engine.speculator._sent) <= KEPT_CONSTRAINTS
        assert len(engine.speculator._sent) == KEPT_CONSTRAINTS
        assert not engine.generate(prompt, 24, eos_ids=eos, constraint=grammars[0]).stats.warnings  # forgotten, then sent again
