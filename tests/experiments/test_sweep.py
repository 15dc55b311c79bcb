"""Sweeps: grids, presets fitted to a catalog, run names, the record, skip-finished / resume, end to end."""
import json
import shlex
import time
from pathlib import Path

import pytest

from avplug.config import CONFIG_DIR
from avplug.experiments import SweepError
from avplug.experiments.catalog_fit import CatalogStats, fit_to_catalog
from avplug.experiments.grids import combine_points, expand_grid, filter_points, parse_grid
from avplug.experiments.local_sweep import run_sweep
from avplug.experiments.planning import baseline_points, make_run, plan_runs
from avplug.experiments.presets import preset_points, sampler_point
from avplug.experiments.run_configs import check_run_dir, eval_cfg, eval_names, opts_of, run_cfg
from avplug.experiments.run_folders import read_run
from avplug.experiments.run_names import run_name, unique_names
from avplug.experiments.run_stages import discrepancy_stage, execute_run, is_finished
from avplug.experiments.sweep_record import read_sweep_record, refresh_sweep_record, sweep_status, update_sweep_record
from jobs.sweep_array import submit_sweep

DEMO = str(CONFIG_DIR / "demo.yaml")
EVAL_DEMO = str(CONFIG_DIR / "eval_demo.yaml")


# ---------------------------------------------------------------------------------------------
# Grids and presets (pure)
# ---------------------------------------------------------------------------------------------
def test_parse_grid_values():
    assert parse_grid("SAMPLER.K=1,4,8") == ("SAMPLER.K", [1, 4, 8])
    assert parse_grid("INPUT.VIDEO.COLOR_JITTER=0, 0.5,1.0") == ("INPUT.VIDEO.COLOR_JITTER", [0, 0.5, 1.0])
    assert parse_grid("LOSS.NORMALIZE=True,False") == ("LOSS.NORMALIZE", [True, False])
    assert parse_grid("SAMPLER.NAME=IIDSampler,HierarchicalSampler") == ("SAMPLER.NAME", ["IIDSampler", "HierarchicalSampler"])
    assert parse_grid("EVAL.DOWNSTREAM.SCALE_JITTER=(64,80),(70, 90)") == ("EVAL.DOWNSTREAM.SCALE_JITTER", [(64, 80), (70, 90)])


@pytest.mark.parametrize("text", ["SAMPLER.K", "k=1,2", "SAMPLER.K=", "SAMPLER.K=1,,2", "SAMPLER.K=4,4", "=1,2"])
def test_parse_grid_rejects(text):
    with pytest.raises(SweepError, match="grid"):
        parse_grid(text)


def test_expand_grid_is_the_cartesian_product_first_axis_slowest():
    points = expand_grid([("SAMPLER.K", [4, 8]), ("SAMPLER.WINDOW", [0, 16, 32])])
    assert points == [
        {"SAMPLER.K": 4, "SAMPLER.WINDOW": 0}, {"SAMPLER.K": 4, "SAMPLER.WINDOW": 16}, {"SAMPLER.K": 4, "SAMPLER.WINDOW": 32},
        {"SAMPLER.K": 8, "SAMPLER.WINDOW": 0}, {"SAMPLER.K": 8, "SAMPLER.WINDOW": 16}, {"SAMPLER.K": 8, "SAMPLER.WINDOW": 32},
    ]
    assert expand_grid([]) == [{}]
    with pytest.raises(SweepError, match="more than once"):
        expand_grid([("SAMPLER.K", [1]), ("SAMPLER.K", [4])])


def test_combine_and_filter_points():
    preset = preset_points("fig1-k")
    seeds = expand_grid([("SEED", [0, 1])])
    both = combine_points(preset, seeds)
    assert len(both) == 2 * len(preset) and both[1] == {**preset[0], "SEED": 1}
    with pytest.raises(SweepError, match="both"):
        combine_points(preset, [{"SAMPLER.K": 2}])
    kept = filter_points(preset, {"SAMPLER.K": [1, 4, 8.0]})
    assert [p["SAMPLER.K"] for p in kept] == [1, 4, 8]
    # a key the point does not set is compared by the base cfg's value
    assert filter_points([{"SAMPLER.K": 4}, {"SAMPLER.K": 8}], {"SEED": [0]}, {"SEED": 0}) == [{"SAMPLER.K": 4}, {"SAMPLER.K": 8}]
    assert filter_points([{"SAMPLER.K": 4}], {"SEED": [1]}, {"SEED": 0}) == []
    assert filter_points([{"LOSS.NORMALIZE": True}], {"LOSS.NORMALIZE": [1]}) == []  # bool is not a number here


def _kw(points):
    return [(p["SAMPLER.K"], p["SAMPLER.WINDOW"]) for p in points]


def test_presets_are_the_papers_grids():
    t1 = preset_points("table1")
    assert _kw(t1) == [(1, 0), (4, 0), (8, 0), (16, 0), (32, 0), (64, 0),
                       (16, 64), (16, 128), (16, 256), (16, 512), (16, 1024), (16, 2048),
                       (4, 4), (16, 16), (64, 64)]
    assert all(p["SAMPLER.NAME"] == ("IIDSampler" if p["SAMPLER.K"] == 1 else "HierarchicalSampler") for p in t1)
    assert _kw(preset_points("fig1-k")) == [(k, 0) for k in (1, 4, 8, 16, 32, 64)]
    assert _kw(preset_points("fig1-w")) == [(16, w) for w in (64, 128, 256, 512, 1024, 2048)] + [(16, 0)]
    t2 = preset_points("table2")
    rows = [(p["SAMPLER.K"], p["INPUT.VIDEO.COLOR_JITTER"], p.get("LOSS.NORMALIZE", False), p.get("LOSS.TEMPERATURE")) for p in t2]
    assert rows == [(1, 0.0, False, None), (16, 0.0, False, None), (1, 1.0, False, None), (16, 0.5, False, None),
                    (16, 1.0, False, None), (16, 0.0, True, 0.07), (16, 0.0, True, 0.3)]
    with pytest.raises(SweepError, match="unknown preset"):
        preset_points("table9")


def test_repro_cpu_preset_with_three_seeds_and_a_baseline_per_seed():
    points = preset_points("repro-cpu")
    assert _kw(points) == [(1, 0), (4, 0), (16, 0), (4, 4), (16, 16)]
    assert [p["SAMPLER.NAME"] for p in points] == ["IIDSampler"] + ["HierarchicalSampler"] * 4
    # the demo catalog (titles of 46 snippets) supports every point
    assert _kw(fit_to_catalog(points, CatalogStats.from_lengths([46] * 30))[0]) == _kw(points)
    seeded = combine_points(points, expand_grid([parse_grid("SEED=0,1,2")]))
    assert baseline_points(seeded) == [{"SEED": 0}, {"SEED": 1}, {"SEED": 2}]
    assert baseline_points(points) == [{}]
    runs = plan_runs(seeded, cfg_file=DEMO, evals=[EVAL_DEMO])
    assert [r["name"] for r in runs[:4]] == ["random_init_seed0", "random_init_seed1", "random_init_seed2", "k1_iid_w0_seed0"]
    assert len(runs) == 18 and [r["baseline"] for r in runs].count(True) == 3 and runs[1]["overrides"] == {"SEED": 1}
    assert runs[-1]["name"] == "k16_w16_seed2" and not any(r.get("status") == "invalid" for r in runs)
    assert run_cfg(runs[2], Path("/tmp/x")).SEED == 2  # each baseline draws its own random weights


def test_fit_to_catalog_drops_what_a_small_catalog_cannot_support():
    stats = CatalogStats.from_lengths([30, 37, 37, 40])  # the demo: about 37 snippets per title
    assert (stats.median_snippets, stats.max_snippets) == (37, 40)
    kept, notes = fit_to_catalog(preset_points("table1"), stats)
    assert _kw(kept) == [(1, 0), (4, 0), (8, 0), (16, 0), (32, 0), (4, 4), (16, 16)]
    assert len(notes) == 15 - 7
    assert any("k64_w0" in n and "median title length" in n for n in notes)
    assert any("k16_w64" in n and "longest title" in n for n in notes)
    # a catalog of paper-length titles keeps everything; no catalog: kept as given, with a note
    assert len(fit_to_catalog(preset_points("table1"), CatalogStats.from_lengths([1969, 2500, 3000]))[0]) == 15
    kept, notes = fit_to_catalog(preset_points("fig1-k"), None)
    assert len(kept) == 6 and "unfitted" in notes[0]
    with pytest.raises(SweepError):
        CatalogStats.from_lengths([])


def test_run_names_are_readable_and_unique():
    assert run_name({"SAMPLER.K": 4, "SAMPLER.WINDOW": 0}) == "k4_w0"
    assert run_name(sampler_point(1)) == "k1_iid_w0"
    assert run_name(sampler_point(16, 64)) == "k16_w64"
    assert run_name(preset_points("table2")[5]) == "k16_w0_sigma0_l2on_tau0.07"
    assert run_name({"SOLVER.BASE_LR": 0.01, "SAMPLER.NAME": "SceneAwareSampler"}) == "base-lr0.01_sceneaware"
    assert run_name({"DATA.GENRES": ["Drama", "Sci-Fi"]}) == "genresDramaxSci-Fi"
    assert run_name({"OUTPUT_TAG": "a b/c"}) == "output-taga-b-c"
    assert run_name({}) == "base"
    assert unique_names([{"SAMPLER.K": 4}, {"SAMPLER.K": 4}, {}], taken=["base"]) == ["k4", "k4-2", "base-2"]
    assert opts_of({"SAMPLER.K": 4, "SAMPLER.NAME": "IIDSampler", "LOSS.NORMALIZE": True}) == [
        "SAMPLER.K", "4", "SAMPLER.NAME", "IIDSampler", "LOSS.NORMALIZE", "True"]


# ---------------------------------------------------------------------------------------------
# Planning and the record
# ---------------------------------------------------------------------------------------------
def test_plan_runs_records_invalid_points_and_goes_on(tmp_path):
    points = [sampler_point(4), sampler_point(64), {"SAMPLER.K": 4, "SAMPLER.WINDOW": 2}]
    runs = plan_runs(points, cfg_file=DEMO, evals=[EVAL_DEMO])
    assert [r["name"] for r in runs] == ["random_init", "k4_w0", "k64_w0", "k4_w2"]
    assert runs[0]["baseline"] and runs[0]["overrides"] == {}
    assert "status" not in runs[1]
    # demo.yaml has SOLVER.BATCH_SIZE 32: k = 64 does not divide it; w < k cannot hold k snippets
    assert runs[2]["status"] == "invalid" and "SOLVER.BATCH_SIZE" in runs[2]["error"] and "multiple of SAMPLER.K = 64" in runs[2]["error"]
    assert runs[3]["status"] == "invalid" and "SAMPLER.WINDOW" in runs[3]["error"]
    # the per-rank batch is checked against the world size too
    assert plan_runs([sampler_point(8)], cfg_file=DEMO, baseline=False, world_size=8)[0]["status"] == "invalid"

    recorded = update_sweep_record(tmp_path, runs, ["a note"])
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["name"] for r in record["runs"]] == [r["name"] for r in recorded] == ["random_init", "k4_w0", "k64_w0", "k4_w2"]
    assert record["notes"] == ["a note"]
    status = {r["name"]: r["status"] for r in sweep_status(tmp_path)}
    assert status == {"random_init": "planned", "k4_w0": "planned", "k64_w0": "invalid", "k4_w2": "invalid"}
    # a later request adds runs, keeps the old ones, and replaces the evaluation recipes
    more = plan_runs([sampler_point(8)], cfg_file=DEMO, evals=[])
    recorded = update_sweep_record(tmp_path, more)
    assert [r["name"] for r in recorded] == ["random_init", "k8_w0"] and recorded[0]["evals"] == []
    assert len(read_sweep_record(tmp_path)["runs"]) == 5
    # validity follows the latest request (here: the world size that the batch must divide)
    assert update_sweep_record(tmp_path, plan_runs([sampler_point(8)], cfg_file=DEMO, evals=[], world_size=8))[1]["status"] == "invalid"
    assert "status" not in update_sweep_record(tmp_path, more)[1]
    # the same name with other settings is refused
    other = plan_runs([sampler_point(8)], cfg_file=DEMO, opts=["SEED", "3"], baseline=False)
    with pytest.raises(SweepError, match="k8_w0.*other settings"):
        update_sweep_record(tmp_path, other)


def test_eval_cfg_carries_the_runs_overrides(tmp_path):
    run = make_run("k8_w0", sampler_point(8), cfg_file=DEMO, opts=["SEED", "5"], evals=[EVAL_DEMO])
    cfg = eval_cfg(run, tmp_path, EVAL_DEMO, "eval_demo")
    assert cfg.EVAL.DOWNSTREAM.PROTOCOL == "linear" and cfg.SAMPLER.K == 8 and cfg.SEED == 5
    assert Path(cfg.OUTPUT_DIR) == (tmp_path / "k8_w0" / "eval" / "eval_demo").resolve()
    assert run_cfg(run, tmp_path).OUTPUT_DIR == str((tmp_path / "k8_w0").resolve())
    assert eval_names(["a/eval_demo.yaml", "b/eval_demo.yaml", "eval_x.yaml"]) == ["eval_demo", "eval_demo-2", "eval_x"]


def test_check_run_dir_names_the_keys_that_differ(tmp_path):
    from avplug.config import load_config, write_config

    out = tmp_path / "k4"
    (out / "checkpoints").mkdir(parents=True)
    write_config(load_config(DEMO, ["SAMPLER.K", "4"]), out)
    check_run_dir(load_config(DEMO, ["SAMPLER.K", "4"]), out)
    with pytest.raises(SweepError, match=r"SAMPLER.K: 4 -> 8"):
        check_run_dir(load_config(DEMO, ["SAMPLER.K", "8"]), out)


# ---------------------------------------------------------------------------------------------
# Skip finished, resume interrupted (stages injected)
# ---------------------------------------------------------------------------------------------
class FakeStages:
    """Stand-ins for pretraining, the discrepancy measures and evaluation that write what the real ones do."""

    def __init__(self, fail_once=(), interrupt_once=()):
        self.calls = {"pretrain": [], "discrepancy": [], "evaluate": []}
        self.fail_once, self.interrupt_once = set(fail_once), set(interrupt_once)

    def pretrain(self, cfg):
        out = Path(cfg.OUTPUT_DIR)
        name = out.name
        self.calls["pretrain"].append(name)
        ckpt_dir = out / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        from avplug.config import write_config

        write_config(cfg, out)
        steps_before = len(list(ckpt_dir.glob("model_*.pth")))
        (ckpt_dir / f"model_{steps_before + 1:07d}.pth").write_bytes(b"weights")
        if name in self.interrupt_once:
            self.interrupt_once.discard(name)
            raise KeyboardInterrupt
        if name in self.fail_once:
            self.fail_once.discard(name)
            raise RuntimeError("node died")
        last = ckpt_dir / f"model_{steps_before + 1:07d}.pth"
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": 2, "epoch": 1.0, "loss": 3.0, "lr": 0.1, "clips_per_s": 1.0, "world_size": 1}) + "\n")
        return {"final_loss": 3.0, "steps": 2, "epochs": 1.0, "output_dir": str(out), "last_checkpoint": str(last),
                "clips_per_s": 1.0, "world_size": 1}

    def discrepancy(self, cfg, weights, out, device):
        self.calls["discrepancy"].append(Path(out).name)
        return {"KL(S-||S+)": 0.1, "KL(S!=||S+)": 0.3, "KL(S-||S!=)": 0.05, "gap": 0.2, "num_titles": 2, "seconds": 0.0}

    def evaluate(self, cfg, weights, device):
        out = Path(cfg.OUTPUT_DIR)
        self.calls["evaluate"].append((out.parent.parent.name, out.name))
        summary = {"dataset": cfg.EVAL.DOWNSTREAM.DATASET, "protocol": cfg.EVAL.DOWNSTREAM.PROTOCOL, "weights": weights,
                   "splits": [1], "per_split": {"1": {"top1": 0.5, "top5": 1.0}}, "mean": {"top1": 0.5, "top5": 1.0},
                   "std": {"top1": 0.0, "top5": 0.0},
                   "test_clips": {"1": {"path": ["a.avi", "b.avi"], "group": ["g1", "g2"], "top1": [1, 0]}}}
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(summary))
        return summary

    def kwargs(self):
        return {"pretrain": self.pretrain, "discrepancy": self.discrepancy, "evaluate": self.evaluate, "device": "cpu"}


def _plan(tmp_path, evals):
    runs = plan_runs([sampler_point(4), sampler_point(8), sampler_point(64)], cfg_file=DEMO, evals=evals)
    return update_sweep_record(tmp_path, runs)


def test_run_sweep_skips_finished_runs_and_resumes_failed_and_interrupted_ones(tmp_path):
    runs = _plan(tmp_path, [EVAL_DEMO])
    fake = FakeStages(fail_once={"k4_w0"})
    final = run_sweep(tmp_path, runs, **fake.kwargs())
    assert final == {"random_init": "finished", "k4_w0": "failed", "k8_w0": "finished", "k64_w0": "invalid"}
    assert fake.calls["pretrain"] == ["k4_w0", "k8_w0"]  # the baseline is not pretrained; the invalid run not run
    state = json.loads((tmp_path / "k4_w0" / "run.json").read_text())
    assert state["status"] == "failed" and "node died" in state["error"]
    assert is_finished(tmp_path, runs[2]) and not is_finished(tmp_path, runs[1])

    # the rerun redoes only the failed run: its pretraining resumes, the others are not touched
    finished_k8 = (tmp_path / "k8_w0" / "run.json").read_text()
    fake2 = FakeStages()
    final = run_sweep(tmp_path, runs, **fake2.kwargs())
    assert final == {"random_init": "finished", "k4_w0": "finished", "k8_w0": "finished", "k64_w0": "invalid"}
    assert fake2.calls["pretrain"] == ["k4_w0"]
    assert fake2.calls["evaluate"] == [("k4_w0", "eval_demo")]
    assert (tmp_path / "k8_w0" / "run.json").read_text() == finished_k8
    result = json.loads((tmp_path / "k4_w0" / "results.json").read_text())
    assert result["checkpoint"].endswith("model_0000002.pth") and result["downstream"]["UCF101"]["mean"]["top1"] == 0.5
    assert result["discrepancy"]["gap"] == 0.2 and result["overrides"]["SAMPLER.K"] == 4
    # the per-clip table stays in the recipe's results.json, not in the run's summary
    assert "test_clips" not in result["downstream"]["UCF101"] and result["downstream"]["UCF101"]["per_split"]
    assert "test_clips" in json.loads((tmp_path / "k4_w0" / "eval" / "eval_demo" / "results.json").read_text())

    # a third run has nothing to do; a new evaluation recipe runs only the new evaluation
    fake3 = FakeStages()
    run_sweep(tmp_path, runs, **fake3.kwargs())
    assert fake3.calls == {"pretrain": [], "discrepancy": [], "evaluate": []}
    esc = str(CONFIG_DIR / "eval_demo_esc50.yaml")
    runs = _plan(tmp_path, [EVAL_DEMO, esc])
    fake4 = FakeStages()
    run_sweep(tmp_path, runs, **fake4.kwargs())
    assert fake4.calls["pretrain"] == [] and fake4.calls["discrepancy"] == []
    assert fake4.calls["evaluate"] == [("random_init", "eval_demo_esc50"), ("k4_w0", "eval_demo_esc50"), ("k8_w0", "eval_demo_esc50")]
    assert set(json.loads((tmp_path / "k8_w0" / "results.json").read_text())["downstream"]) == {"UCF101", "ESC50"}
    counts = refresh_sweep_record(tmp_path)
    assert counts == {"finished": 3, "invalid": 1}
    assert [r["status"] for r in read_sweep_record(tmp_path)["runs"]] == ["finished", "finished", "finished", "invalid"]


def test_an_interrupted_run_stays_resumable(tmp_path):
    runs = _plan(tmp_path, [])
    fake = FakeStages(interrupt_once={"k4_w0"})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(tmp_path, runs, **fake.kwargs())
    assert json.loads((tmp_path / "k4_w0" / "run.json").read_text())["status"] == "running"
    fake2 = FakeStages()
    assert run_sweep(tmp_path, runs, **fake2.kwargs())["k4_w0"] == "finished"
    assert fake2.calls["pretrain"] == ["k4_w0", "k8_w0"]  # random_init finished before the interruption


def test_discrepancy_is_reused_when_the_engine_measured_the_final_step(tmp_path):
    run = make_run("k4_w0", sampler_point(4), cfg_file=DEMO)
    out = tmp_path / "k4_w0"
    out.mkdir()
    record = {"step": 10, "KL(S-||S+)": 0.1, "KL(S!=||S+)": 0.4, "KL(S-||S!=)": 0.02, "gap": 0.3}
    (out / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 2.0}) + "\n" + json.dumps(record) + "\n")
    fake = FakeStages()
    cfg = run_cfg(run, tmp_path)
    got = discrepancy_stage(run, tmp_path, cfg, "ckpt.pth", 10, discrepancy=fake.discrepancy)
    assert got["source"] == "metrics.jsonl" and got["gap"] == 0.3 and fake.calls["discrepancy"] == []
    # another final step (stopped by MAX_STEPS mid-epoch): measured on the final model
    (out / "discrepancy.json").unlink()
    got = discrepancy_stage(run, tmp_path, cfg, "ckpt.pth", 12, discrepancy=fake.discrepancy)
    assert got["source"] == "final model" and got["step"] == 12 and fake.calls["discrepancy"] == ["k4_w0"]
    # and not again for the same weights
    discrepancy_stage(run, tmp_path, cfg, "ckpt.pth", 12, discrepancy=fake.discrepancy)
    assert fake.calls["discrepancy"] == ["k4_w0"]

    # a catalog without enough held-out snippets: recorded with the reason, the run goes on
    def too_few(cfg, weights, out, device):
        raise ValueError("no held-out title with at least 2 snippets")

    got = discrepancy_stage(run, tmp_path, cfg, "other.pth", 12, discrepancy=too_few)
    assert got["error"] == "ValueError: no held-out title with at least 2 snippets" and "gap" not in got

    notes = []
    assert read_run(out, notes=notes).discrepancy == {k: record[k] for k in ("KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap")}
    assert notes == [("k4_w0: the final model has no discrepancy measures (ValueError: no held-out title with at least "
                      "2 snippets); an earlier record of metrics.jsonl is used if there is one")]
    (out / "metrics.jsonl").unlink()
    assert read_run(out, notes=[]).discrepancy is None


def test_execute_run_refuses_an_invalid_run(tmp_path):
    run = plan_runs([sampler_point(64)], cfg_file=DEMO, baseline=False)[0]
    with pytest.raises(SweepError, match="invalid"):
        execute_run(run, tmp_path)


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
def test_tool_dry_run_and_status(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_tool", Path(__file__).parents[2] / "tools" / "sweep.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path / "sw"
    # no catalog here: the preset is used unfitted (a note says so); k = 64 is invalid for batch 32
    rc = tool.main(["--cfg", "demo.yaml", "--preset", "fig1-k", "--only", "SAMPLER.K=1,4,64", "--out", str(out),
                    "--eval", "eval_demo.yaml", "--dry-run", "DATA.STORE_DIR", str(tmp_path / "none")])
    text = capsys.readouterr().out
    assert rc == 0
    assert "unfitted" in text and "k64_w0" in text and "invalid" in text and "multiple of SAMPLER.K = 64" in text
    record = json.loads((out / "sweep.json").read_text())
    assert [r["name"] for r in record["runs"]] == ["random_init", "k1_iid_w0", "k4_w0", "k64_w0"]
    assert record["runs"][1]["evals"] == [EVAL_DEMO]
    assert tool.main(["--out", str(out), "--status"]) == 0
    assert "k4_w0" in capsys.readouterr().out
    assert tool.main(["--cfg", "demo.yaml", "--out", str(out)]) == 2  # neither --grid nor --preset
    assert tool.main(["--cfg", "demo.yaml", "--out", str(out), "--grid", "k=1"]) == 2
    assert tool.main(["--cfg", "demo.yaml", "--out", str(out), "--grid", "SAMPLER.K=1", "SEED", "3"]) == 2  # k1 exists with other opts
    assert "other settings" in capsys.readouterr().err


def test_tool_dry_run_of_the_cpu_reproduction(tmp_path, capsys):
    """The command of tools/sweep.py's docstring plans 15 points (5 x 3 seeds) and 3 random inits."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sweep_tool", Path(__file__).parents[2] / "tools" / "sweep.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    doc = tool.__doc__.replace("\\\n", " ")
    command = next(line for line in doc.splitlines() if "--preset repro-cpu" in line)
    argv = shlex.split(command)
    assert argv[:7] == ["tools/sweep.py", "--cfg", "demo.yaml", "--preset", "repro-cpu", "--grid", "SEED=0,1,2"]
    out = tmp_path / "repro"
    argv[argv.index("--out") + 1] = str(out)
    rc = tool.main(["--dry-run", *argv[1:], "DATA.STORE_DIR", str(tmp_path / "none")])  # no catalog: unfitted
    assert rc == 0
    assert "18 run(s)" in capsys.readouterr().out
    runs = json.loads((out / "sweep.json").read_text())["runs"]
    assert [r["name"] for r in runs if r["baseline"]] == ["random_init_seed0", "random_init_seed1", "random_init_seed2"]
    assert sorted({r["name"].rsplit("_seed", 1)[0] for r in runs if not r["baseline"]}) == [
        "k16_w0", "k16_w16", "k1_iid_w0", "k4_w0", "k4_w4"]
    assert all(len(r["evals"]) == 3 and r["opts"][-4:-2] == ["SOLVER.MAX_EPOCHS", "8"] and "status" not in r for r in runs)


def test_slurm_dry_run_prints_an_array_and_a_report_job(tmp_path, capsys):
    import argparse

    from avplug.config import load_config

    runs = _plan(tmp_path, [EVAL_DEMO])
    args = argparse.Namespace(dry_run=True, wait=False, array_parallelism=2, partition="gpu", account=None, qos=None,
                              time=60, constraint=None, mem_gb=None, gpus_per_node=0, cpus_per_task=2,
                              sbatch_extra=None, job_name="abl")
    assert submit_sweep(load_config(DEMO), tmp_path, runs, args) is None
    text = capsys.readouterr().out
    assert "array of 3 run(s) (random_init, k4_w0, k8_w0)" in text
    assert "#SBATCH --array=0-2%2" in text and "#SBATCH --partition=gpu" in text and "abl-sweep-report" in text


# ---------------------------------------------------------------------------------------------
# One small real sweep
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_small_real_sweep_end_to_end(tmp_path, tiny_demo, tiny_ucf101, capsys):
    """fig1-k fitted to a 7-snippet catalog and restricted to k in {1, 4}: 2 steps each, a linear probe.

    The corpus is the suite's ``tiny_demo`` (4 titles of 12 s); the sweep ingests and preprocesses it
    into its own catalog (half the titles held out, so the discrepancy measures have two titles).
    """
    import importlib.util

    import torch

    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("sweep_tool", Path(__file__).parents[2] / "tools" / "sweep.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    recipe = tmp_path / "eval_tiny.yaml"
    recipe.write_text(
        f"_BASE_: {EVAL_DEMO}\nEVAL:\n  DOWNSTREAM:\n    ROOT: {tiny_ucf101}\n    SPLITS: [1]\n    NUM_WORKERS: 0\n"
        "    LINEAR_MAX_ITER: 50\n"
    )
    out = tmp_path / "sweep"
    shared = dict(zip(tiny_demo[0::2], tiny_demo[1::2]))
    opts = ["DATA.SOURCE", shared["DATA.SOURCE"], "DATA.META", shared["DATA.META"],
            "DATA.CATALOG_DIR", str(tmp_path / "catalog"), "DATA.STORE_DIR", str(tmp_path / "store"),
            "DATA.HELDOUT_FRACTION", "0.5", "DATA.NUM_WORKERS", "0", "DATA.PREPROCESS_WORKERS", "1",
            "SOLVER.MAX_STEPS", "2", "SOLVER.LOG_PERIOD", "1", "SOLVER.BATCH_SIZE", "8", "SAMPLER.K", "4", "MODEL.HEAD.DIM", "16",
            "EVAL.DISCREPANCY_MAX_SNIPPETS", "64"]
    argv = ["--cfg", "demo.yaml", "--preset", "fig1-k", "--only", "SAMPLER.K=1,4", "--out", str(out),
            "--eval", str(recipe), "--prepare", "data", *opts]
    start = time.perf_counter()
    assert tool.main(argv) == 0
    text = capsys.readouterr().out
    assert "skipped k8_w0: k = 8 exceeds the median title length M_n = 7" in text

    status = {r["name"]: r["status"] for r in sweep_status(out)}
    assert status == {"random_init": "finished", "k1_iid_w0": "finished", "k4_w0": "finished"}
    for name, k in (("k1_iid_w0", 1), ("k4_w0", 4)):
        result = json.loads((out / name / "results.json").read_text())
        assert result["steps"] == 2 and Path(result["checkpoint"]).is_file()
        assert set(result["discrepancy"]) >= {"KL(S-||S+)", "KL(S!=||S+)", "KL(S-||S!=)", "gap"}
        ucf = result["downstream"]["UCF101"]
        assert ucf["protocol"] == "linear" and ucf["weights"] == result["checkpoint"]
        assert ucf["mean"]["top1"] == 1.0 and ucf["per_split"]["1"]["num_test"] == 4  # red vs blue clips
        assert f"K: {k}" in (out / name / "config.yaml").read_text()
    assert json.loads((out / "random_init" / "results.json").read_text())["checkpoint"] == "none"

    table1 = (out / "report" / "table1.csv").read_text().splitlines()
    assert table1[0].startswith("run,block,k,w,HMDB51,HMDB51_std,ESC50,ESC50_std,UCF101,UCF101_std")
    assert [line.split(",")[0] for line in table1[1:]] == ["random_init", "k1_iid_w0", "k4_w0"]
    assert all(line.split(",")[8] != "" for line in table1[1:])  # UCF101 filled, HMDB51/ESC50 empty
    assert (out / "report" / "fig1_k.png").stat().st_size > 0 and (out / "report" / "fig3_k.png").is_file()
    first = time.perf_counter() - start

    # the rerun finds everything finished and does no work
    mtime = (out / "k4_w0" / "results.json").stat().st_mtime_ns
    start = time.perf_counter()
    assert tool.main(argv) == 0
    assert (out / "k4_w0" / "results.json").stat().st_mtime_ns == mtime
    assert time.perf_counter() - start < first
