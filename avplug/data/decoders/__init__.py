"""Media decoders: frame-accurate video reads and sample-accurate mono audio reads.

A decoder is any object registered by name in :data:`registry.DECODERS` (``DATA.DECODER`` picks
one) and called with no arguments; it reads times on the file's presentation timeline (stream
timestamps in seconds, which start at 0 for most files and for every store file):

- ``read_video(path, start_s, num_frames, fps)`` returns the frames *displayed* at
  ``start_s + i / fps`` (the last frame whose timestamp is at most that time, within
  :data:`~avplug.data.decoders.media.TIME_EPS`), ``uint8 [num_frames, H, W, 3]`` RGB.  Times
  before the first frame get the first frame, times past the last frame get the last frame; a
  ``start_s`` past the end of the stream is an error.
- ``read_video_clips(path, starts_s, num_frames, fps)`` (optional) does the same for several
  clips of one file, opening it once: ``uint8 [len(starts_s), num_frames, H, W, 3]``.  Callers
  go through :func:`read_clips`, which falls back to ``read_video`` per clip without it.
- ``read_audio(path, start_s, duration_s, sample_rate)`` returns ``round(duration_s *
  sample_rate)`` mono samples, ``float32``, sample ``j`` at ``start_s + j / sample_rate``.  Every
  channel layout is accepted and down-mixed as the mean of its channels; any sample rate is
  resampled.  Every decoded frame is placed at its own timestamp
  (:mod:`~avplug.data.decoders.resampling`): audio overlapping earlier audio is dropped, missing
  audio is silence, as are parts of the window outside the audio; a window entirely past the end
  is an error.

Failures raise :class:`avplug.data.errors.MediaError` naming the file; a decoder whose library
is missing raises ``ImportError`` when constructed.  The package:

- :mod:`~avplug.data.decoders.media`: opening files, streams, timestamps, request checks;
- :mod:`~avplug.data.decoders.probing`: a file's header (:func:`~avplug.data.decoders.probing.probe`)
  and its decodable extent (truncated files);
- :mod:`~avplug.data.decoders.timeline`: one title timeline for every stream across clock jumps
  (spliced files; the store writer and ingest's packet scan use it);
- :mod:`~avplug.data.decoders.resampling`: mono resampling and placing audio by timestamp;
- :mod:`~avplug.data.decoders.pyav_decoder` (``"pyav"``, always available) and
  :mod:`~avplug.data.decoders.torchcodec_decoder` (``"torchcodec"``, optional): the decoders.

Adding a decoder: write ``avplug/data/decoders/<library>_decoder.py`` with a class implementing
the three methods above (reuse ``media`` for opening and checks, ``resampling`` for audio) and a
``@DECODERS.register()`` factory named as the decoder; import the module below so that importing
this package registers it; test it against the others in ``tests/data/test_decoders.py``.  A
decoder outside avplug registers itself the same way from a plugin module (``PLUGINS``).

:func:`get_default_decoder` returns the faster decoder that is importable (:data:`DEFAULT_DECODER`;
measured by ``benchmarks/decoder_compare.py``), falling back to PyAV.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from avplug.data.decoders import pyav_decoder, torchcodec_decoder
from registry import DECODERS

# Registry name of the decoder get_default_decoder() prefers: PyAV read store snippets faster than
# torchcodec in every access pattern of benchmarks/decoder_compare.py (results/decoder_compare.json).
DEFAULT_DECODER = "pyav"


def get_default_decoder():
    """An instance of :data:`DEFAULT_DECODER`, or of ``"pyav"`` when that one cannot be imported."""
    if DEFAULT_DECODER == "torchcodec" and not torchcodec_decoder.torchcodec_available():
        return pyav_decoder.PyAVDecoder()
    return DECODERS.get(DEFAULT_DECODER)()


def read_clips(decoder, path: str | os.PathLike, starts_s: Sequence[float], num_frames: int, fps: float) -> torch.Tensor:
    """``uint8 [len(starts_s), num_frames, H, W, 3]`` from any decoder: its ``read_video_clips``
    (one open of ``path``) when it has one, else its ``read_video`` per clip, stacked."""
    read_video_clips = getattr(decoder, "read_video_clips", None)
    if read_video_clips is not None:
        return read_video_clips(path, starts_s, num_frames, fps)
    return torch.stack([decoder.read_video(path, s, num_frames, fps) for s in starts_s])
