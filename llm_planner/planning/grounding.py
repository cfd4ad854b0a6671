"""Grounding: every block, place and point in a plan must be licensed by the command's own words.

After decoding, ``ground(command, present, plan)`` reads the command with the lexicon below and
returns the plan unchanged when every pushed block, block target, region and reach point is one
the command refers to. Otherwise it returns a refusal (``schema.refusal``) whose ``detail`` says
why: what is missing ("there is no yellow block; present: red, green, blue"), a clarifying question
for an ambiguous reference ("which block do you mean: the red, green or blue one?"), or which
place the plan invented. It never substitutes another object and never turns a refusal into a
plan. All functions here are pure. ``canonical`` rewrites a command with the base words of this
lexicon ("scarlet" -> "red", "back-right" -> "top right") for the planner's prompt
(``prompts.prompt_ids``), so the model reads what grounding reads.

The lexicon (words are lower-cased letters; a hyphen splits words, so "top-left" is "top left"):

- **block colours** (``sim.scene.BLOCK_NAMES``): ``red``, ``green``, ``blue``, with the
  synonyms of ``COLOR_SYNONYMS`` (crimson, scarlet, ruby, cherry; emerald; navy, azure, cobalt,
  sapphire);
- **other colours** (``OTHER_COLORS``: yellow, purple, orange, black, white, pink, grey, ...):
  no block has them, so naming one is an absent object;
- **other objects** (``OTHER_OBJECTS``: ball, cup, cylinder, ...): not in any scene; so is the thing a
  relative place is anchored to (``ANCHOR_RELATIONS``: "next to the lamp", "behind the vase", "to the left of
  the lamp") when it is no colour, block, quantifier, place, pusher or table word (``TABLE_WORDS``) nor one
  typo from one: "there is no lamp";
- **quantifiers** (``QUANTIFIERS``: all, both, each, every): every present block;
- **block references** (``BLOCK_WORDS``: block, cube, box, it, that, ...) and **pusher words**
  (``PUSHER_WORDS``: pusher, go, reach, touch, ...): a command that refers to a block and never to
  the pusher licenses no reach step, one that refers to no block (nor to all of them) licenses no
  push, not even of the only block of a one-block scene, and one that refers to neither licenses no
  step but a reach to a point it writes ("left" alone is refused as unclear);
- **regions** (``sim.scene.REGION_NAMES``): a vertical word (``VERTICAL``: top, upper, back,
  rear, north / bottom, lower, front, south) directly before or after a horizontal one
  (``HORIZONTAL``: left, leftmost, leftwards, west / right, ...) is a corner, as are ``CORNERS``
  (northwest, ...); a horizontal word alone is ``left``/``right`` ("right" before ``RIGHT_ADVERB``
  words, as in "right next to", is an adverb); ``CENTER`` words (center, centre, middle, central)
  are ``center``;
- **points**: the numbers written in the command; a reach point ``[x, y]`` must be written there as
  two consecutive numbers;
- **unsupported skills** (``UNSUPPORTED``: pick, lift, stack, rotate, ...) and **injections**
  (``INJECTION``: "ignore your instructions", "system prompt", ...; also with a typo of one of
  ``INJECTION_WORDS``: "disregad previous prompts"): refused whatever the plan;
- **choices**: an "or" with a colour, or a place word, among the two words on each side of it ("blue or
  red", "left or right"), or after "either", leaves the choice to the planner: refused whatever the plan;
- **unnamed blocks**: a block noun with no colour, quantifier or distance, in a scene of several blocks ("push a
  block into a corner"): a refusal of it, whatever reason the model gave, is "unclear command" asking which
  block (``UNNAMED`` words, "the other block", "one of the blocks", keep the planner's second decode to every block).

A word of at least 4 letters that is not in the lexicon is read as the colour, region, block or
pusher word one typo away (Damerau-Levenshtein distance 1, same first letter; among several, a
swap of its letters first, then the one sharing the longest prefix plus suffix, if only one does).
Words of the planner's domain (``commands.lexicon``, ``OTHER_OBJECTS``, ``UNSUPPORTED``: "block"
is not "black", "cone" is not "come") and the common words of ``NOT_TYPOS`` ("pick" is not
"pink", "grab" is not "gray") are never corrected; ``SHORT_TYPOS`` lists typos the rule misses
("lft", "bue"). The same person wrote this lexicon and the frozen command set: see BENCHMARKS.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from forethought.sim.scene import BLOCK_NAMES, REGION_NAMES, WORKSPACE_HALF

from .commands import lexicon
from .normalize import _affix, edits1
from .schema import refusal

BLOCK_COLORS: dict[str, str] = {name.removesuffix("_block"): name for name in BLOCK_NAMES}
"""Colour word -> block name: red, green, blue."""
COLOR_SYNONYMS: dict[str, str] = {
    "crimson": "red", "scarlet": "red", "ruby": "red", "cherry": "red",
    "emerald": "green",
    "navy": "blue", "azure": "blue", "cobalt": "blue", "sapphire": "blue",
}
SHORT_TYPOS: dict[str, str] = {
    "rd": "red", "rde": "red", "redd": "red", "rred": "red", "blu": "blue", "bue": "blue", "ble": "blue", "bleu": "blue",
    "grn": "green", "lft": "left", "lef": "left", "rgt": "right",
}
"""Typos the edit-distance rule misses (too short, or as close to another word)."""
OTHER_COLORS: tuple[str, ...] = (
    "yellow", "purple", "orange", "black", "white", "pink", "grey", "gray", "brown", "cyan", "magenta", "gold",
    "golden", "silver", "violet", "teal", "turquoise", "beige", "maroon", "indigo", "lavender", "lilac", "mauve",
    "khaki", "tan", "amber", "bronze", "copper", "olive", "peach", "coral", "salmon", "aqua",
    "fuchsia", "ivory", "charcoal", "burgundy", "ochre", "rainbow", "striped", "transparent",
)
OTHER_OBJECTS: tuple[str, ...] = (
    "ball", "balls", "sphere", "cylinder", "cup", "mug", "bottle", "bowl", "plate", "pen", "pencil", "toy",
    "triangle", "pyramid", "cone", "disk", "disc", "ring",
)
BLOCK_WORDS: frozenset[str] = frozenset({
    "block", "blocks", "cube", "cubes", "box", "boxes", "brick", "bricks", "piece", "pieces", "object", "objects",
    "thing", "things", "square", "squares", "one", "ones", "it", "them", "that", "this", "those", "these",
})
BLOCK_NOUN_WORDS: frozenset[str] = BLOCK_WORDS - {"one", "ones", "it", "them", "that", "this", "those", "these"}
OTHER: frozenset[str] = frozenset({"other", "others", "another"})
UNNAMED: frozenset[str] = OTHER | {"a", "an", "some", "any", "one", "either", "whichever", "random"}
"""Words that leave a block unnamed: before a block noun (within two words: "a block", "some red cube") or "of" ("one of
the blocks"), or ``OTHER`` anywhere ("the other block")."""
PUSHER_WORDS: frozenset[str] = frozenset({
    "pusher", "go", "goes", "reach", "touch", "park", "head", "drive", "travel", "navigate", "tap", "come", "visit",
    "yourself", "effector", "tool",
})
QUANTIFIERS: frozenset[str] = frozenset({"all", "both", "each", "every", "everything"})
VERTICAL: dict[str, str] = {
    **dict.fromkeys(("top", "upper", "uppermost", "topmost", "back", "rear", "north"), "top"),
    **dict.fromkeys(("bottom", "lower", "lowermost", "bottommost", "front", "south"), "bottom"),
}
HORIZONTAL: dict[str, str] = {
    **dict.fromkeys(("left", "leftmost", "leftward", "leftwards", "west"), "left"),
    **dict.fromkeys(("right", "rightmost", "rightward", "rightwards", "east"), "right"),
}
CORNERS: dict[str, str] = {"northwest": "top_left", "northeast": "top_right", "southwest": "bottom_left", "southeast": "bottom_right"}
CENTER: frozenset[str] = frozenset({"center", "centre", "middle", "central", "centered", "centred"})
RIGHT_ADVERB: frozenset[str] = frozenset({"next", "beside", "by", "now", "away", "there", "here", "against", "up", "in", "on", "at", "into"})
"""Words after which "right" is an adverb ("right next to"), unless punctuation separates them."""
UNSUPPORTED: frozenset[str] = frozenset({
    "pick", "lift", "stack", "rotate", "spin", "grab", "hold", "flip", "knock", "sort", "paint", "throw", "drop",
    "turn", "squeeze", "balance", "carry", "open", "wave", "clean", "photo", "picture", "break", "hide", "weigh",
    "kick", "fold", "cut", "pour", "eat", "juggle", "twist", "tilt", "raise", "stand",
})
INJECTION = re.compile(
    r"\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|rules?|prompt|previous|above|user|scene|system|everything)\b"
    r"|\bsystem\s*(prompt|:)|\byou are now\b|\bdeveloper mode\b|\bjailbreak|\bnew instructions?\b|\boverride\b"
    r"|\bpretend\b|\badmin\b|\bsafety (checks?|limits?)\b|</?s>|<\|im_|\bassistant\s*:|[{}]",
    re.IGNORECASE,
)
INJECTION_WORDS: frozenset[str] = frozenset({
    "ignore", "disregard", "forget", "instructions", "instruction", "previous", "system", "jailbreak", "override", "pretend",
    "developer",
})
"""Words of ``INJECTION`` whose typos ("disregad", "instrucitons") are read as them before the pattern is matched again."""
UNSUPPORTED_PHRASE = re.compile(r"\b(?:hand|give|bring|fetch) me\b", re.IGNORECASE)
DISTANCE = re.compile(
    r"\b(\d+(\.\d+)?|one|two|three|four|five|ten|a few|half a)\s*(m|metres?|meters?|cm|centimet(er|re)s?|mm|inch(es)?|feet|foot|ft)\b",
    re.IGNORECASE,
)
NOT_TYPOS: frozenset[str] = frozenset({
    "lift", "loft", "lest", "lefty", "rigid", "greed", "greet", "greek", "blur", "blues", "glue", "grew", "grab", "pick",
    "pint", "pine", "pins", "punk", "good", "golf", "told", "tell", "team", "tear", "teak", "blank", "while", "write",
    "whit", "whine", "violent", "lover", "loser", "frost", "fronts", "reed", "read", "redo", "rugby", "cheery", "clan",
    "grow", "blot", "bluff", "cheer", "went", "easy", "vast", "block", "blocks", "clock", "bock",
})
_TYPO_TARGETS: frozenset[str] = frozenset(
    w for w in (*BLOCK_COLORS, *COLOR_SYNONYMS, *OTHER_COLORS, *VERTICAL, *HORIZONTAL, *CORNERS, *CENTER, *BLOCK_WORDS, *PUSHER_WORDS)
    if len(w) >= 4
)
_KNOWN: frozenset[str] = frozenset(lexicon() - _TYPO_TARGETS) | NOT_TYPOS | frozenset(OTHER_OBJECTS) | UNSUPPORTED | QUANTIFIERS
ANCHOR_RELATIONS: dict[str, str] = {"next": "to", "close": "to", "adjacent": "to", "beside": "", "besides": "", "near": "",
                                    "by": "", "against": "", "alongside": "", "touching": "", "behind": ""}
"""Words of a place named relative to a thing ("next to the lamp", "behind the vase") and the word that must follow
them; a side word (``VERTICAL``, ``HORIZONTAL``, "side", "front") before "of" is one too ("to the left of the lamp")."""
NOT_ANCHOR_AFTER: frozenset[str] = frozenset({"the", "a", "an", "followed", "stand", "go", "come", "pass", "drop", "stop"})
"""Words after which a relation word is no relation ("the near side", "followed by the red block")."""
ANCHOR_SKIP: frozenset[str] = frozenset({
    "the", "a", "an", "my", "your", "our", "its", "this", "that", "these", "those", "of", "last", "first", "second", "third",
    "same", "previous", "final", "former", "latter",
})
"""Words between a relation and its anchor ("next to the last one": the anchor is "one")."""
ANCHOR_WORDS = 2
ANCHOR_STOP: frozenset[str] = frozenset({"and", "then", "to", "or", "but", "so", "please", "pls", "plz", "thanks", "now", "after",
                                         "next", "first", "finally", "also"})
"""Words that end an anchor phrase; the phrase anchors to nothing a scene has when none of its words (at most
``ANCHOR_WORDS``) is known ("the big lamp"; "the very middle" is the centre)."""
TABLE_WORDS: frozenset[str] = frozenset({
    "table", "workspace", "board", "surface", "area", "edge", "edges", "corner", "corners", "side", "sides", "zone", "half",
    "region", "spot", "point", "position", "place", "part", "end", "other", "others", "another", "rest", "pusher",
})
"""Words a relative place may be anchored to besides blocks, colours and places ("the left side of the table",
"next to the others")."""
LET_BEFORE: frozenset[str] = frozenset({"the", "to", "far", "go", "push", "red", "green", "blue"})
"""Words after which "let" is the typo "left" (besides ``VERTICAL`` words)."""
_WORD = re.compile(r"-?\d*\.\d+|-?\d+|[a-z]+|[.,;:!?]")
_NUMBER = re.compile(r"-?\d")


def correct(word: str, before: str = "") -> str:
    """``word``, or the lexicon word one typo away from it (see the module docstring); ``before``: the word before it.

    "let" is "left" only after a word that takes a side (``LET_BEFORE``: "the let", "top let"), never alone ("let me")."""
    if word == "let" and (before in LET_BEFORE or before in VERTICAL):
        return "left"
    if word in SHORT_TYPOS:
        return SHORT_TYPOS[word]
    if len(word) < 4 or word in _KNOWN or word in _TYPO_TARGETS or not word.isalpha():
        return word
    candidates = [w for w in edits1(word) & _TYPO_TARGETS if w[0] == word[0]]
    rank = lambda w: (sorted(w) == sorted(word), _affix(word, w))  # noqa: E731  a swap first, then the closest spelling
    best = max((rank(w) for w in candidates), default=None)
    top = [w for w in candidates if rank(w) == best]
    return top[0] if len(top) == 1 else word


@dataclass(frozen=True)
class Mentions:
    """What a command refers to, read with the lexicon.

    colors: block colours named (red, green, blue, in order of first mention); other_colors:
    colours no block has; other_objects: object words no scene has; all_blocks: a quantifier;
    block_reference: a colour or a block word; block_noun: a block word that is a noun (``BLOCK_NOUN_WORDS``: "block",
    "cube", not "it"); unnamed: a block left unnamed (``UNNAMED``: "the other block", "a cube", "one of the blocks");
    pusher: a pusher word; regions: region names; numbers: the numbers written; unsupported: unsupported skill words;
    injection: the text of an injection, if any; distance: a distance phrase ("two metres"), if any;
    choice: the words of a choice between blocks or places ("blue or red", "left or right", "either ... or"),
    if any; off_table: a place off the table (``OFF_TABLE``: "off the edge"), if any.
    """

    colors: tuple[str, ...]
    other_colors: tuple[str, ...]
    other_objects: tuple[str, ...]
    all_blocks: bool
    block_reference: bool
    block_noun: bool
    unnamed: bool
    pusher: bool
    regions: frozenset[str]
    numbers: tuple[float, ...]
    unsupported: tuple[str, ...]
    injection: str | None
    distance: str | None
    choice: str | None
    off_table: str | None


OFF_TABLE: tuple[str, ...] = ("off the table", "off the edge", "onto the floor", "out of the workspace", "off the side of the table",
                              "under the table", "outside the table")
"""Places off the table (also the phrases ``compose`` generates them with): no target, "unknown target"."""

_COLOR_WORDS: frozenset[str] = frozenset(BLOCK_COLORS) | frozenset(OTHER_COLORS) | frozenset(COLOR_SYNONYMS)
_PLACE_WORDS: frozenset[str] = frozenset(VERTICAL) | frozenset(HORIZONTAL) | frozenset(CORNERS) | CENTER
_ANCHOR_KNOWN: frozenset[str] = (_COLOR_WORDS | frozenset(COLOR_SYNONYMS) | BLOCK_WORDS | frozenset(OTHER_OBJECTS) | QUANTIFIERS
                                  | _PLACE_WORDS | TABLE_WORDS | PUSHER_WORDS)
_SIDE_WORDS: frozenset[str] = frozenset(VERTICAL) | frozenset(HORIZONTAL) | {"side"}
CHOICE_REACH = 2
"""A choice is an "or" with a colour (or a place word) among the ``CHOICE_REACH`` words on each side of it."""


def _choice(words: list[str]) -> str | None:
    """The words of a choice between blocks or places in ``words`` ("blue or red", "left or right",
    "either red or blue"), else ``None``."""
    for i, w in enumerate(words):
        if w != "or":
            continue
        before, after = set(words[max(0, i - CHOICE_REACH) : i]), set(words[i + 1 : i + 1 + CHOICE_REACH])
        if (before & _COLOR_WORDS and after & _COLOR_WORDS) or (before & _PLACE_WORDS and after & _PLACE_WORDS) \
                or "either" in words[:i]:
            return " ".join(words[max(0, i - CHOICE_REACH) : i + 1 + CHOICE_REACH])
    return None


def _anchors(words: list[str]) -> tuple[str, ...]:
    """The words outside the lexicon that a relative place in ``words`` is anchored to: "lamp" in "next to the lamp" or
    "to the left of the lamp" (``ANCHOR_RELATIONS``); a word one typo from a word of the lexicon (``_near``: "the
    tabel") is none, and one from a word of ``ANCHOR_SKIP`` is skipped ("the lat one")."""
    out = []
    for i, w in enumerate(words):
        k = i + 1
        if w in ANCHOR_RELATIONS and (words[i - 1] if i else "") not in NOT_ANCHOR_AFTER:
            if ANCHOR_RELATIONS[w]:
                if words[k : k + 1] != [ANCHOR_RELATIONS[w]]:
                    continue
                k += 1
            if w == "by" and words[k : k + 1] and words[k] not in ANCHOR_SKIP:  # "by hand", "step by step": no place
                continue
        elif not (w == "of" and i and words[i - 1] in _SIDE_WORDS):
            continue
        while k < len(words) and (words[k] in ANCHOR_SKIP or _near(words[k], ANCHOR_SKIP)):
            k += 1
        phrase = []  # up to ANCHOR_WORDS words before punctuation or a connector: "the big lamp", "the very middle"
        while k < len(words) and len(phrase) < ANCHOR_WORDS and words[k].isalpha() and words[k] not in ANCHOR_STOP:
            phrase.append(words[k])
            k += 1
        if phrase and not any(w in _ANCHOR_KNOWN or _near(w, _ANCHOR_KNOWN) for w in phrase):
            out.append(" ".join(phrase))
    return tuple(dict.fromkeys(out))


def _near(word: str, known: frozenset[str]) -> bool:
    """Whether ``word`` is one typo from a word of ``known`` of at least 4 letters with its first letter ("tabel", "lat")."""
    return any(len(v) >= 4 and v[0] == word[:1] for v in edits1(word) & known)


def _typo_of(word: str, targets: frozenset[str]) -> str:
    """``word``, or the word of ``targets`` one typo away from it (at least 5 letters, same first letter; among several,
    the one sharing the longest prefix plus suffix, if only one does; a word of the lexicon is never changed)."""
    if len(word) < 5 or not word.isalpha() or word in targets or word in _KNOWN or word in _TYPO_TARGETS:
        return word
    near = [w for w in edits1(word) & targets if w[0] == word[0]]
    best = max((_affix(word, w) for w in near), default=None)
    top = [w for w in near if _affix(word, w) == best]
    return top[0] if len(top) == 1 else word


def _injection(command: str, raw: list[str]) -> str | None:
    """The text of an injection in ``command`` (``INJECTION``), matched again with typos of ``INJECTION_WORDS`` undone
    in its words ``raw`` ("disregad previous prompts")."""
    found = INJECTION.search(command)
    fixed = [_typo_of(w, INJECTION_WORDS) for w in raw]
    if found is None and fixed != raw:
        found = INJECTION.search(" ".join(fixed))
    return found.group(0) if found else None


def mentions(command: str) -> Mentions:
    """Read ``command`` with the lexicon (see the module docstring)."""
    text = command.lower()
    raw = _WORD.findall(text)
    tokens = [t if _NUMBER.match(t) else correct(t, raw[i - 1] if i else "") for i, t in enumerate(raw)]
    words = [t for t in tokens if not _NUMBER.match(t)]
    colors: list[str] = []
    other: list[str] = []
    for w in words:
        c = COLOR_SYNONYMS.get(w, w)
        if c in BLOCK_COLORS and c not in colors:
            colors.append(c)
        elif c in OTHER_COLORS and c not in other:
            other.append(c)
    regions: set[str] = {CORNERS[w] for w in words if w in CORNERS}
    regions |= {"center" for w in words if w in CENTER}
    used: set[int] = set()
    for i in range(len(words) - 1):
        a, b = words[i], words[i + 1]
        vertical, horizontal = (VERTICAL.get(a), HORIZONTAL.get(b)) if a in VERTICAL else (VERTICAL.get(b), HORIZONTAL.get(a))
        if vertical and horizontal:
            regions.add(f"{vertical}_{horizontal}")
            used |= {i, i + 1}
    for i, w in enumerate(words):
        if w in HORIZONTAL and i not in used:
            after = words[i + 1] if i + 1 < len(words) else ""
            before = words[i - 1] if i else ""
            if w == "right" and (after in RIGHT_ADVERB or before == "all"):
                continue
            regions.add(HORIZONTAL[w])
    distance = DISTANCE.search(command)
    return Mentions(
        colors=tuple(colors),
        other_colors=tuple(other),
        other_objects=tuple(dict.fromkeys([w for w in words if w in OTHER_OBJECTS] + list(_anchors(words)))),
        all_blocks=any(w in QUANTIFIERS for w in words),
        block_reference=bool(colors) or any(w in BLOCK_WORDS for w in words),
        block_noun=any(w in BLOCK_NOUN_WORDS for w in words),
        unnamed=any(w in UNNAMED and (w in OTHER or words[i + 1 : i + 2] == ["of"] or set(words[i + 1 : i + 3]) & BLOCK_NOUN_WORDS)
                    for i, w in enumerate(words)),
        pusher=any(w in PUSHER_WORDS for w in words),
        regions=frozenset(regions),
        numbers=tuple(float(t) for t in tokens if _NUMBER.match(t)),
        unsupported=tuple(dict.fromkeys([w for w in words if w in UNSUPPORTED] + UNSUPPORTED_PHRASE.findall(text))),
        injection=_injection(command, raw),
        distance=distance.group(0) if distance else None,
        choice=_choice([w for w in words if w.isalpha()]),
        off_table=next((p for p in OFF_TABLE if f" {p} " in f" {' '.join(words)} "), None),
    )


BLOCK_NOUNS: frozenset[str] = frozenset({"cube", "box", "brick", "piece", "object", "thing", "square"})
"""Nouns for a block that ``canonical`` writes as "block" after a colour ("the red brick" -> "the red block")."""
NEXT_TO_PHRASES = re.compile(r"\b(?:(?:right |up |flush )?against|alongside(?: of)?|over by|up beside|adjacent to)\b")
"""Relations ``canonical`` writes as "next to" (a block target means next to it), also with a typo of ``NEXT_TO_WORDS``."""
NEXT_TO_WORDS: frozenset[str] = frozenset({"against", "alongside", "adjacent"})
_PIECE = re.compile(r"[a-z]+|[^a-z]+")
_ARROW = re.compile(r"\s*(?:->|→|=>)\s*")


def canonical(command: str) -> str:
    """``command`` in lower case with the words this lexicon reads written as their base words, for the prompt.

    Typos and synonyms of colours (``correct``, ``COLOR_SYNONYMS``: "scarlet" -> "red"), corners in any
    arrangement ("back-right", "right top", "northeast" -> "top right"), side words ("leftmost" -> "left"),
    centre words ("centre" -> "center") and block nouns after a colour (``BLOCK_NOUNS``: "red brick" ->
    "red block") become the words the planner was trained on; an arrow ("red -> left") becomes " to ",
    and ``NEXT_TO_PHRASES`` ("up against", "alongside") "next to". Every other character stays as it is.
    """
    text = re.sub(r"[a-z]+", lambda w: _typo_of(w.group(0), NEXT_TO_WORDS), _ARROW.sub(" to ", command.lower()))  # "up againts"
    pieces = _PIECE.findall(NEXT_TO_PHRASES.sub("next to", text))
    at = [i for i, p in enumerate(pieces) if p[0].isalpha()]
    words = {i: correct(pieces[i], pieces[at[k - 1]] if k else "") for k, i in enumerate(at)}
    for k, i in enumerate(at):
        w = words[i]
        pieces[i] = COLOR_SYNONYMS.get(w, w)
        if w in CORNERS:
            pieces[i] = CORNERS[w].replace("_", " ")
        elif w in HORIZONTAL:
            pieces[i] = HORIZONTAL[w]
        elif w in CENTER:
            pieces[i] = "center"
        elif w in BLOCK_NOUNS and k and pieces[at[k - 1]] in BLOCK_COLORS and pieces[i - 1] == " ":
            pieces[i] = "block"
    for a, b in zip(at, at[1:]):
        va, vb, ha, hb = VERTICAL.get(words[a]), VERTICAL.get(words[b]), HORIZONTAL.get(words[a]), HORIZONTAL.get(words[b])
        joined = b == a + 2 and pieces[a + 1].strip(" -") == ""
        if joined and (va and hb or ha and vb):
            pieces[a], pieces[a + 1], pieces[b] = va or vb, " ", hb or ha
    return "".join(pieces)


def _colors(blocks: tuple[str, ...]) -> str:
    return ", ".join(b.removesuffix("_block") for b in blocks) or "none"


def missing(m: Mentions, present: tuple[str, ...]) -> str | None:
    """"there is no yellow block; present: red, green, blue" when the command names something absent, else ``None``."""
    absent = [f"{c} block" for c in m.colors if BLOCK_COLORS[c] not in present] + [f"{c} block" for c in m.other_colors]
    absent += list(m.other_objects)
    if not absent:
        return None
    return f"there is no {' or '.join(absent)}; present: {_colors(present)}"


def which_block(present: tuple[str, ...]) -> str:
    """The clarifying question for an ambiguous block reference."""
    names = [b.removesuffix("_block") for b in present]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"which block do you mean: the {listed} one?"


def licensed_blocks(m: Mentions, present: tuple[str, ...]) -> tuple[str, ...]:
    """Blocks the command refers to: those it names by colour; with no colour named, every present block
    after a quantifier ("both blocks") or the only one ("the block" in a one-block scene)."""
    if m.colors:
        return tuple(BLOCK_COLORS[c] for c in m.colors if BLOCK_COLORS[c] in present)
    if m.all_blocks or len(present) == 1:
        return present
    return ()


def _point_licensed(xy: list[float], numbers: tuple[float, ...]) -> bool:
    """Whether ``xy`` is written in the command as two consecutive numbers ``x, y``."""
    return any(abs(xy[0] - a) < 1e-9 and abs(xy[1] - b) < 1e-9 for a, b in zip(numbers, numbers[1:]))


def _refused_by_words(m: Mentions, present: tuple[str, ...]) -> tuple[str, str] | None:
    """``(reason, detail)`` when the command's words alone refuse it: an injection, an unsupported skill, an absent
    object, a place off the table, a choice left to the planner."""
    if m.injection:
        return "unclear command", f"the command tries to instruct the planner ({m.injection!r}); give only a task"
    if m.unsupported:
        return "unsupported action", f"I can only push blocks and move the pusher; {m.unsupported[0]!r} is not a skill"
    if (what := missing(m, present)) is not None:
        return "object not in scene", what
    if m.off_table:
        return "unknown target", f"{m.off_table!r} is no place on the table; name a region, a block or a point"
    if m.choice:
        return "unclear command", f"the command leaves a choice ({m.choice!r}); say which one"
    return None


def _ambiguous(m: Mentions, present: tuple[str, ...]) -> tuple[str, str] | None:
    """``("unclear command", which block?)`` when the command refers to a block by a noun ("a block", "the cube") but
    names none, with several present and no quantifier or distance: the reason of a refusal of such a command ("push a
    block into a corner"), whatever reason the model gave."""
    if m.block_noun and not (m.colors or m.all_blocks or m.distance) and len(present) > 1:
        return "unclear command", which_block(present)
    return None


def check(command: str, present: tuple[str, ...], plan: dict[str, Any]) -> tuple[str, str] | None:
    """``(reason, detail)`` of the refusal ``plan`` earns for ``command`` in a scene with blocks ``present``,
    or ``None`` when every block, region and point of the plan is licensed (``plan`` has steps)."""
    m = mentions(command)
    if (why := _refused_by_words(m, present)) is not None:
        return why
    if m.distance:
        return "unknown target", f"moves by a distance ({m.distance!r}) are not supported; name a region, a block or a point"
    blocks = licensed_blocks(m, present)
    for step in plan["steps"]:
        if not (m.pusher or m.block_reference or m.all_blocks or isinstance(step["target"], list)):  # "left" alone
            return "unclear command", "the command names no block and not the pusher; what should move, and where?"
        if step["skill"] == "reach" and m.block_reference and not m.pusher:
            about = f"the {m.colors[0]} block" if m.colors else "a block"
            return "unclear command", f"the command is about {about}, not the pusher; what should happen to it?"
        if step["skill"] == "push" and not (m.block_reference or m.all_blocks):  # even the only block must be referred to
            return "unclear command", "the command names no block, only the pusher; which block should move?"
        named = [step["object"]] if step["skill"] == "push" else []
        target = step["target"]
        if isinstance(target, str) and target in BLOCK_NAMES:
            named.append(target)
        for b in named:
            if b not in blocks:
                if not m.colors:
                    return "unclear command", which_block(present)
                return "unclear command", (f"the command does not name the {b.removesuffix('_block')} block; "
                                           f"{which_block(present)}")
        if isinstance(target, str) and target not in BLOCK_NAMES and target not in m.regions:
            return "unknown target", (f"the command names no place that is the {target.replace('_', ' ')}; "
                                      f"where to? regions: {', '.join(r.replace('_', ' ') for r in REGION_NAMES)}")
        if isinstance(target, list) and not _point_licensed(target, m.numbers):
            off = [v for v in m.numbers if abs(v) > WORKSPACE_HALF]
            if off:
                return "unknown target", f"{off[0]:g} is off the table: reach points need |x|, |y| <= {WORKSPACE_HALF} m"
            return "unknown target", f"the command does not give the point {target}; where to?"
    return None


def without_repeats(plan: dict[str, Any]) -> dict[str, Any]:
    """``plan`` with every step equal to the one before it dropped (it would move nothing)."""
    return {**plan, "steps": [s for k, s in enumerate(plan["steps"]) if not k or s != plan["steps"][k - 1]]}


def ground(command: str, present: tuple[str, ...], plan: dict[str, Any], repeats: bool = False) -> dict[str, Any]:
    """``plan`` if the command licenses every block, region and point in it, else a refusal with a ``detail``.

    A refusal stays a refusal; when the command's words alone refuse it (an injection, an unsupported
    skill, an absent object: the first of these, as in ``check``), it takes that reason and its detail, else
    when they refer to a block without naming which (``_ambiguous``), "unclear command" and the question which one.
    A step equal to the one before it is dropped first (``without_repeats``), unless ``repeats`` (the
    command asks for that step twice: the planner decides with ``coverage.demand``).
    """
    if "refusal" in plan:
        m = mentions(command)
        why = _refused_by_words(m, present) or _ambiguous(m, present)
        return plan if why is None or "detail" in plan else refusal(*why)
    plan = plan if repeats else without_repeats(plan)
    why = check(command, present, plan)
    return plan if why is None else refusal(*why)
