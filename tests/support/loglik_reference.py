"""An independent log-likelihood computation with transformers, for the ``--variant loglik`` test.

Run by ``.venv-vllm/bin/python`` (it has torch and transformers; medsweep's venv has neither), never imported
by medsweep. Reads a JSON object on stdin: ``model`` (a local model folder) and ``items``, each with either
``messages`` (a chat: rendered with the model's chat template and its generation prompt, the template writing
the special tokens) or ``prompt`` (a base model's completion prompt: tokenized with the tokenizer's own
special tokens), ``continuations`` (the options' answer texts) and optionally ``keep_last`` (the paper
variant's ``truncate_prompt_tokens``: only the prompt's last ``keep_last`` token ids are kept) and
``ids_only`` (the token ids without the sums). Writes, per item, the token ids transformers makes
(``context``; ``options``: each continuation without special tokens) and each option's summed log-probability,
computed in float32 from the same weights. Nothing here comes from the server or from medsweep.
"""

from __future__ import annotations

import copy
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
        if "messages" in item:
            text = tokenizer.apply_chat_template(item["messages"], add_generation_prompt=True, tokenize=False)
            context = tokenizer(text, add_special_tokens=False)["input_ids"]  # the template writes them
        else:
            context = tokenizer(item["prompt"], add_special_tokens=True)["input_ids"]
        keep = item.get("keep_last")
        if keep is not None and 0 < keep < len(context):
            context = context[-keep:]
        options = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in item["continuations"]]
        if item.get("ids_only"):  # the token ids alone: no forward pass
            out.append({"context": context, "options": options})
            continue
        # The context once (its cache and its last position's distribution), then each option on a copy of
        # the cache: the same numbers as one pass over context + option, for a fraction of the time.
        with torch.no_grad():
            first = model(torch.tensor([context]), use_cache=True)
        last = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
        sums = []
        per_token = []
        for ids in options:
            with torch.no_grad():
                logits = (
                    model(
                        torch.tensor([ids]),
                        past_key_values=copy.deepcopy(first.past_key_values),
                        use_cache=True,
                    )
                    .logits[0]
                    .float()
                )
            following = torch.log_softmax(logits[:-1], dim=-1)
            token_lp = [float(last[ids[0]])] + [float(following[i, ids[i + 1]]) for i in range(len(ids) - 1)]
            sums.append(sum(token_lp))
            per_token.append(token_lp)
        out.append({"context": context, "options": options, "sums": sums, "per_token": per_token})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
