"""The labelled command set: generated phrasings of PushBlocks commands with their exact plans.

Covers synonyms, typos, multi-step commands ("first ... then ..."), relative targets ("next to
the blue one") and unsatisfiable commands (absent blocks, unknown targets, unsupported actions,
gibberish). The split is by phrasing template: the held-out split draws every verb, noun, region
phrase, "next to" phrase, multi-step template, point template, absent colour, unknown target,
unsupported action and gibberish line from lists the train split never uses, so accuracy on it
measures generalisation, not memory. ``generate({"augmented": n}, seed)`` makes more training rows
from the train phrasings and further train-only synonyms.

Regenerate the shipped file (deterministic for a seed)::

    python -c "from forethought.llm_planner.planning import commands; commands.main()"   # writes llm_planner/data/commands.jsonl
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

from forethought.files import atomic_path

from .schema import SCENES, refusal, validate_plan

DATA = Path(__file__).resolve().parents[1] / "data" / "commands.jsonl"
COLORS = {"red_block": "red", "green_block": "green", "blue_block": "blue"}
# split -> phrasings; "heldout" ones never appear in train.
ABSENT_COLORS = {"train": ("yellow", "purple", "orange"), "heldout": ("black", "white", "pink")}
PUSH_VERBS = {"train": ("push", "move", "shove", "put", "bring"), "heldout": ("slide", "nudge", "get")}
NOUNS = {"train": ("block", "cube", ""), "heldout": ("box", "brick")}
REACH = {"train": ("go to", "move the pusher to", "reach", "touch"), "heldout": ("head over to", "drive the pusher to")}
REGION_WORDS = {
    "train": {
        "center": ("the center", "the middle"), "left": ("the left", "the left side"), "right": ("the right", "the right side"),
        "top_left": ("the top left corner", "the top left"), "top_right": ("the top right corner", "the top right"),
        "bottom_left": ("the bottom left corner", "the bottom left"), "bottom_right": ("the bottom right corner", "the bottom right"),
    },
    "heldout": {
        "center": ("the centre",), "left": ("the left-hand side",), "right": ("the right-hand side",),
        "top_left": ("the upper left",), "top_right": ("the upper right",), "bottom_left": ("the lower left",), "bottom_right": ("the lower right",),
    },
}
NEXT_TO = {"train": ("next to", "beside"), "heldout": ("alongside", "up against")}
THEN = {"train": ("first {a}, then {b}", "{a} and then {b}"), "heldout": ("{a}. after that, {b}",)}
POINT = {"train": ("the point ({x}, {y})",), "heldout": ("the position ({x}, {y})",)}
UNSUPPORTED = {
    "train": ("pick up the {c} block", "throw the {c} block off the table", "paint the {c} block blue"),
    "heldout": ("stack the {c} block on top of the others", "lift the {c} block", "rotate the {c} block"),
}
UNKNOWN_TARGETS = {"train": ("the kitchen", "the moon", "the shelf"), "heldout": ("my office", "the garden", "the fridge")}
GIBBERISH = {
    "train": ("asdf qwer zxcv", "blorp the snargle", "the the the", "what is the weather like"),
    "heldout": ("???", "zzzz qqqq", "tell me a joke", "hello there"),
}

# "augmented": the train phrasings plus more synonyms of the same kinds, none of them a held-out
# word, for generated training rows only (``generate({"augmented": n})``, labelled split "train").
# The shipped labelled file does not use them.
ABSENT_COLORS["augmented"] = ABSENT_COLORS["train"] + ("grey", "brown", "cyan", "magenta", "gold", "silver")
PUSH_VERBS["augmented"] = PUSH_VERBS["train"] + ("drag", "shift", "send", "take", "steer")
NOUNS["augmented"] = NOUNS["train"] + ("piece", "object", "square")
REACH["augmented"] = REACH["train"] + ("travel to", "send the pusher to", "navigate to", "move the end effector to", "tap")
# Each region also as its plain name and an area noun: "the left zone", "the top right area". The
# table is seen from its bottom edge, so its top is the back (far) side and its bottom the front (near) one.
REGION_WORDS["augmented"] = {
    region: phrases + extra + tuple(f"the {region.replace('_', ' ')} {noun}" for noun in ("zone", "region", "area"))
    for (region, phrases), extra in zip(REGION_WORDS["train"].items(), (
        ("the middle of the table", "the table's center"), ("the far left", "the left edge"), ("the far right", "the right edge"),
        ("the top-left corner", "the northwest corner", "the left top corner", "the far top left", "the back left corner",
         "the rear left"),
        ("the top-right corner", "the northeast corner", "the right top corner", "the far top right", "the back right corner",
         "the rear right"),
        ("the bottom-left corner", "the southwest corner", "the left bottom corner", "the far bottom left",
         "the front left corner", "the front left"),
        ("the bottom-right corner", "the southeast corner", "the right bottom corner", "the far bottom right",
         "the front right corner", "the front right"),
    ))
}
NEXT_TO["augmented"] = NEXT_TO["train"] + ("near", "close to", "adjacent to", "by", "right next to", "up next to", "touching",
                                           "right beside")
THEN["augmented"] = THEN["train"] + ("{a}, then {b}", "{a}. then {b}", "{a}, afterwards {b}", "{a}. next, {b}", "first {a}. second, {b}",
                                     "{a}; {b}", "{a}. afterwards, {b}", "{a}. once done, {b}", "{a}. later, {b}",
                                     "{a}. when finished, {b}", "{a}, and when you are done, {b}")
POINT["augmented"] = POINT["train"] + ("the coordinates ({x}, {y})", "x {x}, y {y}", "({x}, {y})")
UNSUPPORTED["augmented"] = UNSUPPORTED["train"] + ("grab the {c} block", "break the {c} block", "flip the {c} block upside down",
                                                   "hide the {c} block", "weigh the {c} block")
UNKNOWN_TARGETS["augmented"] = UNKNOWN_TARGETS["train"] + ("the door", "the window", "the bedroom", "the ceiling", "the parking lot")
# Cumulative shares of single, multi, absent, unknown-target, unsupported (the rest: gibberish) per split:
# augmented rows carry more multi-step commands, whose second step the model tends to drop.
KIND_MIX = {"train": (0.45, 0.7, 0.8, 0.87, 0.94), "heldout": (0.45, 0.7, 0.8, 0.87, 0.94), "augmented": (0.35, 0.7, 0.8, 0.87, 0.94)}
GIBBERISH["augmented"] = GIBBERISH["train"] + ("lorem ipsum dolor", "banana banana", "what time is it", "sing me a song", "!!!",
                                               "good morning", "...", "qwerty uiop")


def lexicon() -> set[str]:
    """The domain's words for typo correction (``normalize.Normalizer``): every word of the train and
    augmented phrasings (gibberish lines aside), the colours and the region names; never a held-out word."""
    tables = [PUSH_VERBS, NOUNS, REACH, NEXT_TO, THEN, POINT, ABSENT_COLORS, UNSUPPORTED, UNKNOWN_TARGETS]
    texts = [t for table in tables for t in table["augmented"]] + list(COLORS.values())
    texts += [t for phrases in REGION_WORDS["augmented"].values() for t in phrases] + [r.replace("_", " ") for r in REGION_WORDS["train"]]
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


def typo(text: str, rng: random.Random) -> str:
    """One swapped, dropped or doubled letter inside a word of at least 4 letters."""
    words = text.split()
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idx:
        return text
    i = rng.choice(idx)
    w, j = words[i], rng.randrange(1, len(words[i]) - 1)
    words[i] = rng.choice([w[:j] + w[j + 1] + w[j] + w[j + 2 :], w[:j] + w[j + 1 :], w[:j] + w[j] + w[j:]])
    return " ".join(words)


def _block(name: str, split: str, rng: random.Random) -> str:
    noun = rng.choice(NOUNS[split])
    return f"the {COLORS[name]} {noun}".rstrip()


def _push(obj: str, target: str, split: str, rng: random.Random, blocks: tuple[str, ...]) -> tuple[str, dict]:
    verb = rng.choice(PUSH_VERBS[split])
    if target in COLORS:
        where = f"{rng.choice(NEXT_TO[split])} the {COLORS[target]} one"
    else:
        where = f"to {rng.choice(REGION_WORDS[split][target])}"
    return f"{verb} {_block(obj, split, rng)} {where}", {"skill": "push", "object": obj, "target": target}


def _reach(split: str, rng: random.Random) -> tuple[str, dict]:
    if rng.random() < 0.25:
        x, y = (round(rng.randint(-27, 27) / 100, 2) for _ in range(2))
        point = POINT[split][0] if len(POINT[split]) == 1 else rng.choice(POINT[split])  # one template: no draw, as when first shipped
        return f"{rng.choice(REACH[split])} {point.format(x=x, y=y)}", {"skill": "reach", "target": [x, y]}
    region = rng.choice(list(REGION_WORDS[split]))
    return f"{rng.choice(REACH[split])} {rng.choice(REGION_WORDS[split][region])}", {"skill": "reach", "target": region}


def _step(split: str, rng: random.Random, blocks: tuple[str, ...]) -> tuple[str, dict]:
    if rng.random() < 0.3:
        return _reach(split, rng)
    obj = rng.choice(blocks)
    targets = list(REGION_WORDS[split]) + [b for b in blocks if b != obj]
    return _push(obj, rng.choice(targets), split, rng, blocks)


def generate(n_per_split: dict[str, int] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Rows ``{"command", "scene", "plan", "split", "kind"}``; every plan passes ``validate_plan``.

    ``n_per_split`` maps ``"train"``, ``"heldout"`` or ``"augmented"`` (train phrasings and more
    synonyms, rows labelled ``"train"``) to a row count.
    """
    n_per_split = n_per_split or {"train": 240, "heldout": 120}
    rng = random.Random(seed)
    rows, seen = [], set()
    for split, n in n_per_split.items():
        count = 0
        while count < n:
            scene = rng.choice(list(SCENES))
            blocks = SCENES[scene]
            r, mix = rng.random(), KIND_MIX[split]
            if r < mix[0]:
                text, step = _step(split, rng, blocks)
                plan, kind = {"steps": [step]}, "single"
            elif r < mix[1]:
                (a, s1), (b, s2) = _step(split, rng, blocks), _step(split, rng, blocks)
                text, plan, kind = rng.choice(THEN[split]).format(a=a, b=b), {"steps": [s1, s2]}, "multi"
            elif r < mix[2]:
                absent = [c for c in COLORS if c not in blocks]
                color = rng.choice([COLORS[c] for c in absent] + list(ABSENT_COLORS[split]))
                # Any region: the colour, not the region, is what signals the refusal.
                region = rng.choice(list(REGION_WORDS[split]))
                text = f"{rng.choice(PUSH_VERBS[split])} the {color} block to {rng.choice(REGION_WORDS[split][region])}"
                plan, kind = refusal("object not in scene"), "absent"
            elif r < mix[3]:
                obj = rng.choice(blocks)
                text = f"{rng.choice(PUSH_VERBS[split])} {_block(obj, split, rng)} to {rng.choice(UNKNOWN_TARGETS[split])}"
                plan, kind = refusal("unknown target"), "unknown_target"
            elif r < mix[4]:
                text, plan, kind = rng.choice(UNSUPPORTED[split]).format(c=COLORS[rng.choice(blocks)]), refusal("unsupported action"), "unsupported"
            else:
                text, plan, kind = rng.choice(GIBBERISH[split]), refusal("unclear command"), "gibberish"
            if kind in ("single", "multi") and rng.random() < 0.2:
                text, kind = typo(text, rng), kind + "_typo"
            if (text, scene) in seen:
                continue
            seen.add((text, scene))
            rows.append({"command": text, "scene": scene, "plan": validate_plan(plan, blocks),
                         "split": "train" if split == "augmented" else split, "kind": kind})
            count += 1
    return rows


def named_blocks(plan: dict[str, Any]) -> set[str]:
    """Blocks a labelled plan names: pushed objects and blocks pushed next to."""
    return {b for s in plan["steps"] if s["skill"] == "push" for b in (s["object"], s["target"]) if b in COLORS}


def wrong_execution(want: dict[str, Any], got: dict[str, Any]) -> bool:
    """Whether ``got`` would move something for a command labelled as refused, or push a block ``want`` does not name.

    Refusing a plannable command is a miss, never a wrong execution.
    """
    if not got.get("steps"):
        return False
    if "refusal" in want:
        return True
    return any(s["skill"] == "push" and s["object"] not in named_blocks(want) for s in got["steps"])


def score(rows: list[dict[str, Any]], plans: list[dict[str, Any]]) -> dict[str, Any]:
    """Schema-valid rate, exact-plan accuracy (overall and per kind), refusal accuracy and wrong executions of ``plans`` for ``rows``.

    A refusal's ``detail`` (the explanation grounding adds) is not compared. ``refusal_exact``:
    labelled refusals answered with the same reason; ``false_refusals``: plannable commands
    answered with a refusal; ``wrong_executions``: a count (``wrong_execution``).
    """
    valid = exact = refusals = refusals_right = plannable = false_refusals = wrong = 0
    by_kind: dict[str, list[int]] = {}
    for row, plan in zip(rows, plans, strict=True):
        try:
            validate_plan(plan, SCENES[row["scene"]])
            valid += 1
        except ValueError:
            pass
        right = {k: v for k, v in plan.items() if k != "detail"} == row["plan"]
        exact += right
        wrong += wrong_execution(row["plan"], plan)
        by_kind.setdefault(row["kind"], [0, 0])[0] += right
        by_kind[row["kind"]][1] += 1
        if "refusal" in row["plan"]:
            refusals += 1
            refusals_right += right
        else:
            plannable += 1
            false_refusals += "refusal" in plan
    n = len(rows)
    return {
        "n": n,
        "schema_valid": valid / n,
        "exact": exact / n,
        "refusal_exact": refusals_right / refusals if refusals else None,
        "false_refusals": false_refusals / plannable if plannable else None,
        "wrong_executions": wrong,
        "exact_by_kind": {k: right / total for k, (right, total) in sorted(by_kind.items())},
    }


def evaluate(planner: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``score`` of ``planner.plan`` over ``rows``."""
    return score(rows, [planner.plan(r["command"], r["scene"]).plan for r in rows])


def load(split: str | None = None, path: Path = DATA) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in rows if split is None or r["split"] == split]


def main(path: Path = DATA, seed: int = 0) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in generate(seed=seed)))
