"""The planning domain: a PushBlocks command and scene in, a validated plan out.

- ``schema``: what a plan is (``validate_plan``, refusal reasons, named scenes) and ``plan_dfa``,
  the automaton of every valid plan text in a scene;
- ``grammar``: that automaton lifted to a token mask, ``GrammarConstraint`` (a ``TokenConstraint``
  of ``decoding``);
- ``normalize`` and ``prompts``: the command, lower-cased and typo-corrected, in a chat prompt;
- ``commands``: the labelled command set (``llm_planner/data/commands.jsonl``), its generator and scorer;
- ``planner``: ``Planner`` joins them: prompt, then the decoding engine under the scene's grammar,
  then ``validate_plan``.
"""
