"""Client stage: turn images into JSON through an OpenAI-compatible server (or vLLM in-process).

`extract.py` runs the job (discover images, resume, bounded concurrency, summary);
`request.py` sends one image with the transient-retry policy; `answers.py` turns one
answer into JSON or a named content error, never repairing it; `output.py` writes the
JSONL as results arrive, resumes, compacts and flattens to CSV; `offline.py` batches
through `vllm.LLM`. Importing this package needs no torch.
"""
