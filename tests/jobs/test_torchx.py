"""The TorchX components: found through the entry point, their AppDefs and Slurm scripts, and real
``local_cwd`` runs (pretraining on 2 ranks matches ``launch_local``; sharded preprocessing matches
one local run)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from torchx import specs
from torchx.runner import get_runner
from torchx.specs.finder import get_component, get_components

from jobs import torchx_components as tc

REPO = Path(__file__).resolve().parents[2]
TORCHX = str(Path(sys.executable).with_name("torchx"))


def test_components_are_registered_under_the_avplug_prefix():
    names = set(get_components())
    assert {"avplug.pretrain", "avplug.evaluate", "avplug.preprocess"} <= names
    for name in ("avplug.pretrain", "avplug.evaluate", "avplug.preprocess"):
        component = get_component(name)
        assert not component.validation_errors, (name, component.validation_errors)
        assert component.description  # the docstring is the help


def test_pretrain_single_node_is_standalone_and_overrides_come_last():
    app = tc.pretrain("SOLVER.MAX_STEPS", "3", cfg="demo.yaml", nproc_per_node=2, cpu=2, plugins=["my.plugin"], no_resume=True)
    (role,) = app.roles
    assert (role.entrypoint, role.num_replicas, role.resource.cpu) == ("bash", 1, 2)
    command = role.args[1]
    assert "-m torch.distributed.run --nnodes 1 --nproc_per_node 2 --standalone" in command
    assert command.endswith("-m jobs.pretrain_main --cfg demo.yaml --plugin my.plugin --no-resume SOLVER.MAX_STEPS 3")
    assert role.env["OMP_NUM_THREADS"] == "1"  # cpu // nproc_per_node


def test_pretrain_multi_node_rendezvous_on_the_first_node():
    (role,) = tc.pretrain(cfg="movie_tv.yaml", nnodes=4, nproc_per_node=8, gpu=8, cpu=80).roles
    assert role.num_replicas == 4 and role.resource.gpu == 8
    assert f"--rdzv_endpoint $${{{specs.macros.rank0_env}:=localhost}}:29500" in role.args[1]
    with pytest.raises(ValueError, match="nnodes"):
        tc.pretrain(cfg="demo.yaml", nnodes=0)


def test_preprocess_and_evaluate_are_one_replica_per_shard_or_split():
    (role,) = tc.preprocess("DATA.FPS", "5", cfg="demo.yaml", num_shards=3, out="/s", workers=2).roles
    assert role.num_replicas == 3
    assert role.args[:2] == ["-m", "jobs.preprocess_main"]
    assert role.args[role.args.index("--shard") + 1] == specs.macros.replica_id
    assert role.args[-2:] == ["DATA.FPS", "5"] and "--out" in role.args and "--workers" in role.args
    (role,) = tc.evaluate(cfg="eval_ucf101_demo.yaml", weights="ckpt.pth", splits=[1, 2]).roles
    assert role.num_replicas == 2
    assert role.args[role.args.index("--splits") + 1:role.args.index("--split-index")] == ["1", "2"]


def test_slurm_dryrun_script_for_two_nodes():
    runner = get_runner()
    info = runner.dryrun_component(
        "avplug.pretrain",
        ["--cfg", "demo.yaml", "--nnodes", "2", "--nproc_per_node", "1", "--cpu", "1", "--memMB", "1000", "SOLVER.MAX_STEPS", "3"],
        "slurm", cfg={"partition": "debug", "time": "30"},
    )
    script = info.request.materialize()
    assert script.count("#SBATCH --job-name=pretrain-") == 2 and "#SBATCH hetjob" in script  # one group per node
    assert "--partition=debug --time=30 --ntasks-per-node=1 --cpus-per-task=1" in script
    assert "--rdzv_endpoint ${SLURM_JOB_NODELIST_HET_GROUP_0:=localhost}:29500" in script
    assert "-m jobs.pretrain_main --cfg demo.yaml SOLVER.MAX_STEPS 3" in script


def _torchx(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([TORCHX, "run", "-s", "local_cwd", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def test_local_cwd_pretrain_on_two_ranks_matches_launch_local(demo_data, local_run, train_opts, runs, tmp_path, slurm_cli_env):
    out = tmp_path / "torchx"
    # Stop after 4 of the reference's 12 steps: the schedule still spans 6 epochs, so the losses agree.
    proc = _torchx("avplug.pretrain", "--cfg", "demo.yaml", "--nproc_per_node", "2", "--cpu", "2",
                   *train_opts(demo_data, out, "SOLVER.MAX_STEPS", "4"), env=slurm_cli_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(re.search(r'\{"final_loss".*\}', proc.stdout + proc.stderr).group(0))  # rank 0's JSON line
    assert (summary["world_size"], summary["steps"]) == (2, 4)
    reference = runs.losses(local_run)
    losses = runs.losses(out)
    assert sorted(losses) == [1, 2, 3, 4]
    for step, loss in losses.items():
        assert loss == pytest.approx(reference[step], rel=1e-6), f"step {step}"


def test_local_cwd_preprocess_shards_write_the_same_store(demo_data, tmp_path, slurm_cli_env):
    store = tmp_path / "store"
    proc = _torchx("avplug.preprocess", "--cfg", "demo.yaml", "--num_shards", "2", "--catalog", str(demo_data["catalog"]),
                   "--out", str(store), "--workers", "1", env=slurm_cli_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    index = json.loads((store / "index.json").read_text())
    assert index == json.loads((demo_data["store"] / "index.json").read_text())
    for title in index["titles"]:
        for name in ("video.mp4", "audio.npy"):
            rel = Path("titles") / title["dir"] / name
            assert (store / rel).read_bytes() == (demo_data["store"] / rel).read_bytes(), rel


@pytest.mark.slurm
def test_slurm_scheduler_runs_the_pretrain_component(demo_data, train_opts, tmp_path, monkeypatch):
    """A real ``-s slurm`` submission (one node: the rendezvous of several needs node names that
    resolve, which the local cluster's aliases do not).  Submitted through the runner API:
    ``torchx run`` itself asks ``sacct`` for the state right after submitting."""
    from jobs import slurm

    monkeypatch.chdir(tmp_path)  # TorchX records job dirs in ./.torchxslurmjobdirs
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    out = tmp_path / "out"
    handle = get_runner().run_component(
        "avplug.pretrain",
        ["--cfg", "demo.yaml", "--nproc_per_node", "1", "--cpu", "1", "--memMB", "1000",
         *train_opts(demo_data, out, "SOLVER.MAX_STEPS", "2")],
        "slurm", cfg={"partition": "debug", "time": "30", "job_dir": str(job_dir)},
    )
    job_id = handle.rsplit("/", 1)[-1]
    final = slurm.wait_for_jobs([job_id], timeout_s=300)[job_id]
    log = (job_dir / f"slurm-{job_id}-pretrain-0.err").read_text()
    assert final.state == "COMPLETED", log[-3000:]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["world_size"]) for r in rows if "loss" in r] == [(1, 1), (2, 1)]
