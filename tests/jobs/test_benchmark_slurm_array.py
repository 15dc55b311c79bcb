"""benchmarks/preprocess_throughput.py times the real Slurm preprocessing array (smoke size)."""
import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slurm


def test_preprocess_benchmark_times_the_slurm_array(shared_tmp, repo_root):
    out = shared_tmp / "result.json"
    result = subprocess.run(
        [sys.executable, str(repo_root / "benchmarks" / "preprocess_throughput.py"), "--quick", "--slurm",
         "--array-sizes", "1,2", "--titles", "2", "--workdir", str(shared_tmp / "work"), "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=900, cwd=shared_tmp,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    array = json.loads(out.read_text())["slurm_array"]
    assert array["titles"] == 2 and [r["array_size"] for r in array["rows"]] == [1, 2]
    assert all(r["titles"] == 2 and r["wall_s"] > 0 and r["speedup_over_1"] > 0 and r["busiest_task_s"] > 0 for r in array["rows"])
