"""Hostile configs (issue 14, section 6), judged by what the user sees: status 2, one line on stderr
naming the file or key at fault, no traceback, and nothing run from the YAML.

Each case calls ``tools/launch.py``'s ``main`` in this process with ``--dry-run`` (a case that were
wrongly accepted returns 0 instead of training); a few run as real subprocesses.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def launch_main(load_tool):
    return load_tool("launch").main


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# (case id, files to write {name: content}, argv after "--cfg" (with {dir} for the folder), fragments the line must hold)
CASES = [
    ("python_object_tag", {"evil.yaml": "_BASE_: demo.yaml\nSEED: !!python/object/apply:os.system ['touch {dir}/PWNED']\n"},
     ["{dir}/evil.yaml"], ["evil.yaml, line 2", "!!python/object/apply:os.system", "refused"]),
    ("missing_base", {"child.yaml": "_BASE_: missing_parent.yaml\nSEED: 1\n"},
     ["{dir}/child.yaml"], ["child.yaml", "_BASE_ 'missing_parent.yaml' not found"]),
    ("circular_base", {"a.yaml": "_BASE_: b.yaml\n", "b.yaml": "_BASE_: a.yaml\n"},
     ["{dir}/a.yaml"], ["circular _BASE_ chain a.yaml -> b.yaml -> a.yaml"]),
    ("yaml_syntax_error", {"broken.yaml": "SEED: 1\nSOLVER:\n  BASE_LR: [0.1,\n  MAX_EPOCHS: 2\n"},
     ["{dir}/broken.yaml"], ["broken.yaml, line 5", "invalid YAML", "started on line 3"]),
    ("top_level_list", {"list.yaml": "- SEED\n- 1\n"}, ["{dir}/list.yaml"], ["list.yaml", "top level is a YAML list"]),
    ("empty_file", {"empty.yaml": ""}, ["{dir}/empty.yaml"], ["empty.yaml", "recipe is empty"]),
    ("not_utf8", {"latin1.yaml": b"# r\xe9glages\nSEED: 1\n"}, ["{dir}/latin1.yaml"], ["latin1.yaml, line 1", "not UTF-8", "0xe9"]),
    ("unknown_key_in_yaml", {"typo.yaml": "_BASE_: demo.yaml\nSOLVER:\n  BASE_LRR: 0.1\n"},
     ["{dir}/typo.yaml"], ["typo.yaml", "SOLVER.BASE_LRR", "did you mean SOLVER.BASE_LR?"]),
    ("plugins_not_a_list_in_yaml", {"plug.yaml": "_BASE_: demo.yaml\nPLUGINS: my_plugin\n"},
     ["{dir}/plug.yaml"], ["plug.yaml: PLUGINS", "expected a list of plugin module names"]),
    ("plugins_bad_literal", {}, ["demo.yaml", "PLUGINS", "[my_plugin"], ["override PLUGINS [my_plugin (command line)", "not a Python list"]),
    ("base_lr_nan_in_yaml", {"nan.yaml": "_BASE_: demo.yaml\nSOLVER:\n  BASE_LR: .nan\n"},
     ["{dir}/nan.yaml"], ["SOLVER.BASE_LR = nan", "finite"]),
    ("base_lr_nan_override", {}, ["demo.yaml", "SOLVER.BASE_LR", ".nan"], ["override SOLVER.BASE_LR .nan (command line)", "expected a number"]),
    ("base_lr_not_a_number", {}, ["demo.yaml", "SOLVER.BASE_LR", "abc"], ["override SOLVER.BASE_LR abc (command line)", "expected a number"]),
    ("num_workers_negative", {}, ["demo.yaml", "DATA.NUM_WORKERS", "-1"], ["DATA.NUM_WORKERS = -1", ">= 0"]),
    ("max_steps_negative", {}, ["demo.yaml", "SOLVER.MAX_STEPS", "-5"], ["SOLVER.MAX_STEPS = -5", ">= 0"]),
    ("checkpoint_period_negative", {}, ["demo.yaml", "SOLVER.CHECKPOINT_PERIOD", "-3"], ["SOLVER.CHECKPOINT_PERIOD = -3", ">= 0"]),
    ("unknown_sampler", {}, ["demo.yaml", "SAMPLER.NAME", "MySampler"],
     ["SAMPLER.NAME = 'MySampler'", "HierarchicalSampler, IIDSampler, SceneAwareSampler"]),
    ("plugin_missing", {}, ["demo.yaml", "--plugin", "no_such_avplug_plugin"], ["'no_such_avplug_plugin'", "No module named"]),
    ("plugin_raises", {"raising_plugin.py": "import os\nraise RuntimeError('needs MY_PLUGIN_HOME set\\nmore detail')\n"},
     ["demo.yaml", "--plugin", "raising_plugin"], ["'raising_plugin' raised RuntimeError: needs MY_PLUGIN_HOME set", "raising_plugin.py, line 2"]),
    ("plugin_syntax_error", {"broken_plugin.py": "def f(:\n    pass\n"},
     ["demo.yaml", "--plugin", "broken_plugin"], ["'broken_plugin' has a syntax error", "broken_plugin.py, line 1"]),
    ("weights_missing", {}, ["demo.yaml", "MODEL.WEIGHTS", "{dir}/nowhere.pth"], ["MODEL.WEIGHTS {dir}/nowhere.pth: no such file"]),
    ("weights_not_a_checkpoint", {"notes.pth": "these are not weights\n"},
     ["demo.yaml", "MODEL.WEIGHTS", "{dir}/notes.pth"], ["MODEL.WEIGHTS {dir}/notes.pth: cannot be read as a checkpoint"]),
    ("odd_number_of_overrides", {}, ["demo.yaml", "SEED"], ["KEY VALUE pairs", "(command line)"]),
]


@pytest.mark.parametrize("files, argv, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_config_is_refused_in_one_line_naming_it(launch_main, capsys, tmp_path, monkeypatch, files, argv, fragments):
    monkeypatch.syspath_prepend(str(tmp_path))  # the plugin cases' modules
    for name, text in files.items():
        _write(tmp_path, name, text.replace("{dir}", str(tmp_path)) if isinstance(text, str) else text)
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    status = launch_main(["--dry-run", "--cfg", *argv])
    err = capsys.readouterr().err
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("launch.py: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment.replace("{dir}", str(tmp_path)) in err, err
    assert not (tmp_path / "PWNED").exists()


def test_override_errors_are_blamed_on_the_command_line_not_the_recipe(launch_main, capsys):
    assert launch_main(["--dry-run", "--cfg", "demo.yaml", "SOLVER.BASE_LR", "abc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("launch.py: override SOLVER.BASE_LR abc (command line): ") and ".yaml" not in err, err


def test_evaluate_refuses_a_bad_weights_file_up_front(load_tool, capsys, tmp_path):
    main = load_tool("evaluate").main
    notes = _write(tmp_path, "notes.pth", "not weights")
    assert main(["--cfg", "eval_demo.yaml", "--weights", str(tmp_path / "nowhere.pth"), "OUTPUT_DIR", str(tmp_path / "out")]) == 2
    assert main(["--cfg", "eval_demo.yaml", "--weights", str(notes), "OUTPUT_DIR", str(tmp_path / "out")]) == 2
    missing, not_weights = capsys.readouterr().err.splitlines()
    assert missing == f"evaluate.py: --weights {tmp_path / 'nowhere.pth'}: no such file (give a checkpoint written by pretraining)"
    assert not_weights.startswith(f"evaluate.py: --weights {notes}: cannot be read as a checkpoint (")
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_readable_weights_file_passes_the_up_front_check(launch_main, capsys, tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"model": {"x": torch.zeros(1)}}, weights)
    assert launch_main(["--dry-run", "--cfg", "demo.yaml", "MODEL.WEIGHTS", str(weights)]) == 0
    assert capsys.readouterr().err == ""


def test_resolved_config_still_loads(launch_main, capsys, tmp_path):
    """What avplug writes (config.yaml of a run) goes through the same strict reader."""
    assert launch_main(["--dry-run", "--cfg", "demo.yaml", "SEED", "3"]) == 0
    dumped = capsys.readouterr().out.split("# would run")[0]
    _write(tmp_path, "config.yaml", dumped)
    assert launch_main(["--dry-run", "--cfg", str(tmp_path / "config.yaml")]) == 0
    assert "SEED: 3" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["python_object_tag"])
def test_as_a_real_subprocess(case, tmp_path):
    (files, argv, fragments) = next(c[1:] for c in CASES if c[0] == case)
    for name, text in files.items():
        _write(tmp_path, name, text.replace("{dir}", str(tmp_path)))
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    proc = subprocess.run([sys.executable, "tools/launch.py", "--dry-run", "--cfg", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(f.replace("{dir}", str(tmp_path)) in proc.stderr for f in fragments), proc.stderr
    assert not (tmp_path / "PWNED").exists()
