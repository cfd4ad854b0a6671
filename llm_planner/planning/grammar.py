"""Grammar-constrained decoding: a character automaton over a finite JSON language, lifted to tokens.

The plan language is regular (a bounded number of steps over closed sets of names), so it
compiles to a small NFA (``Pattern``), determinised lazily. ``GrammarConstraint`` walks a trie
of every token's text from a DFA state to find the tokens whose whole text keeps the automaton
alive: that set (plus EOS in accepting states) is the mask. Masks are cached per DFA state, so
after warm-up a position costs one dict lookup. Any tokenisation of a valid string is allowed,
not only the canonical one.
"""

from __future__ import annotations

from typing import Any, Hashable, Iterable

import torch

from ..decoding.speculate_types import TokenConstraint

DEAD = -1


class Pattern:
    """A Thompson NFA over characters: build with ``lit``, ``seq``, ``alt``; ``compile`` to a ``Dfa``."""

    def __init__(self) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[dict[str, list[int]]] = []

    def _node(self) -> int:
        self.eps.append([])
        self.edges.append({})
        return len(self.eps) - 1

    def lit(self, text: str) -> tuple[int, int]:
        """A fragment ``(start, end)`` matching exactly ``text``."""
        start = cur = self._node()
        for ch in text:
            nxt = self._node()
            self.edges[cur].setdefault(ch, []).append(nxt)
            cur = nxt
        return start, cur

    def seq(self, *parts: tuple[int, int]) -> tuple[int, int]:
        """Concatenation of fragments."""
        for (_, a_end), (b_start, _) in zip(parts, parts[1:]):
            self.eps[a_end].append(b_start)
        return parts[0][0], parts[-1][1]

    def alt(self, parts: Iterable[tuple[int, int]]) -> tuple[int, int]:
        """Union of fragments."""
        start, end = self._node(), self._node()
        for s, e in parts:
            self.eps[start].append(s)
            self.eps[e].append(end)
        return start, end

    def choice(self, words: Iterable[str]) -> tuple[int, int]:
        """Union of literals."""
        return self.alt(self.lit(w) for w in words)

    def compile(self, fragment: tuple[int, int]) -> "Dfa":
        return Dfa(self, fragment)


class Dfa:
    """Lazy subset construction of an NFA fragment ``(start, final)``: a ``Pattern``, or any object whose
    ``eps[node]`` and ``edges[node]`` read like a ``Pattern``'s (``schema``'s plan NFA makes its nodes on demand).
    States are ints; ``DEAD`` is -1."""

    def __init__(self, nfa: Any, fragment: tuple[Hashable, Hashable]) -> None:
        self.nfa = nfa
        self.final = fragment[1]
        self.sets: list[frozenset[int]] = []
        self.ids: dict[frozenset[int], int] = {}
        self.trans: dict[tuple[int, str], int] = {}
        self.start = self._intern(self._closure({fragment[0]}))

    def _closure(self, nodes: set[Hashable]) -> frozenset[Hashable]:
        stack, seen = list(nodes), set(nodes)
        while stack:
            for m in self.nfa.eps[stack.pop()]:
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        return frozenset(seen)

    def _intern(self, nodes: frozenset[Hashable]) -> int:
        if not nodes:
            return DEAD
        if nodes not in self.ids:
            self.ids[nodes] = len(self.sets)
            self.sets.append(nodes)
        return self.ids[nodes]

    def step(self, state: int, ch: str) -> int:
        """The state after character ``ch`` (``DEAD`` when not allowed)."""
        if state == DEAD:
            return DEAD
        key = (state, ch)
        if key not in self.trans:
            nxt = {m for n in self.sets[state] for m in self.nfa.edges[n].get(ch, ())}
            self.trans[key] = self._intern(self._closure(nxt)) if nxt else DEAD
        return self.trans[key]

    def walk(self, state: int, text: str) -> int:
        for ch in text:
            state = self.step(state, ch)
            if state == DEAD:
                break
        return state

    def accepts(self, state: int) -> bool:
        return state != DEAD and self.final in self.sets[state]

    def matches(self, text: str) -> bool:
        return self.accepts(self.walk(self.start, text))


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet: printable bytes map to themselves, the rest to code points from 256 on."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def token_strings(tokenizer: Any) -> list[str | None]:
    """The text of every token id (``None`` for special tokens and ones that are not whole UTF-8).

    Byte-level BPE vocabularies (GPT-2 style, e.g. SmolLM2) map through the byte alphabet;
    SentencePiece ones turn ``▁`` into a space; others fall back to ``decode([id])``.
    """
    vocab = tokenizer.get_vocab()
    size = max(vocab.values()) + 1
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    out: list[str | None] = [None] * size
    byte_level = any(t.startswith("Ġ") for t in vocab)
    if byte_level:
        inverse = {c: b for b, c in _bytes_to_unicode().items()}
    for text, i in vocab.items():
        if i in special:
            continue
        if byte_level:
            try:
                out[i] = bytes(inverse[c] for c in text).decode("utf-8")
            except (KeyError, UnicodeDecodeError):
                out[i] = None
        elif "▁" in text:
            out[i] = text.replace("▁", " ")
        else:
            out[i] = tokenizer.decode([i])
    return out


class GrammarConstraint(TokenConstraint):
    """Token mask from a ``Dfa`` over the texts of a vocabulary (see module docstring).

    States are DFA state ids, plus ``DONE`` after an EOS token. Picklable: the token trie and the
    mask cache are rebuilt lazily in each process.
    """

    DONE = -2

    def __init__(self, dfa: Dfa, tokens: list[str | None], eos_ids: Iterable[int], vocab_size: int | None = None) -> None:
        self.dfa = dfa
        self.tokens = tokens
        self.eos_ids = sorted(set(eos_ids))
        self.vocab_size = vocab_size or len(tokens)
        if self.vocab_size < len(tokens):
            raise ValueError(f"vocab_size {self.vocab_size} is smaller than the tokenizer's {len(tokens)} tokens")
        self._reset_caches()

    def _reset_caches(self) -> None:
        self._trie: dict | None = None
        self._masks: dict[int, torch.Tensor] = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_trie"], state["_masks"] = None, {}
        return state

    def _build_trie(self) -> dict:
        root: dict = {}
        for i, text in enumerate(self.tokens):
            if not text:
                continue
            node = root
            for ch in text:
                node = node.setdefault(ch, {})
            node.setdefault(None, []).append(i)  # key None: ids whose text ends here
        return root

    def initial(self) -> Hashable:
        return self.dfa.start

    def advance(self, state: Hashable, token: int) -> Hashable:
        if state in (DEAD, self.DONE):
            return DEAD
        if token in self.eos_ids:
            return self.DONE if self.dfa.accepts(state) else DEAD
        text = self.tokens[token] if 0 <= token < len(self.tokens) else None
        return self.dfa.walk(state, text) if text else DEAD

    def mask(self, state: Hashable) -> torch.Tensor | None:
        if state == DEAD or state == self.DONE:
            return None
        if state not in self._masks:
            if self._trie is None:
                self._trie = self._build_trie()
            allowed = torch.zeros(self.vocab_size, dtype=torch.bool)
            stack = [(self._trie, state)]
            while stack:
                node, s = stack.pop()
                for ch, child in node.items():
                    if ch is None:
                        continue
                    s2 = self.dfa.step(s, ch)
                    if s2 == DEAD:
                        continue
                    if None in child:
                        allowed[child[None]] = True
                    stack.append((child, s2))
            if self.dfa.accepts(state):
                allowed[self.eos_ids] = True
            assert allowed.any(), "a live grammar state must allow some token"
            self._masks[state] = allowed
        return self._masks[state]

    def is_complete(self, state: Hashable) -> bool:
        """Whether the text so far is a whole sentence of the language (EOS seen or allowed now)."""
        return state == self.DONE or (state != DEAD and self.dfa.accepts(state))
