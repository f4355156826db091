"""Models built offline: a small Qwen2.5-VL (tokenizer, processor, random weights)."""
