"""Elastic resume on real gloo process groups: a run checkpointed at one world size and resumed at
another continues the same sequence of global batches; a changed batch size is refused by name.

Each rank's local batches are logged by a hook registered through ``registry.HOOKS`` from a plugin
module (as a user's hook would be), and a step's global batch is the concatenation of the ranks'
local batches in rank order.
"""
import json
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from avplug.config import load_config
from avplug.engine.launch import launch_local

PLUGIN = textwrap.dedent('''
    """Test plugin: every rank appends the local batch of each step to OUTPUT_DIR/batches_rank<r>.jsonl."""
    import json
    from pathlib import Path

    import registry
    from avplug.engine.hooks import HookBase


    @registry.HOOKS.register()
    class BatchLog(HookBase):
        def __init__(self, cfg):
            self.out = Path(cfg.OUTPUT_DIR)

        def after_step(self):
            t = self.trainer
            with open(self.out / f"batches_rank{t.rank}.jsonl", "a") as f:
                f.write(json.dumps({"step": t.step, "world": t.world_size, "items": t.batch_ids}) + "\\n")
''')

TINY = ["SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "0",
        "MODEL.VIDEO.WIDTH", "0.0625", "MODEL.AUDIO.WIDTH", "0.0625", "MODEL.HEAD.DIM", "16",
        "INPUT.VIDEO.SHORT_SIDE", "40", "INPUT.VIDEO.CROP", "32", "DATA.NUM_WORKERS", "0", "SOLVER.MAX_EPOCHS", "4",
        "EVAL.DISCREPANCY_PERIOD", "-1", "PLUGINS", "['avplug_test_batch_log']", "HOOKS", "['BatchLog']"]


@pytest.fixture
def batch_log_plugin(tmp_path, monkeypatch):
    """The plugin module on sys.path (spawned ranks inherit it)."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "avplug_test_batch_log.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _cfg(tiny_demo, out: Path, max_steps: int):
    return load_config("demo.yaml", tiny_demo + TINY + ["SOLVER.MAX_STEPS", str(max_steps), "OUTPUT_DIR", str(out)])


def _global_batches(out: Path) -> dict[int, list[tuple[str, int]]]:
    """step -> the global batch (rank-major concatenation); the last record of a step wins (a resume may replay one)."""
    parts: dict[int, dict[int, list]] = defaultdict(dict)
    for path in sorted(out.glob("batches_rank*.jsonl")):
        rank = int(path.stem.removeprefix("batches_rank"))
        for line in path.read_text().splitlines():
            record = json.loads(line)
            parts[record["step"]][rank] = [tuple(item) for item in record["items"]]
    return {step: [item for rank in sorted(ranks) for item in ranks[rank]] for step, ranks in sorted(parts.items())}


@pytest.mark.slow
@pytest.mark.parametrize(("first", "second"), [(2, 1), (1, 2)], ids=["2-to-1-ranks", "1-to-2-ranks"])
def test_resume_on_another_world_size_continues_the_same_global_batches(tiny_demo, batch_log_plugin, tmp_path, first, second):
    # 2 steps per epoch on the tiny catalog: stopping at step 3 resumes inside epoch 1.
    reference = tmp_path / "reference"
    launch_local(_cfg(tiny_demo, reference, 7), 1)
    expected = _global_batches(reference)
    assert sorted(expected) == list(range(1, 8))

    out = tmp_path / "elastic"
    launch_local(_cfg(tiny_demo, out, 3), first)
    summary = launch_local(_cfg(tiny_demo, out, 7), second)
    assert summary["steps"] == 7 and summary["world_size"] == second
    got = _global_batches(out)
    assert got == expected
    assert f"saved at world size {first}, now {second}" in (out / "log.txt").read_text()


def test_resume_with_another_batch_size_is_refused_naming_it(tiny_demo, batch_log_plugin, tmp_path, one_intra_op_thread):
    out = tmp_path / "run"
    launch_local(_cfg(tiny_demo, out, 2), 1)
    changed = load_config("demo.yaml", tiny_demo + TINY + ["SOLVER.MAX_STEPS", "4", "OUTPUT_DIR", str(out), "SOLVER.BATCH_SIZE", "4"])
    with pytest.raises(ValueError, match="SOLVER.BATCH_SIZE changed since the checkpoint"):
        launch_local(changed, 1)
