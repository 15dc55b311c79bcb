#!/usr/bin/env python
"""How long the sampling policies take to plan an epoch of the paper's size.

A synthetic catalog (``avplug.samplers.synthetic_titles``) of about 7M snippets (the paper's 0.7
years of content at 3.2 s per snippet), B = 512, and for each policy: the time to build the sampler
and the time for one rank of a world of 8 to iterate a whole epoch (``set_epoch`` + ``__iter__``:
every global batch planned, its slice turned into ``(title_id, snippet_index)`` tuples), as CPU
seconds of this process and per batch.  Batches are planned lazily, so in training this cost is
spread over the steps of the epoch.  Prints one JSON object (also written to ``--json``).

    python benchmarks/sampler_epoch.py --json benchmarks/results/sampler_epoch.json   # the recorded run
    python benchmarks/sampler_epoch.py --quick         # a tenth of an epoch, a few seconds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import avplug  # noqa: F401
from avplug.config import get_cfg, validate_cfg
from avplug.samplers import build_sampler, synthetic_titles

POLICIES = {
    "iid": {"SAMPLER.NAME": "IIDSampler", "SAMPLER.K": 1},
    "hierarchical_k16": {"SAMPLER.K": 16},
    "hierarchical_k16_w32": {"SAMPLER.K": 16, "SAMPLER.WINDOW": 32},
    "hierarchical_k16_spread": {"SAMPLER.K": 16, "SAMPLER.SPREAD_GROUPS": True},
    "hierarchical_k64_genre": {"SAMPLER.K": 64, "SAMPLER.GENRE_BALANCED": True},
    "scene_one_scene_k8": {"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.K": 8},
    "scene_k_scenes_k16": {"SAMPLER.NAME": "SceneAwareSampler", "SAMPLER.K": 16, "SAMPLER.SCENE_MODE": "k_scenes"},
}


def _cfg(opts: dict, batch: int, world: int):
    cfg = get_cfg()
    flat = ["SOLVER.BATCH_SIZE", str(batch)]
    for key, value in opts.items():
        flat += [key, str(value)]
    cfg.merge_from_list(flat)
    validate_cfg(cfg, world_size=world)
    cfg.freeze()
    return cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--titles", type=int, default=8500, help="synthetic titles (8500: about 7M snippets)")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="time a tenth of an epoch")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args()

    t0 = time.process_time()
    titles = synthetic_titles(args.titles, seed=0)
    catalog_s = time.process_time() - t0
    result = {
        "titles": len(titles),
        "snippets": sum(t.num_snippets for t in titles),
        "batch_size": args.batch,
        "world_size": args.world_size,
        "synthetic_catalog_cpu_s": round(catalog_s, 2),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "policies": {},
    }
    for name, opts in POLICIES.items():
        cfg = _cfg(opts, args.batch, args.world_size)
        t0 = time.process_time()
        sampler = build_sampler(cfg, titles, world_size=args.world_size, rank=args.world_size - 1)
        build_s = time.process_time() - t0
        sampler.set_epoch(1)
        limit = len(sampler) // 10 if args.quick else len(sampler)
        t0 = time.process_time()
        for i, _ in enumerate(sampler):
            if i + 1 == limit:
                break
        plan_s = time.process_time() - t0
        result["policies"][name] = {
            "build_cpu_s": round(build_s, 3),
            "batches": limit,
            "epoch_batches": len(sampler),
            "cpu_s": round(plan_s, 2),
            "ms_per_batch": round(1000 * plan_s / limit, 3),
            "epoch_cpu_s": round(plan_s / limit * len(sampler), 1),
        }
        print(name, result["policies"][name], flush=True)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
