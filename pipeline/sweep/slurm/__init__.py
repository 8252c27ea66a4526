"""Sweeps on a Slurm cluster: one job per model (docs/slurm.md).

settings.py  the plan's [slurm] table, Slurm time strings
shapes.py    a model's job shape: nodes, GPUs per node, TP x PP
script.py    the sbatch script of one model (single node, or Ray over several nodes)
slurmcli.py  sbatch / squeue / sacct / scancel, their errors as one line
submit.py    the sweep on Slurm: submit what is due, watch, cancel, the summary
jobs.py      the jobs as `sweep` and `status` list them (journal, job stores, squeue): read only
job.py       `medsweep sweep --job MODEL` inside the GPU job: the local sweep's lifecycle for one model,
             generating only; `--job MODEL --score`: its CPU-only scoring job after it
"""
