"""Command normalisation before prompting: lower-case text, with single typos of domain words corrected.

A word (letters only, at least 4 of them) that is neither a word of the planner's domain
(``lexicon``: the training phrasings, colours, region words) nor a whole-word token of the
model's vocabulary is an unknown word. It is replaced by the lexicon word at Damerau-Levenshtein
distance 1 (one letter deleted, inserted, replaced, or two adjacent letters swapped, as in
Norvig's spelling corrector) that shares the longest prefix plus suffix with it; without such a
word it stays as it is. Known words are never changed ("lift" is not "left"), and unknown words
are only ever mapped into the lexicon (a rare verb is never turned into a common one). The same
function runs at training and at planning time.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from typing import Any, Iterable

MIN_LEN = 4
_WORD = re.compile(r"[a-z]+")


def edits1(word: str) -> set[str]:
    """Every string one deletion, insertion, replacement or adjacent swap away from ``word``."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in string.ascii_lowercase}
    inserts = {a + c + b for a, b in splits for c in string.ascii_lowercase}
    return (deletes | swaps | replaces | inserts) - {word}


def _affix(a: str, b: str) -> int:
    """Length of the common prefix plus the common suffix of ``a`` and ``b``."""
    prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    suffix = next((i for i, (x, y) in enumerate(zip(a[::-1], b[::-1])) if x != y), min(len(a), len(b)))
    return prefix + suffix


class Normalizer:
    """``normalizer(text)``: lower-cased text with single-typo words corrected (see module docstring).

    lexicon: words of the domain, the only correction targets.
    vocabulary: other known words; ``from_tokenizer`` reads them from a BPE vocabulary.
    """

    def __init__(self, lexicon: Iterable[str], vocabulary: Iterable[str]) -> None:
        self.lexicon = frozenset(w.lower() for w in lexicon)
        self.vocabulary = frozenset(vocabulary)
        self.correct = lru_cache(maxsize=4096)(self._correct)

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, lexicon: Iterable[str]) -> "Normalizer":
        """Vocabulary: the lower-case alphabetic whole-word tokens (leading ``Ġ`` or ``▁``) of ``tokenizer``."""
        words = {t[1:] for t in tokenizer.get_vocab() if t[:1] in ("Ġ", "▁")}
        return cls(lexicon, (w for w in words if w.isascii() and w.isalpha() and w.islower()))

    def known(self, word: str) -> bool:
        return word in self.lexicon or word in self.vocabulary

    def _correct(self, word: str) -> str:
        if len(word) < MIN_LEN or self.known(word):
            return word
        candidates = sorted(edits1(word) & self.lexicon)
        return max(candidates, key=lambda w: _affix(word, w), default=word)

    def __call__(self, text: str) -> str:
        return _WORD.sub(lambda m: self.correct(m.group(0)), text.lower())
