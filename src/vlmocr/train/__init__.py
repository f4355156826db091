"""The training stage: LoRA / QLoRA / full fine-tuning of Qwen2.5-VL on document JSON."""
