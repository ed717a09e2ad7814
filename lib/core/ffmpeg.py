"""The one ffmpeg every stage and tool runs: the binary bundled with imageio-ffmpeg.

Never a system ffmpeg: its version, and so which frames decode and how they scale,
would then depend on the machine. The binary's name (which carries its version) is
part of the frames stage's cache key.
"""

from __future__ import annotations

import functools

import imageio_ffmpeg


@functools.cache
def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()
