"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# `python -m pytest` from the repository root puts the root on sys.path, ahead of PYTHONPATH, where
# ROS 2's setup.bash puts its packages: the `launch/` folder would then shadow ROS's `launch`.
# The code imports that folder as `forethought.launch` (the editable install maps it), never bare.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO_ROOT]


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster than two, and much faster on a busy 2-core machine.

    Use per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- LLM planner: tiny tokenizers and models (tests/test_llm_*.py) -----------------------------------

from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers  # noqa: E402
from tokenizers.models import BPE  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}"
)
"""SmolLM2's chat markup, reduced to what the planner's prompts use."""


def _byte_bpe(corpus: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return tok


@pytest.fixture(scope="session")
def tiny_llama():
    """Factory ``tiny_llama(seed, vocab=96, hidden=64, ..., noise=0.0) -> (LlamaConfig, LlamaForCausalLM)``: a random tiny
    Llama in eval mode; ``noise > 0`` adds Gaussian noise of that std to every weight (a draft close to the seed's model)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def make(seed: int, vocab: int = 96, hidden: int = 64, intermediate: int = 128, max_positions: int = 256, noise: float = 0.0):
        cfg = LlamaConfig(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=max_positions, initializer_range=0.3, tie_word_embeddings=False,
            bos_token_id=None, eos_token_id=None, pad_token_id=None,
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg).eval()
        if noise > 0:
            g = torch.Generator().manual_seed(seed + 1)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(noise * torch.randn(p.shape, generator=g))
        return cfg, model

    return make


@pytest.fixture(scope="module")
def tokenizer():
    """A 400-token byte-level BPE (SmolLM2-style special tokens and chat template) trained on plan texts and commands."""
    from transformers import PreTrainedTokenizerFast

    from forethought.llm_planner.planning.prompts import EXAMPLES
    from forethought.llm_planner.planning.schema import REFUSALS, plan_to_text, refusal

    plans = [
        {"steps": [{"skill": "push", "object": "red_block", "target": "left"}]},
        {"steps": [{"skill": "push", "object": "blue_block", "target": "green_block"}, {"skill": "reach", "target": [0.12, -0.27]}]},
        {"steps": [{"skill": "reach", "target": "top_right"}, {"skill": "reach", "target": [-0.2, 0.05]}]},
    ] + [refusal(r) for r in REFUSALS]
    corpus = [plan_to_text(p) for p in plans] * 20 + [c for c, _ in EXAMPLES] * 5
    return PreTrainedTokenizerFast(tokenizer_object=_byte_bpe(corpus, 400), eos_token="<|im_end|>", bos_token="<|im_start|>",
                                   chat_template=CHAT_TEMPLATE)


@pytest.fixture(scope="module")
def planners(tokenizer, tiny_llama):
    """``{"ar", "sd", "ssd"}`` planners over one random tiny target (and a perturbed copy as draft), in-process."""
    from forethought.llm_planner.decoding.engine import Engine, EngineConfig
    from forethought.llm_planner.decoding.language_model import HFLanguageModel
    from forethought.llm_planner.planning.planner import Planner

    kw = dict(vocab=len(tokenizer), hidden=48, intermediate=96, max_positions=2048)
    _, target = tiny_llama(0, **kw)
    _, draft = tiny_llama(0, **kw)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(0.02 * torch.randn_like(p))
    t, d = HFLanguageModel(target), HFLanguageModel(draft)
    out = {}
    for mode in ("ar", "sd", "ssd"):
        engine = Engine(t, EngineConfig(mode=mode, lookahead=3, draft_process=False), draft=None if mode == "ar" else d)
        out[mode] = Planner(tokenizer, engine, max_new_tokens=120)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """A random one-layer Llama with a 320-token BPE and a chat template, saved as a local HF directory."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny")
    tok = _byte_bpe(['{"steps": [{"skill": "push", "object": "red_block", "target": "left"}]}'] * 10, 320)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", chat_template=CHAT_TEMPLATE)
    fast.save_pretrained(path)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=2048, initializer_range=0.3, eos_token_id=fast.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return str(path)
