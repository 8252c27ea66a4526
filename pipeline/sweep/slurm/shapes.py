"""A model's Slurm job shape: how many nodes, GPUs on each, and the TP x PP split vLLM gets.

vLLM splits a model by tensor parallelism (TP) inside a node and pipeline parallelism (PP) across nodes
(one pipeline stage per node, its docs' rule for multi-node serving). TP must divide the attention heads
and the KV heads; the registry's models all have power-of-two KV heads, so TP is a power of two that
divides the attention heads. That is how 64 heads on 6-GPU nodes run: TP 4 on each node, never TP 6,
which vLLM would refuse at load. Pure functions: tests assert the shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.serving.engines import ENGINES
from pipeline.sweep.plan import PlannedModel, SweepPlan


@dataclass(frozen=True, slots=True)
class JobShape:
    nodes: int
    gpus_per_node: int  # GPUs asked for on each node (0: the cpu engine)
    tp: int
    pp: int

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def multinode(self) -> bool:
        return self.nodes > 1


def _largest_tp(heads: int, at_most: int) -> int:
    tp = 1
    while tp * 2 <= at_most and heads % (tp * 2) == 0:
        tp *= 2
    return tp


def split(need: int, heads: int, gpus_per_node: int) -> JobShape:
    """The smallest job that gives a model ``need`` GPUs with a TP x PP split vLLM accepts."""
    if need <= gpus_per_node:
        # One node: TP alone if it divides the heads, else TP x PP inside the node (vLLM's advice for
        # GPU counts that do not divide the model), on no more GPUs than the node has.
        tp = _largest_tp(heads, need)
        while tp > 1 and tp * math.ceil(need / tp) > gpus_per_node:
            tp //= 2
        pp = math.ceil(need / tp)
        return JobShape(nodes=1, gpus_per_node=tp * pp, tp=tp, pp=pp)
    tp = _largest_tp(heads, gpus_per_node)
    nodes = math.ceil(need / tp)
    return JobShape(nodes=nodes, gpus_per_node=tp, tp=tp, pp=nodes)


def job_shape(plan: SweepPlan, model: PlannedModel) -> JobShape:
    """The job of ``model`` under ``plan``; ConfigError (no file name: the caller adds it) when it cannot
    run as planned."""
    slurm = plan.slurm
    if model.gpu_count == 0:
        return JobShape(nodes=1, gpus_per_node=0, tp=1, pp=1)
    shape = split(model.gpu_count, model.server.attention_heads, slurm.gpus_per_node)
    if not shape.multinode:
        return shape
    how = f"TP {shape.tp} x PP {shape.pp} over {shape.nodes} nodes of {shape.tp} GPUs"
    if shape.nodes > slurm.max_nodes:
        raise ConfigError(
            f"field 'models[{model.index}].name': {model.name} needs {model.gpu_count} GPUs, more than one "
            f"node has (slurm.gpus_per_node = {slurm.gpus_per_node}); it can run as {how}: set "
            f"slurm.max_nodes = {shape.nodes}, or raise memory_class"
        )
    if not ENGINES[plan.sweep.engine].multinode:
        able = " or ".join(repr(name) for name, engine in ENGINES.items() if engine.multinode)
        raise ConfigError(
            f"field 'sweep.engine': {model.name} runs over {shape.nodes} nodes ({how}), which needs vLLM "
            f"and Ray on every node: use engine = {able}"
        )
    return shape


def job_shapes(plan: SweepPlan, models: list[PlannedModel], path: object) -> dict[str, JobShape]:
    """Every model's shape, before anything is submitted; the first problem names the plan file."""
    shapes: dict[str, JobShape] = {}
    for model in models:
        try:
            shapes[model.name] = job_shape(plan, model)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return shapes
