"""Decoders: probing, frame-accurate video, sample-accurate mono audio, errors naming the file."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import hilbert

from avplug.data import decoders
from avplug.data.decoders import get_default_decoder, torchcodec_decoder
from avplug.data.decoders.probing import decodable_extent, probe
from avplug.data.decoders.pyav_decoder import PyAVDecoder
from avplug.data.decoders.torchcodec_decoder import torchcodec_available
from avplug.data.errors import MediaError
from registry import DECODERS

needs_torchcodec = pytest.mark.skipif(not torchcodec_available(), reason="torchcodec or its FFmpeg libraries are missing")


def all_decoders():
    names = ["pyav"] + (["torchcodec"] if torchcodec_available() else [])
    return [DECODERS.get(n)() for n in names]


def burst_offsets(burst_times, audio: np.ndarray, start_s: float, rate: int) -> np.ndarray:
    """Sample error of every burst (centred at ``burst_times``) that lies fully inside
    ``audio``, whose first sample is at ``start_s``."""
    env = np.abs(hilbert(audio))
    errors = []
    for c in burst_times:
        expected = (c - start_s) * rate
        lo, hi = int(expected - 0.02 * rate), int(expected + 0.02 * rate)
        if lo >= 0 and hi <= audio.size:
            errors.append(lo + np.argmax(env[lo:hi]) - expected)
    assert errors, "no burst inside the window"
    return np.abs(np.array(errors))


def test_both_decoders_are_registered():
    assert {"pyav", "torchcodec"} <= set(DECODERS.names())
    dec = get_default_decoder()
    assert hasattr(dec, "read_video") and hasattr(dec, "read_audio")


def test_probe_reads_the_header(media_dir):
    info = probe(media_dir / "timecode.mp4")
    assert (info.width, info.height, info.fps, info.duration_s) == (160, 96, 25.0, 8.0)
    assert (info.audio_rate, info.audio_channels) == (44100, 2)
    surround = probe(media_dir / "surround.mp4")
    assert (surround.audio_rate, surround.audio_channels) == (44100, 6)
    assert surround.audio_streams[0].layout == "5.1"
    assert probe(media_dir / "noaudio.mp4").audio_streams == ()


@pytest.mark.parametrize(
    "name, reason",
    [("notmedia.mp4", "not a media file"), ("nomoov.mp4", "corrupt or truncated MP4"), ("missing.mp4", "no such file")],
)
def test_probe_errors_name_the_file_and_reason(media_dir, name, reason):
    with pytest.raises(MediaError) as err:
        probe(media_dir / name)
    assert str(media_dir / name) in str(err.value) and reason in str(err.value)
    assert err.value.path == str(media_dir / name)


def test_decodable_extent_finds_truncation(media_dir, timecode, tmp_path):
    video_end, audio_end = decodable_extent(media_dir / "timecode.mp4")
    assert video_end == pytest.approx(8.0) and audio_end == pytest.approx(8.0, abs=0.05)
    video_end, audio_end = decodable_extent(media_dir / "truncated.mp4")
    assert max(video_end, audio_end) < 6.0 < probe(media_dir / "truncated.mp4").duration_s
    # a long file cut short: the bisection finds where decoding stops, for both streams
    data = timecode.make_media(tmp_path / "long.mp4", 90.0, size=(32, 32)).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    video_end, audio_end = decodable_extent(tmp_path / "cut.mp4", tail_seconds=2.0)
    assert 10.0 < video_end < 80.0 and abs(video_end - audio_end) < 1.0


@pytest.mark.parametrize("decoder", all_decoders(), ids=lambda d: type(d).__name__)
def test_video_frames_are_the_ones_displayed_at_the_asked_times(media_dir, timecode, decoder):
    path = media_dir / "timecode.mp4"  # 25 fps: frame n is displayed during [n / 25, (n + 1) / 25)
    clip = decoder.read_video(path, 1.0, 6, 5.0)
    assert clip.dtype == torch.uint8 and clip.shape == (6, 96, 160, 3)
    assert [timecode.read_counter(f) for f in clip.numpy()] == [25, 30, 35, 40, 45, 50]
    clip = decoder.read_video(path, 0.05, 4, 10.0)  # between frames: the earlier one shows
    assert [timecode.read_counter(f) for f in clip.numpy()] == [1, 3, 6, 8]
    clip = decoder.read_video(path, 7.9, 4, 10.0)  # past the last frame: it stays on screen
    assert [timecode.read_counter(f) for f in clip.numpy()] == [197, 199, 199, 199]


@pytest.mark.parametrize("decoder", all_decoders(), ids=lambda d: type(d).__name__)
def test_clips_come_back_in_the_order_asked(media_dir, timecode, decoder):
    path = media_dir / "timecode.mp4"
    starts = [4.8, 0.0, 1.6, 1.8, 6.4]
    clips = decoder.read_video_clips(path, starts, 8, 5.0)
    assert clips.shape == (5, 8, 96, 160, 3)
    for s, clip in zip(starts, clips.numpy()):
        first = round(s * 25)
        assert [timecode.read_counter(f) for f in clip] == [min(first + 5 * i, 199) for i in range(8)]
        assert torch.equal(torch.from_numpy(clip), decoder.read_video(path, s, 8, 5.0))


@pytest.mark.parametrize("decoder", all_decoders(), ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("name, seconds", [("timecode.mp4", 8.0), ("surround.mp4", 4.0), ("mono48k.mp4", 3.4)])
def test_audio_is_mono_resampled_and_sample_aligned(media_dir, timecode, decoder, name, seconds):
    start, duration, rate = 1.0, 2.0, 16000
    audio = decoder.read_audio(media_dir / name, start, duration, rate)
    assert audio.dtype == torch.float32 and audio.shape == (32000,)
    # 44.1 kHz stereo, 44.1 kHz 5.1 and 48 kHz mono sources all land within a sample
    assert burst_offsets(timecode.burst_times(seconds), audio.numpy(), start, rate).max() <= 1.0
    assert 0.5 < audio.abs().max() < 1.0  # channel mean of 0.8-peak bursts: no 5.1 gain blow-up


@pytest.mark.parametrize("decoder", all_decoders(), ids=lambda d: type(d).__name__)
def test_audio_outside_the_stream_is_zero_and_past_the_end_is_an_error(media_dir, decoder):
    path = media_dir / "mono48k.mp4"  # 3.4 s
    audio = decoder.read_audio(path, 3.0, 1.0, 8000)
    assert audio.shape == (8000,) and audio[int(0.5 * 8000) :].abs().max() == 0
    with pytest.raises(MediaError, match="mono48k.mp4"):
        decoder.read_audio(path, 10.0, 1.0, 8000)
    with pytest.raises(MediaError, match="mono48k.mp4.*past the end"):
        decoder.read_video(path, 10.0, 4, 5.0)


@pytest.mark.parametrize("decoder", all_decoders(), ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("name, reason", [("notmedia.mp4", "not a media file"), ("missing.mp4", "no such file")])
def test_decoder_errors_name_the_file(media_dir, decoder, name, reason):
    path = media_dir / name
    for read in (lambda: decoder.read_audio(path, 0.0, 1.0, 16000), lambda: decoder.read_video(path, 0.0, 2, 5.0)):
        with pytest.raises(MediaError) as err:
            read()
        assert str(path) in str(err.value)
        if isinstance(decoder, PyAVDecoder):
            assert reason in str(err.value)
    with pytest.raises(MediaError, match="noaudio.mp4.*no audio stream"):
        decoder.read_audio(media_dir / "noaudio.mp4", 0.0, 1.0, 16000)


@needs_torchcodec
def test_pyav_and_torchcodec_agree(media_dir):
    pyav, tc = DECODERS.get("pyav")(), DECODERS.get("torchcodec")()
    for name in ("timecode.mp4", "surround.mp4", "scenes.mp4"):
        a = pyav.read_video_clips(media_dir / name, [0.0, 1.3, 2.5], 5, 5.0).int()
        b = tc.read_video_clips(media_dir / name, [0.0, 1.3, 2.5], 5, 5.0).int()
        assert a.shape == b.shape
        assert (a - b).abs().float().mean() < 1.0 and (a - b).abs().max() <= 8  # YUV->RGB rounding only
        x = pyav.read_audio(media_dir / name, 0.5, 1.5, 16000)
        y = tc.read_audio(media_dir / name, 0.5, 1.5, 16000)
        # each places its resampler's grid within half a sample of the window: same envelope,
        # same waveform up to that sub-sample phase
        env_x, env_y = np.abs(hilbert(x.numpy())), np.abs(hilbert(y.numpy()))
        inner = slice(400, -400)  # the analytic signal rings at the ends of the window
        assert np.abs(env_x - env_y)[inner].max() < 0.05 * env_x.max()
        assert np.corrcoef(x.numpy(), y.numpy())[0, 1] > 0.95


def test_torchcodec_missing_gives_import_error_and_pyav_fallback(monkeypatch):
    def broken():
        raise ImportError("the 'torchcodec' decoder needs the torchcodec package (simulated)")

    monkeypatch.setattr(torchcodec_decoder, "_import_torchcodec", broken)
    monkeypatch.setattr(torchcodec_decoder, "torchcodec_available", lambda: False)
    with pytest.raises(ImportError, match="torchcodec"):
        DECODERS.get("torchcodec")()
    monkeypatch.setattr(decoders, "DEFAULT_DECODER", "torchcodec")
    assert isinstance(get_default_decoder(), PyAVDecoder)




def test_a_forked_child_converts_frames_after_its_parent_did():
    """The reused swscale context (media.to_rgb24) must not deadlock in a forked pool worker: the
    child converts frames of another size, which reconfigures the context it inherited."""
    import multiprocessing

    import av
    import numpy as np

    from avplug.data.decoders.media import to_rgb24

    for size in ((48, 64), (96, 128)):
        to_rgb24(av.VideoFrame.from_ndarray(np.full((*size, 3), 100, np.uint8), format="rgb24").reformat(format="yuv420p"))
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(_convert_in_child, ((30, 40),)).get(timeout=60)
    assert child.shape == (30, 40, 3) and abs(int(child[0, 0, 0]) - 100) <= 2


def _convert_in_child(size):
    import av
    import numpy as np

    from avplug.data.decoders.media import to_rgb24

    frame = av.VideoFrame.from_ndarray(np.full((*size, 3), 100, np.uint8), format="rgb24").reformat(format="yuv420p")
    return to_rgb24(frame)
