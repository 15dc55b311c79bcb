#!/usr/bin/env python
"""Launch avplug pretraining: locally (``--nodes 1``) or on Slurm through submitit (``--slurm``).

    tools/launch.py --cfg movie_tv.yaml --nodes 1 [KEY VALUE ...]
    tools/launch.py --cfg movie_tv.yaml --nodes 4 --slurm --partition gpu [KEY VALUE ...]
    tools/launch.py --cfg demo.yaml --dry-run
    tools/launch.py --list-plugins [--plugin my.module]
"""
from __future__ import annotations

import json
import sys

import avplug  # noqa: F401  (pytorchvideo shim before anything else)
import registry
from avplug.builtin_plugins import setup_plugins
from avplug.config.cli import cfg_from_args, default_argument_parser, exits_on_user_error
from avplug.engine.launch import default_num_procs, launch_local
from avplug.engine.log import setup_logging
from avplug.engine.run_dir import resume_from_flags
from avplug.models.export import check_weights_file
from jobs import pretrain, slurm


def build_parser():
    parser = default_argument_parser(__doc__.splitlines()[1], cfg_required=False)
    parser.add_argument("--nodes", type=int, default=None, help="number of nodes (LAUNCH.NODES); more than 1 needs --slurm")
    parser.add_argument("--procs-per-node", type=int, default=None, help="ranks per node (default: one per GPU, or 1 on CPU)")
    parser.add_argument("--slurm", action="store_true", help="submit through submitit instead of running here")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and what would be launched, then exit")
    parser.add_argument("--list-plugins", action="store_true", help="print every registry and its registered names, then exit")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true",
                        help="continue OUTPUT_DIR's checkpoint even if its config differs (each changed key is logged)")
    resume.add_argument("--no-resume", action="store_true",
                        help="start over; the previous run's files in OUTPUT_DIR move to OUTPUT_DIR/previous_runs/<date-time>/")
    slurm.add_slurm_args(parser)
    return parser


def list_plugins(plugins) -> str:
    setup_plugins(plugins)
    lines = []
    for reg in registry.ALL_REGISTRIES:
        lines.append(f"{reg.name}: {', '.join(reg.names()) or '(none)'}")
    loaded = registry.loaded_plugins()
    lines.append("plugins loaded: " + (", ".join(f"{k} ({v})" for k, v in loaded.items()) or "(none beyond built-ins)"))
    return "\n".join(lines)


@exits_on_user_error("launch.py")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_plugins:
        print(list_plugins(args.plugin))
        return 0
    if not args.cfg:
        print("launch.py: --cfg is required (a path or a shipped recipe such as movie_tv.yaml)", file=sys.stderr)
        return 2
    extra = []
    if args.nodes is not None:
        extra += ["LAUNCH.NODES", str(args.nodes)]
    if args.procs_per_node is not None:
        extra += ["LAUNCH.PROCS_PER_NODE", str(args.procs_per_node)]
    cfg = cfg_from_args(args, extra_opts=extra)
    if args.slurm:
        procs = slurm.tasks_per_node(cfg, slurm.resolve_slurm_options(cfg, args))
    else:
        procs = cfg.LAUNCH.PROCS_PER_NODE or default_num_procs()
    world = cfg.LAUNCH.NODES * procs
    cfg = cfg_from_args(args, extra_opts=extra, world_size=world)
    if cfg.MODEL.WEIGHTS:
        check_weights_file(cfg.MODEL.WEIGHTS, "MODEL.WEIGHTS")
    if args.slurm:
        pretrain.submit_pretraining(cfg, args)
        return 0
    if cfg.LAUNCH.NODES > 1:
        print("launch.py: LAUNCH.NODES > 1 needs --slurm (or a TorchX scheduler, see docs/cluster.md)", file=sys.stderr)
        return 2
    if args.dry_run:
        print(cfg.dump())
        print(f"# would run pretraining here: {procs} process(es) on 1 node, world size {world}, output in {cfg.OUTPUT_DIR}")
        return 0
    setup_logging(cfg.OUTPUT_DIR)
    summary = launch_local(cfg, procs, resume=resume_from_flags(args))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
