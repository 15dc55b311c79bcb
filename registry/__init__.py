"""Named registries for everything a user can swap: one per concept.

Each registry's docstring states the call contract of the objects registered in it.  Objects are
registered with the decorator form (``@BACKBONES.register()``, or ``@BACKBONES.register(name="X")``
for a builder function named otherwise) and built by name from a cfg node with :func:`registry.build`.
This package imports nothing of avplug: third-party plugins are found and loaded by
:mod:`registry.discovery`, avplug's built-ins imported by :mod:`avplug.builtin_plugins`.
"""
from registry.core import Registry, build
from registry.discovery import (
    ENTRY_POINT_GROUP,
    apply_config_hooks,
    load_plugins,
    loaded_plugins,
    register_config_hook,
)

BACKBONES = Registry(
    "BACKBONES",
    """Encoders f (video) and g (audio).

    Called as ``obj(node)`` where ``node`` is the modality's cfg node (``cfg.MODEL.VIDEO`` or
    ``cfg.MODEL.AUDIO``: ``NAME``, ``WIDTH`` and any keys the plugin adds).  Returns an
    ``nn.Module`` with an int attribute ``out_channels`` whose ``forward(x)`` maps a batch
    (video ``[B, 3, T, H, W]`` float, audio ``[B, 1, n_mels, frames]`` float) to its last feature
    map ``[B, out_channels, ...]`` and whose ``pooled(x)`` returns the globally averaged features
    ``[B, out_channels]`` for downstream use without projection heads.
    """,
)

HEADS = Registry(
    "HEADS",
    """Projection heads h_f and h_g.

    Called as ``obj(node, in_channels)`` with ``node = cfg.MODEL.HEAD`` (``NAME``, ``DIM``, ...).
    Returns an ``nn.Module`` mapping a backbone feature map ``[B, in_channels, ...]`` to an
    embedding ``[B, node.DIM]``.
    """,
)

LOSSES = Registry(
    "LOSSES",
    """Cross-modal training objectives.

    Called as ``obj(node)`` with ``node = cfg.LOSS``.  Returns an ``nn.Module`` whose
    ``forward(z_video [B, d], z_audio [B, d])`` returns a scalar tensor.  Row ``i`` of both inputs
    is a positive pair; when torch.distributed is initialized, the loss must treat the global batch
    (all ranks) as the set of negatives and be equal to the single-process loss on the concatenated
    batch.
    """,
)

SAMPLERS = Registry(
    "SAMPLERS",
    """Minibatch sampling policies over a catalog of long-form titles.

    Called as ``obj(cfg, titles, *, world_size, rank, seed)`` where ``titles`` is a sequence of
    :class:`avplug.data.index.TitleRecord` (title_id, num_snippets M_n, show_id, genre,
    scene_starts).  Returns an object that is an iterable of local minibatches, each a list of
    ``(title_id, snippet_index)`` pairs of length ``cfg.SOLVER.BATCH_SIZE // world_size``, with

    - ``set_epoch(epoch)``: starts the epoch at its first batch; batches depend only on (seed,
      epoch, rank, world);
    - ``__iter__()``: yields the remaining local batches of the current epoch;
    - ``__len__()``: batches per epoch, ``max(1, floor(sum(M_n) / B))`` for the built-ins (an
      epoch covers about as many snippets as the titles hold, whatever k);
    - ``state_dict()`` / ``load_state_dict(d)``: the position inside the epoch, at least
      ``{"epoch": e, "batches_done": n}``, so that a resumed job yields exactly the batches the
      uninterrupted job would have yielded (``set_epoch(e)`` then ``load_state_dict(d)``).

    Ranks are disjoint within a step; concatenating every rank's batch of a step in rank order
    gives the global batch that the loss sees.  Built-ins and how to write one:
    :mod:`avplug.samplers`, ``examples/sampler_plugin``.
    """,
)

DATASETS = Registry(
    "DATASETS",
    """Downstream datasets read from their official on-disk layouts.

    Called as ``obj(root, split, subset)``: ``root`` the dataset folder as users download it,
    ``split`` the official split or fold number (1-based), ``subset`` "train" or "test".  Returns an
    object with ``.samples`` (list of ``(path, label_index)``), ``.classes`` (list of class names in
    label order) and ``.modality`` ("video" or "audio"); optionally ``.group_of(path) -> str``, the
    recording a clip shares with others (confidence intervals resample these groups; without it
    every clip is its own group).
    """,
)

DECODERS = Registry(
    "DECODERS",
    """Media decoders used to read the snippet store and downstream clips.

    Called as ``obj()`` with no arguments.  Returns an object with
    ``read_video(path, start_s, num_frames, fps) -> uint8 tensor [num_frames, H, W, 3]`` (frames at
    ``start_s + i / fps``) and ``read_audio(path, start_s, duration_s, sample_rate) -> float32 tensor
    [num_samples]`` (mono).  Optionally ``read_video_clips(path, starts_s, num_frames, fps) -> uint8
    tensor [N, num_frames, H, W, 3]`` reads several clips of one file with one open (the snippet store
    uses it for the k snippets of a title; without it, it calls ``read_video`` per clip).
    Raises ``avplug.data.errors.MediaError`` naming the file on failure.
    A decoder whose backing library is missing raises ``ImportError`` when called.
    """,
)

HOOKS = Registry(
    "HOOKS",
    """Extra hooks of the pretraining loop, named in the cfg's ``HOOKS`` list.

    Called as ``obj(cfg)`` with the whole run cfg on every rank.  Returns an
    ``avplug.engine.hooks.HookBase`` (or None to opt out on this run); the trainer runs it after its
    learning-rate and logging hooks and before checkpointing, with ``hook.trainer`` set to the
    ``avplug.engine.trainer.PretrainTrainer``.  A hook that calls collectives must do so on every
    rank.  Built-in: ``HeldoutEvaluation`` (held-out retrieval and discrepancy measures every
    ``EVAL.DISCREPANCY_PERIOD`` steps).
    """,
)

ALL_REGISTRIES = (BACKBONES, HEADS, LOSSES, SAMPLERS, DATASETS, DECODERS, HOOKS)

__all__ = [
    "ALL_REGISTRIES",
    "BACKBONES",
    "DATASETS",
    "DECODERS",
    "ENTRY_POINT_GROUP",
    "HEADS",
    "HOOKS",
    "LOSSES",
    "Registry",
    "SAMPLERS",
    "apply_config_hooks",
    "build",
    "load_plugins",
    "loaded_plugins",
    "register_config_hook",
]
