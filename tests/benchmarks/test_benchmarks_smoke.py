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


def test_decoder_compare_small(tmp_path):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "decoder_compare.py"), "--cfg", "demo.yaml", "--seconds", "8",
         "--size", "128x72", "--reads", "4", "--k", "2", "--repeats", "1", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(out.read_text())
    for table in ("video", "video_per_cpu_s"):
        assert set(data[table]["pyav"]) == {"single", "group", "adjacent"}
        assert all(rate > 0 for row in data[table].values() for rate in row.values())
    assert data["audio_snippets_per_s"] > 0 and data["preprocess_source_s_per_s"] > 0


def test_sampler_epoch_small(tmp_path):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sampler_epoch.py"), "--titles", "200", "--batch", "128",
         "--world-size", "1", "--quick", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    data = json.loads(out.read_text())
    assert data["titles"] == 200 and "iid" in data["policies"] and "hierarchical_k16" in data["policies"]
    assert all(p["batches"] > 0 and p["ms_per_batch"] > 0 for p in data["policies"].values())


def test_kl_estimators_quick(tmp_path):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "kl_estimators.py"), "--quick", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| equal | 5 x 20 | KL(S-||S+) | 0.000 |" in result.stdout and "## Histogram bin rule" in result.stdout
    data = json.loads(out.read_text())
    assert {(r["case"], r["estimator"]) for r in data["comparison"]} == {(c, e) for c in ("equal", "paper", "uneven") for e in ("histogram", "knn")}
    truth = {case: info["truth"] for case, info in data["settings"]["cases"].items()}
    for row in data["comparison"]:
        assert row["sets"] == (2 if row["estimator"] == "histogram" else 1)
        assert {name: m["truth"] for name, m in row["measures"].items()} == {k: round(v, 4) for k, v in truth[row["case"]].items()}
        assert {"bias", "rmse", "coverage", "coverage_t_only", "coverage_percentile", "half_width"} <= set(row["measures"]["gap"])
    assert [(r["titles"], r["snippets_per_title"]) for r in data["sample_size"]] == [(5, 20)]


def test_frame_conversion_quick(tmp_path):
    out = tmp_path / "result.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "frame_conversion.py"), "--quick", "--json", str(out)],
        check=False, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]  # exit 1 when a reused context gives other pixels
    rows = json.loads(out.read_text())["rows"]
    assert [(r["conversion"], r["size"]) for r in rows] == [("to_ndarray", "64x48"), ("scale", "64x48")]
    assert all(r["identical"] and r["new_context_ms"] > 0 and r["reused_context_ms"] > 0 for r in rows)
