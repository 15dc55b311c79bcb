"""Hostile cases of training (issue 14, section 5), judged by what the user sees.

Exit status, no traceback on stderr, the key / file named in one line, and nothing lost: both
runs' checkpoints still on disk with their bytes, the weights returned are the run's own.  The
user-facing cases run the real ``tools/launch.py``; the rest call the engine in-process.  Tiny
model and store (the session's ``tiny_demo``): 2 steps per epoch, a checkpoint every 2 steps.
"""
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avplug.checksums import NoSpaceError
from avplug.config import load_config
from avplug.data.dataset import BadSnippetError, PretrainDataset
from avplug.data.errors import MediaError, StoreError
from avplug.data.store import SnippetStore
from avplug.engine.checkpoint import Checkpointer
from avplug.engine.metrics import MetricsWriter, read_metrics
from avplug.engine.run_dir import ConfigChangedError, OutputDirLock, prepare_submission, resume_from_flags
from avplug.engine.train import run_pretraining
from avplug.engine.trainer import CheckpointUnusableError
from avplug.evaluation.downstream_classifier import check_front_end
from avplug.models.export import CheckpointFormatError, load_encoders

TINY = ["SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "2",
        "MODEL.VIDEO.WIDTH", "0.0625", "MODEL.AUDIO.WIDTH", "0.0625", "MODEL.HEAD.DIM", "16",
        "INPUT.VIDEO.SHORT_SIDE", "40", "INPUT.VIDEO.CROP", "32", "DATA.NUM_WORKERS", "0", "SOLVER.MAX_EPOCHS", "3",
        "EVAL.DISCREPANCY_PERIOD", "-1"]
REPO = Path(__file__).resolve().parents[2]


def _cfg(tiny_demo, out: Path, *opts: str):
    return load_config("demo.yaml", tiny_demo + TINY + list(opts) + ["OUTPUT_DIR", str(out)])


def _launch(tiny_demo, out: Path, *args: str) -> subprocess.CompletedProcess:
    """``tools/launch.py --cfg demo.yaml`` on the tiny demo; ``args`` are flags and ``KEY VALUE`` pairs."""
    cmd = [sys.executable, str(REPO / "tools" / "launch.py"), "--cfg", "demo.yaml", "--nodes", "1", *args,
           *tiny_demo, *TINY, "OUTPUT_DIR", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _launch_parser():
    """tools/launch.py's argument parser (tools/ is not a package: loaded from its file)."""
    spec = importlib.util.spec_from_file_location("launch_tool", REPO / "tools" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single ``launch.py: ...`` line of a refused run (exit 2, no traceback)."""
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("launch.py: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout[proc.stdout.index("{\n"):])


@pytest.fixture
def avplug_log():
    """The text the ``avplug`` loggers wrote during the test, INFO and up (they do not propagate to pytest's caplog)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("avplug")
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield stream.getvalue
    logger.removeHandler(handler)
    logger.setLevel(previous)


@pytest.fixture(scope="module")
def finished_run(tiny_demo, tmp_path_factory) -> Path:
    """A run of 4 steps (checkpoints at steps 2 and 4), SEED 0; copy it before changing it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    torch.set_num_threads(1)
    run_pretraining(_cfg(tiny_demo, out, "SOLVER.MAX_STEPS", "4"))
    return out


@pytest.fixture
def old_run(finished_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    return out


# --- reruns: adopt nothing, lose nothing -------------------------------------------------------


def test_rerun_with_another_config_is_refused_naming_every_key_then_resume_continues(tiny_demo, old_run, avplug_log):
    before = _digests(old_run / "checkpoints")
    config_before = (old_run / "config.yaml").read_bytes()
    line = _one_line_error(_launch(tiny_demo, old_run, "SEED", "1", "SOLVER.BASE_LR", "0.01", "SOLVER.MAX_STEPS", "6"))
    assert "SEED 0 -> 1" in line and "SOLVER.BASE_LR 0.002 -> 0.01" in line and "model_0000004.pth" in line
    assert "MAX_STEPS" not in line  # extending a run is not a change
    assert "--resume" in line and "--no-resume" in line and "OUTPUT_DIR" in line
    assert _digests(old_run / "checkpoints") == before and (old_run / "config.yaml").read_bytes() == config_before

    with pytest.raises(ConfigChangedError, match="--resume cannot continue .*model_0000004.pth with this config "
                                                 r"\(cannot resume the sampler: SEED changed since the checkpoint"):
        run_pretraining(_cfg(tiny_demo, old_run, "SEED", "1", "SOLVER.MAX_STEPS", "6"), resume="force")

    flags = _launch_parser().parse_args(["--cfg", "demo.yaml", "--resume"])
    assert resume_from_flags(flags) == "force"
    summary = run_pretraining(_cfg(tiny_demo, old_run, "SOLVER.BASE_LR", "0.01", "SOLVER.WEIGHT_DECAY", "0.001",
                                   "SOLVER.MAX_STEPS", "6"), resume=resume_from_flags(flags))
    assert summary["steps"] == 6
    assert "continuing the checkpoint" in avplug_log() and "with SOLVER.BASE_LR changed (0.002 -> 0.01)" in avplug_log()
    assert "with SOLVER.WEIGHT_DECAY changed (0.0 -> 0.001)" in avplug_log()


def test_no_resume_sets_the_old_run_aside_and_returns_this_runs_weights(tiny_demo, old_run):
    old = _digests(old_run / "checkpoints")
    summary = _summary(_launch(tiny_demo, old_run, "--no-resume", "SEED", "1", "SOLVER.MAX_STEPS", "2"))
    assert summary["steps"] == 2 and summary["last_checkpoint"] == str(old_run / "checkpoints" / "model_0000002.pth")
    state = torch.load(summary["last_checkpoint"], weights_only=True)
    assert state["step"] == 2 and "SEED: 1" in state["cfg"]
    assert sorted(p.name for p in (old_run / "checkpoints").glob("*.pth")) == ["model_0000002.pth"]
    (aside,) = (old_run / "previous_runs").iterdir()
    assert _digests(aside / "checkpoints") == old  # every file of the old run, bytes unchanged
    assert [r["step"] for r in read_metrics(aside / "metrics.jsonl")] == [1, 2, 3, 4]
    assert str(aside) in (old_run / "log.txt").read_text()


def test_slurm_submission_checks_first_and_a_requeued_job_keeps_resuming_its_run(tiny_demo, old_run):
    from jobs.pretrain import PretrainJob

    cfg = _cfg(tiny_demo, old_run)
    assert PretrainJob(cfg, resume="force").checkpoint().function.resume == "force"  # may not have its own checkpoint yet
    assert PretrainJob(cfg, resume=False).checkpoint().function.resume is True
    config_before = (old_run / "config.yaml").read_bytes()
    with pytest.raises(ConfigChangedError, match=r"SEED changed since the run in .* \(SEED 0 -> 1\)"):
        prepare_submission(old_run, _cfg(tiny_demo, old_run, "SEED", "1"), "auto")
    prepare_submission(old_run, _cfg(tiny_demo, old_run, "SOLVER.MAX_STEPS", "6"), "auto")  # its own config, extended
    assert (old_run / "config.yaml").read_bytes() == config_before


def test_a_second_run_on_a_held_output_dir_is_refused_naming_the_holder(tiny_demo, old_run):
    with OutputDirLock(old_run):
        line = _one_line_error(_launch(tiny_demo, old_run, "SOLVER.MAX_STEPS", "6"))
    assert f"OUTPUT_DIR {old_run} is in use by another run" in line and f"pid {os.getpid()}" in line
    assert [r["step"] for r in read_metrics(old_run / "metrics.jsonl")] == [1, 2, 3, 4]  # nothing interleaved


def test_the_lock_of_a_killed_run_does_not_block(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from avplug.engine.run_dir import OutputDirLock; "
                               f"OutputDirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(Exception, match=f"pid {holder.pid}"):
        OutputDirLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with OutputDirLock(tmp_path) as lock:  # the kernel dropped the dead holder's lock
        assert f"pid {os.getpid()}" in lock.path.read_text()


def test_a_file_system_without_flock_runs_unlocked_with_a_warning(tmp_path, monkeypatch, avplug_log):
    import errno
    import fcntl

    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with OutputDirLock(tmp_path):
        pass
    assert f"{tmp_path / '.lock'}: cannot lock ([Errno {errno.ENOLCK}] No locks available)" in avplug_log()


# --- corruption: verify what is loaded ---------------------------------------------------------


def _flip_a_weight_byte(path: Path) -> None:
    """Flip one byte inside a stored weight tensor (not in the zip's bookkeeping)."""
    state = torch.load(path, weights_only=True)
    weight = next(v for v in state["model"].values() if v.numel() >= 64 and v.dtype == torch.float32)
    data = bytearray(path.read_bytes())
    offset = data.find(weight.numpy().tobytes())
    assert offset > 0
    data[offset + 7] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_corrupt_newest_checkpoint_is_named_and_the_previous_one_resumed(tiny_demo, old_run, avplug_log):
    newest = old_run / "checkpoints" / "model_0000004.pth"
    _flip_a_weight_byte(newest)
    summary = run_pretraining(_cfg(tiny_demo, old_run, "SOLVER.MAX_STEPS", "6"))
    assert summary["steps"] == 6
    assert f"checkpoint {newest} is unusable" in avplug_log() and "corrupt (sha256" in avplug_log()
    assert f"resumed from {old_run / 'checkpoints' / 'model_0000002.pth'} at step 2" in avplug_log()


def test_when_every_checkpoint_is_corrupt_the_run_stops_instead_of_starting_over(tiny_demo, old_run):
    for path in (old_run / "checkpoints").glob("*.pth"):
        _flip_a_weight_byte(path)
    corrupt = _digests(old_run / "checkpoints")
    with pytest.raises(CheckpointUnusableError, match=f"no checkpoint in {old_run / 'checkpoints'} is usable .*--no-resume"):
        run_pretraining(_cfg(tiny_demo, old_run, "SOLVER.MAX_STEPS", "6"))
    assert _digests(old_run / "checkpoints") == corrupt


def test_a_corrupt_weights_file_is_one_line_naming_it(tiny_demo, old_run, tmp_path):
    weights = old_run / "checkpoints" / "model_0000004.pth"
    _flip_a_weight_byte(weights)
    with pytest.raises(CheckpointFormatError, match=f"{weights}: corrupt"):
        load_encoders(weights)
    with pytest.raises(CheckpointFormatError, match=f"{weights}: corrupt"):  # what tools/evaluate.py --weights reads first
        check_front_end(_cfg(tiny_demo, tmp_path), str(weights), "video")
    line = _one_line_error(_launch(tiny_demo, tmp_path / "new", "MODEL.WEIGHTS", str(weights), "SOLVER.MAX_STEPS", "2"))
    assert f"{weights}: corrupt" in line


def test_a_checkpoint_written_before_checksums_still_loads_with_a_note(old_run, avplug_log):
    newest = old_run / "checkpoints" / "model_0000004.pth"
    (old_run / "checkpoints" / "model_0000004.pth.sha256").unlink()
    path, state = Checkpointer(old_run / "checkpoints").load_latest()
    assert path == newest and state["step"] == 4
    assert f"{newest} has no .sha256 checksum" in avplug_log()


# --- disk full on a checkpoint -----------------------------------------------------------------


def test_disk_full_on_a_checkpoint_stops_cleanly_and_resumes_once_space_is_freed(tiny_demo, small_tmpfs):
    disk = small_tmpfs(8 * 1024)
    out = disk / "run"
    run_pretraining(_cfg(tiny_demo, out, "SOLVER.MAX_STEPS", "2"))
    kept = _digests(out / "checkpoints")
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(disk).free - 256 * 1024))  # room for logs, not a checkpoint

    line = _one_line_error(_launch(tiny_demo, out, "SOLVER.MAX_STEPS", "4"))
    assert line == (f"launch.py: no space left on {out / 'checkpoints'} (checkpoint step 4 not written; the previous "
                    "checkpoint model_0000002.pth is intact): free space and rerun, it resumes from the last checkpoint")
    assert _digests(out / "checkpoints") == kept  # no temp file, no partial checkpoint or sidecar

    filler.unlink()
    summary = run_pretraining(_cfg(tiny_demo, out, "SOLVER.MAX_STEPS", "4"))
    assert summary["steps"] == 4 and Path(summary["last_checkpoint"]).name == "model_0000004.pth"


def test_a_failed_checkpoint_write_leaves_no_temp_file(tmp_path):
    ck = Checkpointer(tmp_path, model=torch.nn.Linear(2, 2))
    ck.save(1)
    with pytest.raises(Exception, match="pickle"):
        ck.save(2, extra={"bad": lambda: None})  # torch.save refuses it half-way
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth", "model_0000001.pth.sha256"]


def test_no_space_error_names_the_folder_and_the_step(tmp_path, monkeypatch):
    ck = Checkpointer(tmp_path, model=torch.nn.Linear(2, 2))
    ck.save(1)

    def full(obj, f):
        f.write(b"x" * 10)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(NoSpaceError, match=f"no space left on {tmp_path} \\(checkpoint step 2 not written; the previous "
                                           "checkpoint model_0000001.pth is intact\\)"):
        ck.save(2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000001.pth", "model_0000001.pth.sha256"]


# --- a torn metrics.jsonl ----------------------------------------------------------------------


def test_a_torn_metrics_line_and_a_killed_checkpoint_write_are_repaired_by_the_next_run(tiny_demo, old_run, avplug_log):
    metrics = old_run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 5, "lo')
    assert [r["step"] for r in read_metrics(metrics)] == [1, 2, 3, 4]
    assert f"{metrics}:5: skipped a torn last line" in avplug_log()
    killed_write = old_run / "checkpoints" / ".model_0000006.pth.tmp99999"  # a run killed while writing a checkpoint
    killed_write.write_bytes(b"half a checkpoint")
    run_pretraining(_cfg(tiny_demo, old_run, "SOLVER.MAX_STEPS", "6"))
    assert not killed_write.exists() and f"removed {killed_write}" in avplug_log()
    skipped: list[int] = []
    assert [r["step"] for r in read_metrics(metrics, skipped=skipped)] == [1, 2, 3, 4, 5, 6] and skipped == []
    assert '"lo{' not in metrics.read_text()


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.4}')
    MetricsWriter(tmp_path, 3, tensorboard=False).write({"step": 3, "loss": 2.3}, console=False)
    assert metrics.read_text() == '{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.4}\n{"step": 3, "loss": 2.3}\n'


# --- bad snippets in the store -----------------------------------------------------------------


@pytest.fixture
def broken_store(tiny_demo, tmp_path) -> tuple[list[str], SnippetStore]:
    """A copy of the tiny store: show_00_e02's audio missing, movie_00's video cut in half, NaN in show_00_e01's audio
    (the three training titles; movie_01 is held out)."""
    store_dir = tmp_path / "store"
    shutil.copytree(tiny_demo[tiny_demo.index("DATA.STORE_DIR") + 1], store_dir)
    store = SnippetStore(store_dir)
    os.remove(store.audio_path("show_00_e02"))
    video = Path(store.video_path("movie_00"))
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    audio = np.load(store.audio_path("show_00_e01"))
    audio[store.spec.audio_start(1) + 100] = np.nan
    np.save(store.audio_path("show_00_e01"), audio)
    opts = list(tiny_demo)
    opts[opts.index("DATA.STORE_DIR") + 1] = str(store_dir)
    return opts, SnippetStore(store_dir)


def _bad_files(store) -> tuple[str, ...]:
    return store.audio_path("show_00_e02"), store.video_path("movie_00"), store.audio_path("show_00_e01")


def test_a_bad_snippet_is_named_and_replaced_by_a_nearby_readable_one(broken_store, tmp_path):
    opts, store = broken_store
    dataset = PretrainDataset(_cfg(opts, tmp_path), store)
    keys = [("show_00_e01", 1, 0), ("show_00_e01", 2, 0), ("movie_00", 0, 0), ("movie_00", 6, 0)]
    readable = []
    for index in range(7):
        try:
            store.read_video("movie_00", [index])
            readable.append(index)
        except (MediaError, StoreError):  # StoreError naming the file since the store reader checks what it reads
            pass
    assert 0 in readable and 6 not in readable  # the cut video: its first snippets decode, its last does not
    samples = dataset.__getitems__(keys)
    nearest = max(i for i in readable if i != 0)  # 6 + 1 does not exist: 5, 4, ... is the order tried
    assert [(s["title_id"], s["snippet_index"]) for s in samples] == [("show_00_e01", 0), ("show_00_e01", 2),
                                                                       ("movie_00", 0), ("movie_00", nearest)]
    assert samples[0]["bad"] == ("show_00_e01", 1, "1 non-finite audio samples in " + store.audio_path("show_00_e01")
                                 + "; re-run tools/preprocess.py for this title")
    assert samples[3]["bad"][:2] == ("movie_00", 6) and store.video_path("movie_00") in samples[3]["bad"][2]
    assert "bad" not in samples[1] and "bad" not in samples[2]
    again = dataset.__getitems__(keys)  # the same substitutes and augmentation every time
    assert all(torch.equal(a["video"], b["video"]) and torch.equal(a["audio"], b["audio"]) for a, b in zip(samples, again))


def test_bad_snippets_are_skipped_and_counted_inside_loader_workers(broken_store, tmp_path, avplug_log):
    opts, store = broken_store
    cfg = _cfg(opts, tmp_path / "run", "SOLVER.MAX_STEPS", "2", "DATA.NUM_WORKERS", "1", "DATA.MAX_BAD_FRACTION", "1.0")
    summary = run_pretraining(cfg)
    assert summary["steps"] == 2
    counts = [r["bad_snippets"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert counts[-1] == avplug_log().count("bad snippet skipped") > 0
    assert any(path in avplug_log() for path in _bad_files(store))


def test_too_many_bad_snippets_stop_the_run_naming_the_files(broken_store, tmp_path):
    opts, store = broken_store
    line = _one_line_error(_launch(opts, tmp_path / "run", "SOLVER.MAX_STEPS", "2"))
    assert "more than DATA.MAX_BAD_FRACTION 0.01 of the" in line
    assert any(path in line for path in _bad_files(store))
    with pytest.raises(BadSnippetError, match="DATA.BAD_SNIPPETS stop"):
        run_pretraining(_cfg(opts, tmp_path / "stop", "SOLVER.MAX_STEPS", "2", "DATA.BAD_SNIPPETS", "stop"))


def test_a_nan_loss_names_the_batch_titles(tiny_demo, tmp_path, monkeypatch):
    from avplug.engine.hooks import TrainingDivergedError
    from avplug.losses.nce import CrossModalNCE

    monkeypatch.setattr(CrossModalNCE, "forward", lambda self, v, a: (v * a).sum() * float("nan"))
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at step 1 \(the last batch held titles .*(movie|show)"):
        run_pretraining(_cfg(tiny_demo, tmp_path / "run", "SOLVER.MAX_STEPS", "2"))


def test_bad_snippets_stop_every_rank_of_a_two_rank_run_at_the_same_step(broken_store, tmp_path):
    """The count is summed over the ranks at LOG_PERIOD steps: both ranks stop there, none waits in a collective."""
    from avplug.engine.launch import launch_local
    from avplug.errors import UserError

    opts, store = broken_store
    cfg = _cfg(opts, tmp_path / "run", "SOLVER.MAX_STEPS", "4", "SOLVER.LOG_PERIOD", "2", "DATA.BAD_SNIPPETS", "stop")
    with pytest.raises(UserError, match="^bad snippet \\(DATA.BAD_SNIPPETS stop\\): ") as raised:
        launch_local(cfg, 2)
    assert any(path in str(raised.value) for path in _bad_files(store))
    log = (tmp_path / "run" / "log.txt").read_text() + (tmp_path / "run" / "log.rank1.txt").read_text()
    assert "bad snippet skipped" in log
    assert not list((tmp_path / "run" / "checkpoints").glob("model_0000004.pth"))
