"""The reference plan: the plan a command's words spell out, as text for lookup drafting.

Speculative decoding needs a guess of what the target will write; a plan is mostly determined by
the command's words, which ``coverage.demand`` and ``grounding.check`` already read. ``reference_plan``
turns that reading into a plan: a refusal when the words alone refuse (absent block, injection,
unsupported skill, ...), else one step per demanded destination, with the demanded skill, block and
point, filling what the words leave open with the likeliest choice (a push when the command names a
block, its colours in order of mention). The engine verifies the reference's tokens against the
target like any draft (``decoding.lookup``), so a wrong reference costs speed and never changes a
plan: it is a draft, not a decision.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .coverage import demand
from .grounding import BLOCK_COLORS, canonical, check, mentions
from .schema import MAX_STEPS, NEXT_TO, POINT, refusal


def reference_plan(command: str, present: tuple[str, ...]) -> dict[str, Any]:
    """The plan (or refusal) ``command``'s words spell out in a scene with blocks ``present``.

    A refusal when the words alone refuse (``grounding.check``), when they name no destination ("unknown target" when
    they name a block, "unclear command" otherwise), when a written point is off the table, or when grounding would
    refuse the plan read from them (an ambiguous "the block"); else one step per destination of ``coverage.demand``.
    """
    why = check(command, present, {"steps": []})
    if why is not None:
        return refusal(why[0])
    m = mentions(command)
    want = demand(command, present)
    if want is None or want.min_steps > MAX_STEPS:
        return refusal("unknown target" if m.block_reference else "unclear command")
    movers = [BLOCK_COLORS[w] for w in re.findall(r"[a-z]+", canonical(command)) if BLOCK_COLORS.get(w) in present]
    movers = movers or (list(present) if m.all_blocks else [])
    steps: list[dict[str, Any]] = []
    for k, target in enumerate(want.targets):
        skill = want.skills[k] if want.skills else None
        if target == POINT:
            point = want.points[k] if want.points else None
            if point is None:
                return refusal("unknown target")
            steps.append({"skill": "reach", "target": list(point)})
            continue
        if target == NEXT_TO or target in present:
            skill = "push"
        skill = skill or ("push" if m.block_reference or m.all_blocks else "reach")
        if skill == "reach":
            steps.append({"skill": "reach", "target": target})
            continue
        last = steps[-1].get("object") if steps else None  # "then move it next to the green block"
        obj = (want.objects[k] if want.objects else None) or next((b for b in movers if b != target), None) or last or present[0]
        if obj in movers:
            movers.remove(obj)  # colours are used up in order of mention ("push blue beside red, then green beside blue")
        if target in movers:
            movers.remove(target)
        if target == NEXT_TO:
            target = next((b for b in present if b != obj), obj)
        steps.append({"skill": "push", "object": obj, "target": target})
    plan = {"steps": steps}
    why = check(command, present, plan)
    return plan if why is None else refusal(why[0])


def reference_text(command: str, present: tuple[str, ...]) -> str:
    """``reference_plan`` spelt as the grammar spells plans (``json.dumps``)."""
    return json.dumps(reference_plan(command, present))

