"""Validation: infer derived values, reject impossible ones with a message naming the key."""
from __future__ import annotations

import math

from fvcore.common.config import CfgNode

import registry
from avplug.config.errors import ConfigError


def _fail(key: str, value, why: str) -> None:
    raise ConfigError(f"{key} = {value!r}: {why}")


def _at_least(node: CfgNode, group: str, bounds: dict[str, tuple[int, str]]) -> None:
    """``node[key] >= low`` for each ``key: (low, what the bound means)`` of ``bounds``."""
    for key, (low, meaning) in bounds.items():
        if node[key] < low:
            _fail(f"{group}.{key}", node[key], f"must be >= {low}{meaning}")


def _check_data(d: CfgNode) -> None:
    """DATA: snippets, held-out split, store; fills the derived DATA.SNIPPET_SECONDS."""
    if d.SNIPPET_FRAMES < 1:
        _fail("DATA.SNIPPET_FRAMES", d.SNIPPET_FRAMES, "a snippet needs at least one frame")
    if d.FPS <= 0:
        _fail("DATA.FPS", d.FPS, "must be positive")
    d.SNIPPET_SECONDS = d.SNIPPET_FRAMES / d.FPS
    if not 0.0 <= d.HELDOUT_FRACTION < 1.0:
        _fail("DATA.HELDOUT_FRACTION", d.HELDOUT_FRACTION, "must be in [0, 1)")
    if d.GENRE_WEIGHTS and len(d.GENRE_WEIGHTS) != len(d.GENRES):
        _fail("DATA.GENRE_WEIGHTS", d.GENRE_WEIGHTS, f"needs one weight per DATA.GENRES entry ({len(d.GENRES)})")
    if d.STORE_SHORT_SIDE < 1:
        _fail("DATA.STORE_SHORT_SIDE", d.STORE_SHORT_SIDE, "must be positive")
    if d.AUDIO_RATE < 8000:
        _fail("DATA.AUDIO_RATE", d.AUDIO_RATE, "must be at least 8000 Hz")
    if d.BAD_SNIPPETS not in ("skip", "stop"):
        _fail("DATA.BAD_SNIPPETS", d.BAD_SNIPPETS, 'must be "skip" or "stop"')
    if not 0.0 <= d.MAX_BAD_FRACTION <= 1.0:
        _fail("DATA.MAX_BAD_FRACTION", d.MAX_BAD_FRACTION, "must be in [0, 1]")
    _at_least(d, "DATA", {"NUM_WORKERS": (0, " (loader processes per rank; 0: load in the training process)"),
                          "PREPROCESS_WORKERS": (0, " (0: all cores)"), "MAX_TITLES": (0, " (0: all titles)")})


def _check_input(v: CfgNode, a: CfgNode) -> None:
    """INPUT.VIDEO (``v``) and INPUT.AUDIO (``a``)."""
    if v.CROP < 1:
        _fail("INPUT.VIDEO.CROP", v.CROP, "must be positive")
    if v.CROP > v.SHORT_SIDE:
        _fail("INPUT.VIDEO.CROP", v.CROP, f"larger than the resized short side INPUT.VIDEO.SHORT_SIDE = {v.SHORT_SIDE}")
    if v.COLOR_JITTER < 0:
        _fail("INPUT.VIDEO.COLOR_JITTER", v.COLOR_JITTER, "sigma must be >= 0")
    if len(v.MEAN) != 3 or len(v.STD) != 3 or min(v.STD) <= 0:
        _fail("INPUT.VIDEO.MEAN/STD", (v.MEAN, v.STD), "need three RGB values each, with every std > 0")
    if a.N_FFT < 2 or a.HOP < 1 or a.MEL_BINS < 1:
        _fail("INPUT.AUDIO", (a.N_FFT, a.HOP, a.MEL_BINS), "N_FFT >= 2, HOP >= 1 and MEL_BINS >= 1 are required")
    if a.MEL_BINS > a.N_FFT // 2 + 1:
        _fail("INPUT.AUDIO.MEL_BINS", a.MEL_BINS, f"more mel bins than FFT bins ({a.N_FFT // 2 + 1})")
    if not 0.0 <= a.DROP_FRACTION < 1.0:
        _fail("INPUT.AUDIO.DROP_FRACTION", a.DROP_FRACTION, "must be in [0, 1)")


def _check_sampler(sampler: CfgNode) -> None:
    """SAMPLER: k and the window, and the built-in policies' exclusive settings."""
    k, w = sampler.K, sampler.WINDOW
    if k < 1:
        _fail("SAMPLER.K", k, "k is the number of snippets drawn per title and must be >= 1")
    if w < 0:
        _fail("SAMPLER.WINDOW", w, "the window must be >= k, or 0 for no window")
    if 0 < w < k:
        _fail("SAMPLER.WINDOW", w, f"k = {k} distinct snippets cannot fit a window of w = {w} (need w >= k, or 0 for none)")
    if sampler.SHORT_TITLES not in ("skip", "cap"):
        _fail("SAMPLER.SHORT_TITLES", sampler.SHORT_TITLES, 'must be "skip" or "cap"')
    if sampler.SCENE_MODE not in ("one_scene", "k_scenes"):
        _fail("SAMPLER.SCENE_MODE", sampler.SCENE_MODE, 'must be "one_scene" or "k_scenes"')
    # Built-in policies whose settings exclude each other (caught here, before a job is queued).
    if sampler.NAME == "IIDSampler" and k != 1:
        _fail("SAMPLER.K", k, "IIDSampler is the i.i.d. baseline and draws single snippets: set SAMPLER.K 1")
    if sampler.NAME == "IIDSampler" and sampler.GENRE_BALANCED:
        _fail("SAMPLER.GENRE_BALANCED", True, "applies to the group samplers, not to IIDSampler")
    if sampler.NAME == "SceneAwareSampler" and sampler.SCENE_MODE == "k_scenes" and w:
        _fail("SAMPLER.WINDOW", w, "SCENE_MODE k_scenes takes one snippet per scene and no window: set SAMPLER.WINDOW 0")


def _check_solver(s: CfgNode, sampler: CfgNode, world_size: int | None) -> None:
    """SOLVER: the batch against k and the world size, the schedule, precision, optimizer."""
    k = sampler.K
    if s.BATCH_SIZE < 1:
        _fail("SOLVER.BATCH_SIZE", s.BATCH_SIZE, "must be positive")
    if s.BATCH_SIZE % k:
        _fail("SOLVER.BATCH_SIZE", s.BATCH_SIZE, f"the global batch must be a multiple of SAMPLER.K = {k}")
    if world_size is not None:
        if s.BATCH_SIZE % world_size:
            _fail("SOLVER.BATCH_SIZE", s.BATCH_SIZE, f"not divisible by the world size {world_size}")
        if not sampler.SPREAD_GROUPS and (s.BATCH_SIZE // world_size) % k:
            _fail(
                "SOLVER.BATCH_SIZE",
                s.BATCH_SIZE,
                f"the per-rank batch {s.BATCH_SIZE // world_size} must hold whole groups of SAMPLER.K = {k} "
                "(or set SAMPLER.SPREAD_GROUPS True)",
            )
    if s.BASE_LR <= 0 or s.WARMUP_START_LR < 0:
        _fail("SOLVER.BASE_LR", s.BASE_LR, "learning rates must be positive")
    if s.MAX_EPOCHS < 1:
        _fail("SOLVER.MAX_EPOCHS", s.MAX_EPOCHS, "must be >= 1")
    if not 0 <= s.WARMUP_EPOCHS <= s.MAX_EPOCHS:
        _fail("SOLVER.WARMUP_EPOCHS", s.WARMUP_EPOCHS, f"must be within [0, SOLVER.MAX_EPOCHS = {s.MAX_EPOCHS}]")
    if s.AMP not in ("auto", "bf16", "fp16", "off"):
        _fail("SOLVER.AMP", s.AMP, 'must be "auto", "bf16", "fp16" or "off"')
    if s.OPTIMIZER not in ("Adam", "AdamW", "SGD"):
        _fail("SOLVER.OPTIMIZER", s.OPTIMIZER, 'must be "Adam", "AdamW" or "SGD"')
    _at_least(s, "SOLVER", {
        "LOG_PERIOD": (1, ""), "MAX_STEPS": (0, " (0: run SOLVER.MAX_EPOCHS)"),
        "CHECKPOINT_PERIOD": (0, " (0: a checkpoint at the end of each epoch only)"), "WEIGHT_DECAY": (0, ""),
        "CLIP_GRAD_NORM": (0, " (0: off)"),
    })


def _check_model(cfg: CfgNode) -> None:
    """MODEL widths and head, LOSS temperature."""
    if cfg.MODEL.VIDEO.WIDTH <= 0 or cfg.MODEL.AUDIO.WIDTH <= 0:
        _fail("MODEL.VIDEO.WIDTH", (cfg.MODEL.VIDEO.WIDTH, cfg.MODEL.AUDIO.WIDTH), "width multipliers must be positive")
    if cfg.MODEL.HEAD.DIM < 1:
        _fail("MODEL.HEAD.DIM", cfg.MODEL.HEAD.DIM, "must be positive")
    if cfg.LOSS.TEMPERATURE <= 0:
        _fail("LOSS.TEMPERATURE", cfg.LOSS.TEMPERATURE, "must be positive")


def _check_eval(ev: CfgNode) -> None:
    """EVAL: the held-out estimator and EVAL.DOWNSTREAM."""
    if ev.DISCREPANCY_ESTIMATOR not in ("histogram", "knn"):
        _fail("EVAL.DISCREPANCY_ESTIMATOR", ev.DISCREPANCY_ESTIMATOR, 'must be "histogram" or "knn"')
    if ev.BOOTSTRAP_REPLICATES < 2:
        _fail("EVAL.BOOTSTRAP_REPLICATES", ev.BOOTSTRAP_REPLICATES, "must be >= 2")
    e = ev.DOWNSTREAM
    if e.PROTOCOL not in ("finetune", "linear"):
        _fail("EVAL.DOWNSTREAM.PROTOCOL", e.PROTOCOL, 'must be "finetune" or "linear"')
    lo, hi = e.SCALE_JITTER
    if not 0 < lo <= hi:
        _fail("EVAL.DOWNSTREAM.SCALE_JITTER", e.SCALE_JITTER, "must be (low, high) with 0 < low <= high")
    if e.CROP > lo:
        _fail("EVAL.DOWNSTREAM.CROP", e.CROP, f"larger than the smallest jittered short side {lo}")
    if e.TEST_SHORT_SIDE and e.TEST_SHORT_SIDE < e.CROP:
        _fail("EVAL.DOWNSTREAM.TEST_SHORT_SIDE", e.TEST_SHORT_SIDE, f"smaller than EVAL.DOWNSTREAM.CROP = {e.CROP} (0: CROP)")
    for key in ("FRAMES", "NUM_CLIPS", "NUM_CROPS", "EPOCHS", "BATCH_SIZE", "LINEAR_MAX_ITER"):
        if e[key] < 1:
            _fail(f"EVAL.DOWNSTREAM.{key}", e[key], "must be >= 1")
    _at_least(e, "EVAL.DOWNSTREAM", {"NUM_WORKERS": (0, " (0: load in the evaluating process)")})
    if e.FPS <= 0 or e.CLIP_SECONDS <= 0:
        _fail("EVAL.DOWNSTREAM.FPS", (e.FPS, e.CLIP_SECONDS), "FPS and CLIP_SECONDS must be positive")
    if not 0 <= e.WARMUP_EPOCHS <= e.EPOCHS:
        _fail("EVAL.DOWNSTREAM.WARMUP_EPOCHS", e.WARMUP_EPOCHS, f"must be within [0, EVAL.DOWNSTREAM.EPOCHS = {e.EPOCHS}]")
    if not 0.0 <= e.MASK_FRACTION <= 1.0:
        _fail("EVAL.DOWNSTREAM.MASK_FRACTION", e.MASK_FRACTION, "must be in [0, 1]")
    if not 0.0 <= e.DROPOUT < 1.0:
        _fail("EVAL.DOWNSTREAM.DROPOUT", e.DROPOUT, "must be in [0, 1)")


def _check_launch(launch: CfgNode) -> None:
    """LAUNCH: nodes and backend."""
    if launch.NODES < 1:
        _fail("LAUNCH.NODES", launch.NODES, "must be >= 1")
    if launch.BACKEND not in ("auto", "nccl", "gloo"):
        _fail("LAUNCH.BACKEND", launch.BACKEND, 'must be "auto", "nccl" or "gloo"')


def _check_finite(node: CfgNode, prefix: str = "") -> None:
    """Every number of the cfg is finite (YAML reads ``.nan`` and ``.inf`` as floats)."""
    for key, value in node.items():
        if isinstance(value, CfgNode):
            _check_finite(value, f"{prefix}{key}.")
        elif isinstance(value, float) and not math.isfinite(value):
            _fail(f"{prefix}{key}", value, "must be a finite number")
        elif isinstance(value, (list, tuple)) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
            _fail(f"{prefix}{key}", value, "every entry must be a finite number")


# cfg keys that name a registered object, and the registry that must hold it.
_NAMED = (
    ("SAMPLER.NAME", registry.SAMPLERS), ("MODEL.VIDEO.NAME", registry.BACKBONES), ("MODEL.AUDIO.NAME", registry.BACKBONES),
    ("MODEL.HEAD.NAME", registry.HEADS), ("LOSS.NAME", registry.LOSSES), ("DATA.DECODER", registry.DECODERS),
    ("EVAL.DOWNSTREAM.DATASET", registry.DATASETS),
)


def check_registered_names(cfg: CfgNode) -> None:
    """Every name the cfg asks a registry for is registered (run after the plugins are loaded);
    the message lists the names that exist."""
    asked = [(key, _get(cfg, key), reg) for key, reg in _NAMED]
    asked += [("HOOKS", name, registry.HOOKS) for name in cfg.HOOKS]
    for key, name, reg in asked:
        if name not in reg:
            _fail(key, name, f"not in the {reg.name} registry, which holds {', '.join(reg.names()) or '(nothing)'} "
                  "(a plugin's names need its module: --plugin MODULE or PLUGINS)")


def _get(cfg: CfgNode, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def validate_cfg(cfg: CfgNode, world_size: int | None = None) -> CfgNode:
    """Check ``cfg`` in place (it must be unfrozen) and fill derived keys; returns ``cfg``.

    Groups are checked in this order (DATA, INPUT, SAMPLER, SOLVER, MODEL and LOSS, EVAL, LAUNCH);
    the first bad key raises.
    """
    if cfg.VERSION != 1:
        _fail("VERSION", cfg.VERSION, "this avplug reads config version 1")
    _check_finite(cfg)
    if cfg.SEED < 0:
        _fail("SEED", cfg.SEED, "must be a non-negative integer")
    _check_data(cfg.DATA)
    _check_input(cfg.INPUT.VIDEO, cfg.INPUT.AUDIO)
    _check_sampler(cfg.SAMPLER)
    _check_solver(cfg.SOLVER, cfg.SAMPLER, world_size)
    _check_model(cfg)
    _check_eval(cfg.EVAL)
    _check_launch(cfg.LAUNCH)
    return cfg
