"""The LLM task planner: a command in, a schema-valid plan out, decoded exactly with AR, SD or SSD.

Four subpackages, one per stage; each ``__init__`` says what lives there:

- ``decoding/``: the decoding engine, for any causal LM under any token constraint: target-side
  verification, the draft (in process or in its own process), the speculation cache, fan-out,
  sampling, and the model interface with its loader (``language_model``). It knows nothing of plans.
- ``planning/``: the PushBlocks domain: plan schema and grammar, prompts, command normalisation,
  the labelled command set, and ``Planner``, which runs the engine under a scene's grammar.
- ``training/``: how the two shipped models are made: the target's LoRA adapter and the distilled draft.
- ``cli/``: the verbs ``plan``, ``plan-eval``, ``generate``, ``train draft`` and ``train planner-lora``.

Imports point down that list in reverse (``cli`` → ``training`` → ``planning`` → ``decoding``), with
one exception: loading a model reads its LoRA adapter through ``training/lora.py``. ``data/`` holds
the labelled command set (``planning/commands.py`` writes and reads it).
"""
