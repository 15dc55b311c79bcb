"""Submitting avplug jobs to Slurm through submitit, and following them.

What every submission (``jobs.pretrain.submit_pretraining``, ``jobs.preprocess``,
``jobs.evaluate``, ``jobs.sweep``) shares:

* :func:`add_slurm_args` adds the Slurm flags to a parser; every flag defaults to ``None`` and
  then falls back to ``cfg.LAUNCH.SLURM.*`` (:func:`resolve_slurm_options`), so a recipe can carry
  its cluster settings and the command line overrides them.
* :func:`sbatch_parameters`, :func:`make_executor` and :func:`sbatch_script` (what ``--dry-run``
  prints) turn the request into a submitit executor.
* Inside a job, :func:`export_torch_distributed_env` turns the Slurm environment into the
  torchrun-style variables ``avplug.engine.distributed.init_distributed`` reads.
* What submitit runs is decorated with :func:`job_exits_on_user_error`: a user error ends the task
  with exit status 2 and no traceback on its log; its message and traceback go to
  ``OUTPUT_DIR/slurm/<job id>/<job id>_<task>_user_error.txt`` (and the run's log files), and
  :func:`follow` (``--wait``) raises it as one :class:`SlurmError` line.

Job states come from ``scontrol show job`` (:func:`job_state`), with ``sacct`` as a fallback for
jobs the controller has forgotten: submitit itself reads states through ``sacct`` only, which
fails on a cluster without an accounting daemon.

Files of a run (``OUTPUT_DIR`` must be on a file system every node sees)::

    OUTPUT_DIR/config.yaml              the resolved config (rewritten by the engine at start)
    OUTPUT_DIR/code/<fingerprint>/      the code snapshot the job imports
    OUTPUT_DIR/slurm/<job id>/          submitit's sbatch script, pickles and per-task logs
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from fvcore.common.config import CfgNode

from avplug.config import ConfigError
from avplug.engine.log import log_to_files
from avplug.errors import UserError, user_error_message
from jobs import submitit_adapter

_log = logging.getLogger("avplug.jobs")

# Final states of a Slurm job (a requeued job goes back to PENDING instead).
TERMINAL_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT"}
)
# A job that stays PREEMPTED this long was not requeued: treat it as over.
PREEMPTED_GRACE_S = 60.0


class SlurmError(UserError, RuntimeError):
    """A Slurm job that failed, or a Slurm command that could not run; the message says which."""


def user_error_file(paths) -> Path:
    """Where a task (submitit ``JobPaths`` ``paths``) records the user error it stopped on."""
    stderr = Path(paths.stderr)
    return stderr.with_name(stderr.name.replace("_log.err", "_user_error.txt"))


def job_exits_on_user_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate what submitit runs: a user error (:func:`avplug.errors.user_error_message`) ends the
    task with exit status 2 instead of submitit's traceback; the message (first line) and the
    traceback go to :func:`user_error_file` and to the log files set up.  A bug propagates."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            message = user_error_message(exc)
            if message is None:
                raise
            log_to_files(message, exc)
            import submitit

            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            user_error_file(submitit.JobEnvironment().paths).write_text(f"{message}\n\n{trace}")
            raise SystemExit(2) from None

    return run


# ---------------------------------------------------------------------------------------------
# Command-line flags and their resolution against cfg.LAUNCH.SLURM
# ---------------------------------------------------------------------------------------------
def _sbatch_item(text: str) -> tuple[str, str | bool]:
    """``KEY=VALUE`` -> (KEY, VALUE); a bare ``KEY`` is a flag without a value (``exclusive``)."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-")
    if not key or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", key):
        raise argparse.ArgumentTypeError(f"{text!r}: expected an sbatch option as KEY=VALUE (e.g. mail-type=END) or KEY")
    return key.replace("_", "-"), (value if sep else True)


def add_slurm_args(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the Slurm flags (an argument group) to ``parser``; every one falls back to the cfg.

    ``--partition --account --qos --time (minutes) --constraint --mem-gb --gpus-per-node
    --cpus-per-task --sbatch-extra KEY=VALUE (repeatable) --job-name --wait``.  Unset flags take
    ``cfg.LAUNCH.SLURM.<KEY>`` (see :func:`resolve_slurm_options`).
    """
    g = parser.add_argument_group("Slurm (with --slurm; unset flags take cfg.LAUNCH.SLURM.*)")
    g.add_argument("--partition", default=None, help="partition (LAUNCH.SLURM.PARTITION; empty: the cluster's default)")
    g.add_argument("--account", default=None, help="account to charge (LAUNCH.SLURM.ACCOUNT)")
    g.add_argument("--qos", default=None, help="quality of service (LAUNCH.SLURM.QOS)")
    g.add_argument("--time", type=int, default=None, metavar="MINUTES", help="time limit in minutes (LAUNCH.SLURM.TIME_MINUTES)")
    g.add_argument("--constraint", default=None, help="node features, e.g. volta32gb (LAUNCH.SLURM.CONSTRAINT)")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per node in GB, 0: the cluster's default (LAUNCH.SLURM.MEM_GB)")
    g.add_argument("--gpus-per-node", type=int, default=None, help="GPUs per node, 0: CPU-only, one task per node (LAUNCH.SLURM.GPUS_PER_NODE)")
    g.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per task (LAUNCH.SLURM.CPUS_PER_TASK)")
    g.add_argument(
        "--sbatch-extra", type=_sbatch_item, action="append", default=None, metavar="KEY=VALUE",
        help="any other sbatch option, repeatable, e.g. --sbatch-extra mail-type=END (added to LAUNCH.SLURM.EXTRA)",
    )
    g.add_argument("--job-name", default=None, help="job name (LAUNCH.SLURM.JOB_NAME)")
    g.add_argument("--wait", action="store_true", help="follow the job until it ends, streaming rank 0's log")
    return g


@dataclass(frozen=True)
class SlurmOptions:
    """The resolved Slurm request (command line over ``cfg.LAUNCH.SLURM``)."""

    partition: str
    account: str
    qos: str
    time_minutes: int
    constraint: str
    mem_gb: float
    gpus_per_node: int
    cpus_per_task: int
    extra: tuple[tuple[str, str | bool], ...]
    job_name: str
    max_requeues: int


def resolve_slurm_options(cfg: CfgNode, args: argparse.Namespace | None = None) -> SlurmOptions:
    """Merge the flags of :func:`add_slurm_args` (when given) over ``cfg.LAUNCH.SLURM``."""
    s = cfg.LAUNCH.SLURM

    def pick(flag: str, default: Any) -> Any:
        value = getattr(args, flag, None) if args is not None else None
        return default if value is None else value

    try:
        extra = dict(_sbatch_item(item) for item in s.EXTRA)
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"LAUNCH.SLURM.EXTRA: {exc}") from exc
    extra.update(getattr(args, "sbatch_extra", None) or [])
    opts = SlurmOptions(
        partition=pick("partition", s.PARTITION),
        account=pick("account", s.ACCOUNT),
        qos=pick("qos", s.QOS),
        time_minutes=int(pick("time", s.TIME_MINUTES)),
        constraint=pick("constraint", s.CONSTRAINT),
        mem_gb=float(pick("mem_gb", s.MEM_GB)),
        gpus_per_node=int(pick("gpus_per_node", s.GPUS_PER_NODE)),
        cpus_per_task=int(pick("cpus_per_task", s.CPUS_PER_TASK)),
        extra=tuple(sorted(extra.items())),
        job_name=pick("job_name", s.JOB_NAME),
        max_requeues=int(s.MAX_REQUEUES),
    )
    for name, value in (("--time", opts.time_minutes), ("--cpus-per-task", opts.cpus_per_task)):
        if value < 1:
            raise ConfigError(f"{name} = {value}: must be at least 1")
    if opts.gpus_per_node < 0 or opts.mem_gb < 0:
        raise ConfigError(f"--gpus-per-node = {opts.gpus_per_node}, --mem-gb = {opts.mem_gb}: must be >= 0")
    return opts


def tasks_per_node(cfg: CfgNode, opts: SlurmOptions) -> int:
    """Ranks per node: ``LAUNCH.PROCS_PER_NODE``, else one per GPU, else one (CPU-only nodes)."""
    return cfg.LAUNCH.PROCS_PER_NODE or max(1, opts.gpus_per_node)


def sbatch_parameters(
    opts: SlurmOptions, *, nodes: int, ntasks_per_node: int, gpus_per_node: int | None = None,
    setup: Sequence[str] = (), chdir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """submitit ``SlurmExecutor`` parameters (sbatch names) for this request.

    ``gpus_per_node`` overrides the request's GPUs (0 for a CPU-only job such as preprocessing).
    """
    gpus = opts.gpus_per_node if gpus_per_node is None else gpus_per_node
    params: dict[str, Any] = {
        "job_name": opts.job_name,
        "time": opts.time_minutes,
        "nodes": nodes,
        "ntasks_per_node": ntasks_per_node,
        "cpus_per_task": opts.cpus_per_task,
        "setup": list(setup),
    }
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(opts, key):
            params[key] = getattr(opts, key)
    if opts.mem_gb:
        params["mem"] = _mem(opts.mem_gb)
    additional: dict[str, Any] = {"chdir": str(Path(chdir or os.getcwd()).resolve())}
    additional.update(dict(opts.extra))
    params["additional_parameters"] = additional
    return params


def _mem(mem_gb: float) -> str:
    return f"{int(mem_gb)}GB" if mem_gb == int(mem_gb) else f"{int(mem_gb * 1024)}MB"


# ---------------------------------------------------------------------------------------------
# Executors and sbatch scripts
# ---------------------------------------------------------------------------------------------
def python_command() -> str:
    """The interpreter a job runs (this one: clusters share the environment with the login node)."""
    return shlex.quote(sys.executable)


def make_executor(folder: str | os.PathLike, params: dict[str, Any], *, max_requeues: int):
    """A submitit ``SlurmExecutor`` writing into ``folder`` (``%j`` becomes the job id)."""
    import submitit

    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=max_requeues, python=python_command())
    executor.update_parameters(**params)
    return executor


@contextlib.contextmanager
def sbatch_errors(what: str) -> Iterator[None]:
    """Turn sbatch refusing a submission into a :class:`SlurmError` that says what was submitted."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        yield
    except (FailedJobError, FailedSubmissionError) as exc:
        raise SlurmError(f"sbatch refused {what}: {str(exc).strip()} (print the sbatch script with --dry-run)") from exc


def sbatch_script(folder: str | os.PathLike, params: dict[str, Any], *, array_size: int | None = None) -> str:
    """The sbatch script submitit would submit for ``params`` (needs no Slurm on this machine)."""
    return submitit_adapter.sbatch_script(python_command(), folder, params, array_size=array_size)


# ---------------------------------------------------------------------------------------------
# Inside a job: torch.distributed from the Slurm environment
# ---------------------------------------------------------------------------------------------
def node_address(node: str) -> str:
    """An address for Slurm node ``node``: its name when it resolves, else its ``NodeAddr``.

    NodeName and the host name differ on some clusters (and on the local test cluster, whose
    nodes ``n1`` and ``n2`` both live on this host).
    """
    try:
        socket.getaddrinfo(node, None)
        return node
    except OSError:
        pass
    try:
        out = subprocess.run(["scontrol", "show", "node", "-o", node], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"node {node!r} does not resolve and scontrol could not be asked ({exc})") from exc
    match = re.search(r"\bNodeAddr=(\S+)", out.stdout)
    if out.returncode or not match:
        raise SlurmError(f"node {node!r} does not resolve and scontrol knows no NodeAddr for it: {out.stderr.strip()}")
    return match.group(1)


def master_port(job_id: str, restarts: int = 0) -> int:
    """A port in [20000, 60000) that every task of a job agrees on, new after each requeue."""
    return random.Random(f"{job_id}/{restarts}").randrange(20000, 60000)


def export_torch_distributed_env() -> dict[str, str]:
    """Set MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE from Slurm.

    Call it in every task of a submitit job, then ``init_distributed()``.  The master is the
    first node of the allocation; an already exported MASTER_PORT is kept.  Returns what it set.
    """
    import submitit

    env = submitit.JobEnvironment()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    values = {
        "MASTER_ADDR": node_address(env.hostnames[0]),
        "MASTER_PORT": os.environ.get("MASTER_PORT") or str(master_port(env.job_id, restarts)),
        "RANK": str(env.global_rank),
        "WORLD_SIZE": str(env.num_tasks),
        "LOCAL_RANK": str(env.local_rank),
        "LOCAL_WORLD_SIZE": str(env.num_tasks // max(1, env.num_nodes)),
    }
    os.environ.update(values)
    return values


def guard_signal_handlers() -> None:
    """Let only this process act on submitit's preemption signal, not its forked children.

    Slurm signals every process of a job step, DataLoader workers included; a forked worker
    inherits submitit's Python handler and would checkpoint and requeue the job a second time.
    """
    import signal

    sig = submitit_adapter.preemption_signal()
    handler = signal.getsignal(sig)
    if not callable(handler) or getattr(handler, "_avplug_guarded", False):
        return
    owner = os.getpid()

    def guarded(signum, frame):
        if os.getpid() == owner:
            handler(signum, frame)

    guarded._avplug_guarded = True
    signal.signal(sig, guarded)


def check_code_snapshot() -> None:
    """Warn when a job imports avplug from somewhere other than its code snapshot."""
    import avplug

    code = os.environ.get("AVPLUG_CODE_DIR")
    if code and not Path(avplug.__file__).resolve().is_relative_to(Path(code).resolve()):
        _log.warning(
            "running avplug from %s, not from the code snapshot %s (Python < 3.11 puts the working "
            "directory first on sys.path: submit from outside the checkout)", avplug.__file__, code,
        )


# ---------------------------------------------------------------------------------------------
# Job states and following a job
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobState:
    """What the controller says about a job: its state word and how often it was requeued."""

    state: str
    restarts: int = 0
    reason: str = ""


def _scontrol_states(job_id: str) -> list[JobState] | None:
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode:
        return None
    states = []
    for line in out.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobState" in fields:
            states.append(JobState(fields["JobState"], int(fields.get("Restarts", 0) or 0), fields.get("Reason", "")))
    return states or None


def _sacct_states(job_id: str) -> list[JobState] | None:
    try:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "State", "-j", str(job_id)], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    if out.returncode or not words:
        return None
    return [JobState(w) for w in words]


def job_states(job_id: str) -> list[JobState] | None:
    """Every task's state of a job or job array (``scontrol``, else ``sacct``); None if unknown."""
    return _scontrol_states(job_id) or _sacct_states(job_id)


def job_state(job_id: str) -> JobState | None:
    """The state of one job (the first entry for an array); None if no Slurm command knows it."""
    states = job_states(job_id)
    return states[0] if states else None


# srun's own line for a task that stopped on a user error (exit status 2): follow() reports that error
# itself, in one line, so the streamed log does not say it twice.
_USER_ERROR_EXIT = re.compile(r"^srun: error: \S+: tasks? [\d,-]+: Exited with exit code 2$")


class _Tail:
    """Print the whole lines appended to a file since the last call (less srun's user-error exit lines)."""

    def __init__(self, path: Path, stream: TextIO) -> None:
        self.path, self.stream, self.offset = path, stream, 0

    def pump(self, *, final: bool = False) -> None:
        """Write the new whole lines (``final``: and an unterminated last line)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = len(data) if final else data.rfind(b"\n") + 1
        if end:
            self.offset += end
            lines = data[:end].decode(errors="replace").splitlines(keepends=True)
            self.stream.write("".join(line for line in lines if not _USER_ERROR_EXIT.match(line.rstrip("\n"))))
            self.stream.flush()


def wait_for_jobs(
    job_ids: Sequence[str], *, poll_s: float = 2.0, timeout_s: float | None = None,
    on_poll: Callable[[], None] | None = None,
) -> dict[str, JobState]:
    """Block until every job in ``job_ids`` is in a final state; return the final states.

    A job the controller no longer knows (and ``sacct`` cannot tell) counts as ended, state
    ``UNKNOWN``.  Raises ``TimeoutError`` after ``timeout_s``.
    """
    start = time.monotonic()
    preempted_since: dict[str, float] = {}
    final: dict[str, JobState] = {}
    while True:
        if on_poll:
            on_poll()
        for jid in job_ids:
            if jid in final:
                continue
            states = job_states(jid)
            if states is None:
                final[jid] = JobState("UNKNOWN")
                continue
            words = {s.state for s in states}
            if "PREEMPTED" in words:
                since = preempted_since.setdefault(jid, time.monotonic())
                if words <= TERMINAL_STATES | {"PREEMPTED"} and time.monotonic() - since > PREEMPTED_GRACE_S:
                    final[jid] = next(s for s in states if s.state == "PREEMPTED")
                continue
            preempted_since.pop(jid, None)
            if words <= TERMINAL_STATES:
                bad = [s for s in states if s.state != "COMPLETED"]
                final[jid] = bad[0] if bad else states[0]
        if len(final) == len(job_ids):
            if on_poll:
                on_poll()
            return final
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"Slurm jobs {', '.join(job_ids)} still running after {timeout_s:.0f} s")
        time.sleep(poll_s)


def job_results(job) -> list[Any]:
    """Every task's return value of a finished submitit job; raises :class:`SlurmError` otherwise."""
    tasks = [job.task(i) for i in range(job.num_tasks)] if job.num_tasks > 1 else [job]
    results = []
    for task in tasks:
        user_error = user_error_file(task.paths)
        if user_error.is_file():
            message = (user_error.read_text(errors="replace").splitlines() or ["?"])[0]
            raise SlurmError(f"{message} (Slurm job {job.job_id} task {task.task_id}; traceback in {user_error})")
        if not task.paths.result_pickle.exists():
            err = task.paths.stderr.read_text(errors="replace")[-4000:] if task.paths.stderr.exists() else ""
            raise SlurmError(
                f"Slurm job {job.job_id} task {task.task_id} ended without a result (state "
                f"{_state_word(job.job_id)}); its log: {task.paths.stderr}\n{err}"
            )
        try:
            results.append(task.result())
        except Exception as exc:  # submitit re-raises the job's error with its traceback: keep its last line
            trace = [line for line in str(exc).split("-" * 22)[1 if "-" * 22 in str(exc) else 0].splitlines() if line.strip()]
            raise SlurmError(
                f"Slurm job {job.job_id} task {task.task_id} failed: {trace[-1].strip() if trace else exc} "
                f"(traceback in {task.paths.stderr})"
            ) from exc
    return results


def _state_word(job_id: str) -> str:
    state = job_state(job_id)
    return state.state if state else "unknown to scontrol and sacct"


def follow(job, *, poll_s: float = 2.0, timeout_s: float | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> list[Any]:
    """Stream rank 0's stdout/stderr while ``job`` runs (requeues included) and return its results.

    Returns the list of every task's return value; raises :class:`SlurmError` when the job ends
    in any other state than COMPLETED with a result from every task.
    """
    task0 = job.task(0) if job.num_tasks > 1 else job
    tails = [_Tail(task0.paths.stdout, stdout or sys.stdout), _Tail(task0.paths.stderr, stderr or sys.stderr)]
    final = wait_for_jobs([job.job_id], poll_s=poll_s, timeout_s=timeout_s, on_poll=lambda: [t.pump() for t in tails])
    for tail in tails:
        tail.pump(final=True)
    state = final[job.job_id]
    results = job_results(job)  # raises with the log when a task produced nothing
    if state.state not in ("COMPLETED", "UNKNOWN"):
        raise SlurmError(f"Slurm job {job.job_id} ended {state.state} ({state.reason}); logs in {task0.paths.folder}")
    return results
