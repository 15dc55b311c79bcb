"""The benchmark scripts run end to end in their --quick mode (they must run, not meet a number)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_data_throughput_quick(tmp_path):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "data_throughput.py"), "--quick", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(out.read_text())
    assert json.loads(result.stdout) == data
    assert data["machine"]["cpu_model"] and data["machine"]["logical_cores"] >= 1
    figures = data["per_core"]
    for name in ("a_pytorchvideo_source", "b_avplug_store", "b_raw_avplug_store_on_device_mode", "c_pyav_store_decode"):
        assert figures[name]["snippets"] > 0 and figures[name]["snippets_per_cpu_s"] > 0, name
    assert data["ratios"]["b_over_a"] > 0 and data["ratios"]["b_over_c"] > 0
    rows = {(r["transforms"], r["k"], r["workers"]): r for r in data["loader"]}
    modes = ("in workers", "on device (raw fetch)")
    assert set(rows) == {(m, k, w) for m in modes for k in (1, 4) for w in (0, 1)}
    for m in modes:
        assert rows[(m, 1, 0)]["title_reads_per_batch"] == 4.0 and rows[(m, 4, 0)]["title_reads_per_batch"] == 1.0
    assert all(r["snippets_per_s"] > 0 and r["snippets_per_fetch_cpu_s"] > 0 for r in rows.values())


def test_preprocess_throughput_quick(tmp_path):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "preprocess_throughput.py"), "--quick", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(out.read_text())
    assert json.loads(result.stdout) == data
    figures = data["per_core"]["figures"]
    for name in ("ceiling_pyav_decode", "store_preprocess_title"):
        assert figures[name]["passes"] >= 1 and figures[name]["source_s_per_cpu_s"] > 0, name
    assert data["per_core"]["store_over_ceiling"] > 0 and "slurm_array" not in data
