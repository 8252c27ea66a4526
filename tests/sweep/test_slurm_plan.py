"""Slurm plans without a cluster: the [slurm] keys and their one-line errors, job shapes (TP x PP), the exact
sbatch scripts (single node and Ray over several nodes) and `medsweep sweep --dry-run`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.scoring.extras import gpu_scoring
from pipeline.sweep.plan import load_plan, resolve_models
from pipeline.sweep.slurm.settings import default_time, format_time, parse_time
from pipeline.sweep.slurm.shapes import JobShape, job_shape, split
from pipeline.sweep.slurm.slurmcli import submit_argv
from pipeline.sweep.slurm.submit import SlurmSweep
from pipeline.tasks import get_task, task_names

SMALL, BIG, MOE = "meta-llama-3-8b-instruct", "meta-llama-3-70b-instruct", "mixtral-8x22b-instruct-v0.1"


def _plan(tmp_path: Path, slurm: str = "", sweep: str = 'engine = "local"', models: str = "") -> Path:
    path = tmp_path / "clue-slurm.toml"
    path.write_text(
        f'[sweep]\nout = "{tmp_path / "out"}"\nscheduler = "slurm"\n{sweep}\n\n[slurm]\n{slurm}\n\n'
        + (models or f'[[models]]\nname = "{SMALL}"\n')
    )
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        plan = load_plan(path)
        models = resolve_models(plan, path)
        SlurmSweep(plan, path, models, console=None)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_slurm_time_strings() -> None:
    assert parse_time("30") == 1800
    assert parse_time("90:30") == 5430
    assert parse_time("12:00:00") == 43200
    assert parse_time("1-00") == 86400
    assert parse_time("2-03:04") == 2 * 86400 + 3 * 3600 + 4 * 60
    assert parse_time("1-00:00:10") == 86410
    assert format_time(86410) == "1-00:00:10" and format_time(3600) == "01:00:00"
    assert default_time(8.03) == "04:00:00" and default_time(70.55) == "16:00:00"
    for bad in ("1h", "12:00:00:00", "-5", "", "0"):
        with pytest.raises(ValueError):
            parse_time(bad)


@pytest.mark.parametrize(
    ("slurm", "models", "field", "words"),
    [
        ('time = "12h"', "", "'slurm.time'", "not a Slurm time"),
        ("", f'[[models]]\nname = "{SMALL}"\ntime = "1:2:3:4"\n', "'models.0.time'", "not a Slurm time"),
        ("gpus_per_node = 0", "", "'slurm.gpus_per_node'", "greater than or equal to 1"),
        ('extra_sbatch = ["--time=5"]', "", "'slurm.extra_sbatch'", "use [slurm] time"),
        ('extra_sbatch = ["constraint=a100"]', "", "'slurm.extra_sbatch'", "not one sbatch option"),
        ('partitoin = "gpu"', "", "'slurm.partitoin'", "unknown field"),
        ('time = "5"\ngrace = 300', "", "'slurm.time'", "not longer than slurm.grace"),
        # Written into #SBATCH lines: a line break would end the header and run the rest as shell.
        ('partition = "gpu\\nrm -rf ~"', "", "'slurm.partition'", "holds a line break"),
        ('account = "ikim\\r\\n#SBATCH --x"', "", "'slurm.account'", "holds a line break"),
        ('qos = "normal\\ntouch /tmp/pwned"', "", "'slurm.qos'", "holds a line break"),
        ('qos = "two words"', "", "'slurm.qos'", "holds a space or control character"),
        ('extra_sbatch = ["--mem=1G\\rx"]', "", "'slurm.extra_sbatch'", "not one sbatch option"),
    ],
)
def test_bad_slurm_values_are_one_line_naming_file_and_field(
    tmp_path: Path, slurm: str, models: str, field: str, words: str
) -> None:
    message = _error(_plan(tmp_path, slurm, models=models))
    assert message.startswith(str(tmp_path / "clue-slurm.toml")), message
    assert field in message and words in message, message


def test_gpus_are_slurms_to_give(tmp_path: Path) -> None:
    message = _error(_plan(tmp_path, sweep='engine = "local"\ngpus = [0, 1]'))
    assert "'sweep'" in message and "remove [sweep] gpus" in message


def test_a_model_bigger_than_a_node_is_said_before_anything_is_submitted(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "gpus_per_node = 6", sweep='engine = "local"\nmemory_class = 24',
                 models=f'[[models]]\nname = "{BIG}"\n')  # fmt: skip
    message = _error(plan)
    assert f"{BIG} needs 8 GPUs, more than one node has (slurm.gpus_per_node = 6)" in message
    assert "TP 4 x PP 2 over 2 nodes" in message and "slurm.max_nodes = 2" in message
    docker = _plan(tmp_path, "gpus_per_node = 6\nmax_nodes = 2", sweep='engine = "docker"\nmemory_class = 24',
                   models=f'[[models]]\nname = "{BIG}"\n')  # fmt: skip
    assert "needs vLLM and Ray on every node: use engine = 'local'" in _error(docker)


def test_tp_times_pp_split_that_vllm_accepts() -> None:
    # 64 heads on 6-GPU nodes: never TP 6 (vLLM refuses it at load); TP 4 per node, PP across nodes.
    assert split(4, 64, 6) == JobShape(nodes=1, gpus_per_node=4, tp=4, pp=1)
    assert split(8, 64, 6) == JobShape(nodes=2, gpus_per_node=4, tp=4, pp=2)
    assert split(16, 64, 6) == JobShape(nodes=4, gpus_per_node=4, tp=4, pp=4)
    assert split(6, 64, 6) == JobShape(nodes=1, gpus_per_node=6, tp=2, pp=3)  # uneven: TP 2 x PP 3 in a node
    assert split(16, 48, 8) == JobShape(nodes=2, gpus_per_node=8, tp=8, pp=2)  # Mixtral-8x22B, 40 GB
    assert split(1, 32, 8) == JobShape(nodes=1, gpus_per_node=1, tp=1, pp=1)
    for need in range(1, 33):
        for heads in (9, 32, 40, 48, 64):
            for per_node in (1, 2, 4, 6, 8):
                shape = split(need, heads, per_node)
                assert heads % shape.tp == 0 and shape.tp & (shape.tp - 1) == 0
                assert shape.tp * shape.pp >= need and shape.gpus_per_node <= per_node


def test_job_shape_from_the_registry(tmp_path: Path) -> None:
    path = _plan(tmp_path, "gpus_per_node = 6\nmax_nodes = 4", sweep='engine = "local"\nmemory_class = 40',
                 models="".join(f'[[models]]\nname = "{m}"\n\n' for m in (SMALL, BIG, MOE)))  # fmt: skip
    plan = load_plan(path)
    shapes = {m.name: job_shape(plan, m) for m in resolve_models(plan, path)}
    assert shapes[SMALL] == JobShape(1, 1, 1, 1)
    assert shapes[BIG] == JobShape(nodes=2, gpus_per_node=4, tp=4, pp=2)  # 8 GPUs of 40 GB, 64 heads
    assert shapes[MOE] == JobShape(nodes=4, gpus_per_node=4, tp=4, pp=4)  # 16 GPUs of 40 GB, 48 heads


def test_single_node_script(tmp_path: Path) -> None:
    slurm = (
        'partition = "gpu"\naccount = "ikim"\nqos = "normal"\ntime = "6:00:00"\ngrace = 120\n'
        'extra_sbatch = ["--constraint=a100", "#SBATCH --mem=64G"]\n'
        'setup = ["module load CUDA/12.4", "source /opt/vllm/bin/activate"]'
    )
    models = f'[[models]]\nname = "{SMALL}"\n\n[[models]]\nname = "{BIG}"\ntime = "1-00"\n'
    path = _plan(tmp_path, slurm, models=models)
    plan = load_plan(path)
    sweep = SlurmSweep(plan, path, resolve_models(plan, path), console=None)  # type: ignore[arg-type]
    script = sweep.scripts[SMALL]
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    sbatch = [line for line in lines if line.startswith("#SBATCH")]
    assert sbatch == [
        f"#SBATCH --job-name=medsweep-clue-slurm-{SMALL}",
        f"#SBATCH --output={tmp_path / 'out' / 'logs' / SMALL}.slurm-%j.out",
        f"#SBATCH --chdir={Path.cwd()}",
        "#SBATCH --time=06:00:00",
        "#SBATCH --signal=B:TERM@120",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --no-requeue",
        "#SBATCH --gpus=1",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=ikim",
        "#SBATCH --qos=normal",
        "#SBATCH --constraint=a100",
        "#SBATCH --mem=64G",
    ]
    setup = lines.index("module load CUDA/12.4")
    assert lines[setup + 1] == "source /opt/vllm/bin/activate"
    assert lines[-1].startswith("exec ") and lines[-1].endswith(
        f"-m pipeline sweep --plan {path} --job {SMALL}"
    )
    assert "--time=1-00:00:00" in sweep.scripts[BIG] and "--gpus=4" in sweep.scripts[BIG]
    assert "ray" not in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_scoring_script_and_sbatch_lines(tmp_path: Path) -> None:
    """Each model's scoring job: CPU only (no --gpus, no --signal), on the plan's scoring partition, time
    and options, the setup lines, then medsweep's scoring entry; submitted after the GPU job ended."""
    slurm = (
        'partition = "gpu"\naccount = "ikim"\ntime = "6:00:00"\nextra_sbatch = ["--constraint=a100"]\n'
        'scoring_partition = "cpu"\nscoring_time = "45"\nscoring_extra_sbatch = ["--mem=32G"]\n'
        'setup = ["module load CUDA/12.4"]'
    )
    path = _plan(tmp_path, slurm)
    plan = load_plan(path)
    sweep = SlurmSweep(plan, path, resolve_models(plan, path), console=None)  # type: ignore[arg-type]
    script = sweep.scoring_scripts[SMALL]
    lines = script.splitlines()
    assert [line for line in lines if line.startswith("#SBATCH")] == [
        f"#SBATCH --job-name=medsweep-clue-slurm-{SMALL}.score",
        f"#SBATCH --output={tmp_path / 'out' / 'logs' / SMALL}.score-%j.out",
        f"#SBATCH --chdir={Path.cwd()}",
        "#SBATCH --time=00:45:00",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --no-requeue",
        "#SBATCH --partition=cpu",
        "#SBATCH --account=ikim",
        "#SBATCH --mem=32G",
    ]
    assert "module load CUDA/12.4" in lines
    assert lines[-1].startswith("exec ") and lines[-1].endswith(
        f"-m pipeline sweep --plan {path} --job {SMALL} --score"
    )
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    default = _plan(tmp_path, 'partition = "gpu"')  # the scoring job's defaults: the GPU job's partition, 2 h
    plan = load_plan(default)
    script = SlurmSweep(plan, default, resolve_models(plan, default), console=None).scoring_scripts[SMALL]  # type: ignore[arg-type]
    assert "#SBATCH --partition=gpu\n" in script and "#SBATCH --time=02:00:00\n" in script
    # No --gpus unless a task of the model reports a metric that runs a model on a GPU (BERTScore,
    # metrics.toml gpu = true) and can run here (bert-score and its model installed).
    wanting = gpu_scoring([t for t in task_names() if get_task(t).data_path(plan.sweep.data_dir).exists()])
    assert ("#SBATCH --gpus=1\n" in script) == bool(wanting), wanting
    cpu = _plan(tmp_path, "scoring_gpus = 0")  # CPU only whatever the tasks: BERTScore on the CPUs
    plan = load_plan(cpu)
    assert (
        "--gpus" not in SlurmSweep(plan, cpu, resolve_models(plan, cpu), console=None).scoring_scripts[SMALL]
    )  # type: ignore[arg-type]
    with_gpu = _plan(tmp_path, "scoring_gpus = 1")  # a GPU for the scoring job: asked for, and charged
    plan = load_plan(with_gpu)
    script = SlurmSweep(plan, with_gpu, resolve_models(plan, with_gpu), console=None).scoring_scripts[SMALL]  # type: ignore[arg-type]
    assert "#SBATCH --gpus=1\n" in script
    # The exact sbatch command lines: the GPU job, then its scoring job after it, whichever way it ends.
    job = tmp_path / "m.sbatch"
    assert submit_argv(job) == ["sbatch", "--parsable", str(job)]
    assert submit_argv(job, dependency="afterany:4711") == [
        "sbatch", "--parsable", "--dependency=afterany:4711", str(job)
    ]  # fmt: skip
    assert submit_argv(job, test_only=True) == ["sbatch", "--test-only", str(job)]


def test_paths_with_spaces_and_hashes_are_quoted_for_sbatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sbatch splits an #SBATCH line at spaces and ends it at an unquoted `#`: such paths are double-quoted
    (the real sbatch reading them: tests/sweep/test_slurm.py); a path with a line break is refused."""
    room = tmp_path / 'my "runs" #2 \\ here'
    room.mkdir()
    monkeypatch.chdir(room)
    path = _plan(room, 'partition = "gpu"')
    path.write_text(path.read_text().replace(f'out = "{room / "out"}"', 'out = "out"'))
    plan = load_plan(path)
    sweep = SlurmSweep(plan, path, resolve_models(plan, path), console=None)  # type: ignore[arg-type]
    sbatch = [line for line in sweep.scripts[SMALL].splitlines() if line.startswith("#SBATCH")]
    quoted = str(room).replace("\\", "\\\\").replace('"', '\\"')
    assert sbatch[1] == f'#SBATCH --output="{quoted}/out/logs/{SMALL}.slurm-%j.out"'
    assert sbatch[2] == f'#SBATCH --chdir="{quoted}"'
    assert "#SBATCH --partition=gpu" in sbatch
    subprocess.run(["bash", "-n"], input=sweep.scripts[SMALL], text=True, check=True)
    broken = tmp_path / "two\nlines"
    broken.mkdir()
    monkeypatch.chdir(broken)
    message = _error(_plan(tmp_path, 'partition = "gpu"'))
    assert "holds a line break, which an sbatch script cannot carry" in message


def test_multinode_script_starts_ray_on_every_node(tmp_path: Path) -> None:
    path = _plan(tmp_path, "gpus_per_node = 6\nmax_nodes = 4", sweep='engine = "local"\nmemory_class = 40',
                 models=f'[[models]]\nname = "{MOE}"\n')  # fmt: skip
    plan = load_plan(path)
    sweep = SlurmSweep(plan, path, resolve_models(plan, path), console=None)  # type: ignore[arg-type]
    script = sweep.scripts[MOE]
    assert "#SBATCH --nodes=4\n" in script and "#SBATCH --gpus-per-node=4\n" in script
    assert "#SBATCH --gpus=" not in script
    step = "srun --nodes=1 --ntasks=1 --gres=gpu:4"
    body = script[script.index("mapfile") :]
    assert body.splitlines()[:6] == [
        'mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
        "head_ip=$(hostname -I | cut -d' ' -f1)",
        'export RAY_ADDRESS="$head_ip:6379" VLLM_HOST_IP="$head_ip"',
        f'{step} -w "${{nodes[0]}}" ray start --block --head --node-ip-address="$head_ip" --port=6379 '
        "--num-gpus=4 &",
        'for node in "${nodes[@]:1}"; do',
        f'  {step} -w "$node" bash -c \'ip=$(hostname -I | cut -d" " -f1); VLLM_HOST_IP=$ip exec ray start '
        '--block --address="$RAY_ADDRESS" --node-ip-address=$ip --num-gpus=4\' &',
    ]
    assert 'grep -Eq "/16\\.0 GPU"' in script  # medsweep starts vLLM once Ray sees all 16 GPUs
    assert body.index("ray status") < body.index("\nexec ")
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_multinode_job_serves_tp_within_node_pp_across_nodes_on_ray(tmp_path: Path) -> None:
    """What the job's launcher runs on the head node: the engine's own command, split by the job shape."""
    from rich.console import Console

    from pipeline.sweep.slurm.job import job_runner

    path = _plan(tmp_path, "gpus_per_node = 6\nmax_nodes = 4", sweep='engine = "local"\nmemory_class = 40',
                 models=f'[[models]]\nname = "{MOE}"\n')  # fmt: skip
    plan = load_plan(path)
    (model,) = resolve_models(plan, path)
    shape = job_shape(plan, model)
    runner = job_runner(plan, model, (0, 1, 2, 3), Console(), {}, shape)
    command = runner.launcher.command(model.server, (0, 1, 2, 3), model.port)
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3 " in command
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 4 --distributed-executor-backend ray" in command


def test_dry_run_prints_every_sbatch_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _plan(tmp_path, 'partition = "gpu"',
                 models=f'[[models]]\nname = "{SMALL}"\n\n[[models]]\nname = "{BIG}"\n')  # fmt: skip
    assert main(["sweep", "--plan", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("#!/bin/bash") == 4  # each model's GPU job and its scoring job
    assert f"#SBATCH --job-name=medsweep-clue-slurm-{SMALL}" in out
    assert f"#SBATCH --job-name=medsweep-clue-slurm-{SMALL}.score" in out
    assert f"#SBATCH --job-name=medsweep-clue-slurm-{BIG}" in out
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_the_shipped_slurm_plan_dry_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.paths import REPO_ROOT

    plan = REPO_ROOT / "docs" / "plans" / "clue-slurm.toml"
    assert main(["sweep", "--plan", str(plan), "--dry-run"]) == 0
    out = capsys.readouterr().out
    jobs = out.count("# the job serves with: ")
    assert out.count("#!/bin/bash") == out.count("# --- ") == 2 * jobs and jobs >= 27
    assert out.count("submitted with sbatch --dependency=afterany:<the job above> ---") == jobs
    moe = out[out.index("# --- mixtral-8x22b-instruct-v0.1") :]
    moe = moe[: moe.index("\n# --- ")]
    assert "#SBATCH --nodes=2" in moe and "#SBATCH --gpus-per-node=4" in moe
    assert "--tensor-parallel-size 4 --pipeline-parallel-size 2 --distributed-executor-backend ray" in moe


def test_no_wait_and_cancel_are_for_slurm_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "local.toml"
    path.write_text(f'[sweep]\nout = "{tmp_path}"\ngpus = [0]\n\n[[models]]\nname = "{SMALL}"\n')
    assert main(["sweep", "--plan", str(path), "--cancel"]) == 2
    assert 'error: --cancel is for scheduler = "slurm" plans' in capsys.readouterr().err
