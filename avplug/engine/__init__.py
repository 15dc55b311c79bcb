"""Training engine: the pretraining loop, checkpoints, distributed set-up and local launch."""
