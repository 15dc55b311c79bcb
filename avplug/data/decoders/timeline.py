"""One title timeline for every stream of a source: timestamps made continuous across clock jumps.

A source's streams carry their own timestamps.  Most files keep one clock from start to end, but
a file joined from parts can restart it (``cat a.ts b.ts``: the second part starts at 0 again) or
jump it (an MPEG-TS discontinuity).  :class:`Timeline` maps each stream's times (seconds) onto one
*title time*:

- Title time equals stream time until a clock jump; so for a file without jumps it is the file's
  own presentation timeline, and readers that seek by time need no mapping.
- A step is a stream's time minus where its previous frame (or packet) ended.  A step of more
  than :data:`MAX_BACKSTEP_S` backwards, or of more than :data:`MAX_GAP_S` forwards to a time
  that is also that far ahead of where every other stream has got to, is a *clock jump* (a long
  forward step that catches up with another stream is missing data: an audio dropout); smaller
  steps are real overlaps (the last AAC frame of a part overlapping the next part's first, after
  ``ffmpeg -f concat -c copy``) and real gaps (dropped packets, a late start), left to the reader
  to trim or fill (:class:`~avplug.data.decoders.resampling.AudioPlacer` for audio; the store's
  video holds a frame over a gap and drops frames that overlap).
- After a clock jump a stream's times are shifted so that it continues where it ended.  The
  shift is shared: the first stream to reach a jump sets it, and a later stream whose jump lands
  within the overlap/gap limits under that shift takes the same one.  Streams that jump together
  therefore keep their relative timing (audio and video stay aligned after the jump); a stream
  whose jump does not fit another's gets a shift of its own.

Streams are fed in decoding order (each stream's times ascending apart from small steps); a
frame without a timestamp is placed right after the previous one of its stream.
"""
from __future__ import annotations

from collections.abc import Hashable

# A stream time this far (seconds) behind the end of the stream's previous frame is a clock jump,
# not an overlap: codec overlaps at joins are a frame or two (20-70 ms).
MAX_BACKSTEP_S = 0.5
# A stream time this far ahead of the end of the stream's previous frame is a clock jump, not
# missing data (FFmpeg's own threshold for MPEG-TS discontinuities is 10 s).
MAX_GAP_S = 10.0


class Timeline:
    """Stream times -> title time (module docstring); counts clock jumps and the largest step."""

    def __init__(self) -> None:
        self._shifts = [0.0]  # title time - stream time, one per clock epoch; shared by streams
        self._epoch: dict[Hashable, int] = {}
        self._end: dict[Hashable, float] = {}  # where each stream's previous frame ended (title time)
        self.clock_jumps = 0
        self.largest_step_s = 0.0  # largest |step| seen in any stream, clock jumps included

    def place(self, stream: Hashable, time_s: float | None, duration_s: float) -> float:
        """Title time of a frame of ``stream`` at stream time ``time_s`` lasting ``duration_s``."""
        end = self._end.get(stream)
        if time_s is None:
            title = end if end is not None else 0.0
        elif end is None:
            title = time_s + self._shifts[self._epoch.setdefault(stream, 0)]
        else:
            title = self._continue(stream, time_s, end)
        self._end[stream] = title + max(duration_s, 0.0)
        return title

    def _continue(self, stream: Hashable, time_s: float, end: float) -> float:
        epoch = self._epoch[stream]
        step = time_s + self._shifts[epoch] - end
        self.largest_step_s = max(self.largest_step_s, abs(step))
        if -MAX_BACKSTEP_S <= step <= MAX_GAP_S or (step > 0 and self._caught_up(stream, end + step)):
            return end + step
        # a clock jump: take the next shift another stream set, if this jump fits it
        if epoch + 1 < len(self._shifts) and -MAX_BACKSTEP_S <= time_s + self._shifts[epoch + 1] - end <= MAX_GAP_S:
            epoch += 1
        else:
            self._shifts.append(end - time_s)
            self.clock_jumps += 1
            epoch = len(self._shifts) - 1
        self._epoch[stream] = epoch
        return time_s + self._shifts[epoch]

    def _caught_up(self, stream: Hashable, title: float) -> bool:
        """Whether ``title`` is within the step limits of where another stream has got to."""
        return any(-MAX_BACKSTEP_S <= title - end <= MAX_GAP_S for other, end in self._end.items() if other != stream)
