"""Pretraining transforms: shapes of the recipes, augmentation ranges, and worker path == device path."""
import math

import pytest
import torch

import avplug  # noqa: F401  (the pytorchvideo shim comes first)
from avplug.config import load_config
from avplug.data.audio import LogMelSpectrogram
from avplug.data.transforms import (
    BatchTransform,
    ColorJitterVideo,
    RandomAxisDrop,
    RandomCropVideo,
    ShortSideScale,
    ToDevice,
    build_batch_transform,
    build_pretrain_transform,
    short_side_scaled_size,
    stack_params,
)

# The store and input sizes these tests are written for, pinned so they do not move with the demo recipe.
SIZES = ["DATA.STORE_SHORT_SIDE", "64", "INPUT.VIDEO.SHORT_SIDE", "64", "INPUT.VIDEO.CROP", "56"]


def _raw(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)


def _wave(samples, seed=0):
    return 0.1 * torch.randn(1, samples, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "recipe, raw_video, samples, video_out, audio_out",
    [
        ("movie_tv", (3, 16, 190, 338), 153600, (3, 16, 158, 158), (1, 96, 301)),
        ("demo", (3, 8, 48, 64), 25600, (3, 8, 40, 40), (1, 40, 101)),
        ("demo", (3, 8, 96, 128), 25600, (3, 8, 40, 40), (1, 40, 101)),  # a store at another size: resized
    ],
)
def test_recipe_shapes(recipe, raw_video, samples, video_out, audio_out):
    transform = build_pretrain_transform(load_config(recipe))
    out = transform({"video": _raw(raw_video), "audio": _wave(samples)}, torch.Generator().manual_seed(0))
    assert out["video"].shape == video_out and out["video"].dtype == torch.float32
    assert out["audio"].shape == audio_out and out["audio"].dtype == torch.float32


def test_normalization_uses_cfg_mean_std():
    cfg = load_config("demo", [*SIZES, "INPUT.VIDEO.MEAN", "(0.5, 0.25, 0.0)", "INPUT.VIDEO.STD", "(0.5, 0.25, 1.0)"])
    transform = build_pretrain_transform(cfg)
    video = torch.full((3, 8, 64, 64), 255, dtype=torch.uint8)
    out = transform({"video": video, "audio": _wave(25600)})["video"]
    for c, expected in enumerate((1.0, 3.0, 1.0)):
        torch.testing.assert_close(out[c], torch.full_like(out[c], expected))


def test_pytorchvideo_short_side_scale_through_avplug():
    from pytorchvideo.transforms import ApplyTransformToKey
    from pytorchvideo.transforms import ShortSideScale as PtvShortSideScale

    clip = torch.rand(3, 4, 40, 60)
    out = ApplyTransformToKey("video", PtvShortSideScale(20))({"video": clip})["video"]
    assert out.shape == (3, 4, 20, 30)
    assert short_side_scaled_size(40, 60, 20) == (20, 30) and short_side_scaled_size(90, 50, 20) == (36, 20)
    torch.testing.assert_close(ShortSideScale(20)(clip), out)
    batch = torch.rand(2, 3, 4, 40, 60)
    scaled = ShortSideScale(20)(batch)
    for i in range(2):
        torch.testing.assert_close(scaled[i], PtvShortSideScale(20)(batch[i]))
    # Already at the size: pytorchvideo's bilinear resize is the identity, and avplug skips it.
    same = torch.rand(3, 4, 20, 30)
    torch.testing.assert_close(PtvShortSideScale(20)(same), same)
    assert ShortSideScale(20)(same) is same


def test_random_modules_compose_per_key_with_global_rng():
    from pytorchvideo.transforms import ApplyTransformToKey

    torch.manual_seed(0)
    crop = ApplyTransformToKey("video", RandomCropVideo(8))
    out = crop({"video": torch.rand(3, 2, 10, 12)})
    assert out["video"].shape == (3, 2, 8, 8)
    assert RandomAxisDrop(0.25)(torch.rand(1, 16, 20)).shape == (1, 16, 20)


def test_crop_params_cover_every_offset_and_batch_equals_single():
    crop = RandomCropVideo(4)
    g = torch.Generator().manual_seed(0)
    draws = [crop.draw((6, 9), g) for _ in range(400)]
    assert {d["crop_top"] for d in draws} == set(range(3))
    assert {d["crop_left"] for d in draws} == set(range(6))
    video = _raw((5, 3, 2, 6, 9))
    params = draws[:5]
    batched = crop.apply_batch(video, stack_params(params))
    for i, p in enumerate(params):
        expected = video[i][..., p["crop_top"] : p["crop_top"] + 4, p["crop_left"] : p["crop_left"] + 4]
        assert torch.equal(batched[i], expected)
    with pytest.raises(ValueError, match="cannot crop"):
        crop.draw((3, 9))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_color_jitter_factor_ranges(sigma):
    jitter = ColorJitterVideo(sigma)
    low, high = max(0.0, 1.0 - sigma), 1.0 + sigma
    assert jitter.factor_range == (low, high)
    g = torch.Generator().manual_seed(1)
    draws = [jitter.draw((), g) for _ in range(2000)]
    for name in ("brightness", "contrast", "saturation"):
        values = torch.tensor([d[name] for d in draws])
        assert values.min() >= low and values.max() <= high
        span = high - low
        assert values.min() < low + 0.02 * span and values.max() > high - 0.02 * span  # the whole range is used
        assert abs(values.mean().item() - (low + high) / 2) < 0.03 * span


def test_color_jitter_sigma_zero_is_identity_and_off_by_default():
    clip = torch.rand(3, 4, 8, 8)
    jitter = ColorJitterVideo(0.0)
    params = jitter.draw(())
    assert params == {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0}
    torch.testing.assert_close(jitter.apply(clip, params), clip)
    assert build_pretrain_transform(load_config("movie_tv")).jitter is None  # paper default sigma = 0: no draws


def test_color_jitter_formulas():
    jitter = ColorJitterVideo(1.0)
    clip = torch.rand(3, 2, 4, 4) * 0.5
    bright = jitter.apply(clip, {"brightness": 2.0, "contrast": 1.0, "saturation": 1.0})
    torch.testing.assert_close(bright, (clip * 2).clamp(0, 1))
    flat = jitter.apply(clip, {"brightness": 1.0, "contrast": 0.0, "saturation": 1.0})
    gray_mean = (clip * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1, 1)).sum(0).mean()
    torch.testing.assert_close(flat, torch.full_like(clip, gray_mean.item()))
    gray = jitter.apply(clip, {"brightness": 1.0, "contrast": 1.0, "saturation": 0.0})
    assert torch.allclose(gray[0], gray[1]) and torch.allclose(gray[1], gray[2])


def test_drop_fraction_bounds_and_band():
    drop = RandomAxisDrop(0.25)
    shape = (1, 40, 101)
    g = torch.Generator().manual_seed(2)
    draws = [drop.draw(shape, g) for _ in range(3000)]
    assert {d["drop_axis"] for d in draws} == {0, 1}
    for axis, length in ((0, 40), (1, 101)):
        mine = [d for d in draws if d["drop_axis"] == axis]
        widths = {d["drop_width"] for d in mine}
        assert widths == set(range(math.floor(0.25 * length) + 1))  # 0 .. floor(25% of the axis), all reached
        assert all(0 <= d["drop_start"] and d["drop_start"] + d["drop_width"] <= length for d in mine)
    image = torch.randn(shape)
    out = drop.apply(image, {"drop_axis": 1, "drop_start": 10, "drop_width": 25})
    mean = image.mean()
    assert torch.equal(out[..., 10:35], mean.expand(1, 40, 25))
    assert torch.equal(out[..., :10], image[..., :10]) and torch.equal(out[..., 35:], image[..., 35:])
    out = drop.apply(image, {"drop_axis": 0, "drop_start": 0, "drop_width": 10})
    assert torch.equal(out[:, :10], mean.expand(1, 10, 101)) and torch.equal(out[:, 10:], image[:, 10:])
    assert torch.equal(drop.apply(image, {"drop_axis": 0, "drop_start": 3, "drop_width": 0}), image)


def _worker_and_device(cfg_opts, shapes, samples):
    cfg = load_config("demo", [*SIZES, "INPUT.VIDEO.COLOR_JITTER", "1.0", *cfg_opts])
    transform = build_pretrain_transform(cfg)
    videos = [_raw(s, seed=i) for i, s in enumerate(shapes)]
    waves = [_wave(samples, seed=i) for i in range(len(shapes))]
    params = [transform.draw(v.shape, w.shape, torch.Generator().manual_seed(10 + i)) for i, (v, w) in enumerate(zip(videos, waves))]
    worker = [(transform.apply_video(v, p), transform.apply_audio(w, p)) for v, w, p in zip(videos, waves, params)]
    device_cfg = load_config("demo", [*SIZES, "INPUT.VIDEO.COLOR_JITTER", "1.0", "INPUT.ON_DEVICE", "True", *cfg_opts])
    batch_transform = build_batch_transform(device_cfg, "cpu")
    assert isinstance(batch_transform, BatchTransform)
    same_size = len(set(shapes)) == 1
    batch = {
        "video": torch.stack(videos) if same_size else videos,
        "audio": torch.stack(waves),
        "aug": stack_params(params),
        "title_id": [f"t{i}" for i in range(len(shapes))],
    }
    return worker, batch_transform(batch), params


@pytest.mark.parametrize(
    "opts, shapes",
    [
        ([], [(3, 8, 64, 85)] * 4),  # the store is at the training size: no resize
        (["INPUT.VIDEO.SHORT_SIDE", "60"], [(3, 8, 64, 85)] * 4),  # resize on both paths
        (["INPUT.VIDEO.SHORT_SIDE", "60"], [(3, 8, 64, 85), (3, 8, 64, 120), (3, 8, 64, 85)]),  # mixed frame sizes
    ],
    ids=["no-resize", "resize", "mixed-sizes"],
)
def test_device_path_equals_worker_path(opts, shapes):
    worker, device, _ = _worker_and_device(opts, shapes, 25600)
    assert device["title_id"] == [f"t{i}" for i in range(len(shapes))] and "aug" not in device
    assert device["video"].shape == (len(shapes), 3, 8, 56, 56)
    assert device["audio"].shape == (len(shapes), 1, 40, 101)
    for i, (video, audio) in enumerate(worker):
        torch.testing.assert_close(device["video"][i], video, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(device["audio"][i], audio, rtol=1e-5, atol=1e-4)


def test_device_path_deterministic_parts_match():
    """Resize and mel alone (no random stage involved) agree between the per-sample and batched code."""
    videos = torch.rand(3, 3, 4, 64, 85)
    scaled = ShortSideScale(48)(videos)
    mel = LogMelSpectrogram(16000, 512, 256, 40)
    waves = torch.randn(3, 1, 16000)
    mels = mel(waves)
    for i in range(3):
        torch.testing.assert_close(scaled[i], ShortSideScale(48)(videos[i]))
        torch.testing.assert_close(mels[i], mel(waves[i]), rtol=1e-5, atol=1e-4)


def test_batch_transform_off_device_only_moves():
    cfg = load_config("demo", SIZES)
    move = build_batch_transform(cfg, "cpu")
    assert isinstance(move, ToDevice)
    batch = {"video": torch.zeros(2, 3, 8, 56, 56), "audio": torch.zeros(2, 1, 40, 101), "title_id": ["a", "b"], "snippet_index": [0, 1]}
    out = move(batch)
    assert out["video"] is batch["video"] and out["title_id"] == ["a", "b"]
    with pytest.raises(KeyError, match="ON_DEVICE"):
        build_batch_transform(load_config("demo", [*SIZES, "INPUT.ON_DEVICE", "True"]), "cpu")(batch)


def test_video_of_decoder_layout_becomes_contiguous_and_normalize_inplace_owns_its_input():
    """Decoders give [T, H, W, 3] frames viewed as [3, T, H, W]; the float video comes out
    contiguous (the broadcasts after it are slow on that layout) and equal to the plain formula."""
    from avplug.data.transforms import NormalizeVideo, ToFloat01

    frames = _raw((6, 20, 30, 3)).permute(3, 0, 1, 2)  # channels-last strides
    x = ToFloat01()(frames[..., 2:12, 5:15])
    assert x.is_contiguous() and torch.equal(x, frames[..., 2:12, 5:15].float() / 255)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    expected = (x - torch.tensor(mean).view(3, 1, 1, 1)) / torch.tensor(std).view(3, 1, 1, 1)
    kept = x.clone()
    assert torch.allclose(NormalizeVideo(mean, std)(x), expected) and torch.equal(x, kept)
    out = NormalizeVideo(mean, std, inplace=True)(x)
    assert out.data_ptr() == x.data_ptr() and torch.allclose(out, expected)
