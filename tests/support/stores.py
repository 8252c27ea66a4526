"""Build medsweep stores for report tests by writing the schema of docs/architecture.md with sqlite3."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE runs(run_id TEXT PRIMARY KEY, model TEXT, variant TEXT, started_at REAL, finished_at REAL,
     config_json TEXT, provenance_json TEXT);
CREATE TABLE plan(model TEXT, variant TEXT, task TEXT, total INTEGER, run_id TEXT,
     PRIMARY KEY(model, variant, task));
CREATE TABLE results(key TEXT PRIMARY KEY, run_id TEXT, model TEXT, variant TEXT, task TEXT, subtask TEXT,
        item_id TEXT, repeat INTEGER, prompt_hash TEXT, request_json TEXT, reference_json TEXT,
        status TEXT, error_class TEXT, error_message TEXT,
        output TEXT, finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
        latency_s REAL, attempts INTEGER, updated_at REAL);
CREATE TABLE scores(key TEXT PRIMARY KEY, model TEXT, variant TEXT, task TEXT, subtask TEXT, item_id TEXT,
       repeat INTEGER, parsed_json TEXT, strict_valid INTEGER, metrics_json TEXT);
"""

SAMPLING = {"temperature": 0.0, "top_p": 1.0, "seed": 1234, "stop": []}
PROMPTS = {
    t: f"{i:064x}"
    for i, t in enumerate(["mednli", "meqsum", "probsum", "longhealth", "medisumqa", "medisumcode"], start=1)
}
SUMMARY_METRICS = ("rougeL", "rouge1", "rouge2", "bertscore_f1", "umls_f1")


class StoreBuilder:
    """``<out>/medsweep.sqlite`` in WAL mode with runs, results and scores written row by row."""

    def __init__(self, out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = out / "medsweep.sqlite"
        self.con = sqlite3.connect(self.path)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.executescript(SCHEMA)
        os.chmod(self.path, 0o600)
        self._n = 0

    def add_run(
        self,
        run_id: str,
        model: str,
        *,
        variant: str = "paper",
        sampling: dict[str, Any] | None = None,
        prompts: dict[str, str] | None = None,
        config_extra: dict[str, Any] | None = None,
    ) -> None:
        config = {
            "sampling": sampling or SAMPLING,
            "prompts_sha256": prompts or PROMPTS,
            "run": {"variant": variant},
        } | (config_extra or {})
        provenance = {
            "vllm_version": "0.6.6",
            "served_id": f"org/{model}",
            "max_model_len": 8192,
            "image": "vllm/vllm-openai:v0.6.6",
            "gpus": ["H100"],
            "tp_size": 1,
            "medsweep_version": "0.1.0",
            "git_commit": "1044ccf",
        }
        self.con.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?)",
            (
                run_id,
                model,
                variant,
                1_717_000_000.0,
                1_717_003_600.0,
                json.dumps(config),
                json.dumps(provenance),
            ),
        )

    def add(
        self,
        run_id: str,
        model: str,
        task: str,
        item_id: str,
        metrics: dict[str, float] | None,
        *,
        subtask: str = "",
        repeat: int = 0,
        variant: str = "paper",
        strict_valid: bool | None = True,
        failed: str | None = None,
        scored: bool = True,
        output: str | None = None,
        reference: Any = None,
        prompt_hash: str | None = None,
        parsed: Any = None,
    ) -> None:
        """One result; ``failed`` is an error class (no score row then); ``metrics`` on the 0-100 scale.
        ``output``, ``reference``, ``prompt_hash`` and ``parsed`` default to placeholders."""
        self._n += 1
        key = f"k{self._n:06d}"
        status = "failed" if failed else "succeeded"
        self.con.execute(
            "INSERT INTO results VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                key,
                run_id,
                model,
                variant,
                task,
                subtask,
                item_id,
                repeat,
                prompt_hash or f"ph-{task}-{item_id}",
                "{}",
                json.dumps(reference if reference is not None else {}),
                status,
                failed,
                "boom" if failed else None,
                None if failed else (output if output is not None else f"answer {item_id}"),
                None if failed else "stop",
                100,
                None if failed else 12,
                0.5,
                1,
                1_717_000_100.0,
            ),
        )
        if failed or not scored:
            return
        self.con.execute(
            "INSERT INTO scores VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                key,
                model,
                variant,
                task,
                subtask,
                item_id,
                repeat,
                json.dumps(parsed if parsed is not None else {"answer": item_id}),
                None if strict_valid is None else int(strict_valid),
                json.dumps(metrics),
            ),
        )

    def close(self) -> None:
        self.con.commit()
        self.con.close()


def add_constant_model(
    store: StoreBuilder, run_id: str, model: str, task_values: dict[str, float], n_items: int = 12
) -> None:
    """Every item of every task gets the same value for each of the task's paper metrics."""
    store.add_run(run_id, model)
    for task, value in task_values.items():
        subtasks = ["task1", "task2", "task3"] if task == "longhealth" else [""]
        names = {
            "mednli": ("accuracy",),
            "longhealth": ("accuracy",),
            "meqsum": SUMMARY_METRICS[:4],
            "medisumcode": ("icd_em_f1", "icd_ap_f1", "icd_valid"),
        }.get(task, SUMMARY_METRICS)
        for subtask in subtasks:
            for i in range(n_items):
                store.add(run_id, model, task, f"{i}", {m: value for m in names}, subtask=subtask)


def build_pair_store(out: Path, *, bio_failures: int = 3) -> Path:
    """A biomedical model ``bio-7b`` and its base ``base-7b`` (paired with --pair), plus ``other-3b``.

    Known answers (40 MedNLI items, 30 MeQSum items, 10 LongHealth questions x 3 sub-tasks x 2 repeats):
    - MedNLI: base right on items 0-35 (90%), bio right on 0-11 (30%): bio clearly worse (b=0, c=24).
    - MeQSum: both score 50 on every metric except bio's rougeL is 0: bio worse (all 30 differences -12.5).
    - LongHealth: both answer identically: no difference. Probsum, MeDiSumQA, MeDiSumCode: constants.
    - bio has ``bio_failures`` MeQSum items failed (timeout) beyond the 30: excluded, counted.
    - format: bio's MedNLI answers are strictly valid on items 0-19 only; base always valid.
    """
    store = StoreBuilder(out)
    for model in ("bio-7b", "base-7b"):
        store.add_run(f"run-{model}", model)
    for i in range(40):
        store.add("run-base-7b", "base-7b", "mednli", f"m{i}", {"accuracy": 100.0 if i < 36 else 0.0})
        store.add(
            "run-bio-7b",
            "bio-7b",
            "mednli",
            f"m{i}",
            {"accuracy": 100.0 if i < 12 else 0.0},
            strict_valid=i < 20,
        )
    for i in range(30):
        base = dict.fromkeys(SUMMARY_METRICS[:4], 50.0)
        store.add("run-base-7b", "base-7b", "meqsum", f"q{i}", base)
        store.add("run-bio-7b", "bio-7b", "meqsum", f"q{i}", base | {"rougeL": 0.0})
    for i in range(bio_failures):
        store.add("run-bio-7b", "bio-7b", "meqsum", f"q{30 + i}", None, failed="timeout")
        store.add("run-base-7b", "base-7b", "meqsum", f"q{30 + i}", dict.fromkeys(SUMMARY_METRICS[:4], 50.0))
    for subtask in ("task1", "task2", "task3"):
        for i in range(10):
            for repeat in range(2):
                value = 100.0 if (i + repeat) % 2 == 0 else 0.0
                for model in ("bio-7b", "base-7b"):
                    store.add(
                        f"run-{model}",
                        model,
                        "longhealth",
                        f"p{i}",
                        {"accuracy": value},
                        subtask=subtask,
                        repeat=repeat,
                    )
    for model, value in (("bio-7b", 30.0), ("base-7b", 30.0)):
        for task in ("probsum", "medisumqa", "medisumcode"):
            names = ("icd_em_f1", "icd_ap_f1", "icd_valid") if task == "medisumcode" else SUMMARY_METRICS
            for i in range(8):
                store.add(f"run-{model}", model, task, f"{task}{i}", dict.fromkeys(names, value))
    add_constant_model(store, "run-other", "other-3b", {"mednli": 60.0, "meqsum": 20.0}, n_items=5)
    store.close()
    return out


VIEWER_CONFIG = {
    "run": {"variant": "paper", "data_dir": "", "demonstrations": "v3", "limit": None},
    "target": {"chat_mode": "chat", "max_model_len": 8192, "truncation": "v3"},
}
SCRIPT_OUTPUT = "<script>window.__pwned = 1</script> is a pneumonia question"
"""A model output with markup in it: the viewer must show it as text, never run it."""


def demo_mednli_requests(n: int) -> list[Any]:
    """The first ``n`` MedNLI requests of the synthetic demo data, rendered as ``VIEWER_CONFIG`` says."""
    import asyncio

    from pipeline.evaluation.tokens import EstimateCounter
    from pipeline.paths import DEMO_DATA_DIR
    from pipeline.tasks import get_task
    from pipeline.tasks.base import RenderContext

    ctx = RenderContext(
        chat_mode="chat", max_model_len=8192, counter=EstimateCounter(), limit=n, truncation="v3"
    )

    async def collect() -> list[Any]:
        return [r async for r in get_task("mednli").requests(DEMO_DATA_DIR, ctx)]

    return asyncio.run(collect())


def build_viewer_store(out: Path, data_dir: Path | None = None) -> dict[str, list[str]]:
    """``bio-7b`` vs ``base-7b`` (pair them with --pair) on MedNLI and MeQSum, with known per-item verdicts.

    MedNLI: the first 6 demo-data items, with their real prompt hashes (the viewer can render those prompts
    again from demo_data/): items 0-1 tie (both right), 2 bio better, 3-4 bio worse, 5 bio failed (timeout).
    MeQSum: q0 bio worse (its output is ``SCRIPT_OUTPUT``), q1 tie, q2 base failed (server_error), q3 bio
    better; placeholder prompt hashes (no data renders them). Returns the item ids of each expectation.
    ``data_dir`` is the data folder the runs' configuration names (default: demo_data/, where it is).
    """
    from pipeline.paths import DEMO_DATA_DIR

    recorded = str(data_dir or DEMO_DATA_DIR)
    config = VIEWER_CONFIG | {"run": VIEWER_CONFIG["run"] | {"data_dir": recorded}}
    store = StoreBuilder(out)
    for model in ("bio-7b", "base-7b"):
        store.add_run(f"run-{model}", model, config_extra=config)
    requests = demo_mednli_requests(6)
    ids = [r.item_id for r in requests]
    bio_right = [True, True, True, False, False, None]
    base_right = [True, True, False, True, True, True]
    for request, bio, base in zip(requests, bio_right, base_right, strict=True):
        for model, right in (("bio-7b", bio), ("base-7b", base)):
            store.add(
                f"run-{model}",
                model,
                "mednli",
                request.item_id,
                None if right is None else {"accuracy": 100.0 if right else 0.0},
                failed="timeout" if right is None else None,
                output=f"{model} says {'the gold label' if right else 'a wrong label'} for {request.item_id}",
                reference=request.reference,
                prompt_hash=request.prompt_hash(),
                parsed=request.reference if right else "neutral",
            )
    meqsum = {
        "q0": (0.0, 50.0),
        "q1": (40.0, 40.0),
        "q2": (30.0, None),
        "q3": (80.0, 20.0),
    }
    for item, values in meqsum.items():
        for model, value in zip(("bio-7b", "base-7b"), values, strict=True):
            store.add(
                f"run-{model}",
                model,
                "meqsum",
                item,
                None if value is None else dict.fromkeys(SUMMARY_METRICS[:4], value),
                failed="server_error" if value is None else None,
                output=SCRIPT_OUTPUT if (model, item) == ("bio-7b", "q0") else f"{model} summary of {item}",
                reference=f"reference summary {item}",
            )
    store.close()
    return {
        "mednli": ids,
        "meqsum": list(meqsum),
        "worse": [ids[3], ids[4], "q0"],
        "timeout": [ids[5]],
        "any_failure": [ids[5], "q2"],
    }
