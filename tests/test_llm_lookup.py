"""Lookup drafting (``decoding/lookup.py``): the reference's continuation is proposed where the output leads into
it, and no reference, right or wrong, changes a greedy token in ar, sd or ssd (the draft restarts after lookup rounds).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forethought.llm_planner.decoding.engine import Engine, EngineConfig
from forethought.llm_planner.decoding.language_model import HFLanguageModel
from forethought.llm_planner.decoding.lookup import NGRAM, allowed_prefix, lookup
from forethought.llm_planner.planning.grammar import GrammarConstraint, Pattern

VOCAB = 96
PROMPT = [5, 17, 33, 2, 9]
N_NEW = 24

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tiny_llama):
    """A random tiny target, its greedy output after ``PROMPT`` and a perturbed copy as draft."""
    (_, target), (_, draft) = tiny_llama(0, vocab=VOCAB), tiny_llama(0, vocab=VOCAB, noise=0.01)
    t, d = HFLanguageModel(target), HFLanguageModel(draft)
    want = Engine(t, EngineConfig(mode="ar", lookup=False)).generate(PROMPT, N_NEW).tokens
    return t, d, want


def test_lookup_follows_the_reference_and_picks_it_up_after_a_difference():
    ref = [10, 11, 12, 13, 14, 15]
    assert lookup(ref, [], 4) == [10, 11, 12, 13]
    assert lookup(ref, [10, 11], 10) == [12, 13, 14, 15]
    assert lookup(ref, [10, 11, 99], 10) == []  # 99 occurs nowhere in the reference
    assert lookup(ref, [10, 11, 99, 13], 10) == [14, 15]  # one token differed: picked up again after it
    assert lookup(ref, ref, 10) == [] and lookup(ref, [10], 0) == []
    # Several occurrences of the suffix: the longest suffix first, then the one nearest the output's position.
    ref = [1, 2, 7, 3, 1, 2, 8, 4]
    assert lookup(ref, [5, 5, 5, 5, 1, 2], 3) == [8, 4]
    assert lookup(ref, [5, 1, 2], 3) == [7, 3, 1]
    assert lookup(ref, [9, 9, 9, 3, 1, 2], 2) == [8, 4]  # "3, 1, 2" occurs once
    assert NGRAM >= 2


def test_allowed_prefix_stops_at_the_first_token_the_grammar_forbids():
    p = Pattern()
    dfa = p.compile(p.choice(["abc", "abd"]))
    tokens = ["a", "b", "c", "d", "ab", "x"]
    g = GrammarConstraint(dfa, tokens, eos_ids=[6], vocab_size=7)
    assert allowed_prefix([0, 1, 2, 6], g, g.initial()) == [0, 1, 2, 6]
    assert allowed_prefix([4, 3, 2], g, g.initial()) == [4, 3]
    assert allowed_prefix([5, 0], g, g.initial()) == []
    assert allowed_prefix([5, 0], None, None) == [5, 0]


@pytest.mark.parametrize("mode", ["ar", "sd", "ssd"])
def test_a_right_reference_is_verified_in_one_round(models, mode):
    t, d, want = models
    engine = Engine(t, EngineConfig(mode=mode, lookahead=3, draft_process=False), draft=None if mode == "ar" else d)
    out = engine.generate(PROMPT, N_NEW, reference=want)
    assert out.tokens == want
    assert [r.kind for r in out.stats.rounds] == ["lookup"] and out.stats.target_forwards == 1
    assert out.stats.summary()["acceptance_length_lookup"] == N_NEW + 1


def edited(want: list[int], data: st.DataObject) -> list[int]:
    """``want`` with a few random substitutions, insertions and deletions, or random tokens altogether."""
    if data.draw(st.booleans(), label="random"):
        return data.draw(st.lists(st.integers(0, VOCAB - 1), max_size=30), label="noise")
    ref = list(want)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        i = data.draw(st.integers(0, len(ref)), label="at")
        op = data.draw(st.sampled_from(["sub", "ins", "del"]), label="op")
        tok = data.draw(st.integers(0, VOCAB - 1), label="token")
        if op == "ins" or i == len(ref):
            ref.insert(i, tok)
        elif op == "sub":
            ref[i] = tok
        else:
            del ref[i]
    return ref


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_reference_changes_a_greedy_token(models, data):
    t, d, want = models
    ref = edited(want, data)
    for mode in ("ar", "sd", "ssd"):
        engine = Engine(t, EngineConfig(mode=mode, lookahead=3, draft_process=False), draft=None if mode == "ar" else d)
        out = engine.generate(PROMPT, N_NEW, reference=ref)
        assert out.tokens == want, (mode, ref)
        assert sum(r.kept for r in out.stats.rounds) == N_NEW


def test_the_draft_restarts_from_the_committed_tokens_after_a_lookup_round(models):
    """A reference right for its first half: the lookup round commits tokens the draft never saw, and the draft's
    next proposals (from a restart on the committed sequence) are accepted as they are without a reference."""
    t, d, want = models
    ref = want[:12] + [(want[12] + 1) % VOCAB] * 3
    for mode in ("sd", "ssd"):
        engine = Engine(t, EngineConfig(mode=mode, lookahead=3, draft_process=False), draft=d)
        out = engine.generate(PROMPT, N_NEW, reference=ref)
        kinds = [r.kind for r in out.stats.rounds]
        assert out.tokens == want and kinds[0] == "lookup" and out.stats.rounds[0].accepted == 12
        assert any(k in ("jit", "hit") for k in kinds[1:])
        drafted = [r.accepted for r in out.stats.rounds if r.kind != "lookup"]
        assert sum(drafted) > 0  # the restarted draft's tokens were accepted: it drafts from the true prefix
