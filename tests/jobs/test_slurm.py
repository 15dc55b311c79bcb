"""jobs.slurm and jobs.snapshot without a cluster: flags over cfg, sbatch scripts, code snapshots,
the Slurm -> torch.distributed environment, the signal guard, the pretraining dry run."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from avplug.config import load_config
from jobs import pretrain, slurm, snapshot, submitit_adapter


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=None)
    parser.add_argument("--dry-run", action="store_true")
    slurm.add_slurm_args(parser)
    return parser.parse_args(list(argv))


def _cfg(*opts: str):
    """The demo recipe with the GPU-node Slurm defaults of the paper recipe (8 GPUs, 10 CPUs per task)."""
    return load_config("demo.yaml", ["LAUNCH.SLURM.GPUS_PER_NODE", "8", "LAUNCH.SLURM.CPUS_PER_TASK", "10", *opts])


def test_unset_flags_take_the_cfg_and_flags_override_it():
    cfg = _cfg("LAUNCH.SLURM.PARTITION", "gpu", "LAUNCH.SLURM.TIME_MINUTES", "90", "LAUNCH.SLURM.EXTRA", "['mail-type=END', 'exclusive']")
    opts = slurm.resolve_slurm_options(cfg, _parse())
    assert (opts.partition, opts.time_minutes, opts.gpus_per_node, opts.cpus_per_task) == ("gpu", 90, 8, 10)
    assert dict(opts.extra) == {"mail-type": "END", "exclusive": True}

    opts = slurm.resolve_slurm_options(
        cfg, _parse("--partition", "debug", "--time", "7", "--gpus-per-node", "0", "--cpus-per-task", "1", "--mem-gb", "1.5",
                    "--sbatch-extra", "mail-type=FAIL", "--sbatch-extra", "comment=x y", "--job-name", "run1", "--qos", "high"),
    )
    assert (opts.partition, opts.time_minutes, opts.gpus_per_node, opts.cpus_per_task, opts.mem_gb) == ("debug", 7, 0, 1, 1.5)
    assert (opts.job_name, opts.qos) == ("run1", "high")
    assert dict(opts.extra) == {"mail-type": "FAIL", "exclusive": True, "comment": "x y"}


@pytest.mark.parametrize("bad", ["=x", "9lives=1", "a b=c"])
def test_sbatch_extra_rejects_what_is_not_an_option(bad):
    with pytest.raises(SystemExit):
        _parse("--sbatch-extra", bad)


def test_impossible_requests_name_the_flag():
    with pytest.raises(ValueError, match="--cpus-per-task"):
        slurm.resolve_slurm_options(_cfg(), _parse("--cpus-per-task", "0"))


def test_tasks_per_node_one_per_gpu_or_one_on_cpu():
    cfg = _cfg()
    assert slurm.tasks_per_node(cfg, slurm.resolve_slurm_options(cfg, _parse("--gpus-per-node", "4"))) == 4
    assert slurm.tasks_per_node(cfg, slurm.resolve_slurm_options(cfg, _parse("--gpus-per-node", "0"))) == 1
    cfg = _cfg("LAUNCH.PROCS_PER_NODE", "2")
    assert slurm.tasks_per_node(cfg, slurm.resolve_slurm_options(cfg, _parse("--gpus-per-node", "4"))) == 2


def test_sbatch_script_states_the_request(tmp_path):
    cfg = _cfg()
    opts = slurm.resolve_slurm_options(
        cfg, _parse("--partition", "debug", "--account", "vision", "--constraint", "volta32gb", "--mem-gb", "64", "--time", "30",
                    "--sbatch-extra", "mail-type=END"),
    )
    params = slurm.sbatch_parameters(opts, nodes=4, ntasks_per_node=8, setup=["export FOO=1"], chdir=tmp_path)
    script = slurm.sbatch_script(tmp_path / "slurm" / "%j", params)
    for line in ("#SBATCH --nodes=4", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-task=10",
                 "#SBATCH --partition=debug", "#SBATCH --account=vision", "#SBATCH --constraint=volta32gb", "#SBATCH --mem=64GB",
                 "#SBATCH --time=30", "#SBATCH --mail-type=END", f"#SBATCH --chdir={tmp_path.resolve()}", "#SBATCH --signal=USR2@90",
                 "export FOO=1", "-m submitit.core._submit"):
        assert line in script, line
    assert "--qos" not in script  # unset options are left to the cluster

    cpu = slurm.sbatch_parameters(slurm.resolve_slurm_options(cfg, _parse("--gpus-per-node", "0")), nodes=2, ntasks_per_node=1)
    assert "gpus" not in slurm.sbatch_script(tmp_path / "%j", cpu)
    array = slurm.sbatch_script(tmp_path / "%j", cpu, array_size=3)
    assert "#SBATCH --array=0-2%3" in array and "%A_%a_0_log.out" in array


def test_dry_run_prints_the_script_and_submits_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = _cfg("OUTPUT_DIR", str(out))
    assert pretrain.submit_pretraining(cfg, _parse("--nodes", "2", "--dry-run", "--gpus-per-node", "0", "--cpus-per-task", "1")) is None
    text = capsys.readouterr().out
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text
    assert f"export PYTHONPATH={out.resolve()}/code/" in text
    assert "world size 2" in text and "NODES: 2" in text  # the resolved cfg records the request
    assert not out.exists()  # no snapshot, no config, no job


def test_dry_run_rejects_a_batch_the_world_cannot_split(tmp_path):
    cfg = _cfg("OUTPUT_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="SOLVER.BATCH_SIZE"):
        pretrain.submit_pretraining(cfg, _parse("--nodes", "3", "--dry-run", "--gpus-per-node", "0"))


def _git_repo(root: Path) -> Path:
    root.mkdir()
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / ".gitignore").write_text("ignored.txt\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    (root / "new_plugin.py").write_text("X = 2\n")  # untracked, not ignored: travels
    (root / "ignored.txt").write_text("no\n")
    return root


def test_snapshot_copies_source_files_once_per_content(tmp_path):
    repo = _git_repo(tmp_path / "repo")
    first = snapshot.snapshot_code(tmp_path / "out", root=repo)
    assert first.parent == (tmp_path / "out" / "code").resolve()
    assert sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file()) == [".gitignore", "new_plugin.py", "pkg/__init__.py"]
    assert snapshot.snapshot_code(tmp_path / "out", root=repo) == first == snapshot.snapshot_dir(tmp_path / "out", root=repo)

    (repo / "pkg" / "__init__.py").write_text("VALUE = 2\n")  # editing the checkout ...
    second = snapshot.snapshot_code(tmp_path / "out", root=repo)
    assert second != first  # ... makes a new snapshot and leaves the queued job's alone
    assert (first / "pkg" / "__init__.py").read_text() == "VALUE = 1\n"
    assert (second / "pkg" / "__init__.py").read_text() == "VALUE = 2\n"


def test_a_job_imports_from_its_snapshot_even_when_run_from_the_checkout(tmp_path):
    repo = _git_repo(tmp_path / "repo")
    code = snapshot.snapshot_code(tmp_path / "out", root=repo)
    (repo / "pkg" / "__init__.py").write_text("VALUE = 99\n")
    setup = "\n".join(snapshot.python_path_setup(code))
    # The job's working directory is the submission directory (here: the checkout itself).
    cmd = f"{setup}\n{sys.executable} -c 'import pkg; print(pkg.VALUE, pkg.__file__)'"
    out = subprocess.run(["bash", "-c", cmd], cwd=repo, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "1" and out[1].startswith(str(code))


def test_project_snapshot_holds_the_packages_a_job_imports():
    _, files = snapshot.source_files()
    for needed in ("avplug/__init__.py", "registry/__init__.py", "jobs/slurm.py", "jobs/pretrain.py", "setup.cfg"):
        assert needed in files


def _fake_slurm_env(monkeypatch, **extra):
    env = {
        "SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NODEID": "1", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "localhost,otherhost",
    }
    env.update(extra)
    for key in ("MASTER_PORT", "MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_RESTART_COUNT"):
        # setenv first records the state before the test, so the values export_torch_distributed_env
        # sets directly in os.environ do not outlive it (a later test would join a world of 4)
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_torch_distributed_env_from_slurm(monkeypatch):
    _fake_slurm_env(monkeypatch)
    values = slurm.export_torch_distributed_env()
    assert values == {
        "MASTER_ADDR": "localhost", "MASTER_PORT": str(slurm.master_port("4242", 0)), "RANK": "3", "WORLD_SIZE": "4",
        "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
    }
    assert all(os.environ[k] == v for k, v in values.items())
    # A requeued job gets another port (the old one may still be held); an exported one is kept.
    _fake_slurm_env(monkeypatch, SLURM_RESTART_COUNT="1")
    assert slurm.export_torch_distributed_env()["MASTER_PORT"] == str(slurm.master_port("4242", 1)) != values["MASTER_PORT"]
    _fake_slurm_env(monkeypatch, MASTER_PORT="29500")
    assert slurm.export_torch_distributed_env()["MASTER_PORT"] == "29500"
    assert 20000 <= slurm.master_port("1") < 60000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_signal_guard_lets_only_the_job_process_act(monkeypatch):
    sig = submitit_adapter.preemption_signal()
    calls = []
    previous = signal.signal(sig, lambda s, f: calls.append(os.getpid()))
    try:
        slurm.guard_signal_handlers()
        slurm.guard_signal_handlers()  # idempotent: guards once
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # a forked DataLoader worker, say
            os.close(r)
            os.kill(os.getpid(), sig)
            os.write(w, str(len(calls)).encode())
            os._exit(0)
        os.close(w)
        child_calls = os.read(r, 16).decode()
        os.waitpid(pid, 0)
        assert child_calls == "0"
        os.kill(os.getpid(), sig)
        assert calls == [os.getpid()]
    finally:
        signal.signal(sig, previous)


def test_merge_names_titles_no_shard_finished_and_last_shard_merges(demo_data, tmp_path):
    import shutil

    from jobs.preprocess import (
        merge_store,
        preprocess_shard_then_merge,
        unaccounted_titles,
    )

    store = tmp_path / "store"
    shutil.copytree(demo_data["store"], store)
    (store / "index.json").unlink()
    lost = min((store / "titles").iterdir())
    shutil.rmtree(lost)  # a shard that never ran
    missing = unaccounted_titles(str(demo_data["catalog"]), str(store))
    assert len(missing) == 1
    with pytest.raises(RuntimeError, match=missing[0]):
        merge_store(str(demo_data["catalog"]), str(store))
    assert not (store / "index.json").exists()

    # Every shard but the lost title's is done: re-running all shards writes only that title, and
    # the shard that finishes last (here, any) merges.
    cfg = load_config("demo.yaml")
    results = [preprocess_shard_then_merge(cfg, str(demo_data["catalog"]), str(store), i, 2, workers=1) for i in range(2)]
    assert sum(r["done"] for r in results) == 1
    assert results[0]["merged"] is None or results[1]["merged"] is not None
    assert results[1]["merged"]["titles"] == len(json.loads((demo_data["store"] / "index.json").read_text())["titles"])
    assert (store / "index.json").read_text() == (demo_data["store"] / "index.json").read_text()


def test_preprocess_dry_run_prints_array_and_merge_scripts(demo_data, tmp_path, capsys):
    from jobs.preprocess import add_preprocess_slurm_args, submit_preprocess_array

    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=None)
    add_preprocess_slurm_args(parser)
    args = parser.parse_args(["--slurm", "--array-size", "3", "--dry-run", "--partition", "cpu", "--cpus-per-task", "4"])
    store = tmp_path / "store"
    assert submit_preprocess_array(_cfg(), args, catalog_dir=str(demo_data["catalog"]), store_dir=str(store)) is None
    text = capsys.readouterr().out
    assert "#SBATCH --array=0-2%3" in text and "#SBATCH --dependency=afterany:ARRAY_JOB_ID" in text
    assert "#SBATCH --cpus-per-task=4" in text and "gpus" not in text
    assert not store.exists() and not store.with_name("store.slurm").exists()
    with pytest.raises(ValueError, match="--array-size"):
        submit_preprocess_array(_cfg(), parser.parse_args(["--slurm"]), catalog_dir=str(demo_data["catalog"]), store_dir=str(store))
