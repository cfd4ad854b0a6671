"""How the planner's two shipped models are made, on a CPU in minutes.

- ``lora``: the LoRA adapter format: add adapters to a model, save them, merge them at load;
- ``finetune_lora``: fine-tune the target with a LoRA adapter on labelled commands;
- ``distill_draft``: distil the sd/ssd draft from the adapted target's greedy plan traces;
- ``data``: training rows (never a held-out phrasing), examples, batches and grammar masks;
- ``loop``: grammar-masked loss, learning-rate schedule, progress lines, saved settings.

The draft imitates the adapted target, so the adapter is trained first. The flags of both jobs
are in ``cli/train_planner_lora.py`` and ``cli/train_draft.py``.
"""
