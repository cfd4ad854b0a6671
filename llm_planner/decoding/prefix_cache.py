"""Prompt-prefix KV reuse: keep the KV of the last prompt and re-run only what the next prompt changes.

Planner prompts share a fixed head (chat markup, system line, scene), so each request but the
first runs only the command's tokens through the model. The kept KV is a snapshot: a request works
on its own copy, so decoding never touches it. Positions are unchanged (the reused KV sits at the
same positions it was computed at), so with a deterministic kernel the logits equal a fresh prefill's
up to the summation order of a chunked prefill; ``tests/test_llm_prefix_cache.py`` checks that plans
are token-identical.
"""

from __future__ import annotations

from typing import Any

import torch

from .language_model import LanguageModel


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of ``a`` and ``b``."""
    n, limit = 0, min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


class PrefixCache:
    """The KV of the last prefilled token sequence of one model.

    ``prefill(tokens)`` returns a fresh KV cache holding ``tokens`` (running only the tokens past the
    longest prefix shared with the previous call) and the number of tokens it ran. ``reuse(tokens)`` and
    ``keep(kv, tokens)`` are its two halves, for a caller that runs the rest of ``tokens`` in a forward of
    its own (the engine's first round runs them with its proposal).
    ``enabled=False`` prefills from scratch every time (the baseline).
    """

    def __init__(self, model: LanguageModel, enabled: bool = True) -> None:
        self.model = model
        self.enabled = enabled
        self.tokens: list[int] = []
        self.kv: Any = None

    def prefill(self, tokens: list[int]) -> tuple[Any, int]:
        kv, n = self.reuse(tokens)
        if n < len(tokens):
            self.model.forward(kv, torch.tensor([tokens[n:]]))
        self.keep(kv, tokens)
        return kv, len(tokens) - n

    def reuse(self, tokens: list[int]) -> tuple[Any, int]:
        """A fresh KV cache holding the longest prefix of ``tokens`` kept from before, and that prefix's length."""
        n = common_prefix(self.tokens, tokens) if self.enabled and self.kv is not None else 0
        if not n:
            return self.model.new_kv_cache(), 0
        self.model.crop(self.kv, n)  # the snapshot keeps only the shared prefix ...
        del self.tokens[n:]
        return self.model.expand(self.kv, 1), n  # ... and the request works on a copy of it

    def keep(self, kv: Any, tokens: list[int]) -> None:
        """Keep a copy of the first ``len(tokens)`` positions of ``kv``, which hold ``tokens``, for the next call."""
        if self.enabled and tokens:  # (an empty KV cache has nothing to copy, and nothing worth keeping)
            copy = self.model.expand(kv, 1)
            self.model.crop(copy, len(tokens))
            self.tokens, self.kv = list(tokens), copy

    def clear(self) -> None:
        self.tokens, self.kv = [], None
