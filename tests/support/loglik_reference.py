"""An independent log-likelihood computation with transformers, for the ``--variant loglik`` test.

Run by ``.venv-vllm/bin/python`` (it has torch and transformers; medsweep's venv has neither), never imported
by medsweep. Reads a JSON object on stdin: ``model`` (a local model folder) and ``items``, each with
``messages`` (the chat the prompt renders) and ``continuations`` (the options' answer texts). Writes, per
item, the token ids transformers makes (``context``: the chat template with its generation prompt;
``options``: each continuation without special tokens) and each option's summed log-probability, computed
in float32 from the same weights. Nothing here comes from the server or from medsweep.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # One thread: on a loaded machine (the tests run beside a vLLM server) OpenMP threads that spin while
    # waiting for each other made this minutes slower, not faster.
    torch.set_num_threads(1)
    request = json.load(sys.stdin)
    tokenizer = AutoTokenizer.from_pretrained(request["model"])
    model = AutoModelForCausalLM.from_pretrained(
        request["model"], dtype=getattr(torch, request.get("dtype", "float32"))
    )
    model.eval()
    out = []
    for item in request["items"]:
        text = tokenizer.apply_chat_template(item["messages"], add_generation_prompt=True, tokenize=False)
        context = tokenizer(text, add_special_tokens=False)["input_ids"]  # the template writes the specials
        options = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in item["continuations"]]
        sums = []
        per_token = []
        for ids in options:
            full = torch.tensor([context + ids])
            with torch.no_grad():
                logits = model(full).logits[0].float()
            logprobs = torch.log_softmax(logits[:-1], dim=-1)
            targets = full[0, 1:]
            token_lp = logprobs[torch.arange(len(targets)), targets][len(context) - 1 :]
            sums.append(float(token_lp.sum()))
            per_token.append([float(v) for v in token_lp])
        out.append({"context": context, "options": options, "sums": sums, "per_token": per_token})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
