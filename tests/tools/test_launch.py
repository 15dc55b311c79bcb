"""tools/launch.py as a user runs it: from any directory, with shipped recipe names."""
import subprocess


def _run(python_exe, repo_root, cwd, *args):
    return subprocess.run([python_exe, str(repo_root / "tools" / "launch.py"), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_dry_run_prints_the_paper_recipe_from_any_directory(python_exe, repo_root, tmp_path):
    proc = _run(python_exe, repo_root, tmp_path, "--cfg", "movie_tv.yaml", "--nodes", "1", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for line in ("K: 16", "BATCH_SIZE: 512", "BASE_LR: 0.002", "CROP: 158", "MEL_BINS: 96", "NAME: R2Plus1D18", "NAME: CrossModalNCE"):
        assert line in out, line
    assert "would run pretraining here" in out


def test_list_plugins_shows_every_registry(python_exe, repo_root, tmp_path):
    proc = _run(python_exe, repo_root, tmp_path, "--list-plugins")
    assert proc.returncode == 0, proc.stderr
    for reg in ("BACKBONES", "HEADS", "LOSSES", "SAMPLERS", "DATASETS", "DECODERS"):
        assert reg in proc.stdout
    assert "HierarchicalSampler" in proc.stdout and "CrossModalNCE" in proc.stdout and "UCF101" in proc.stdout


def test_negative_k_is_refused_naming_the_key(python_exe, repo_root, tmp_path):
    proc = _run(python_exe, repo_root, tmp_path, "--cfg", "movie_tv.yaml", "--nodes", "1", "--dry-run", "SAMPLER.K", "-1")
    assert proc.returncode == 2
    assert "SAMPLER.K" in proc.stderr


def test_several_nodes_need_slurm(python_exe, repo_root, tmp_path):
    proc = _run(python_exe, repo_root, tmp_path, "--cfg", "demo.yaml", "--nodes", "2", "--dry-run")
    assert proc.returncode == 2 and "--slurm" in proc.stderr


def test_evaluate_slurm_dry_run_prints_one_array_task_per_split(python_exe, repo_root, tmp_path):
    proc = subprocess.run([python_exe, str(repo_root / "tools" / "evaluate.py"), "--cfg", "eval_ucf101.yaml", "--weights", "none",
                           "--slurm", "--dry-run", "--splits", "1", "2", "3", "OUTPUT_DIR", str(tmp_path / "eval")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "#SBATCH --array=0-2" in proc.stdout
