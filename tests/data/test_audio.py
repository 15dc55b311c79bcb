"""LogMelSpectrogram against librosa's reference, shapes of the paper's and the demo's front end."""
import librosa
import numpy as np
import pytest
import torch

from avplug.data.audio import DEFAULT_LOG_EPS, LogMelSpectrogram


def _signal(num_samples: int, rate: int, seed: int = 0) -> np.ndarray:
    """Chirp plus noise: energy in every mel band, no silent frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / rate
    chirp = 0.5 * np.sin(2 * np.pi * (100 * t + 0.5 * (rate / 2.5) / t[-1] * t**2))
    return (chirp + 0.05 * rng.standard_normal(num_samples)).astype(np.float32)


@pytest.mark.parametrize(
    "rate, n_fft, hop, n_mels, seconds, frames",
    [(48000, 2048, 512, 96, 3.2, 301), (16000, 512, 256, 40, 1.6, 101)],
    ids=["paper", "demo"],
)
def test_matches_librosa_melspectrogram(rate, n_fft, hop, n_mels, seconds, frames):
    x = _signal(int(rate * seconds), rate)
    ref = librosa.feature.melspectrogram(
        y=x, sr=rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, power=2.0, center=True, pad_mode="reflect"
    )
    module = LogMelSpectrogram(rate, n_fft, hop, n_mels)
    power = module.mel_power(torch.from_numpy(x)).numpy()
    assert power.shape == ref.shape == (n_mels, frames)
    np.testing.assert_allclose(power, ref, rtol=1e-4, atol=1e-6 * ref.max())
    log_mel = module(torch.from_numpy(x)[None]).numpy()
    assert log_mel.shape == (1, n_mels, frames)
    np.testing.assert_allclose(log_mel[0], np.log(ref + DEFAULT_LOG_EPS), atol=1e-3)


def test_paper_shape_and_batched_leading_dims():
    module = LogMelSpectrogram(48000, 2048, 512, 96)
    assert module(torch.zeros(1, 153600)).shape == (1, 96, 301)
    batch = torch.from_numpy(np.stack([_signal(153600, 48000, seed=s) for s in range(3)]))[:, None]  # [3, 1, S]
    out = module(batch)
    assert out.shape == (3, 1, 96, 301)
    for i in range(3):
        torch.testing.assert_close(out[i], module(batch[i]), rtol=1e-5, atol=1e-4)


def test_silence_is_finite_log_eps():
    module = LogMelSpectrogram(16000, 512, 256, 40)
    out = module(torch.zeros(1, 4000))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full_like(out, float(np.log(DEFAULT_LOG_EPS))))


def test_float32_inside_autocast():
    module = LogMelSpectrogram(16000, 512, 256, 40)
    x = torch.from_numpy(_signal(8000, 16000))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, module(x))


def test_filterbank_is_librosa_slaney_and_not_in_state_dict():
    module = LogMelSpectrogram(48000, 2048, 512, 96)
    expected = librosa.filters.mel(sr=48000, n_fft=2048, n_mels=96, fmin=0.0, fmax=24000.0, htk=False, norm="slaney")
    np.testing.assert_array_equal(module.mel_filters.numpy(), expected)
    assert module.state_dict() == {}


@pytest.mark.parametrize(
    "kwargs, message",
    [({"n_fft": 512, "hop_length": 256, "n_mels": 300}, "exceeds"), ({"n_fft": 1, "hop_length": 256, "n_mels": 4}, "n_fft >= 2")],
)
def test_rejects_impossible_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LogMelSpectrogram(16000, **kwargs)


def test_rejects_too_short_waveform():
    with pytest.raises(ValueError, match="too short"):
        LogMelSpectrogram(16000, 512, 256, 40)(torch.zeros(100))
