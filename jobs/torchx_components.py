"""TorchX components for avplug: ``avplug.pretrain``, ``avplug.evaluate``, ``avplug.preprocess``.

Registered through the ``torchx.components`` entry point (``avplug = jobs.torchx_components``),
so after ``pip install -e .``::

    torchx builtins                                       # lists avplug.pretrain, ...
    torchx run -s local_cwd avplug.pretrain --help        # the docstring below is the help
    torchx run -s local_cwd avplug.pretrain --cfg demo.yaml --nproc_per_node 2 SOLVER.MAX_STEPS 20
    torchx run -s slurm --dryrun -cfg partition=gpu,time=60 avplug.pretrain --cfg movie_tv.yaml --nnodes 4 --nproc_per_node 8 --gpu 8

Each component is a typed function returning a ``torchx.specs.AppDef``; its arguments become the
command-line flags and trailing words are cfg overrides (``KEY VALUE``).  The processes run with
the interpreter that evaluated the component (``--python`` to change it), in the scheduler's
working directory: ``local_cwd`` and ``slurm`` use the current directory, or a copy of it with
``-cfg job_dir=DIR`` on Slurm (TorchX's own code snapshot).

Pretraining launches ``python -m torch.distributed.run`` (torchrun) on every node, which starts
``--nproc_per_node`` ranks of ``python -m jobs.pretrain_main``; multi-node runs rendezvous (c10d)
on the first node, which must be reachable by its Slurm node name.  Preprocessing and evaluation
are one replica per shard / split, with the last replica to finish writing the index / results
(TorchX has no job dependencies).  For preemption-safe multi-node pretraining that requeues
itself, prefer ``tools/launch.py --slurm`` (submitit); see docs/cluster.md.
"""
# ruff: noqa: UP006, UP035, UP045
# typing-module annotations and no "from __future__ import annotations": TorchX 0.7 reads the
# flags from these annotations and understands Optional[List[str]], not list[str] | None.
import shlex
import sys
from typing import Dict, List, Optional

from torchx import specs

_PYTHON = sys.executable


def _cfg_args(cfg: str, plugins: Optional[List[str]]) -> list[str]:
    args = ["--cfg", cfg]
    for plugin in plugins or []:
        args += ["--plugin", plugin]
    return args


def _env(env: Optional[Dict[str, str]], threads: int) -> Dict[str, str]:
    out = {"PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(max(1, threads))}
    out.update(env or {})
    return out


def pretrain(
    *opts: str,
    cfg: str,
    nnodes: int = 1,
    nproc_per_node: int = 1,
    cpu: int = 4,
    gpu: int = 0,
    memMB: int = 16384,
    h: Optional[str] = None,
    plugins: Optional[List[str]] = None,
    no_resume: bool = False,
    rdzv_port: int = 29500,
    max_retries: int = 0,
    env: Optional[Dict[str, str]] = None,
    python: str = _PYTHON,
    name: str = "avplug-pretrain",
) -> specs.AppDef:
    """avplug pretraining: torchrun on each of ``nnodes`` nodes, ``nproc_per_node`` ranks each.

    Every rank runs ``python -m jobs.pretrain_main``: it reads the torchrun environment, builds the
    cfg for the world size and resumes from OUTPUT_DIR's last checkpoint, so a retried app
    (``max_retries``) continues where it stopped.

    Args:
        opts: cfg overrides as KEY VALUE pairs (e.g. SOLVER.MAX_STEPS 100 OUTPUT_DIR out/run1)
        cfg: YAML recipe: a path or a shipped name (movie_tv.yaml, demo.yaml)
        nnodes: number of nodes (replicas)
        nproc_per_node: ranks per node (one per GPU; 1 or more on CPU)
        cpu: CPUs per node
        gpu: GPUs per node
        memMB: memory per node in MB
        h: a registered TorchX named resource (overrides cpu, gpu and memMB)
        plugins: plugin modules to import first (comma separated)
        no_resume: start over; the previous run moves to OUTPUT_DIR/previous_runs/ (a retried app does this again: leave it off with max_retries)
        rdzv_port: c10d rendezvous port on the first node (multi-node only)
        max_retries: times the scheduler may restart the app
        env: extra environment variables (KEY=VALUE,KEY2=VALUE2)
        python: Python interpreter on the nodes (default: the one running torchx)
        name: app name
    """
    if nnodes < 1 or nproc_per_node < 1:
        raise ValueError(f"nnodes = {nnodes}, nproc_per_node = {nproc_per_node}: both must be >= 1")
    if nnodes == 1:
        rdzv = ["--standalone"]  # a free local port, no rendezvous host needed
    else:
        # $${...} survives TorchX's macro substitution as ${...}, expanded by bash on the node.
        rdzv = ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"$${{{specs.macros.rank0_env}:=localhost}}:{rdzv_port}",
                "--rdzv_id", specs.macros.app_id]
    torchrun = [python, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node", str(nproc_per_node), *rdzv]
    # The cfg overrides come last: the entry points read every word after them as KEY VALUE.
    main = ["-m", "jobs.pretrain_main", *_cfg_args(cfg, plugins)] + (["--no-resume"] if no_resume else []) + list(opts)
    command = " ".join(a if a.startswith("$${") and ":=" in a else shlex.quote(a) for a in torchrun + main)
    return specs.AppDef(
        name=name,
        roles=[
            specs.Role(
                name="pretrain",
                image=".",
                entrypoint="bash",
                args=["-c", command],
                num_replicas=nnodes,
                resource=specs.resource(cpu=cpu, gpu=gpu, memMB=memMB, h=h),
                env=_env(env, cpu // nproc_per_node),
                port_map={"c10d": rdzv_port},
                max_retries=max_retries,
            )
        ],
    )


def evaluate(
    *opts: str,
    cfg: str,
    weights: str,
    splits: Optional[List[int]] = None,
    cpu: int = 8,
    gpu: int = 0,
    memMB: int = 16384,
    h: Optional[str] = None,
    plugins: Optional[List[str]] = None,
    max_retries: int = 0,
    env: Optional[Dict[str, str]] = None,
    python: str = _PYTHON,
    name: str = "avplug-evaluate",
) -> specs.AppDef:
    """avplug downstream evaluation (UCF101, HMDB51, ESC-50): one replica per official split.

    Each replica fine-tunes (or linearly probes) its split with ``python -m jobs.evaluate_main``;
    the last replica to finish writes OUTPUT_DIR/results.json and results.md.  Fine-tuning
    checkpoints every epoch, so a retried replica resumes.

    Args:
        opts: cfg overrides as KEY VALUE pairs (e.g. EVAL.DOWNSTREAM.ROOT /data/UCF101)
        cfg: YAML recipe: a path or a shipped name
        weights: pretraining checkpoint or exported encoders file; none for a random init
        splits: official splits or folds (comma separated; default: the cfg's, else all)
        cpu: CPUs per replica
        gpu: GPUs per replica
        memMB: memory per replica in MB
        h: a registered TorchX named resource (overrides cpu, gpu and memMB)
        plugins: plugin modules to import first (comma separated)
        max_retries: times the scheduler may restart the app
        env: extra environment variables (KEY=VALUE,KEY2=VALUE2)
        python: Python interpreter on the nodes (default: the one running torchx)
        name: app name
    """
    if not splits:
        from avplug.config import load_config
        from avplug.evaluation.downstream_protocols import splits_of

        splits = splits_of(load_config(cfg, list(opts), plugins=plugins or ()))
    args = ["-m", "jobs.evaluate_main", *_cfg_args(cfg, plugins), "--weights", weights,
            "--splits", *[str(s) for s in splits], "--split-index", specs.macros.replica_id, *opts]
    return specs.AppDef(
        name=name,
        roles=[
            specs.Role(
                name="evaluate",
                image=".",
                entrypoint=python,
                args=args,
                num_replicas=len(splits),
                resource=specs.resource(cpu=cpu, gpu=gpu, memMB=memMB, h=h),
                env=_env(env, cpu),
                max_retries=max_retries,
            )
        ],
    )


def preprocess(
    *opts: str,
    cfg: str,
    num_shards: int = 1,
    catalog: Optional[str] = None,
    out: Optional[str] = None,
    workers: int = 0,
    cpu: int = 8,
    memMB: int = 8192,
    h: Optional[str] = None,
    plugins: Optional[List[str]] = None,
    max_retries: int = 0,
    env: Optional[Dict[str, str]] = None,
    python: str = _PYTHON,
    name: str = "avplug-preprocess",
) -> specs.AppDef:
    """avplug preprocessing: cut the catalog into the snippet store with one replica per shard.

    Replica I runs ``python -m jobs.preprocess_main --shard I --num-shards K``: a fixed,
    duration-balanced share of the titles, skipping titles already written (a retried replica
    carries on); the last replica to finish writes STORE/index.json.  Same store as one local run.

    Args:
        opts: cfg overrides as KEY VALUE pairs (e.g. DATA.STORE_SHORT_SIDE 190)
        cfg: YAML recipe: a path or a shipped name
        num_shards: number of shards K (replicas)
        catalog: catalog folder from tools/ingest.py (default: DATA.CATALOG_DIR)
        out: store folder (default: DATA.STORE_DIR)
        workers: processes per replica, 0 = all its cores (default: DATA.PREPROCESS_WORKERS if set, else 0)
        cpu: CPUs per replica
        memMB: memory per replica in MB
        h: a registered TorchX named resource (overrides cpu and memMB)
        plugins: plugin modules to import first (comma separated)
        max_retries: times the scheduler may restart the app
        env: extra environment variables (KEY=VALUE,KEY2=VALUE2)
        python: Python interpreter on the nodes (default: the one running torchx)
        name: app name
    """
    if num_shards < 1:
        raise ValueError(f"num_shards = {num_shards}: must be >= 1")
    args = ["-m", "jobs.preprocess_main", *_cfg_args(cfg, plugins),
            "--shard", specs.macros.replica_id, "--num-shards", str(num_shards)]
    if catalog:
        args += ["--catalog", catalog]
    if out:
        args += ["--out", out]
    if workers:
        args += ["--workers", str(workers)]
    return specs.AppDef(
        name=name,
        roles=[
            specs.Role(
                name="preprocess",
                image=".",
                entrypoint=python,
                args=args + list(opts),
                num_replicas=num_shards,
                resource=specs.resource(cpu=cpu, gpu=0, memMB=memMB, h=h),
                env=_env(env, 1),
                max_retries=max_retries,
            )
        ],
    )
