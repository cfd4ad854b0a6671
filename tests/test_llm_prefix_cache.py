"""Prompt-prefix KV reuse (``decoding/prefix_cache.py``) on random tiny models: same KV, same tokens, less prefill.

The same check with the shipped SmolLM2 pair under the plan grammar is in ``test_llm_default_path.py``.
"""

from __future__ import annotations

import pytest
import torch

from forethought.llm_planner.decoding.engine import Engine, EngineConfig
from forethought.llm_planner.decoding.language_model import HFLanguageModel, ModelSpec
from forethought.llm_planner.decoding.prefix_cache import PrefixCache, common_prefix

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 96
HEAD = [3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26, 43, 38, 32, 79, 50, 28, 84, 19]  # the "system prompt"
PROMPTS = [HEAD + [5, 17, 33], HEAD + [40], HEAD[:12] + [7, 7, 1, 80], HEAD + [5, 17, 2, 9, 11], [60, 61], [7], HEAD + [1]]


@pytest.fixture(scope="module")
def pair(tiny_llama):
    cfg, target = tiny_llama(0, vocab=VOCAB)
    return cfg, target, tiny_llama(0, vocab=VOCAB, noise=0.01)[1]


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2


def test_prefill_reuses_the_shared_prefix_and_the_snapshot_survives_decoding(pair):
    _, target, _ = pair
    lm = HFLanguageModel(target)
    cache = PrefixCache(lm)
    for i, tokens in enumerate(PROMPTS):
        expected_ran = len(tokens) - (common_prefix(PROMPTS[i - 1], tokens) if i else 0)
        kv, ran = cache.prefill(tokens)
        assert ran == expected_ran and lm.kv_length(kv) == len(tokens)
        fresh = lm.new_kv_cache()
        lm.forward(fresh, torch.tensor([tokens]))
        for a, b in zip(kv.layers, fresh.layers):
            torch.testing.assert_close(a.keys, b.keys, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(a.values, b.values, rtol=1e-5, atol=1e-5)
        lm.forward(kv, torch.tensor([[1, 2, 3]]))  # decoding on the returned KV ...
        lm.crop(kv, 2)
        assert cache.tokens == tokens and lm.kv_length(cache.kv) == len(tokens)  # ... leaves the snapshot alone
    off = PrefixCache(lm, enabled=False)
    assert [off.prefill(t)[1] for t in PROMPTS[:2]] == [len(PROMPTS[0]), len(PROMPTS[1])]


def test_a_prompt_inside_the_kept_one_keeps_the_snapshot_consistent(pair):
    """``reuse`` of a strict prefix of the kept tokens (nothing left to run, so no ``keep``), then a longer prompt:
    the snapshot and its tokens shrink together, and the next request reuses only what the KV still holds."""
    _, target, _ = pair
    lm = HFLanguageModel(target)
    cache = PrefixCache(lm)
    long, short = [4, 8, 15, 16, 23, 42], [4, 8, 15]
    cache.prefill(long)
    kv, n = cache.reuse(short)
    assert n == 3 and lm.kv_length(kv) == 3 and cache.tokens == short and lm.kv_length(cache.kv) == 3
    kv, ran = cache.prefill(long + [7])
    assert ran == 4 and lm.kv_length(kv) == 7 and cache.tokens == long + [7]


@pytest.mark.parametrize("mode,process", [("ar", False), ("sd", False), ("ssd", False), ("ssd", True)])
def test_reused_prefix_gives_the_tokens_of_a_fresh_prefill(pair, mode, process):
    cfg, target, draft = pair
    draft_arg = None
    if mode != "ar":
        draft_arg = ModelSpec(config=cfg, state_dict=draft.state_dict()) if process else HFLanguageModel(draft)
    outs = {}
    for reuse in (False, True):
        config = EngineConfig(mode=mode, lookahead=3, draft_process=process, prefix_cache=reuse)
        with Engine(HFLanguageModel(target), config, draft=draft_arg) as engine:
            gens = [engine.generate(p, 24) for p in PROMPTS]
        outs[reuse] = [g.tokens for g in gens]
        ran = [g.stats.prefill_tokens for g in gens]
        if reuse:
            assert ran == [len(PROMPTS[0]) - 1] + [len(p) - 1 - common_prefix(q[:-1], p[:-1]) for q, p in zip(PROMPTS, PROMPTS[1:])]
        else:
            assert ran == [len(p) - 1 for p in PROMPTS]
    assert outs[True] == outs[False]
