"""The paper's cross-modal noise-contrastive loss (Eq. 1), over the global batch.

For a minibatch of B pairs with video embeddings ``z_v^i`` and audio embeddings ``z_a^i`` let
``S = z_v z_a^T`` (``S_ij = z_v^i . z_a^j``).  Eq. 1 gives sample ``i`` ONE softmax over its
positive ``S_ii`` and its 2(B - 1) negatives ``S_ij`` and ``S_ji`` (``j != i``)::

    loss_i = -S_ii + log( exp(S_ii) + sum_{j != i} exp(S_ij) + sum_{j != i} exp(S_ji) )

and the loss is the mean of ``loss_i`` over the batch (Eq. 1 writes the sum; the mean keeps the
learning rate independent of B).  The paper's default uses unnormalized embeddings and no
temperature; the variant (Table 2) l2-normalizes the embeddings and divides every dot product by
a temperature tau.  The temperature divides the dot products in both cases (1.0 leaves them as
they are).

Numerics: unnormalized dot products grow large (1e3 - 1e4) during training, and their differences
matter.  The loss is computed in float32 (float64 inputs stay float64) with autocast disabled, so a
bf16 autocast region around the model does not round ``S``; the log-sum-exp is the stable one.

Distributed convention (world size R > 1, every rank holding b = B / R rows, rank order = global
order):

- the embeddings of all ranks are all-gathered, so every rank sees the whole global batch as
  negatives; each rank computes ``loss_i`` for its own rows i against all B global columns;
- the returned value is the global mean ``(1/B) sum_i loss_i``, identical on every rank and equal
  to the single-process loss on the concatenated batch;
- its gradient is that of the rank's local mean ``(1/b) sum_{i local} loss_i = R (1/B) sum_{i
  local} loss_i``.  The gather's backward sums the gradient w.r.t. each rank's embeddings over the
  terms of all ranks, so rank r receives ``R dL/dz^r``; its parameter gradient is R times the part
  of dL/dtheta that flows through its own samples, and DDP's average over ranks
  ``(1/R) sum_r R g_r = sum_r g_r`` is exactly the single-process gradient ``dL/dtheta``.

Without DDP, gradients w.r.t. the embeddings are therefore R times the single-process ones: sum
(not average) the gradients over ranks when reducing them by hand.  The forward and backward
passes are collectives: every rank must call them, with the same local batch size b.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avplug.losses.gather import (
    all_gather_with_grad,
    distributed_world,
    mean_over_ranks_forward_only,
)
from registry import LOSSES


def cross_modal_nce_terms(
    z_video: torch.Tensor,
    z_audio: torch.Tensor,
    z_video_all: torch.Tensor,
    z_audio_all: torch.Tensor,
    offset: int,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``loss_i`` of Eq. 1 for rows ``offset .. offset + b - 1`` of the batch ``(z_*_all)``.

    ``z_video`` / ``z_audio`` ``[b, d]`` are those rows of ``z_video_all`` / ``z_audio_all``
    ``[B, d]``.  Returns ``[b]``.
    """
    rows = z_video.shape[0]
    s_rows = z_video @ z_audio_all.T / temperature  # [b, B]: S_ij, i local
    s_cols = z_audio @ z_video_all.T / temperature  # [b, B]: S_ji, i local
    local = torch.arange(rows, device=z_video.device)
    own = local + offset
    positive = s_rows[local, own]
    # S_ii is already in s_rows; it must appear once in the denominator.
    diagonal = torch.zeros_like(s_cols, dtype=torch.bool)
    diagonal[local, own] = True
    s_cols = s_cols.masked_fill(diagonal, float("-inf"))
    return torch.logsumexp(torch.cat([s_rows, s_cols], dim=1), dim=1) - positive


class CrossModalNCE(nn.Module):
    """Eq. 1: one softmax per sample over its positive pair and its 2(B - 1) negative pairs.

    ``forward(z_video [B, d], z_audio [B, d]) -> scalar``, the mean over i of ``loss_i`` (see the
    module docstring, which also states the distributed convention).

    Args:
        normalize: l2-normalize the embeddings first (the Table 2 variant).
        temperature: dot products are divided by it (1.0: the paper's default).
    """

    def __init__(self, normalize: bool = False, temperature: float = 1.0) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"CrossModalNCE: temperature must be positive, got {temperature}")
        self.normalize = bool(normalize)
        self.temperature = float(temperature)

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}, temperature={self.temperature}"

    def forward(self, z_video: torch.Tensor, z_audio: torch.Tensor) -> torch.Tensor:
        if z_video.dim() != 2 or z_video.shape != z_audio.shape:
            raise ValueError(
                "CrossModalNCE expects z_video and z_audio of the same shape [B, d], got "
                f"{tuple(z_video.shape)} and {tuple(z_audio.shape)}"
            )
        dtype = torch.promote_types(torch.promote_types(z_video.dtype, z_audio.dtype), torch.float32)
        with torch.autocast(device_type=z_video.device.type, enabled=False):
            z_video, z_audio = z_video.to(dtype), z_audio.to(dtype)
            if self.normalize:
                z_video, z_audio = F.normalize(z_video, dim=1), F.normalize(z_audio, dim=1)
            rank, world = distributed_world()
            if world == 1:
                terms = cross_modal_nce_terms(z_video, z_audio, z_video, z_audio, 0, self.temperature)
                return terms.mean()
            rows, dim = z_video.shape
            # One collective for both modalities; own rows are taken from the gathered tensor so
            # that all of their gradient goes through the gather's backward.
            gathered = all_gather_with_grad(torch.cat([z_video, z_audio], dim=1))
            z_video_all, z_audio_all = gathered[:, :dim], gathered[:, dim:]
            own = slice(rank * rows, (rank + 1) * rows)
            terms = cross_modal_nce_terms(
                z_video_all[own], z_audio_all[own], z_video_all, z_audio_all, rank * rows, self.temperature
            )
            return mean_over_ranks_forward_only(terms.mean())


@LOSSES.register(name="CrossModalNCE")
def build_cross_modal_nce(node) -> CrossModalNCE:
    """LOSSES builder: ``cfg.LOSS`` (``NORMALIZE``, ``TEMPERATURE``) -> :class:`CrossModalNCE`."""
    return CrossModalNCE(normalize=bool(node.NORMALIZE), temperature=float(node.TEMPERATURE))
