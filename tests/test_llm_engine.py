"""Exactness and accounting of the AR / SD / SSD decoding engine on random-init tiny models.

Exactness does not need trained models: a random tiny Llama (peaked logits through a large init
scale) is the target, a noisy copy of it the draft, so that proposals are partly accepted and
the speculation cache partly hits.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from forethought.llm_planner.decoding.engine import Engine, EngineConfig
from forethought.llm_planner.decoding.fanout import AcceptanceRate, fanout, resolve_fanout
from forethought.llm_planner.decoding.language_model import HFLanguageModel, LanguageModel
from forethought.llm_planner.decoding.sampling import saguaro_probs
from forethought.llm_planner.decoding.speculate_types import SpecRequest
from forethought.llm_planner.decoding.speculator import DraftSpeculator, SpeculatorConfig
from forethought.llm_planner.decoding.verify import verify

VOCAB = 96
PROMPTS = [[5, 17, 33, 2, 9], [40], [7, 7, 7, 1, 80, 3, 61, 22]]


def noisy_copy(model: LlamaForCausalLM, cfg: LlamaConfig, noise: float, seed: int) -> LlamaForCausalLM:
    copy = LlamaForCausalLM(cfg).eval()
    copy.load_state_dict(model.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g))
    return copy


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(tiny_llama):
    cfg, target = tiny_llama(0, vocab=VOCAB)
    draft = noisy_copy(target, cfg, 0.01, seed=1)
    return cfg, target, draft


def hf_greedy(model: LlamaForCausalLM, prompt: list[int], n: int, eos: int | None = None) -> list[int]:
    out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, eos_token_id=eos, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


# -- pure pieces -----------------------------------------------------------------------------------


def test_fanout_geometric_sums_to_budget_and_decreases():
    for lookahead, a, r, b in [(3, 0.7, 1.0, 12), (7, 0.8, 0.5, 24), (1, 0.5, 2.0, 5), (4, 0.9, 1.0, 0)]:
        f = fanout(lookahead, a, r, b)
        assert len(f) == lookahead + 1 and sum(f) == b and min(f) >= 0
        assert all(f[i] >= f[i + 1] for i in range(lookahead - 1)), f
    # The last depth is boosted by (1 - a)^(-1/(1+r)): with a = 0.9 it exceeds depth K-1.
    f = fanout(4, 0.9, 1.0, 40)
    assert f[4] > f[3]
    assert resolve_fanout("zero", 3, 12) == [0, 0, 0, 0]
    assert resolve_fanout("uniform", 3, 12) == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="acceptance rate"):
        fanout(3, 1.0, 1.0, 10)
    with pytest.raises(ValueError, match="K\\+1"):
        resolve_fanout([1, 2], 3, 12)


@pytest.mark.parametrize("a", [0.3, 0.6, 0.9])
def test_acceptance_rate_converges_on_a_synthetic_truncated_geometric_sequence(a):
    K, g = 4, torch.Generator().manual_seed(0)
    est, tail = AcceptanceRate(prior=0.7), []
    for i in range(3000):
        k = 0
        while k < K and float(torch.rand(1, generator=g)) < a:  # each draft token accepted with probability a
            k += 1
        est.update(k, K)
        if i >= 1000:
            tail.append(est.rate)
    assert abs(sum(tail) / len(tail) - a) < 0.02  # unbiased: E[k] / (E[k] + P(k < K)) = a exactly
    assert abs(est.rate - a) < 0.1


def test_acceptance_rate_without_decay_is_the_censored_geometric_mle():
    est = AcceptanceRate(prior=0.5, prior_weight=2.0, decay=1.0)
    for k in (4, 2, 0, 4, 3):
        est.update(k, 4)
    assert est.rate == pytest.approx((1 + 13) / (1 + 13 + 1 + 3))
    with pytest.raises(ValueError, match="accepted"):
        est.update(5, 4)


def test_adaptive_fanout_moves_with_the_acceptance_and_output_stays_exact(pair):
    _, target, draft = pair
    ar = Engine(HFLanguageModel(target), EngineConfig(mode="ar"))
    for adapt in (False, True):
        config = EngineConfig(mode="ssd", lookahead=3, draft_process=False, accept_rate=0.2, adapt_accept_rate=adapt)
        engine = Engine(HFLanguageModel(target), config, draft=HFLanguageModel(draft))
        start = engine.speculator.fanout
        for p in PROMPTS:
            out = engine.generate(p, 40)
            assert out.tokens == ar.generate(p, 40).tokens
        rounds = [r.accepted for r in out.stats.rounds]
        assert (engine.speculator.fanout != start) == adapt, (start, engine.speculator.fanout, rounds)
        if adapt:  # the draft is close to the target: the estimate rises from its 0.2 prior
            assert engine.speculator.acceptance.rate > 0.5
            assert engine.speculator.fanout == tuple(fanout(3, engine.speculator.acceptance.rate, 1.0, 12))


def test_saguaro_probs_scales_top_f():
    z = torch.tensor([3.0, 2.0, 1.0, 0.0])
    plain = torch.softmax(z, -1)
    assert torch.allclose(saguaro_probs(z, 2, 1.0, 1.0), plain)
    s = saguaro_probs(z, 2, 0.5, 1.0)
    assert torch.isclose(s.sum(), torch.tensor(1.0))
    ratio = s / plain
    assert torch.allclose(ratio[:2] / ratio[2:].mean(), torch.tensor([0.5, 0.5]))
    assert torch.isclose(ratio[2], ratio[3])


def test_verify_greedy_prefix_and_bonus():
    p = torch.full((4, 6), -1.0)
    for i, t in enumerate([2, 3, 1, 5]):
        p[i, t] = 1.0
    assert verify(p, [2, 3, 1], None, greedy=True).key == (3, 5)
    assert verify(p, [2, 4, 1], None, greedy=True).key == (1, 3)
    assert verify(p, [0, 3, 1], None, greedy=True).key == (0, 2)


@pytest.mark.parametrize("fallback", [False, True])
def test_verify_one_step_preserves_target_distribution(fallback):
    """First emitted token ~ p exactly, for a sampled proposal and for a fallback (q = one-hot)."""
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(2, 6, generator=g) * 1.5, -1)
    q = torch.softmax(torch.randn(1, 6, generator=g) * 1.5, -1)
    n = 20000
    counts = torch.zeros(6)
    for _ in range(n):
        # A fallback proposal comes from a distribution the verifier does not know (here q).
        d = int(torch.multinomial(q[0], 1, generator=g))
        res = verify(p, [d], None if fallback else q, greedy=False, generator=g)
        counts[d if res.accepted == 1 else res.bonus] += 1
    tv = 0.5 * (counts / n - p[0]).abs().sum()
    assert tv < 0.02, f"TV {tv:.4f}"


# -- greedy exactness ------------------------------------------------------------------------------


@pytest.mark.parametrize("lookahead", [1, 3, 7])
@pytest.mark.parametrize("fan", ["uniform", "geometric", "zero"])
@pytest.mark.parametrize("backup", ["jit", "fast"])
def test_greedy_ssd_equals_sd_ar_and_hf(pair, lookahead, fan, backup):
    cfg, target, draft = pair
    t, d = HFLanguageModel(target), HFLanguageModel(draft)
    for prompt in PROMPTS[:2]:
        ref = hf_greedy(target, prompt, 24)
        ssd = Engine(t, EngineConfig(mode="ssd", lookahead=lookahead, fanout=fan, backup=backup, draft_process=False), draft=d).generate(prompt, 24)
        assert ssd.tokens == ref
        if fan == "uniform" and backup == "jit":
            assert Engine(t, EngineConfig(mode="sd", lookahead=lookahead), draft=d).generate(prompt, 24).tokens == ref
            assert Engine(t, EngineConfig(mode="ar")).generate(prompt, 24).tokens == ref
        hits = sum(r.kind == "hit" for r in ssd.stats.rounds)
        if fan == "zero":
            assert hits == 0
        elif lookahead <= 3 and backup == "jit":
            assert hits > 0, "a draft this close to the target should hit sometimes"


@pytest.mark.parametrize("mode", ["sd", "ssd"])
def test_eos_and_length_limit_inside_accepted_block(pair, mode):
    cfg, target, _ = pair
    t = HFLanguageModel(target)
    copy = HFLanguageModel(noisy_copy(target, cfg, 0.0, seed=0))  # draft == target: every round accepts K
    prompt, lookahead = PROMPTS[0], 3
    ref = hf_greedy(target, prompt, 20)
    eos = next(tok for i, tok in enumerate(ref) if i % (lookahead + 1) not in (0, lookahead) and tok not in ref[:i])
    stop = ref.index(eos)
    engine = Engine(t, EngineConfig(mode=mode, lookahead=lookahead, draft_process=False), draft=copy)
    out = engine.generate(prompt, 20, eos_ids={eos})
    assert out.tokens == ref[: stop + 1] == hf_greedy(target, prompt, 20, eos=eos)
    assert out.stats.rounds[-1].kept < lookahead + 1  # the stop fell inside an accepted block
    out = engine.generate(prompt, 6)
    assert out.tokens == ref[:6] and out.stats.rounds[-1].accepted == lookahead and out.stats.rounds[-1].kept == 2


def test_forced_regimes_and_accounting(pair):
    cfg, target, draft = pair
    t = HFLanguageModel(target)
    copy = HFLanguageModel(noisy_copy(target, cfg, 0.0, seed=0))
    prompt, lookahead = PROMPTS[2], 3
    out = Engine(t, EngineConfig(mode="ssd", lookahead=lookahead, fanout="uniform", draft_process=False), draft=copy).generate(prompt, 30)
    rounds = out.stats.rounds
    assert rounds[0].kind == "jit" and all(r.kind == "hit" and r.accepted == lookahead for r in rounds[1:])
    for cfg_kw in [dict(fanout="geometric"), dict(fanout="zero"), dict(backup="fast")]:
        out = Engine(t, EngineConfig(mode="ssd", lookahead=lookahead, draft_process=False, **cfg_kw), draft=HFLanguageModel(draft)).generate(prompt, 30)
        s, rounds = out.stats.summary(), out.stats.rounds
        assert s["cache_hits"] + s["cache_misses"] == s["rounds"] == len(rounds)
        assert rounds[0].kind != "hit"
        assert all(r.kept == r.accepted + 1 for r in rounds[:-1]) and 1 <= rounds[-1].kept <= rounds[-1].accepted + 1
        assert sum(r.kept for r in rounds) == len(out.tokens) == s["new_tokens"] == 30
        assert s["target_forwards"] == s["rounds"]  # the prompt runs in the first round's forward
        assert s["acceptance_length"] == pytest.approx(sum(r.accepted + 1 for r in rounds) / len(rounds))


def test_speculation_cache_hit_equals_fresh_draft_from_true_prefix(pair):
    """Every pre-drafted branch equals a just-in-time draft from that branch's true prefix."""
    _, _, draft = pair
    d = HFLanguageModel(draft)
    lookahead, prompt = 3, PROMPTS[0]
    spec = DraftSpeculator(d, SpeculatorConfig(lookahead=lookahead, fanout=(3, 2, 2, 3)))
    fresh = DraftSpeculator(d, SpeculatorConfig(lookahead=lookahead, fanout=(0,) * (lookahead + 1), predraft=False))
    spec.start(prompt, 0, None)
    committed, pending = list(prompt[:-1]), prompt[-1]
    prop = spec.propose(SpecRequest(0, 0, pending, len(committed), 0.0))
    checked = 0
    for r in range(1, 4):
        spec.predraft()
        keys = sorted(spec.spec_cache._branches)
        assert len(keys) == 10
        for _, j, bonus in keys:
            fresh.start(committed + [pending] + prop.tokens[:j] + [bonus], 0, None)
            expect = fresh.propose(SpecRequest(0, 0, bonus, len(committed) + 1 + j, 0.0)).tokens
            assert spec.spec_cache.get(spec.seq_id, j, bonus).tokens == expect
            checked += 1
        _, j, bonus = keys[r % len(keys)]  # take a predicted outcome: the next round is a hit
        committed += [pending] + prop.tokens[:j]
        pending = bonus
        prop = spec.propose(SpecRequest(r, j, bonus, len(committed), 0.0))
        assert prop.kind == "hit"
    assert checked == 30


# -- sampling: the exact 3-token distribution ------------------------------------------------------


class TrigramLM(LanguageModel):
    """A toy LM whose logits depend on the last two visible tokens: ``table[a, b] -> logits[V]``."""

    vocab_size = 8

    def __init__(self, seed: int, scale: float = 1.5) -> None:
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(self.vocab_size + 1, self.vocab_size, self.vocab_size, generator=g) * scale

    def new_kv_cache(self):
        return {"tokens": torch.zeros(1, 0, dtype=torch.long)}

    def forward(self, kv, tokens, positions=None, attention_mask=None):
        old = kv["tokens"].expand(tokens.shape[0], -1)
        full = torch.cat([old, tokens], dim=1)  # [B, S + T]
        vis = torch.ones_like(full, dtype=torch.bool)
        if attention_mask is not None:
            vis[:, : old.shape[1]] = attention_mask[:, : old.shape[1]].bool()
        idx = torch.where(vis, torch.arange(1, full.shape[1] + 1), 0)  # 1-based index of visible tokens
        last = torch.cummax(idx, dim=1).values  # latest visible index at or before each position
        new = torch.arange(old.shape[1], full.shape[1])
        prev_idx = last[:, new - 1] if old.shape[1] > 0 else torch.zeros(tokens.shape[0], 1, dtype=torch.long)
        if old.shape[1] == 0:
            prev_idx = torch.cat([torch.zeros_like(tokens[:, :1]), last[:, new[1:] - 1]], dim=1)
        padded = torch.cat([torch.full_like(full[:, :1], self.vocab_size), full], dim=1)  # index 0: start marker
        prev = torch.gather(padded, 1, prev_idx)
        kv["tokens"] = full
        return self.table[prev, tokens]

    def crop(self, kv, length):
        kv["tokens"] = kv["tokens"][:, :length]

    def kv_length(self, kv):
        return kv["tokens"].shape[1]

    def expand(self, kv, n):
        return {"tokens": kv["tokens"].expand(n, -1).clone()}


def exact_three_token_distribution(model: TrigramLM, prompt: list[int], temperature: float) -> dict[tuple, float]:
    out = {}
    for seq in itertools.product(range(model.vocab_size), repeat=3):
        ctx, prob = [model.vocab_size] + prompt, 1.0
        for tok in seq:
            prob *= float(torch.softmax(model.table[ctx[-2], ctx[-1]] / temperature, -1)[tok])
            ctx.append(tok)
        out[seq] = prob
    return out


def chi_square_p_value_ok(counts: dict, expected: dict, n: int) -> tuple[float, float]:
    """(chi2, 0.001 quantile threshold) over cells pooled to expected count >= 5 (Wilson-Hilferty)."""
    cells = sorted(expected, key=lambda c: -expected[c])
    chi2, pool_e, pool_o, dof = 0.0, 0.0, 0.0, -1
    for c in cells:
        e, o = expected[c] * n, counts.get(c, 0)
        if e >= 5:
            chi2 += (o - e) ** 2 / e
            dof += 1
        else:
            pool_e, pool_o = pool_e + e, pool_o + o
    if pool_e > 0:
        chi2 += (pool_o - pool_e) ** 2 / max(pool_e, 1e-9)
        dof += 1
    z = 3.09  # one-sided 0.999
    threshold = dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
    return chi2, threshold


@pytest.mark.parametrize(
    "kw",
    [
        dict(mode="ssd", backup="jit", saguaro_c=0.5, draft_temperature=1.3, fanout="uniform", branch_budget=6),
        dict(mode="ssd", backup="fast", fanout="geometric", branch_budget=6),
        dict(mode="sd", draft_temperature=0.7),
        dict(mode="sd", draft_temperature=0.7, reference=(2, 5, 1, 2)),  # lookup rounds: fallback proposals
        dict(mode="ar", reference=(4, 4, 4)),
    ],
)
def test_sampling_matches_exact_three_token_distribution(kw):
    kw = dict(kw)
    reference = kw.pop("reference", ())
    target, draft = TrigramLM(0), TrigramLM(1, scale=1.0)
    draft.table = 0.6 * draft.table + target.table  # related, not equal: partial acceptance and hits
    prompt, temperature, n = [3, 5], 0.9, 5000
    expected = exact_three_token_distribution(target, prompt, temperature)
    engine = Engine(target, EngineConfig(lookahead=2, temperature=temperature, draft_process=False, **kw),
                    draft=None if kw["mode"] == "ar" else draft)
    counts: dict[tuple, int] = {}
    hits = lookups = 0
    for seed in range(n):
        out = engine.generate(prompt, 3, seed=seed, reference=reference)
        counts[tuple(out.tokens)] = counts.get(tuple(out.tokens), 0) + 1
        hits += sum(r.kind == "hit" for r in out.stats.rounds)
        lookups += sum(r.kind == "lookup" for r in out.stats.rounds)
    assert (lookups >= n) == bool(reference), "a reference is proposed in every call's first round"
    tv = 0.5 * sum(abs(counts.get(c, 0) / n - e) for c, e in expected.items())
    chi2, threshold = chi_square_p_value_ok(counts, expected, n)
    assert chi2 < threshold, f"chi2 {chi2:.1f} >= {threshold:.1f} (TV {tv:.3f})"
    if kw["mode"] == "ssd" and kw["backup"] == "jit":
        assert hits > n // 10, "the sampling test must exercise speculation-cache hits"
