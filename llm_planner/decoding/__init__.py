"""Exact speculative decoding of any causal LM, optionally under a token constraint: ``ar``, ``sd`` or ``ssd``.

Nothing here knows about plans: the planning domain reaches the engine only as a ``TokenConstraint``.

One round of ``engine.Engine.generate`` (the stages exchange the types in ``speculate_types``):

1. the engine sends a ``SpecRequest`` (last round's outcome) to a ``Speculator``: the in-process
   ``speculator.DraftSpeculator`` (sd; ssd run sequentially) or ``draft_process.ProcessSpeculator``,
   its proxy in a spawned process (ssd);
2. the speculator answers with a ``Proposal`` of ``lookahead`` draft tokens, a hit in the
   ``speculation_cache`` or drafted just in time; in ssd it then pre-drafts next round's branches
   (``fanout`` sizes them) while the target verifies;
3. the target runs ``[pending, d_1..d_K]`` in one forward; ``sampling`` masks and scales its
   logits, and ``verify.verify``, a pure function, returns a ``VerifyResult``: how many draft
   tokens were ``accepted``, and the bonus token;
4. the engine crops the target's KV cache to the accepted prefix and records a ``RoundRecord``.

Models sit behind ``language_model.LanguageModel`` (a KV cache with forward, crop and expand);
a ``ModelSpec`` names one picklably, so that the draft process loads its own copy.
``batched.greedy_batch`` decodes many prompts at once, target only, for evaluation and traces.

Names: ``lookahead`` (``K``) is the number of draft tokens per round and ``accepted`` (``k``) how
many of them the target kept; ``kv`` is a model's KV cache and ``spec_cache`` the draft's
speculation cache of pre-drafted branches.
"""
