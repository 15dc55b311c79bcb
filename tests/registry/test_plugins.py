"""Third-party plugins: loaded through --plugin / PLUGINS and through an installed entry point."""
import json
import subprocess
import textwrap

import pytest

PLUGIN_SOURCE = textwrap.dedent(
    '''
    """A sampler plugin living outside avplug: every group is the first k snippets of a title."""
    from fvcore.common.config import CfgNode as CN

    import registry


    @registry.register_config_hook
    def add_keys(cfg):
        cfg.SAMPLER.FIRST_K = CN()
        cfg.SAMPLER.FIRST_K.OFFSET = 0


    @registry.SAMPLERS.register()
    class FirstKSampler:
        def __init__(self, cfg, titles, *, world_size, rank, seed):
            self.k, self.offset = cfg.SAMPLER.K, cfg.SAMPLER.FIRST_K.OFFSET
            self.titles = [t for t in titles if t.num_snippets >= self.k + self.offset]
            self.local = cfg.SOLVER.BATCH_SIZE // world_size
            self.rank, self.epoch, self.done = rank, 0, 0

        def set_epoch(self, epoch):
            self.epoch, self.done = epoch, 0

        def __len__(self):
            return 2

        def __iter__(self):
            groups = [(t.title_id, self.offset + m) for t in self.titles for m in range(self.k)]
            for b in range(self.done, len(self)):
                start = (b * len(self.titles) + self.rank) * self.local
                yield [groups[(start + i) % len(groups)] for i in range(self.local)]

        def state_dict(self):
            return {"epoch": self.epoch, "batches_done": self.done}

        def load_state_dict(self, state):
            self.epoch, self.done = state["epoch"], state["batches_done"]
    '''
)

YAML = """
_BASE_: {base}
PLUGINS: [{module}]
SAMPLER:
  NAME: FirstKSampler
  K: 4
  FIRST_K:
    OFFSET: 2
SOLVER:
  BATCH_SIZE: 8
"""

CHECK = textwrap.dedent(
    """
    import json, sys
    from avplug.config import load_config
    from avplug.data.index import TitleRecord
    from avplug.samplers import build_sampler
    cfg = load_config(sys.argv[1], plugins=sys.argv[2:])
    titles = [TitleRecord("a", 10), TitleRecord("b", 3), TitleRecord("c", 8)]
    sampler = build_sampler(cfg, titles, world_size=1, rank=0)
    print(json.dumps({"name": type(sampler).__name__, "offset": cfg.SAMPLER.FIRST_K.OFFSET, "batch": next(iter(sampler))}))
    """
)


@pytest.fixture
def plugin_dir(tmp_path):
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "firstk_plugin.py").write_text(PLUGIN_SOURCE)
    return pkg


def _run(python_exe, args, pythonpath, cwd):
    env = {"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([python_exe, "-c", CHECK, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _expect(result):
    assert result["name"] == "FirstKSampler" and result["offset"] == 2
    assert result["batch"] == [["a", 2], ["a", 3], ["a", 4], ["a", 5], ["c", 2], ["c", 3], ["c", 4], ["c", 5]]


def test_plugin_named_in_yaml(plugin_dir, tmp_path, python_exe, repo_root):
    cfg = tmp_path / "first_k.yaml"
    cfg.write_text(YAML.format(base=repo_root / "configs" / "demo.yaml", module="firstk_plugin"))
    _expect(_run(python_exe, [str(cfg)], plugin_dir, tmp_path))


def test_plugin_from_command_line(plugin_dir, tmp_path, python_exe, repo_root):
    cfg = tmp_path / "first_k.yaml"
    cfg.write_text(YAML.format(base=repo_root / "configs" / "demo.yaml", module=""))
    _expect(_run(python_exe, [str(cfg), "firstk_plugin"], plugin_dir, tmp_path))


def test_plugin_from_entry_point_of_installed_distribution(plugin_dir, tmp_path, python_exe, repo_root):
    """Build and install a throwaway distribution whose entry point names the plugin module."""
    dist = tmp_path / "dist_src"
    dist.mkdir()
    (dist / "firstk_plugin.py").write_text(PLUGIN_SOURCE)
    (dist / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n')
    (dist / "setup.cfg").write_text(
        "[metadata]\nname = avplug-firstk\nversion = 0.0.1\n[options]\npy_modules = firstk_plugin\n"
        "[options.entry_points]\navplug.plugins =\n    firstk = firstk_plugin\n"
    )
    site = tmp_path / "site"
    subprocess.run(
        [python_exe, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation", "--target", str(site), str(dist)],
        check=True, capture_output=True, timeout=300,
    )
    cfg = tmp_path / "first_k.yaml"
    cfg.write_text(YAML.format(base=repo_root / "configs" / "demo.yaml", module=""))
    _expect(_run(python_exe, [str(cfg)], site, tmp_path))


def test_unknown_plugin_module_is_a_clear_error():
    from avplug.config import load_config

    with pytest.raises(ImportError, match="no_such_plugin_module"):
        load_config("demo.yaml", plugins=["no_such_plugin_module"])
