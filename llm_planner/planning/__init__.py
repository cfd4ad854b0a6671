"""The planning domain: a PushBlocks command and scene in, a validated plan out.

- ``schema``: what a plan is (``validate_plan``, refusal reasons, named scenes) and ``plan_dfa``,
  the automaton of every valid plan text in a scene (or of those going to given places in order);
- ``grammar``: that automaton lifted to a token mask, ``GrammarConstraint`` (a ``TokenConstraint``
  of ``decoding``);
- ``normalize`` and ``prompts``: the command, lower-cased and typo-corrected, in a chat prompt;
- ``commands``: the labelled command set (``llm_planner/data/commands.jsonl``), its generator and scorer;
- ``frozen``: the hand-written frozen command set (``llm_planner/data/frozen_commands.jsonl``), dev
  and test splits, never trained on;
- ``grounding``: the lexicon check that every block, region and point of a plan is one the command
  names, else a refusal saying what is missing or asking which block;
- ``coverage``: what a command asks for (its destinations in order, the blocks it names) and whether a
  plan does all of it;
- ``planner``: ``Planner`` joins them: prompt, then the decoding engine under the scene's grammar,
  then ``validate_plan``, then ``grounding.ground``; a plan that does less than ``coverage.demand``
  (or that grounding refused, or a model refusal the command contradicts: ``coverage.CONTRADICTED``)
  is decoded again under the grammar of plans that do all of it, pushing only the blocks it names.
"""
