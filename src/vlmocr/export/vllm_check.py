"""The vLLM check: vLLM loads the exported directory and answers the probe like transformers.

vLLM runs in a child process (its own session, killed as a group on timeout, its temp
files in a folder removed afterwards) so that its engine processes, environment and
memory never outlive the check. Settings that work on the CPU build: float32, eager
mode, one image and no video a prompt, `VLLM_CPU_KVCACHE_SPACE=1` unless already set.
Both sides decode greedily for `vllm_max_tokens` tokens; answers are compared as token
ids after dropping a trailing end-of-sequence token.

Run as `python -m vlmocr.export.vllm_check REQUEST.json RESULT.json` (internal).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmocr.images import to_data_url

if TYPE_CHECKING:
    from vlmocr.contract import ModelContract
    from vlmocr.export.verify import VerifyConfig, VerifyReport

log = logging.getLogger(__name__)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def transformers_greedy(model: Any, inputs: Any, max_new_tokens: int) -> list[int]:
    """Greedy new token ids from transformers (the model's own sampling settings overridden)."""
    import torch
    from transformers import GenerationConfig

    own = model.generation_config
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=own.eos_token_id,
        pad_token_id=own.pad_token_id if own.pad_token_id is not None else own.eos_token_id,
    )
    with torch.no_grad():
        out = model.generate(**inputs, generation_config=config)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def eos_token_ids(model: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos if isinstance(eos, list) else [eos] if eos is not None else [])


def compare_with_vllm(
    report: VerifyReport,
    directory: Path,
    hf_ids: list[int],
    eos_ids: set[int],
    inputs: Any,
    contract: ModelContract,
    config: VerifyConfig,
    last_logits: Any | None = None,
) -> None:
    """Add the `vllm` check: vLLM's greedy answer to the probe must equal `hf_ids`.

    `hf_ids` is transformers' greedy answer (`transformers_greedy`), computed by the
    caller so that its model can be freed before vLLM loads a second copy. `last_logits`
    (transformers' logits at the last prompt position) adds the largest difference
    between vLLM's and transformers' top first-token log-probabilities to the report,
    as a measured value (not a pass/fail criterion).
    """
    from vlmocr.export.verify import probe_image

    prompt_len = int(inputs["input_ids"].shape[1])
    request = {
        "model": str(Path(directory).resolve()),
        "messages": contract.prompt.openai_messages(to_data_url(probe_image(contract.resolution), fmt="PNG")),
        "max_tokens": config.vllm_max_tokens,
        "max_model_len": prompt_len + config.vllm_max_tokens + 64,
    }
    try:
        result = run_vllm_probe(request, timeout_s=config.vllm_timeout_s)
    except RuntimeError as exc:
        report.add("vllm", [f"vLLM could not answer the probe: {exc}"], "")
        return
    got, want = _strip(result["token_ids"], eos_ids), _strip(hf_ids, eos_ids)
    problems = []
    if result["prompt_token_ids"] != inputs["input_ids"][0].tolist():
        problems.append(
            f"vLLM built a different prompt ({len(result['prompt_token_ids'])} tokens, transformers "
            f"{prompt_len}): chat template, tokenizer or image resizing differ"
        )
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        problems.append(f"greedy answers differ at token {first}: vLLM {got[:first + 3]} vs transformers {want[:first + 3]}")
    values: dict[str, Any] = {"vllm_tokens": got, "transformers_tokens": want, "prompt_tokens": prompt_len,
                              "seconds": result["seconds"]}
    if last_logits is not None and result.get("first_logprobs"):
        ours = last_logits.float().log_softmax(-1)
        theirs = {int(k): v for k, v in result["first_logprobs"].items()}
        values["first_token_logprob_max_abs_diff"] = max(abs(float(ours[k]) - v) for k, v in theirs.items())
    report.add(
        "vllm", problems,
        f"vLLM loaded it in {result['seconds']:.0f} s; same prompt and {len(want)} greedy tokens as transformers",
        **values,
    )


def _strip(ids: list[int], eos_ids: set[int]) -> list[int]:
    ids = list(ids)
    for i, tok in enumerate(ids):
        if tok in eos_ids:
            return ids[:i]
    return ids


def run_vllm_probe(request: dict[str, Any], *, timeout_s: float) -> dict[str, Any]:
    """Run one greedy chat request through `vllm.LLM` in a child process; return its answer."""
    with tempfile.TemporaryDirectory(prefix="vlmocr-vllm-check-") as tmp:
        work = Path(tmp)
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        env.update(TMPDIR=str(work), VLLM_CACHE_ROOT=str(work / "cache"), TOKENIZERS_PARALLELISM="false",
                   HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
        cmd = [sys.executable, "-m", "vlmocr.export.vllm_check", str(work / "request.json"), str(work / "result.json")]
        log.info("vLLM check: loading %s in a child process", request["model"])
        with (work / "vllm.log").open("wb") as logfile:
            proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                rc = None
            finally:
                _end_group(proc)
        tail = (work / "vllm.log").read_text(encoding="utf-8", errors="replace")[-3000:]
        if rc is None:
            raise RuntimeError(f"no answer within {timeout_s:.0f} s; log tail:\n{tail}")
        if rc != 0 or not (work / "result.json").is_file():
            raise RuntimeError(f"exit code {rc}; log tail:\n{tail}")
        return json.loads((work / "result.json").read_text(encoding="utf-8"))


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the child's whole process group (vLLM's engine processes included)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    proc.wait()


def _probe_main(request_path: str, result_path: str) -> None:
    from vllm import LLM, SamplingParams

    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    start = time.perf_counter()
    llm = LLM(
        model=request["model"],
        dtype="float32",
        enforce_eager=True,
        max_model_len=request["max_model_len"],
        limit_mm_per_prompt={"image": 1, "video": 0},
        max_num_seqs=1,
        seed=0,
        trust_remote_code=False,
    )
    params = SamplingParams(temperature=0.0, max_tokens=request["max_tokens"], logprobs=5)
    output = llm.chat(request["messages"], params, use_tqdm=False)[0]
    answer = output.outputs[0]
    result = {
        "prompt_token_ids": list(output.prompt_token_ids or []),
        "token_ids": list(answer.token_ids),
        "text": answer.text,
        "finish_reason": answer.finish_reason,
        "first_logprobs": {str(k): v.logprob for k, v in (answer.logprobs or [{}])[0].items()},
        "seconds": time.perf_counter() - start,
    }
    Path(result_path).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    _probe_main(sys.argv[1], sys.argv[2])
