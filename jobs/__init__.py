"""Cluster jobs: submitit jobs that resume from disk after a requeue, and TorchX components.

- ``jobs.slurm``: Slurm flags over ``cfg.LAUNCH.SLURM``, sbatch scripts, job states via scontrol,
  following a job, and the Slurm -> torch.distributed environment.
- ``jobs.submitit_adapter``: the only calls into submitit's private API.
- ``jobs.snapshot``: the frozen copy of the code a job imports.
- ``jobs.pretrain``, ``jobs.preprocess``, ``jobs.evaluate``: the checkpointable submitit jobs and
  their submission (pretraining, ``submit_pretraining``; a preprocessing array + merge; a
  per-split evaluation array + aggregate).
- ``jobs.pretrain_main``, ``jobs.preprocess_main``, ``jobs.evaluate_main``: plain process entry
  points (torchrun / TorchX replicas); ``jobs.torchx_components``: ``avplug.pretrain`` etc.
- ``jobs.diagnostics``: a torch.distributed all_reduce check across Slurm nodes.

Usage and copy-paste commands: docs/cluster.md.
"""
