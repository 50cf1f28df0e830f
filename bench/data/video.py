"""Reading videos and images into clips, decoding only what a clip needs.

    python -m bench.data.video --bench            # seek decoding against decoding everything, on a long video

A clip is (T, size, size, 3) uint8 RGB: T frames sampled uniformly over the video (the first and the last
included), each resized so that its short side is `size` and centre-cropped. An image fills the clip (its
frame repeated T times, as the paper does for images).

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


def resize_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8: short side to size (bilinear, antialiased), centre
    crop. Frames already size x size are returned unchanged (bit for bit)."""
    h, w = frames.shape[1:3]
    if h == w == size:
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - size) // 2, (nw - size) // 2
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


def read_frames(path, indices, size: int | None = None) -> np.ndarray:
    """The frames at the given indices (any order, repeats allowed), (len, S, S, 3) uint8 RGB with
    S = size (short side resized, centre crop) or the video's own size when size is None."""
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
                got[target] = resize_crop(arr[None], size)[0] if size else arr
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


def read_image(path, frames: int, size: int | None = None) -> np.ndarray:
    """An image as a clip: the frame repeated `frames` times."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path.open() if isinstance(path, Blob) else path) as im:
            arr = np.array(im.convert("RGB"))  # a writable copy
    except (UnidentifiedImageError, OSError) as e:
        raise VideoError(f"{path}: cannot read as an image: {e}") from None
    arr = resize_crop(arr[None], size)[0] if size else arr
    return np.repeat(arr[None], frames, axis=0)


def is_image(path) -> bool:
    return Path(str(path)).suffix.lower() in IMAGE_SUFFIXES


def read_clip(path, frames: int, size: int | None = None) -> np.ndarray:
    """T frames sampled uniformly over a video, or an image filling the clip."""
    if is_image(path):
        return read_image(path, frames, size)
    info = probe(path)
    if info.frames <= 0:
        raise VideoError(f"{path}: the video has no frames")
    return read_frames(path, uniform_indices(info.frames, frames), size)


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


# ---------------------------------------------------------------- the decode benchmark

def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bench_child(path: str, mode: str, frames: int, size: int, repeats: int) -> None:
    """Runs in its own process, so that its peak memory is its own."""
    base = _peak_rss_mb()
    t = time.perf_counter()
    for _ in range(repeats):
        if mode == "seek":
            clip = read_clip(path, frames, size)
        else:  # the old way: decode every frame at full size, then sample
            every = list(read_all_frames(path))
            clip = resize_crop(np.stack([every[i] for i in uniform_indices(len(every), frames)]), size)
    dt = (time.perf_counter() - t) / repeats
    print(f"{mode}\t{dt * 1000:.1f}\t{_peak_rss_mb() - base:.0f}\t{clip.shape}")


def main(argv: list[str] | None = None) -> int:
    import subprocess
    import tempfile

    p = argparse.ArgumentParser(description="Benchmark clip decoding on a long video this command writes itself.")
    p.add_argument("--bench", action="store_true", help="run the benchmark")
    p.add_argument("--minutes", type=float, default=5.0, help="length of the test video")
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--full", action="store_true", help="also time decoding every frame (slow on long videos)")
    p.add_argument("--video", help="benchmark this file instead of writing one")
    p.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        path, mode, frames, size, repeats = args._child
        _bench_child(path, mode, int(frames), int(size), int(repeats))
        return 0
    if not args.bench:
        p.print_help()
        return 0
    path = args.video
    if not path:
        path = str(Path(tempfile.mkdtemp()) / "long.mp4")
        n = int(args.minutes * 60 * args.fps)
        w = args.height * 16 // 9 // 2 * 2
        print(f"writing {path}: {n} frames of {w}x{args.height} at {args.fps:g} fps (H.264, key frame every 250)")
        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (args.height // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        import av

        with av.open(path, "w") as c:
            s = c.add_stream("libx264", rate=Fraction(args.fps).limit_denominator(1001),
                             options={"crf": "23", "preset": "ultrafast", "g": "250"})
            s.height, s.width, s.pix_fmt = args.height, w, "yuv420p"
            for i in range(n):
                frame = np.roll(base, i * 4, axis=1)  # a panning texture: every frame differs
                for packet in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    c.mux(packet)
            for packet in s.encode():
                c.mux(packet)
    info = probe(path)
    print(f"video: {info.frames} frames, {info.width}x{info.height}, {info.fps:g} fps, "
          f"{Path(path).stat().st_size / 2**20:.0f} MiB")
    print(f"clip: {args.frames} frames at {args.size}x{args.size}")
    print("mode\tms per clip\tpeak extra RSS MiB\tclip")
    modes = ["seek"] + (["full"] if args.full else [])
    for mode in modes:
        out = subprocess.run([sys.executable, "-m", "bench.data.video", "--_child", path, mode, str(args.frames),
                              str(args.size), "3" if mode == "seek" else "1"], capture_output=True, text=True)
        sys.stdout.write(out.stdout or out.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
