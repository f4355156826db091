"""The export stage: a trained run (or checkpoint) → one servable model directory.

`merge.export_model` merges a LoRA/QLoRA adapter into its full-precision base (or
re-saves a full fine-tune), writes every file transformers and vLLM need plus
`vlmocr.json`, and `verify` proves the result equals what was trained before the
directory is renamed into place. `source` finds what to export, `files` owns the
file set. Importing this package is cheap: torch, transformers and peft are imported
inside the functions that need them.
"""
