"""Collectives with gradients, for losses whose negatives span the global batch."""
from __future__ import annotations

import torch
import torch.distributed as dist


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Forward: concatenate every rank's ``[b, ...]`` tensor in rank order -> ``[world * b, ...]``.

    Backward: each rank holds the gradient of its own loss term w.r.t. the *whole* gathered
    tensor; the gradient w.r.t. one rank's input is the sum of those over all ranks, restricted
    to that rank's rows: ``all_reduce(SUM)`` then the own slice.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, world = distributed_world()
        ctx.rank, ctx.rows = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` (same shape on every rank) concatenated along dim 0 in rank order.

    Gradients flow back to the rank that owns each row, summed over the loss terms of all ranks
    (see :class:`_AllGatherWithGrad`).  Without a process group (or a world of one) returns ``x``.
    """
    _, world = distributed_world()
    if world == 1:
        return x
    return _AllGatherWithGrad.apply(x)


class _MeanOverRanksForwardOnly(torch.autograd.Function):
    """Forward: the mean of a scalar over ranks.  Backward: the incoming gradient, unchanged.

    Used to report a loss whose *value* is global while each rank's gradient stays that of its
    own (local-mean) term; see :class:`avplug.losses.CrossModalNCE` for why that is the right
    gradient under DDP.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        _, world = distributed_world()
        total = x.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / world

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


def mean_over_ranks_forward_only(x: torch.Tensor) -> torch.Tensor:
    """The rank-mean of scalar ``x`` as value, with the gradient of ``x`` itself (see above)."""
    _, world = distributed_world()
    if world == 1:
        return x
    return _MeanOverRanksForwardOnly.apply(x)
