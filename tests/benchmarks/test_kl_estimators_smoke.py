"""benchmarks/kl_estimators.py runs end to end in its --quick mode (it must run, not meet a number)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
