"""Every entry point fails the same clear way (issue 14, section 2), judged by what the user sees.

Each tool of ``tools/`` gets a bad config key, a missing path and, where it takes one, an impossible
batch (more titles than the catalog has) or a store built with other settings: exit status 2,
exactly one ``tool.py: message`` line on stderr naming the key or path, no traceback.  Every case
runs through the tool's ``main`` in this process, and one case per tool also as a real subprocess
(the subprocesses a few at a time: each one imports torch).  A local launch with two ranks fails
the same way, with each rank's traceback in its log file.  A bug (not a user error) still shows its
traceback (it propagates out of ``main``).
"""
from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from avplug.data.errors import StoreError
from avplug.errors import user_error_message

REPO = Path(__file__).resolve().parents[2]
BAD_KEY = ["SOLVER.BASE_LRR", "0.1"]
IMPOSSIBLE_BATCH = ["SAMPLER.K", "2", "SOLVER.BATCH_SIZE", "64", "DATA.NUM_WORKERS", "0"]
BUGGY_PLUGIN = '''
import registry


@registry.SAMPLERS.register()
class BuggySampler:
    def __init__(self, cfg, titles, **kwargs):
        self.per_title = len(titles) // 0
'''


def _cases(tmp: Path, store_opts: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """case id -> (tools/<tool>.py and its arguments, fragments the one stderr line must hold)."""
    missing = str(tmp / "no" / "such")
    weights = tmp / "weights.pth"
    torch.save({"model": {"x": torch.zeros(1)}}, weights)
    out = str(tmp / "out")
    return {
        # a bad config key
        "demo-key": (["demo.py", "--out", out, *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "discrepancy-key": (["discrepancy.py", "--cfg", "demo.yaml", "--weights", str(weights), *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "evaluate-key": (["evaluate.py", "--cfg", "eval_demo.yaml", "--weights", "none", *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "ingest-key": (["ingest.py", "--cfg", "demo.yaml", *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "inspect_sampler-key": (["inspect_sampler.py", "--cfg", "demo.yaml", *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "launch-key": (["launch.py", "--cfg", "demo.yaml", *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "make_demo_corpus-key": (["make_demo_corpus.py", "--cfg", "demo.yaml", "--out", out, *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "preprocess-key": (["preprocess.py", "--cfg", "demo.yaml", *BAD_KEY], ["SOLVER.BASE_LRR"]),
        "sweep-key": (["sweep.py", "--cfg", "demo.yaml", "--out", out, "--grid", "SEED=0,1", *BAD_KEY], ["SOLVER.BASE_LRR"]),
        # a missing path
        "demo-path": (["demo.py", "--cfg", f"{missing}.yaml", "--out", out], [f"{missing}.yaml"]),
        "discrepancy-path": (["discrepancy.py", "--weights", f"{missing}.pth"], [f"{missing}.pth"]),
        "evaluate-path": (["evaluate.py", "--cfg", "eval_demo.yaml", "--weights", "none", "OUTPUT_DIR", out,
                           "EVAL.DOWNSTREAM.ROOT", missing], [missing]),
        "ingest-path": (["ingest.py", "--cfg", "demo.yaml", "--src", missing, "--out", out], [missing]),
        "inspect_sampler-path": (["inspect_sampler.py", "--cfg", "demo.yaml", "DATA.STORE_DIR", missing], [missing]),
        "launch-path": (["launch.py", "--cfg", "demo.yaml", "DATA.STORE_DIR", missing, "OUTPUT_DIR", out], [missing]),
        "make_demo_corpus-path": (["make_demo_corpus.py", "--cfg", f"{missing}.yaml"], [f"{missing}.yaml"]),
        "preprocess-path": (["preprocess.py", "--cfg", "demo.yaml", "--catalog", missing, "--out", out], [missing]),
        "report-path": (["report.py", missing, "--out", out], [missing]),
        "sweep-path": (["sweep.py", "--out", missing, "--status"], [missing]),
        # an impossible batch, a store built with other settings
        "launch-batch": (["launch.py", "--cfg", "demo.yaml", *store_opts, *IMPOSSIBLE_BATCH, "OUTPUT_DIR", str(tmp / "run")],
                         ["SOLVER.BATCH_SIZE = 64", "set SOLVER.BATCH_SIZE"]),
        "launch-batch-2-ranks": (["launch.py", "--cfg", "demo.yaml", "--procs-per-node", "2", *store_opts, *IMPOSSIBLE_BATCH,
                                  "OUTPUT_DIR", str(tmp / "run2")], ["SOLVER.BATCH_SIZE = 64", "set SOLVER.BATCH_SIZE"]),
        "inspect_sampler-batch": (["inspect_sampler.py", "--cfg", "demo.yaml", *store_opts, *IMPOSSIBLE_BATCH], ["SOLVER.BATCH_SIZE = 64"]),
        "launch-store-spec": (["launch.py", "--cfg", "demo.yaml", *store_opts, "SAMPLER.K", "2", "SOLVER.BATCH_SIZE", "4",
                               "DATA.NUM_WORKERS", "0", "DATA.AUDIO_RATE", "8000", "OUTPUT_DIR", out],
                              ["snippet store", "DATA.AUDIO_RATE", "rebuild"]),
        "preprocess-store-spec": (["preprocess.py", "--no-progress", "--cfg", "demo.yaml", *store_opts, "DATA.STORE_SHORT_SIDE", "32"],
                                  ["snippet store", "another spec"]),
    }


# One case per tool as a real subprocess (the cheap ones: each subprocess imports torch).
SUBPROCESS_CASES = [
    "demo-key", "discrepancy-path", "evaluate-key", "ingest-path", "inspect_sampler-key", "launch-key",
    "make_demo_corpus-path", "preprocess-path", "report-path", "sweep-key",
]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"tools/{argv[0]}", *argv[1:]], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def setting(tiny_demo, tmp_path_factory):
    """The cases (on the tiny demo store), the buggy plugin's folder, and the store's index before any ran."""
    tmp = tmp_path_factory.mktemp("tool_errors")
    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / "buggy_sampler.py").write_text(BUGGY_PLUGIN)
    cases = _cases(tmp, tiny_demo)
    cases["bug"] = (["inspect_sampler.py", "--cfg", "demo.yaml", "--synthetic-titles", "20", "--plugin", "buggy_sampler",
                     "SAMPLER.NAME", "BuggySampler"], [])
    index = Path(tiny_demo[tiny_demo.index("DATA.STORE_DIR") + 1]) / "index.json"
    return {"cases": cases, "tmp": tmp, "plugins": plugins, "index": (index, index.read_bytes())}


@pytest.fixture(scope="module")
def outcomes(setting):
    """The finished subprocess of every case of SUBPROCESS_CASES, run three at a time."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("AVPLUG_DEBUG", None)
    argvs = [setting["cases"][c][0] for c in SUBPROCESS_CASES]
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(SUBPROCESS_CASES, pool.map(lambda argv: _run(argv, env), argvs)))


@pytest.fixture(autouse=True)
def own_avplug_logger():
    """Each in-process call sets up the ``avplug`` logger afresh (a console handler left by an earlier
    test would write to that test's closed capture stream); the handlers it adds are closed after."""
    logger = logging.getLogger("avplug")
    kept = logger.handlers[:]
    logger.handlers.clear()
    yield
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:] = kept


USER_ERROR_CASES = [
    "demo-key", "discrepancy-key", "evaluate-key", "ingest-key", "inspect_sampler-key", "launch-key", "make_demo_corpus-key",
    "preprocess-key", "sweep-key",
    "demo-path", "discrepancy-path", "evaluate-path", "ingest-path", "inspect_sampler-path", "launch-path",
    "make_demo_corpus-path", "preprocess-path", "report-path", "sweep-path",
    "launch-batch", "launch-batch-2-ranks", "inspect_sampler-batch", "launch-store-spec", "preprocess-store-spec",
]


def _assert_one_line(tool: str, status: int, stderr: str, fragments: list[str]) -> None:
    assert status == 2, stderr[-3000:]
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr[-3000:]
    assert stderr.startswith(f"{tool}: "), stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


@pytest.mark.parametrize("case", USER_ERROR_CASES)
def test_a_user_error_is_one_line_and_status_2(load_tool, setting, case, capsys):
    argv, fragments = setting["cases"][case]
    status = load_tool(argv[0].removesuffix(".py")).main(argv[1:])
    _assert_one_line(argv[0], status, capsys.readouterr().err, fragments)


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_as_a_real_subprocess(setting, outcomes, case):
    argv, fragments = setting["cases"][case]
    proc = outcomes[case]
    _assert_one_line(argv[0], proc.returncode, proc.stderr, fragments)


def test_every_tool_is_covered(setting):
    tools = {p.name for p in (REPO / "tools").glob("*.py")}
    assert {setting["cases"][c][0][0] for c in USER_ERROR_CASES} == tools
    assert {setting["cases"][c][0][0] for c in SUBPROCESS_CASES} == tools


def test_the_traceback_goes_to_each_ranks_log_file(load_tool, setting, capsys):
    argv, _ = setting["cases"]["launch-batch-2-ranks"]
    run = setting["tmp"] / "run2"
    if not (run / "log.rank1.txt").is_file():  # when this test runs alone
        assert load_tool(argv[0].removesuffix(".py")).main(argv[1:]) == 2
    capsys.readouterr()
    for log in ("log.txt", "log.rank1.txt"):
        text = (run / log).read_text()
        assert "Traceback" in text and "SamplerError: HierarchicalSampler: a global batch of SOLVER.BATCH_SIZE = 64" in text, log


def test_a_store_built_with_other_settings_is_left_as_it_was(load_tool, setting, capsys):
    argv, _ = setting["cases"]["preprocess-store-spec"]
    assert load_tool(argv[0].removesuffix(".py")).main(argv[1:]) == 2
    index, before = setting["index"]
    assert index.read_bytes() == before


def test_a_bug_still_shows_its_traceback(load_tool, setting, monkeypatch):
    """A bug propagates out of main (so Python prints its traceback and exits 1), here a plugin's."""
    monkeypatch.syspath_prepend(str(setting["plugins"]))
    argv, _ = setting["cases"]["bug"]
    with pytest.raises(ZeroDivisionError):
        load_tool(argv[0].removesuffix(".py")).main(argv[1:])


def test_avplug_debug_shows_the_traceback_before_the_line(load_tool, capsys, monkeypatch):
    monkeypatch.setenv("AVPLUG_DEBUG", "1")
    assert load_tool("launch").main(["--dry-run", "--cfg", "demo.yaml", *BAD_KEY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "ConfigError" in err
    assert err.splitlines()[-1].startswith("launch.py: override SOLVER.BASE_LRR 0.1 (command line): unknown config key")


def test_the_traceback_goes_to_output_dir_log(load_tool, tiny_demo, capsys, tmp_path):
    assert load_tool("launch").main(["--cfg", "demo.yaml", *tiny_demo, *IMPOSSIBLE_BATCH, "OUTPUT_DIR", str(tmp_path)]) == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith("launch.py: HierarchicalSampler: a global batch of SOLVER.BATCH_SIZE = 64")
    log = (tmp_path / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and line.removeprefix("launch.py: ") in log


def test_a_full_disk_is_a_user_error_naming_the_path(load_tool, capsys, monkeypatch, tmp_path):
    """No space left on device (or a read-only disk) is the user's to fix: one line naming the path."""
    module = load_tool("make_demo_corpus")
    target = tmp_path / "corpus" / "titles" / "movie_000.mp4"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(module, "generate_demo_corpus", full_disk)
    assert module.main(["--out", str(tmp_path / "corpus")]) == 2
    assert capsys.readouterr().err == f"make_demo_corpus.py: {target}: no space left on device\n"


class _BrokenTitle(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        raise StoreError("/data/store", f"title 'movie_{index:03d}': audio.npy is truncated")


def test_a_user_error_in_a_loader_worker_is_still_one_line():
    """torch re-raises a worker's StoreError as a RuntimeError holding the worker's traceback."""
    with pytest.raises(RuntimeError) as raised:
        next(iter(torch.utils.data.DataLoader(_BrokenTitle(), num_workers=1)))
    assert user_error_message(raised.value) == "snippet store /data/store: title 'movie_000': audio.npy is truncated"
    assert user_error_message(RuntimeError("Caught ZeroDivisionError in DataLoader worker process 0.\nOriginal Traceback ...")) is None
