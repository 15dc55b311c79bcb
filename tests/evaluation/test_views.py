"""Test-time view sampling: clip starts, crop positions, and the 30-view / 10-view datasets."""
import itertools

import pytest
import torch

from avplug.evaluation.clips import build_clip_dataset
from avplug.evaluation.views import (
    random_clip_start,
    spatial_crop_offsets,
    spatial_crops,
    temporal_clip_starts,
)


def test_temporal_clip_starts_uniform_from_zero_to_end():
    starts = temporal_clip_starts(10.0, 3.2, 10)
    assert len(starts) == 10
    assert starts[0] == 0.0 and starts[-1] == pytest.approx(6.8)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(g == pytest.approx(6.8 / 9) for g in gaps)


def test_temporal_clip_starts_edge_cases():
    assert temporal_clip_starts(10.0, 3.2, 1) == [pytest.approx(3.4)]  # one clip: centered
    assert temporal_clip_starts(2.0, 3.2, 4) == [0.0] * 4  # shorter than a clip: all at 0
    assert temporal_clip_starts(3.2, 3.2, 3) == [0.0] * 3
    with pytest.raises(ValueError, match="num_clips"):
        temporal_clip_starts(10.0, 3.2, 0)
    g = torch.Generator().manual_seed(0)
    draws = [random_clip_start(10.0, 3.2, g) for _ in range(200)]
    assert 0.0 <= min(draws) and max(draws) <= 6.8 and max(draws) - min(draws) > 5
    assert random_clip_start(1.0, 3.2, g) == 0.0


def test_spatial_crop_offsets_left_center_right():
    # UCF101 frames are 320 x 240; after the test resize to the crop size 158 they are 210 x 158.
    assert spatial_crop_offsets(240, 320, 158) == [(41, 0), (41, 81), (41, 162)]
    assert spatial_crop_offsets(158, 210, 158) == [(0, 0), (0, 26), (0, 52)]
    # Portrait frames: top, center, bottom.
    assert spatial_crop_offsets(320, 240, 158) == [(0, 41), (81, 41), (162, 41)]
    assert spatial_crop_offsets(240, 320, 158, 1) == [(41, 81)]
    assert spatial_crop_offsets(100, 100, 100, 3) == [(0, 0)] * 3
    with pytest.raises(ValueError, match="does not fit"):
        spatial_crop_offsets(100, 300, 158)


def test_spatial_crops_cut_the_right_pixels():
    h, w = 16, 40
    video = torch.arange(w).view(1, 1, 1, w).expand(3, 4, h, w)  # value = column index
    crops = spatial_crops(video, 16)
    assert [tuple(c.shape) for c in crops] == [(3, 4, 16, 16)] * 3
    assert [int(c[0, 0, 0, 0]) for c in crops] == [0, 12, 24]
    assert int(crops[2][0, 0, 0, -1]) == w - 1


class RecordingDecoder:
    """Frames whose channel 0 holds the clip number and channel 1 the column index."""

    def __init__(self, height, width):
        self.height, self.width, self.video_calls, self.audio_starts = height, width, [], []

    def read_video_clips(self, path, starts, num_frames, fps):
        self.video_calls.append((list(starts), num_frames, fps))
        frames = torch.zeros(len(starts), num_frames, self.height, self.width, 3, dtype=torch.uint8)
        for c in range(len(starts)):
            frames[c, ..., 0] = c
        frames[..., 1] = torch.arange(self.width, dtype=torch.uint8)
        return frames

    def read_audio(self, path, start_s, duration_s, sample_rate):
        self.audio_starts.append(start_s)
        return torch.randn(round(duration_s * sample_rate))


def test_video_test_set_yields_30_views(tiny_cfg, tmp_path):
    cfg = tiny_cfg(
        "UCF101", tmp_path, "EVAL.DOWNSTREAM.NUM_CLIPS", "10", "EVAL.DOWNSTREAM.FRAMES", "32",
        "EVAL.DOWNSTREAM.FPS", "10.0",
    )
    crop = cfg.EVAL.DOWNSTREAM.CROP
    ds = build_clip_dataset(cfg, [("video.avi", 1)], "video", train=False)
    ds._decoder = RecordingDecoder(crop, 40)  # short side already at the test size: no resize
    ds._spans["video.avi"] = (0.0, 10.0)
    item = ds[0]
    x = item["input"]
    assert item["label"] == 1
    assert tuple(x.shape) == (30, 3, 32, crop, crop)
    (starts, frames, fps), = ds.decoder.video_calls
    assert (frames, fps) == (32, 10.0)
    assert starts == pytest.approx(temporal_clip_starts(10.0, 3.2, 10))
    mean, std = torch.tensor(cfg.INPUT.VIDEO.MEAN), torch.tensor(cfg.INPUT.VIDEO.STD)
    pixels = ((x[:, :, 0, 0, 0] * std + mean) * 255).round()  # top-left pixel of each view
    assert pixels[:, 0].tolist() == [float(v // 3) for v in range(30)]  # clips outer
    assert pixels[:, 1].tolist() == [float(left) for _ in range(10) for left in (0, 12, 24)]  # crops inner


def test_audio_test_set_yields_10_views(tiny_cfg, tmp_path):
    cfg = tiny_cfg("ESC50", tmp_path, "EVAL.DOWNSTREAM.NUM_CLIPS", "10", "EVAL.DOWNSTREAM.CLIP_SECONDS", "3.0")
    ds = build_clip_dataset(cfg, [("dog.wav", 0)], "audio", train=False)
    ds._decoder = RecordingDecoder(1, 1)
    ds._spans["dog.wav"] = (0.0, 5.0)
    x = ds[0]["input"]
    frames = 1 + 3 * cfg.DATA.AUDIO_RATE // cfg.INPUT.AUDIO.HOP
    assert tuple(x.shape) == (10, 1, cfg.INPUT.AUDIO.MEL_BINS, frames)
    assert ds.decoder.audio_starts == pytest.approx([2.0 * i / 9 for i in range(10)])


def test_training_clips_are_single_random_views(tiny_cfg, tmp_path):
    cfg = tiny_cfg("UCF101", tmp_path)
    ds = build_clip_dataset(cfg, [("video.avi", 0)], "video", train=True)
    ds._decoder = RecordingDecoder(30, 40)
    ds._spans["video.avi"] = (0.0, 10.0)
    torch.manual_seed(0)
    x = torch.stack([ds[0]["input"] for _ in range(8)])
    e = cfg.EVAL.DOWNSTREAM
    assert tuple(x.shape[1:]) == (3, e.FRAMES, e.CROP, e.CROP)
    starts = [call[0][0] for call in ds.decoder.video_calls]
    assert len(set(starts)) == 8 and all(0 <= s <= 10.0 - e.FRAMES / e.FPS for s in starts)

    audio = build_clip_dataset(tiny_cfg("ESC50", tmp_path), [("dog.wav", 0)], "audio", train=True)
    audio._decoder = RecordingDecoder(1, 1)
    audio._spans["dog.wav"] = (0.0, 5.0)
    mel = audio[0]["input"]
    assert mel.shape[0] == 1 and mel.shape[1] == cfg.INPUT.AUDIO.MEL_BINS
