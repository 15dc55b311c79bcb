"""examples/sampler_plugin end to end: YAML names the plugin and its keys, inspect_sampler.py uses it."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

YAML = """\
_BASE_: {base}
PLUGINS: [{plugins}]
SAMPLER:
  NAME: ShowLevelSampler
  K: 4
  SHOW_LEVEL:
    MODE: {mode}
SOLVER:
  BATCH_SIZE: 32
"""


def _run(python_exe, repo_root, cfg_path, *args):
    env = {**os.environ, "PYTHONPATH": str(repo_root / "examples" / "sampler_plugin")}
    proc = subprocess.run(
        [python_exe, str(repo_root / "tools" / "inspect_sampler.py"), "--cfg", str(cfg_path), "--synthetic-titles", "120",
         "--world-size", "2", "--batches", "3", "--stats", *args],
        check=False, capture_output=True, text=True, cwd=repo_root, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("mode, how", [("episodes", "yaml"), ("pooled", "flag")])
def test_show_level_plugin_through_yaml_and_inspect_tool(python_exe, repo_root, tmp_path, mode, how):
    cfg = tmp_path / "show_level.yaml"
    cfg.write_text(YAML.format(base=repo_root / "configs" / "demo.yaml", plugins="avplug_example_sampler" if how == "yaml" else "", mode=mode))
    args = ["--plugin", "avplug_example_sampler"] if how == "flag" else []
    *batches, summary = _run(python_exe, repo_root, cfg, *args)
    assert summary["sampler"]["name"] == "ShowLevelSampler"
    assert ("episodes of a show" in summary["sampler"]["description"]) == (mode == "episodes")
    assert summary["stats"]["duplicates"] == 0 and len(batches) == 3 * 2
    episodes_per_group = []
    for line in batches:
        items = line["items"]
        assert len(items) == 16
        for g in range(0, 16, 4):  # groups of k = 4 stay together on the rank, in draw order
            group = items[g : g + 4]
            shows = {t.split("_ep")[0] for t, _ in group}
            assert len(shows) == 1 and next(iter(shows)).startswith("show")
            assert len({tuple(i) for i in group}) == 4
            episodes_per_group.append(len({t for t, _ in group}))
    if mode == "episodes":
        assert set(episodes_per_group) == {4}  # one snippet from each of 4 episodes
    else:
        assert min(episodes_per_group) < 4  # pooled snippets may share an episode
