"""The planner's verbs: each module parses its flags and makes one call into ``planning``, ``decoding`` or ``training``.

- ``plan``: ``forethought plan``; ``plan_eval``: ``forethought plan-eval``; ``generate``: ``forethought generate``;
- ``train_planner_lora`` and ``train_draft``: ``forethought train planner-lora`` and ``forethought train draft``
  (listed in ``models/cli_train.py``);
- ``options``: the decoding flags (parsed into ``EngineConfig``) and training flags these verbs share.
"""
