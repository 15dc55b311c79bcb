"""CrossModalNCE against a literal, loop-based evaluation of Eq. 1; numerics; distributed runs."""
from __future__ import annotations

import importlib
import socket
from pathlib import Path

import pytest
import torch

import registry
from avplug.config import load_config
from avplug.losses import CrossModalNCE


def eq1_loop(z_video: torch.Tensor, z_audio: torch.Tensor, normalize: bool = False, temperature: float = 1.0):
    """Eq. 1 written out: for each i, positive (z_v^i, z_a^i) against the set N_i of negatives
    {(z_v^i, z_a^j), (z_v^j, z_a^i) | j != i}, one softmax; averaged over i.  Exponents are shifted
    by their maximum (an identity of the softmax) so that large dot products do not overflow, and
    the logarithm of the fraction is taken as log(numerator) - log(denominator)."""
    if normalize:
        z_video = z_video / z_video.norm(dim=1, keepdim=True)
        z_audio = z_audio / z_audio.norm(dim=1, keepdim=True)
    batch = z_video.shape[0]
    total = 0.0
    for i in range(batch):
        positive = torch.dot(z_video[i], z_audio[i]) / temperature
        negatives = []
        for j in range(batch):
            if j != i:
                negatives.append(torch.dot(z_video[i], z_audio[j]) / temperature)
                negatives.append(torch.dot(z_video[j], z_audio[i]) / temperature)
        assert len(negatives) == 2 * (batch - 1)
        shift = torch.stack([positive, *negatives]).max().detach()
        denominator = torch.exp(positive - shift) + sum(
            (torch.exp(n - shift) for n in negatives), torch.zeros_like(positive)
        )
        # -log(e^p / denominator), with the numerator's log taken analytically (e^(p - shift)
        # underflows to 0 when the positive is far below the largest negative).
        total = total - ((positive - shift) - torch.log(denominator))
    return total / batch


def _embeddings(batch: int, dim: int, scale: float = 1.0, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        (scale * torch.randn(batch, dim, generator=g, dtype=dtype)).requires_grad_(True),
        (scale * torch.randn(batch, dim, generator=g, dtype=dtype)).requires_grad_(True),
    )


@pytest.mark.parametrize("batch", [1, 2, 7])
@pytest.mark.parametrize(("normalize", "temperature"), [(False, 1.0), (False, 0.5), (True, 0.07), (True, 0.3)])
def test_matches_loop_reference_values_and_gradients(batch, normalize, temperature):
    z_video, z_audio = _embeddings(batch, 5, scale=0.8)
    loss = CrossModalNCE(normalize, temperature)(z_video, z_audio)
    reference = eq1_loop(z_video, z_audio, normalize, temperature)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    torch.testing.assert_close(loss, reference, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(loss, (z_video, z_audio))
    reference_grads = torch.autograd.grad(reference, (z_video, z_audio))
    for grad, reference_grad in zip(grads, reference_grads):
        torch.testing.assert_close(grad, reference_grad, rtol=1e-10, atol=1e-12)


def test_one_softmax_over_both_directions_not_two_averaged():
    # With S = [[a, b], [c, d]], loss_0 = -a + log(e^a + e^b + e^c), loss_1 = -d + log(e^d + e^c + e^b).
    z_video = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    z_audio = torch.tensor([[3.0, 1.0], [0.5, -1.0]], dtype=torch.float64)
    (a, b), (c, d) = (z_video @ z_audio.T).tolist()
    def lse(*xs):
        return torch.logsumexp(torch.tensor(xs, dtype=torch.float64), 0)

    expected = ((-a + lse(a, b, c)) + (-d + lse(d, c, b))) / 2
    torch.testing.assert_close(CrossModalNCE()(z_video, z_audio), expected)
    two_softmaxes = ((-a + lse(a, b)) + (-a + lse(a, c)) + (-d + lse(d, c)) + (-d + lse(d, b))) / 4
    assert abs(float(CrossModalNCE()(z_video, z_audio)) - float(two_softmaxes)) > 1e-3


def test_large_unnormalized_dot_products_are_stable():
    # |S_ij| ~ 1e4: a naive exp overflows float32 (and float64) long before this.
    z_video, z_audio = _embeddings(8, 16, scale=25.0, dtype=torch.float32, seed=1)
    scores = (z_video @ z_audio.T).abs()
    assert scores.max() > 5e3
    loss = CrossModalNCE()(z_video, z_audio)
    assert torch.isfinite(loss)
    grads = torch.autograd.grad(loss, (z_video, z_audio))
    assert all(torch.isfinite(g).all() for g in grads)
    z_video64 = z_video.detach().double().requires_grad_(True)
    z_audio64 = z_audio.detach().double().requires_grad_(True)
    reference = eq1_loop(z_video64, z_audio64)
    torch.testing.assert_close(loss.double(), reference, rtol=1e-4, atol=0.05)
    reference_grads = torch.autograd.grad(reference, (z_video64, z_audio64))
    for grad, reference_grad in zip(grads, reference_grads):
        torch.testing.assert_close(grad.double(), reference_grad, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("normalize", [False, True])
def test_bf16_autocast_computes_in_float32(normalize):
    z_video, z_audio = _embeddings(8, 16, scale=25.0, dtype=torch.float32, seed=2)
    loss_fn = CrossModalNCE(normalize, 0.07 if normalize else 1.0)
    plain = loss_fn(z_video, z_audio)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = loss_fn(z_video, z_audio)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, plain, rtol=0, atol=0)

    # Embeddings produced in bf16 by a layer under autocast: the loss is Eq. 1 on those values.
    projection = torch.nn.Linear(16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf_video, bf_audio = projection(z_video), projection(z_audio)
        loss = loss_fn(bf_video, bf_audio)
    assert bf_video.dtype == torch.bfloat16 and loss.dtype == torch.float32
    reference = eq1_loop(bf_video.detach().double(), bf_audio.detach().double(), normalize, loss_fn.temperature)
    torch.testing.assert_close(loss.double(), reference, rtol=1e-5, atol=1e-2)
    loss.backward()
    assert torch.isfinite(projection.weight.grad).all()


def test_float64_stays_float64():
    z_video, z_audio = _embeddings(4, 3)
    assert CrossModalNCE()(z_video, z_audio).dtype == torch.float64


def test_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        CrossModalNCE()(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"\[B, d\]"):
        CrossModalNCE()(torch.randn(4, 8, 1), torch.randn(4, 8, 1))
    with pytest.raises(ValueError, match="temperature"):
        CrossModalNCE(True, 0.0)


def test_built_from_the_cfg():
    paper = registry.build(registry.LOSSES, load_config("movie_tv").LOSS, expected_type=torch.nn.Module)
    assert isinstance(paper, CrossModalNCE)
    assert (paper.normalize, paper.temperature) == (False, 1.0)
    variant = load_config("movie_tv", opts=["LOSS.NORMALIZE", "True", "LOSS.TEMPERATURE", "0.07"])
    loss = registry.build(registry.LOSSES, variant.LOSS)
    assert (loss.normalize, loss.temperature) == (True, 0.07)


# --- distributed: real gloo process groups -----------------------------------------------------


@pytest.fixture
def gloo_workers(monkeypatch):
    """The worker module, importable by the spawned children (spawn hands them our sys.path)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("_nce_gloo_workers")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("world", [2, 4])
def test_distributed_equals_single_process_on_concatenated_batch(gloo_workers, world):
    batch = 3 * world
    cases = []
    for seed, (normalize, temperature) in enumerate([(False, 1.0), (True, 0.3)]):
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        cases.append(
            {
                "normalize": normalize,
                "temperature": temperature,
                "z_video": torch.randn(batch, 4, generator=g, dtype=torch.float64),
                "z_audio": torch.randn(batch, 4, generator=g, dtype=torch.float64),
                "x_video": torch.randn(batch, 5, generator=g, dtype=torch.float64),
                "x_audio": torch.randn(batch, 3, generator=g, dtype=torch.float64),
                "model_state": gloo_workers.TinyTwoTower().double().state_dict(),
            }
        )
    expected = [gloo_workers.single_process_reference(case) for case in cases]
    # The single-process reference is itself Eq. 1.
    for case, ref in zip(cases, expected):
        torch.testing.assert_close(ref["loss"], eq1_loop(case["z_video"], case["z_audio"], case["normalize"], case["temperature"]))
    torch.multiprocessing.spawn(gloo_workers.run, args=(world, _free_port(), cases, expected), nprocs=world, join=True)
