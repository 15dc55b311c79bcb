"""Cluster jobs: submitit jobs that resume from disk, and TorchX components."""
