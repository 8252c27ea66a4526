"""Derive a "thinking" test model from the CPU default: SmolLM2 with `<think>` and `</think>` as tokens.

Usage: python scripts/add_think_tokens.py models/smollm2-135m-instruct models/smollm2-135m-think

vLLM's reasoning parsers (`--reasoning-parser deepseek_r1`) refuse a model whose vocabulary lacks the two
tags ("could not locate think start/end tokens in the tokenizer"), and its `thinking_token_budget` forces the
closing tag as a token. This adds both as tokens (the embedding matrix grows by two rows, each a copy of an
ordinary token's: see THINK_TOKENS), and gives the folder a chat template whose generation prompt
opens `<think>`, as DeepSeek-R1's does: everything the model writes is its trace until it writes `</think>`
or the budget forces it. A test model only (servers/smollm2-135m-think.toml): it is not a reasoning model,
it merely answers in a reasoning model's shape. No download: it reads the converted CPU default.
Runs inside `.venv-vllm` (torch, transformers).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Each new token reads like an ordinary one: `<think>` like "Let" (the model then starts a rambling trace),
# `</think>` like a paragraph break (after a forced end it starts an answer). Measured on this model: rows set
# to the mean embedding made it end its turn right after `<think>`, with an empty trace. The embeddings are
# tied, so a copied row scores like its source and greedy decoding keeps picking the source (the lower id):
# the model never writes the tags itself; vLLM's thinking_token_budget writes `</think>`.
THINK_TOKENS = {"<think>": "Let", "</think>": "\n\n"}
# The CPU default's ChatML template, with the assistant turn opened inside a trace.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


def derive(source: Path, out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (source / "config.json").is_file():
        raise SystemExit(
            f"add_think_tokens: {source} is not a model folder (run scripts/setup_cpu_server.sh)"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.bfloat16)
    tokenizer.add_tokens(list(THINK_TOKENS), special_tokens=False)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        for tag, like in THINK_TOKENS.items():
            source = tokenizer.encode(like, add_special_tokens=False)[0]
            embeddings[tokenizer.convert_tokens_to_ids(tag)] = embeddings[source]
    tokenizer.chat_template = CHAT_TEMPLATE
    for tag in THINK_TOKENS:  # each tag must be one token, or vLLM's parser cannot find it
        ids = tokenizer.encode(tag, add_special_tokens=False)
        if len(ids) != 1:
            raise SystemExit(f"add_think_tokens: {tag!r} encodes to {ids}, not one token")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)  # at the end: a half-written folder never looks like a finished model


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: add_think_tokens.py SOURCE_MODEL_DIR OUT_DIR")
    derive(Path(sys.argv[1]), Path(sys.argv[2]))
