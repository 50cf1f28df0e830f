"""Reading videos and images into clips, decoding only what a clip needs.

    python -m bench.data.video --bench            # seek decoding against decoding everything, on a long video

A clip is (T, size, size, 3) uint8 RGB: T frames sampled uniformly over the video (the first and the last
included), each resized so that its short side is `size` and centre-cropped (a multi-view evaluation reads
other windows and crops: View). An image fills the clip (its frame repeated T times, as the paper does).

Decoding seeks: for each sampled frame the reader jumps to the key frame before it and decodes forward
only to that frame, so a clip of a long video costs T short decodes, not the whole video; each frame is
resized as soon as it is decoded, so memory holds T small frames and one full-size frame. The reader
decodes on instead of seeking whenever the key frame a seek would land on is not past where it already
is (the key-frame spacing is learnt as it goes), so frames close together are read in one forward pass.

PyAV (FFmpeg's libraries, bundled in its wheels) rather than torchcodec: its wheels carry FFmpeg on
every platform we run on, including these CPU machines, with no system FFmpeg and no torch-version
coupling.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# key-frame spacing assumed until two key frames have been seen (x264's default keyint)
DEFAULT_GOP = 250


class VideoError(ValueError):
    """A file that cannot be read as a video or image; the message names the file."""


class Blob:
    """A media file held in memory (a member of a tar shard): readable like a path, named for errors."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def open(self) -> io.BytesIO:
        return io.BytesIO(self.data)

    def __str__(self) -> str:
        return self.name


def _av_open(source):
    import av

    return av.open(source.open() if isinstance(source, Blob) else str(source))


@dataclass(frozen=True)
class VideoInfo:
    frames: int  # number of frames (from the container, else duration x rate)
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class View:
    """Which view of a video a clip is (multi-view evaluation, eval.views): temporal window `window` of
    `windows` equal consecutive parts of the video (or of its segment), spanned by the clip's T frames as one
    clip spans the whole video; and crop `crop` of `crops` placed evenly along the long side of the
    short-side-resized frame, first to last (VideoMAE's test crops: start = floor(crop * (long - size) /
    (crops - 1))). View() is the one view every clip had before: the whole video, the centre crop."""

    window: int = 0
    windows: int = 1
    crop: int = 0
    crops: int = 1

    def offset(self, spare: int) -> int:
        """Where the crop starts on a side `spare` pixels longer than the crop (the short side: 0)."""
        return spare // 2 if self.crops == 1 else self.crop * spare // (self.crops - 1)

    def frames(self, first: int, last: int) -> tuple[int, int]:
        """(first, last) frame of the window, both included, within frames first..last of the video; a
        window shorter than a frame gets the frame at its start."""
        n = last - first + 1
        a = first + self.window * n // self.windows
        return a, max(a, first + (self.window + 1) * n // self.windows - 1)


def resize_crop(frames: np.ndarray, size: int, view: View = View()) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8: short side to size (bilinear, antialiased), the view's
    crop (View(): the centre). Frames already size x size are returned unchanged (bit for bit)."""
    h, w = frames.shape[1:3]
    if h == w == size:
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = view.offset(nh - size), view.offset(nw - size)
    x = x[..., top:top + size, left:left + size]
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def uniform_indices(n: int, frames: int) -> np.ndarray:
    """T frame indices spread uniformly over n frames, the first and the last included."""
    return np.linspace(0, max(n - 1, 0), frames).round().astype(int)


def probe(path) -> VideoInfo:
    import av

    try:
        with _av_open(path) as container:
            s = container.streams.video[0]
            fps = float(s.average_rate or s.guessed_rate or 0) or 25.0
            n = s.frames
            if not n:
                seconds = float(s.duration * s.time_base) if s.duration else (container.duration or 0) / 1e6
                n = int(round(seconds * fps))
            return VideoInfo(int(n), fps, s.codec_context.width, s.codec_context.height)
    except (av.FFmpegError, IndexError, OSError) as e:
        raise VideoError(f"{path}: cannot read as a video: {e}") from None


def read_frames(path, indices, size: int | None = None, view: View = View()) -> np.ndarray:
    """The frames at the given indices (any order, repeats allowed), (len, S, S, 3) uint8 RGB with
    S = size (short side resized, the view's crop: the centre) or the video's own size when size is None."""
    import av

    want = sorted(set(int(i) for i in indices))
    got: dict[int, np.ndarray] = {}
    try:
        with _av_open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
            tb = stream.time_base
            start = stream.start_time or 0

            def index_of(frame) -> int:
                return int(round(float((frame.pts - start) * tb * rate)))

            pos = None  # index of the last frame decoded; None = nothing decoded since the last seek
            frames_iter = None
            keys: list[int] = []  # key frames seen, to learn their spacing
            for target in want:
                if pos is None or target < pos or not _forward_is_cheaper(pos, target, keys):
                    container.seek(start + int(target / rate / tb), stream=stream, backward=True, any_frame=False)
                    frames_iter = container.decode(stream)
                    pos = None
                frame = None
                for frame in frames_iter:
                    pos = index_of(frame) if frame.pts is not None else (pos or 0) + 1
                    if frame.key_frame and (not keys or pos > keys[-1]):
                        keys.append(pos)
                    if pos >= target:
                        break
                if frame is None or pos is None:
                    if got:  # past the end (a container that over-reports its length): repeat the last frame
                        got[target] = got[max(got)]
                        continue
                    raise VideoError(f"{path}: no frame decoded at index {target}")
                arr = frame.to_ndarray(format="rgb24")
                got[target] = resize_crop(arr[None], size, view)[0] if size else arr
    except (av.FFmpegError, IndexError, OSError) as e:
        raise VideoError(f"{path}: cannot decode: {e}") from None
    return np.stack([got[int(i)] for i in indices])


def _forward_is_cheaper(pos: int, target: int, keys: list[int]) -> bool:
    """Whether decoding on from frame `pos` to `target` costs no more than seeking: a seek lands on the key
    frame at or before the target, estimated from the key frames seen so far (their spacing)."""
    gaps = [b - a for a, b in zip(keys, keys[1:]) if b > a]
    gop = min(gaps) if gaps else DEFAULT_GOP
    if not keys:
        return target - pos <= gop // 2
    landing = keys[-1] + (target - keys[-1]) // gop * gop if target >= keys[-1] else target - gop // 2
    return landing <= pos


def read_all_frames(path, size: int | None = None, every: int = 1):
    """Every `every`-th frame in order, resized: a generator, so a long video is never held whole."""
    import av

    try:
        with _av_open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i % every == 0:
                    arr = frame.to_ndarray(format="rgb24")
                    yield resize_crop(arr[None], size)[0] if size else arr
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: cannot decode: {e}") from None


def read_image(path, frames: int, size: int | None = None, view: View = View()) -> np.ndarray:
    """An image as a clip: the frame repeated `frames` times (cut to the view's crop; it has no time)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path.open() if isinstance(path, Blob) else path) as im:
            arr = np.array(im.convert("RGB"))  # a writable copy
    except (UnidentifiedImageError, OSError) as e:
        raise VideoError(f"{path}: cannot read as an image: {e}") from None
    arr = resize_crop(arr[None], size, view)[0] if size else arr
    return np.repeat(arr[None], frames, axis=0)


def is_image(path) -> bool:
    return Path(str(path)).suffix.lower() in IMAGE_SUFFIXES


# slack on frame boundaries: a time written as k / fps in decimal lands on frame k, not on k - 1
_EPS = 1e-6


@dataclass(frozen=True)
class Segment:
    """[start, end) in seconds of a long video: the frames shown during it are those whose display time
    k / fps is in it, so consecutive segments share no frame and [0, length] is the whole video."""

    start: float
    end: float

    def frames(self, info: VideoInfo) -> tuple[int, int]:
        """(first, last) frame index, both included; a segment shorter than a frame gets the frame shown
        at its start. An end past the video is cut to its last frame."""
        first = int(np.floor(self.start * info.fps + _EPS))
        last = min(int(np.ceil(self.end * info.fps - _EPS)) - 1, info.frames - 1)
        return first, max(first, last)

    def fits(self, info: VideoInfo) -> bool:
        """Whether the segment lies within the video, allowing its end one frame past the last one (a
        length rounded up by the annotation, or a container's duration one frame off)."""
        return self.end <= (info.frames + 1) / info.fps + _EPS


def read_clip(path, frames: int, size: int | None = None, start: float | None = None,
              end: float | None = None, view: View = View()) -> np.ndarray:
    """T frames sampled uniformly over a video, or over its segment [start, end) in seconds (the frames
    found by seeking inside the video, so a clip of a long video costs T short decodes, never the whole
    video), or over the view's window of either; or an image filling the clip."""
    if is_image(path):
        return read_image(path, frames, size, view)
    info = probe(path)
    if info.frames <= 0:
        raise VideoError(f"{path}: the video has no frames")
    first, last = 0, info.frames - 1
    if start is not None or end is not None:
        first, last = Segment(start or 0.0, info.frames / info.fps if end is None else end).frames(info)
    if first >= info.frames:
        raise VideoError(f"{path}: segment {start}-{end} s starts after the video's end "
                         f"({info.frames} frames at {info.fps:g} fps)")
    a, b = view.frames(first, last)
    return read_frames(path, a + uniform_indices(b - a + 1, frames), size, view)


def write_video(path: str | Path, frames: np.ndarray, fps: float, lossless: bool = True, gop: int | None = None) -> None:
    """(T, H, W, 3) uint8 -> an H.264 mp4. lossless: libx264rgb at qp 0 (RGB, bit-exact round trip);
    otherwise libx264 yuv420p at crf 18 (what datasets ship)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"qp": "0", "preset": "veryfast"} if lossless else {"crf": "18", "preset": "veryfast"}
    if gop:
        options["g"] = str(gop)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264rgb" if lossless else "libx264", rate=Fraction(fps).limit_denominator(1001),
                         options=options)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "rgb24" if lossless else "yuv420p"
        for f in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def write_image(path: str | Path, frame: np.ndarray) -> None:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path)


# ---------------------------------------------------------------- the decode benchmarks

SEGMENT_S = 10.0  # the segments --bench-segments reads: 10 s each (a YouCook2 / ActivityNet step is 5-60 s)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_child(path: str, mode: str, frames: int, size: int, repeats: int) -> None:
    """Runs in its own process, so that its peak memory is its own. Segments start at seeded random times,
    each read as an eval item would be (its own open, probe and seeks)."""
    base = _peak_rss_mb()
    info = probe(path)
    starts = np.random.default_rng(0).uniform(0, max(0.0, info.frames / info.fps - SEGMENT_S), repeats)
    t = time.perf_counter()
    for k in range(repeats):
        if mode == "seek":
            clip = read_clip(path, frames, size)
        elif mode == "segments":
            clip = read_clip(path, frames, size, float(starts[k]), float(starts[k]) + SEGMENT_S)
        else:  # the old way: decode every frame at full size, then sample
            every = list(read_all_frames(path))
            clip = resize_crop(np.stack([every[i] for i in uniform_indices(len(every), frames)]), size)
    dt = (time.perf_counter() - t) / repeats
    print(f"{mode}\t{dt * 1000:.1f}\t{1 / dt:.2f}\t{_peak_rss_mb() - base:.0f}\t{clip.shape}")


def _write_long(path: str, minutes: float, height: int, fps: float) -> None:
    """A long H.264 video of a panning random texture (every frame differs), key frame every 250 frames."""
    import av

    n = int(minutes * 60 * fps)
    w = height * 16 // 9 // 2 * 2
    print(f"writing {path}: {n} frames of {w}x{height} at {fps:g} fps (H.264, key frame every 250)")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                         options={"crf": "23", "preset": "ultrafast", "g": "250"})
        s.height, s.width, s.pix_fmt = height, w, "yuv420p"
        for i in range(n):
            for packet in s.encode(av.VideoFrame.from_ndarray(np.roll(base, i * 4, axis=1), format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Benchmark clip decoding on a long video this command writes itself.")
    p.add_argument("--bench", action="store_true", help="time one clip over the whole video, by seeking")
    p.add_argument("--bench-segments", action="store_true",
                   help=f"time clips of {SEGMENT_S:g} s segments at random times of the video (eval items with start/end)")
    p.add_argument("--segments", type=int, default=20, help="segment clips read by --bench-segments")
    p.add_argument("--minutes", type=float, default=5.0, help="length of the test video")
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--full", action="store_true", help="also time decoding every frame (slow on long videos)")
    p.add_argument("--video", help="benchmark this file instead of writing one")
    p.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    import subprocess
    import tempfile

    p = _parser()
    args = p.parse_args(argv)
    if args._child:
        path, mode, frames, size, repeats = args._child
        _bench_child(path, mode, int(frames), int(size), int(repeats))
        return 0
    if not (args.bench or args.bench_segments):
        p.print_help()
        return 0
    path = args.video
    if not path:
        path = str(Path(tempfile.mkdtemp()) / "long.mp4")
        _write_long(path, args.minutes, args.height, args.fps)
    info = probe(path)
    print(f"video: {info.frames} frames, {info.width}x{info.height}, {info.fps:g} fps, "
          f"{Path(path).stat().st_size / 2**20:.0f} MiB")
    print(f"clip: {args.frames} frames at {args.size}x{args.size}")
    print("mode\tms per clip\tclips/s\tpeak extra RSS MiB\tclip")
    runs = ([("seek", 3)] + ([("full", 1)] if args.full else []) if args.bench else []) + \
        ([("segments", args.segments)] if args.bench_segments else [])
    for mode, repeats in runs:
        out = subprocess.run([sys.executable, "-m", "bench.data.video", "--_child", path, mode, str(args.frames),
                              str(args.size), str(repeats)], capture_output=True, text=True)
        sys.stdout.write(out.stdout or out.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
