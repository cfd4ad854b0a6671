"""Coverage: what a command asks for, read from its words, and whether a plan does all of it.

A plan can pass grounding (every block and place it names is licensed) and still drop part of the
command: "green left, red right" planned as one push, "move each block to the right" as a push of one
block. ``demand(command, present)`` reads the canonical command (``grounding.canonical``) as a
sequence of **destinations** and the blocks they apply to, and returns a ``Demand``:

- ``min_steps``: one step per destination, times the blocks that share it ("push red and blue to the
  right": 2; "move each block to the right" in a two-block scene: 2);
- ``regions``: every region some step must go to (a region after "from" is a source, not a place to go);
- ``blocks``: every present block the command names by colour (each must be pushed or be a target);
- ``relation``: whether a "next to" phrase asks for a push next to a block;
- ``skills``: per destination, the skill its words ask for ("go", "visit", "the pusher" and no block: a reach;
  a block and no pusher word, or a "next to" phrase: a push; a point: a reach; words that name neither, no verb and
  no word outside ``READ_WORDS``: the skill of the destination before, "push red left, then back to the center";
  else either);
- ``objects``: per destination, the block a push to a region moves when the words say: its one colour, else the
  block moved last for "it" or for a push whose words name no block ("..., now on to the west side");
- ``points``: per destination, the reach point the command writes ("x=0.2 y=-0.15").

``covers`` checks skills, objects and points, and the covering grammar asks for them, so a second decode can neither
push where the command sends the pusher, push another block than the one it names, nor reach another point.

A destination is a region (a corner, a side, the centre), a "next to" phrase (``RELATIONS``) with the
block it names, or a reach point (two numbers in a row). The blocks before a destination, back to the
previous one, share it: their colours ("red and blue"), or every present block after a quantifier
(``QUANTIFIERS``: "both", "each", "all the blocks"). ``demand`` returns ``None`` (nothing is demanded)
when the words make the reading unsafe: a negation or a correction (``UNSURE_WORDS``: "not", "instead",
"or", ...) or no destination at all. ``covers(plan, demand)`` is the check. The planner decodes a
grounded plan that does not cover the demand again under ``schema.plan_dfa(present, min_steps=...,
required=...)``, a grammar of the plans that do, and keeps the second plan when it passes grounding.

``refutes_absence(command, present)`` says when the model's refusal "object not in scene" is contradicted
by the scene, so that the planner decodes the command again in the same way, under the covering grammar
without its refusal branch ("blue: next to green" with both blocks present): the command names blocks by
colour (or by a quantifier that fits the scene: "each of the blocks"), every one present, its words alone
refuse nothing (``grounding.check``), and every word is in ``READ_WORDS`` (the words of the phrasings the
planner was trained to plan and of the lexicons) or one typo from one ("wold" for "would"; never near a
word of ``REFUSAL_WORDS``), since another word could be the absent thing ("the lamp", "gry" for grey).
``refutes_unknown_target`` does the same for the refusal "unknown target" of a reach to a point written
in the command with every number on the table ("touch 0.1, -0.2"); ``CONTRADICTED`` maps each reason to
its rule. A polite "if" that ends a clause ("..., if possible", ``POLITE_IF``) is no condition;
``exceeds(plan, demand)`` says when a plan goes to a demanded region more often than asked, which no
label does. All functions here are pure.

The reading errs towards asking for less: a step it cannot see ("then push it back") is not counted,
so a plan is re-decoded only when the words clearly ask for more than it does. On the generated
train and held-out splits and on 3,000 composed rows (seed 100) no plannable label has fewer steps
than ``min_steps`` or misses a demanded region, block or "next to".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from . import commands, compose
from .grounding import (_ARROW, BLOCK_COLORS, BLOCK_NOUN_WORDS, BLOCK_WORDS, CENTER, COLOR_SYNONYMS, CORNERS, HORIZONTAL,
                        INJECTION_WORDS, OTHER_COLORS, OTHER_OBJECTS, PUSHER_WORDS, RIGHT_ADVERB, UNSUPPORTED, VERTICAL,
                        canonical, check, correct, mentions)
from .normalize import edits1
from forethought.sim.scene import BLOCK_NAMES, REGION_NAMES, WORKSPACE_HALF

from .schema import NEXT_TO, POINT, point_text, step_items, target_kind

RELATIONS: dict[str, str] = {"next": "to", "close": "to", "adjacent": "to", "flush": "with", "side": "of", "beside": "", "besides": "",
                             "near": "", "touching": "", "touches": "", "by": "", "alongside": "", "against": ""}
"""Words of a "next to" phrase and the word that must follow them ("next to", "flush with", "by the side of"; "" for
none: "beside"); the phrase is a destination only when a block mention follows within ``REFERENCE_REACH`` words."""
REFERENCE_REACH = 3
PRONOUNS: frozenset[str] = frozenset({"it", "them", "that", "this", "those", "these"})
QUANTIFIERS: frozenset[str] = frozenset({"both", "each", "every", "all"})
PLURAL_BLOCKS: frozenset[str] = frozenset({"blocks", "cubes", "boxes", "bricks", "pieces", "objects", "things", "squares"})
UNSURE_WORDS: frozenset[str] = frozenset({
    "not", "dont", "don't", "no", "never", "except", "without", "instead", "actually", "wait", "sorry", "mean", "rather",
    "or", "either", "if", "unless", "leave", "keep", "stay", "nevermind", "whichever", "maybe",
})
"""Words after which the words may ask for less than they name: negations ("not the blue one"), corrections
("left, i mean right"), choices ("red or blue"), conditions, blocks to leave alone ("keep red where it is")."""
POLITE_IF: tuple[tuple[str, ...], ...] = (("you", "can"), ("you", "could"), ("possible",), ("you", "don't", "mind"),
                                           ("you", "dont", "mind"), ("you", "please"))
"""What follows "if" in a polite wrapper, not a condition ("..., if possible", "... if you can"), when the command does
not open with it and a clause ends after it (punctuation, the end, or a word of ``POLITE_END``)."""
POLITE_END: frozenset[str] = frozenset({"please", "pls", "plz", "thanks", "thank", "thx", "cheers"})
POINT_GAP: frozenset[str] = frozenset({",", "x", "y", "=", "and"})
"""What may stand between the two numbers of a reach point ("(0.1, -0.2)", "x 0.1, y 0.2")."""
SOURCE_WORDS: frozenset[str] = frozenset({"from", "off", "out"})
DETERMINERS: frozenset[str] = frozenset({"the", "a", "my", "your", "that", "this"})
COORDINATION: frozenset[str] = frozenset({"and", ",", "&", "+", "plus", "as", "well", "the", "one"}) | BLOCK_WORDS - PRONOUNS
"""Words that may join colours sharing one destination ("red and blue", "the red block, the blue block")."""
NOT_RELATION_AFTER: frozenset[str] = frozenset({"followed", "stand", "go", "come", "drop", "stop", "pass", "you", "u", "me",
                                                "like", "want", "need", "have", "going", "how", "able"})
"""Words after which "by" or "to" is no "next to" ("followed by the red block", "i'd like you to blue cube ...")."""
BLOCK_MENTION_WORDS: frozenset[str] = frozenset(BLOCK_COLORS) | BLOCK_WORDS | DETERMINERS
KEYWORDS: frozenset[str] = frozenset(RELATIONS) | {"away", "exact", "followed", "with"}
"""Words of a "next to" phrase and of phrases that hide one ("right away", "followed by"); a word one slip
(``_slip``) from exactly one of them, with the same first letter, is read as it."""
_TOKEN = re.compile(r"-?\d*\.\d+|-?\d+|[a-z]+(?:'[a-z]+)?|[^\sa-z\d]")
_NUMBER = re.compile(r"-?\d")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_PLANNED_PHRASES: tuple[str, ...] = (
    *(t for table in (commands.PUSH_VERBS, commands.NOUNS, commands.REACH, commands.NEXT_TO, commands.THEN, commands.POINT)
      for t in table["augmented"]),
    *(t for phrases in commands.REGION_WORDS["augmented"].values() for t in phrases),
    *compose.BLOCK_NOUNS, *compose.DETERMINERS, *compose.LONE_BLOCK, *compose.BACK_REFERENCE, *compose.PUSH_VERBS,
    *compose.PUSH_GERUNDS, *compose.REGION_PREPS, *(t for phrases in compose.REGION_PHRASES.values() for t in phrases),
    *(t for words in compose.VERTICAL_WORDS.values() for t in words), *compose.CORNER_FORMS,
    *(t for words in compose.ADVERBS.values() for t in words), *compose.NEXT_TO, *compose.REACH_PHRASES, *compose.REACH_ADVERB,
    *compose.POINT_FORMS, *compose.POINT_VERBS, *compose.THEN, *compose.LAST, *compose.OPENERS, *compose.NUMBERED,
    *(t for phrases in compose.QUANTIFIED.values() for t in phrases), *compose.LIST_THEN, *compose.ELIDED_REACH,
    *compose.POLITE_BEFORE, *compose.POLITE_AFTER,
)
READ_WORDS: frozenset[str] = (
    frozenset(w for t in _PLANNED_PHRASES for w in _TOKEN.findall(_PLACEHOLDER.sub(" ", t.lower())) if w[0].isalpha())
    | frozenset(BLOCK_COLORS) | frozenset(COLOR_SYNONYMS) | BLOCK_WORDS | PUSHER_WORDS | frozenset(VERTICAL) | frozenset(HORIZONTAL)
    | frozenset(CORNERS) | CENTER | RIGHT_ADVERB | KEYWORDS | (frozenset(RELATIONS.values()) - {""}) | PRONOUNS | QUANTIFIERS
    | PLURAL_BLOCKS | POINT_GAP | DETERMINERS | COORDINATION | NOT_RELATION_AFTER
) - UNSUPPORTED
"""The words the planner reads in a command it plans: the words of the phrasings it was trained to plan (the
train phrasings of ``commands`` and the plannable ones of ``compose``: verbs, block nouns, regions, "next to",
connectors, polite wrappers) and of the lexicons of grounding and of this module; no word of a refusal's
phrasing (places, objects, unsupported skills, chit-chat)."""


_REFUSAL_PHRASES: tuple[str, ...] = (
    *(t for table in (commands.ABSENT_COLORS, commands.UNSUPPORTED, commands.UNKNOWN_TARGETS, commands.GIBBERISH)
      for t in table["augmented"]),
    *compose.PLACES, *compose.CHAT, *compose.INJECTIONS, *compose.INJECTION_ONLY, *compose.UNSUPPORTED, *compose.OFF_TABLE,
    *OTHER_COLORS, *OTHER_OBJECTS, *UNSUPPORTED, *INJECTION_WORDS,
)
REFUSAL_WORDS: frozenset[str] = frozenset(
    w for t in _REFUSAL_PHRASES for w in _TOKEN.findall(_PLACEHOLDER.sub(" ", t.lower())) if w[0].isalpha()) - READ_WORDS
"""Words of the phrasings the planner was trained to refuse (absent colours and objects, unknown places, unsupported
skills, injections, chit-chat) and of grounding's refusal lexicons, outside ``READ_WORDS``: never read as a typo."""


@dataclass(frozen=True)
class Demand:
    """What a command asks of a plan (see the module docstring)."""

    targets: tuple[str, ...]
    regions: frozenset[str]
    blocks: frozenset[str]
    relation: bool
    skills: tuple[str | None, ...] = ()
    """Per target, the skill its words ask for (``"push"``, ``"reach"``, ``None``: either); empty: not read."""
    objects: tuple[str | None, ...] = ()
    """Per target, the block a push to a region moves when the words say which (``_object``), else ``None``; empty: not
    read."""
    points: tuple[tuple[float, float] | None, ...] = ()
    """Per target, the reach point its words write (for a ``POINT`` target whose numbers the grammar can spell:
    ``schema.point_text``), else ``None``; empty: not read."""

    @property
    def min_steps(self) -> int:
        return len(self.targets)

    @property
    def required(self) -> frozenset[str]:
        """The items (``schema.step_items``) the plan's steps must do together: regions, blocks and ``NEXT_TO``."""
        return self.regions | self.blocks | ({NEXT_TO} if self.relation else frozenset())


def _slip(word: str, keyword: str) -> bool:
    """Whether ``word`` is ``keyword`` with two letters swapped, a letter doubled or a letter dropped (not replaced)."""
    if len(word) == len(keyword):
        return sorted(word) == sorted(keyword)
    if len(word) == len(keyword) + 1:
        return any(word[k] == word[k - 1] and word[:k] + word[k + 1 :] == keyword for k in range(1, len(word)))
    return len(word) + 1 == len(keyword)


def _correct(word: str, before: str) -> str:
    """``word`` with a slip of this module's ``KEYWORDS`` undone ("nxet", "folowed", "awya"), else as grounding reads it."""
    if len(word) >= 4 and word.isalpha() and word not in KEYWORDS:
        near = [w for w in edits1(word) & KEYWORDS if w[0] == word[0] and _slip(word, w)]
        if len(near) == 1:
            return near[0]
    return correct(word, before)


def _tokens(command: str) -> list[str]:
    """The canonical command as words (typos corrected), numbers and punctuation."""
    raw = _TOKEN.findall(canonical(_ARROW.sub(" ~ ", command)))  # an arrow stays a mark: "red -> blue" is not "red to blue"
    return [t if not t[0].isalpha() else _correct(t, raw[i - 1] if i else "") for i, t in enumerate(raw)]


def _read_typo(word: str) -> bool:
    """Whether ``word`` (at least 4 letters) is one typo (``normalize.edits1``) from a word of ``READ_WORDS`` of at least
    4 letters with its first letter ("wold" for "would", "quicky" for "quickly") and neither is nor is one typo from a
    word of ``REFUSAL_WORDS`` with its first letter ("moom")."""
    if len(word) < 4 or not word.isalpha() or word in REFUSAL_WORDS:
        return False
    near = {w for w in edits1(word) if w[0] == word[0]}
    return not near & REFUSAL_WORDS and any(len(w) >= 4 for w in near & READ_WORDS)


def unread(command: str) -> tuple[str, ...]:
    """The words of ``command`` (read as ``demand`` reads them: canonical, typos undone) not in ``READ_WORDS``, nor one
    typo from a word of it (``_read_typo``)."""
    return tuple(dict.fromkeys(w for w in _tokens(command) if w[0].isalpha() and w not in READ_WORDS and not _read_typo(w)))


SKILL_VERBS: frozenset[str] = frozenset(
    w for table in (*commands.PUSH_VERBS.values(), compose.PUSH_VERBS, compose.PUSH_GERUNDS) for w in table)
"""Verbs of a push that may also move the pusher ("move to the center"): a step whose words hold one does not take the
skill of the step before."""
BLOCK_SUBJECT_VERBS: frozenset[str] = frozenset({"go", "goes", "going"})
"""Pusher words that a block can be the subject of ("the red block goes to the left")."""
COUNTS: dict[str, int] = {"both": 2, "two": 2, "three": 3}
"""Quantifier words that say how many blocks there are ("both blocks": two)."""


def _names_present_blocks(command: str, present: tuple[str, ...]) -> bool:
    """Whether ``command`` names blocks by colour, or with no colour by a quantifier over the several blocks of the
    scene ("each of the blocks", "both the blocks" with two present; not "both blocks" with three or one)."""
    m = mentions(command)
    if m.colors:
        return True
    counts = {COUNTS[w] for w in _tokens(command) if w in COUNTS}
    return m.all_blocks and len(present) >= 2 and counts <= {len(present)}


def refutes_absence(command: str, present: tuple[str, ...]) -> bool:
    """Whether the scene contradicts the refusal "object not in scene" of ``command``: it names blocks by colour (or
    by a quantifier that fits the scene: ``_names_present_blocks``), every one of them present, its words alone
    refuse nothing (no absent colour or object, injection, unsupported skill or distance: ``grounding.check``), and it
    has no ``unread`` word, which could name the absent thing ("the lamp", a typo of "grey")."""
    return _names_present_blocks(command, present) and check(command, present, {"steps": []}) is None and not unread(command)


def refutes_unknown_target(command: str, present: tuple[str, ...]) -> bool:
    """Whether the scene contradicts the refusal "unknown target" of ``command``: it sends the pusher (a pusher word)
    to a reach point written in it (``demand``), no number it writes is off the table (``WORKSPACE_HALF``), its words
    alone refuse nothing (``grounding.check``) and it has no ``unread`` word ("go to (0.1, 0.2) in the kitchen")."""
    m = mentions(command)
    want = demand(command, present)
    return (want is not None and POINT in want.targets and m.pusher and all(abs(v) <= WORKSPACE_HALF for v in m.numbers)
            and check(command, present, {"steps": []}) is None and not unread(command))


CONTRADICTED: dict[str, Any] = {"object not in scene": refutes_absence, "unknown target": refutes_unknown_target}
"""The model's refusals the scene can contradict -> ``fn(command, present)``: whether it does."""


def _region_at(words: list[str], i: int) -> tuple[str, int] | None:
    """``(region, width)`` of a region phrase starting at ``words[i]``, else ``None``."""
    w = words[i]
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if w in CORNERS:
        return CORNERS[w], 1
    if w in VERTICAL and nxt in HORIZONTAL:
        return f"{VERTICAL[w]}_{HORIZONTAL[nxt]}", 2
    if w in HORIZONTAL and nxt in VERTICAL:
        return f"{VERTICAL[nxt]}_{HORIZONTAL[w]}", 2
    if w in CENTER:
        return "center", 1
    if w in HORIZONTAL:
        before = words[i - 1] if i else ""
        if w == "right" and (nxt in RIGHT_ADVERB or before == "all"):
            return None
        return HORIZONTAL[w], 1
    return None


def _block_mention(words: list[str], i: int) -> bool:
    """Whether a colour or a block word ("it", "the one") comes within ``REFERENCE_REACH`` words from ``words[i]``,
    before any number, region or clause break."""
    for k in range(i, min(i + REFERENCE_REACH, len(words))):
        w = words[k]
        if w in BLOCK_COLORS or w in BLOCK_WORDS:
            return True
        if _NUMBER.match(w) or not w[0].isalpha() or _region_at(words, k):
            return False
    return False


def _color_after(words: list[str], i: int) -> bool:
    """Whether ``words[i]`` is a colour, maybe after a determiner ("to the blue block": next to it)."""
    k = i + 1 if i < len(words) and words[i] in DETERMINERS else i
    return k < len(words) and words[k] in BLOCK_COLORS


def _relation_at(words: list[str], i: int) -> int:
    """How many words a "next to" phrase starting at ``words[i]`` spans, up to the block it names (0: none starts there)."""
    w = words[i]
    if w == "to":
        return 1 if _color_after(words, i + 1) else 0  # "push red to the blue block": next to it
    if w not in RELATIONS:
        return 0
    width = 2 if RELATIONS[w] else 1
    if RELATIONS[w] and words[i + 1 : i + 2] != [RELATIONS[w]]:
        return 0
    return width if _block_mention(words, i + width) else 0


def _point_at(words: list[str], i: int) -> int:
    """How many words a reach point starting at the number ``words[i]`` spans (0: no second number follows)."""
    k = i + 1
    while k < len(words) and words[k] in POINT_GAP:
        k += 1
    return k + 1 - i if k < len(words) and _NUMBER.match(words[k]) else 0


def _without_polite_if(words: list[str]) -> list[str]:
    """``words`` without the polite "if" phrases of ``POLITE_IF`` that end a clause ("green to the left, if possible"),
    never the command's first word ("if you can, push red left" stays a condition)."""
    out, i = [], 0
    while i < len(words):
        tail = next((t for t in POLITE_IF if words[i] == "if" and tuple(words[i + 1 : i + 1 + len(t)]) == t), None)
        after = words[i + 1 + len(tail)] if tail is not None and i + 1 + len(tail) < len(words) else ""
        if tail is not None and i and (not after[:1].isalnum() or after in POLITE_END):
            i += 1 + len(tail)
            continue
        out.append(words[i])
        i += 1
    return out


def demand(command: str, present: tuple[str, ...]) -> Demand | None:
    """What ``command`` asks of a plan in a scene with blocks ``present``; ``None`` when its words do not say."""
    words = _without_polite_if(_tokens(command))
    if any(w in UNSURE_WORDS for w in words):
        return None
    targets: list[str] = []
    skills: list[str | None] = []
    objects: list[str | None] = []
    points: list[tuple[float, float] | None] = []
    clause = 0  # where the words leading to the next destination start
    subjects: list[str] = []  # the last coordinated colours ("red and blue") since the last destination
    last_color, quantified = -1, False
    last_object: str | None = None  # the block the last destination moved, which "it" refers to
    i = 0
    while i < len(words):
        w, before = words[i], words[i - 1] if i else ""
        width, target, point = 1, None, None
        if _NUMBER.match(w):
            width = _point_at(words, i) or 1
            target = POINT if width > 1 else None
            point = _spellable((float(w), float(words[i + width - 1]))) if width > 1 else None
        elif (region := _region_at(words, i)) is not None:
            name, width = region
            after = words[i + width] if i + width < len(words) else ""
            source = before in SOURCE_WORDS or i >= 2 and before == "the" and words[i - 2] in SOURCE_WORDS
            beside = after == "of" and _block_mention(words, i + width + 1)  # "to the left of blue": next to it
            which = after in BLOCK_WORDS and after not in PRONOUNS  # "the left block": which block, not where to
            target = None if source or beside or which else name
        elif (w not in ("by", "to") or before not in NOT_RELATION_AFTER) and (phrase := _relation_at(words, i)):
            width, target = phrase, NEXT_TO
            mention = []
            while i + width < len(words) and words[i + width] in BLOCK_MENTION_WORDS:  # the block it names is no subject
                mention.append(words[i + width])
                width += 1
            target = _next_to(mention, last_object, subjects, present)
        elif w in BLOCK_COLORS:
            coordinated = last_color >= 0 and all(v in COORDINATION for v in words[last_color + 1 : i])
            subjects = subjects + [w] if coordinated else [w]
            last_color = i
        elif w in QUANTIFIERS and not (w == "all" and (words[i + 1 : i + 3] == ["the", "way"] or words[i + 1 : i + 2] == ["right"]
                                                       or before == "of")):
            quantified = True  # not "all the way to the left", "all right", "first of all"
        elif w in PLURAL_BLOCKS and not subjects:
            quantified = True
        if target is not None:
            shared = _shared(subjects, quantified, present)
            skill = _skill(words[clause:i], target)
            if skill is None and skills and not _names_either(words[clause:i]):
                skill = skills[-1]  # "push red to the left, then back to the center": the step before's skill
            targets += [target] * shared
            skills += [skill] * shared
            obj = _object(words[clause:i], target, skill, subjects, quantified, last_object) if shared == 1 else None
            objects += [obj] * shared
            points += [point] * shared
            clause = i + width
            if len(subjects) == 1 or quantified:
                last_object = BLOCK_COLORS[subjects[0]] if len(subjects) == 1 and not quantified else None
            subjects, last_color, quantified = [], -1, False
        i += width
    if not targets:
        return None
    named = frozenset(BLOCK_COLORS[w] for w in words if w in BLOCK_COLORS) & frozenset(present)
    regions = frozenset(t for t in targets if t in REGION_NAMES)
    return Demand(tuple(targets), regions, named, any(t == NEXT_TO or t in BLOCK_NAMES for t in targets), tuple(skills),
                  tuple(o if o in present else None for o in objects), tuple(points))


def _object(clause: list[str], target: str, skill: str | None, subjects: list[str], quantified: bool,
            last_object: str | None) -> str | None:
    """The block the push to the region ``target`` moves, read from the words ``clause`` leading to it: its one colour
    ("then green to the center"), else the block moved last for a pronoun ("then push it back to the left", "after
    that, ...") or for a push whose words name no block ("..., then on to the right"); ``None`` when they do not say."""
    if target not in REGION_NAMES or skill != "push" or quantified:
        return None
    if subjects:
        return BLOCK_COLORS[subjects[0]] if len(subjects) == 1 else None
    return last_object if not _block_word(clause) or any(w in PRONOUNS for w in clause) else None


def _spellable(xy: tuple[float, float]) -> tuple[float, float] | None:
    """``xy`` when the plan grammar can spell it (``schema.point_text``: on the table, two decimals at most), else
    ``None``."""
    return xy if point_text(xy) is not None else None


def _skill(clause: list[str], target: str) -> str | None:
    """The skill of the step to ``target`` that the words ``clause`` leading to it ask for: ``"reach"`` for a point or
    when they name the pusher ("go", "visit", "the pusher") and no block, ``"push"`` for a block target or when they
    name a block and not the pusher; ``None`` when they say neither ("..., then right") or both. "that" and "this"
    ("after that") name no block; a pusher word before "of" is none ("the right park of the table": grounding reads
    the word "part" as the typo "park")."""
    if target == POINT:
        return "reach"
    if target == NEXT_TO or target in BLOCK_NAMES:
        return "push"
    block, pusher = _block_word(clause), _pusher_word(clause)
    return "reach" if pusher and not block else "push" if block and not pusher else None


def _block_word(clause: list[str]) -> bool:
    """Whether ``clause`` names a block ("that" and "this" do not: "after that")."""
    return any(w in BLOCK_COLORS or w in BLOCK_WORDS - {"that", "this"} or w in QUANTIFIERS or w in PLURAL_BLOCKS for w in clause)


def _pusher_word(clause: list[str]) -> bool:
    """Whether ``clause`` names the pusher: a pusher word not before "of", nor a verb of ``BLOCK_SUBJECT_VERBS`` after a
    colour or a block noun ("the red block goes to", "the one block should go across to": the block goes)."""
    return any(w in PUSHER_WORDS and clause[k + 1 : k + 2] != ["of"]
               and not (w in BLOCK_SUBJECT_VERBS and any(v in BLOCK_COLORS or v in BLOCK_NOUN_WORDS for v in clause[:k]))
               for k, w in enumerate(clause))


def _names_either(clause: list[str]) -> bool:
    """Whether ``clause`` may name a skill: a block, the pusher, a verb of either skill or a word not read (``READ_WORDS``;
    "had over to" for "head"). A step whose words say nothing of its skill ("..., then back to the center", "after that,
    rightwards") takes the skill of the step before."""
    return (_block_word(clause) or _pusher_word(clause)
            or any(w in SKILL_VERBS or w[0].isalpha() and w not in READ_WORDS and not _read_typo(w) for w in clause))


def _next_to(mention: list[str], last_object: str | None, subjects: list[str], present: tuple[str, ...]) -> str:
    """The block a "next to" phrase names: its colour ("next to the green block"), the last block moved for "it" /
    "that one", else ``NEXT_TO`` (some block); never one of the blocks that go there."""
    colors = [BLOCK_COLORS[w] for w in mention if w in BLOCK_COLORS]
    block = colors[0] if colors else last_object if mention and mention[0] in PRONOUNS else None
    moved = {BLOCK_COLORS[c] for c in subjects}
    return block if block in present and block not in moved else NEXT_TO


def _shared(subjects: list[str], quantified: bool, present: tuple[str, ...]) -> int:
    """How many pushes one destination takes: one per colour before it, or per present block after a quantifier."""
    colors = list(dict.fromkeys(subjects))
    if len(colors) >= 2:
        return len(colors)
    if quantified and not colors:
        return len(present)
    return 1


def _goes_to(kind: str, target: str) -> bool:
    """Whether a step going to ``kind`` (``schema.target_kind``) goes where the demanded ``target`` says."""
    return kind == target or target == NEXT_TO and kind in BLOCK_NAMES


def covers(plan: dict[str, Any], want: Demand | None) -> bool:
    """Whether ``plan`` (with steps) goes to ``want.targets`` in that order (other steps may come between) with
    ``want.skills``, ``want.objects`` and ``want.points``, and its steps together do every item of ``want.required``;
    ``True`` when nothing is demanded."""
    if want is None or not plan["steps"]:
        return True
    steps = iter((target_kind(s), s["skill"], s.get("object"), s["target"]) for s in plan["steps"])
    none = (None,) * len(want.targets)
    asked = zip(want.targets, want.skills or none, want.objects or none, want.points or none)
    in_order = all(any(_goes_to(k, t) and skill in (None, done) and obj in (None, moved)
                       and (point is None or _same_point(to, point)) for k, done, moved, to in steps)  # each after the last
                   for t, skill, obj, point in asked)
    return in_order and want.required <= frozenset().union(*(step_items(s) for s in plan["steps"]))


def _same_point(target: Any, point: tuple[float, float]) -> bool:
    """Whether a step's ``target`` is the reach point ``point``."""
    return isinstance(target, list) and all(abs(a - b) < 1e-9 for a, b in zip(target, point))


def exceeds(plan: dict[str, Any], want: Demand | None) -> bool:
    """Whether ``plan`` has more steps than ``want`` asks for and goes to a demanded region more often than asked
    ("1) put the block in bottom left 2) bring it to the center" planned bottom left, center, bottom left). No plannable
    label of the generated, frozen dev or 6,300 composed rows does: a step the demand cannot read ("then push it back")
    goes elsewhere. Blocks are not counted: "next to it" after a "next to" phrase may be a step the demand cannot read."""
    if want is None or len(plan["steps"]) <= want.min_steps:
        return False
    kinds = Counter(target_kind(s) for s in plan["steps"])
    return any(kinds[t] > n for t, n in Counter(want.targets).items() if t in REGION_NAMES)
