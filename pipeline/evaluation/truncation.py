"""Which truncation a run applies: v3's whole-prompt left truncation where the endpoint can, else per letter.

v3 passed ``truncate = max_position_embeddings - N`` to TGI, which keeps the LAST tokens of the whole rendered
prompt. vLLM's request field ``truncate_prompt_tokens`` (chat and completions) does the same, and
``truncation_side = "left"`` pins the side: in vLLM 0.32 an unset side falls back to the tokenizer's own
``truncation_side`` (``vllm/renderers/params.py``), which is ``right`` for many tokenizers; older versions
always cut on the left and ignore the extra field. Servers that do not know the fields ignore or reject them,
so they are only sent where the endpoint is vLLM.

"The endpoint is vLLM" is decided from what is already probed for provenance: ``GET /version`` answers a JSON
object with a ``version`` string. That route is vLLM's own; OpenAI, llama-cpp-python and TGI's Messages API
have none. A gateway that hides ``/version`` but forwards the field can be told ``--truncation v3``.
"""

from __future__ import annotations

from pipeline.config import Truncation
from pipeline.tasks.base import AppliedTruncation


def resolve_truncation(requested: Truncation, vllm_version: object) -> AppliedTruncation:
    """``requested`` (auto, v3 or letters) for an endpoint whose ``/version`` answered ``vllm_version``."""
    if requested != "auto":
        return requested
    return "v3" if isinstance(vllm_version, str) and vllm_version else "letters"
