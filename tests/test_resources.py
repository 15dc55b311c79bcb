"""available_cpus: the affinity mask, capped by Slurm's allocation."""
import os

from avplug.data.catalog import resolve_workers
from avplug.resources import available_cpus


def test_available_cpus_follows_affinity_and_the_slurm_allocation(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    mask = len(os.sched_getaffinity(0))
    assert available_cpus() == mask == resolve_workers(0)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert available_cpus() == 1 == resolve_workers(0)
    assert resolve_workers(3) == 3  # an explicit count wins
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(mask + 8))  # more than this machine: the mask caps it
    assert available_cpus() == mask
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "")
    assert available_cpus() == mask


def test_cpu_threads_leave_a_core_to_each_loader_worker(monkeypatch):
    from avplug.config import load_config
    from avplug.engine.launch import cpu_threads

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert cpu_threads(load_config("demo.yaml", ["DATA.NUM_WORKERS", "1"]), 1) == 7
    assert cpu_threads(load_config("demo.yaml", ["DATA.NUM_WORKERS", "2"]), 2) == 2
    assert cpu_threads(load_config("demo.yaml", ["DATA.NUM_WORKERS", "4"]), 2) == 1  # never below one
    assert cpu_threads(load_config("demo.yaml", ["DATA.NUM_WORKERS", "0"]), 1) == 8


def test_a_pool_worker_whose_parent_is_already_gone_exits_at_once():
    from avplug.resources import die_with_parent

    pid = os.fork()
    if pid == 0:  # the child: told that its parent is a process that is not its parent
        die_with_parent(os.getppid() + 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 1


def test_pool_workers_run_with_their_parent():
    from avplug.resources import process_pool

    with process_pool(2) as pool:
        assert sorted(pool.map(abs, [-1, -2, 3])) == [1, 2, 3]
