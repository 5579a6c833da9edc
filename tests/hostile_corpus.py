"""A hostile-input corpus for vidprep's hardening tests (issue 8), built with ffmpeg and the standard library only.

``build_corpus(base, port=...)`` makes, in a few seconds (tiny sizes, ~10 frames, encodes run in parallel)::

    base/corpus/    the input directory: good videos in odd codecs, containers, geometries and timings; broken,
                    truncated and lying files; playlists; FIFOs, devices and symlinks; hostile file names
    base/outside/   files that nothing may ever read: canary.mp4 (solid magenta; every playlist points at it)
                    and secret.mp4 (solid cyan; corpus/escape.mp4 is a symlink to it)
    base/work/      intermediate encodes (not inputs)

and returns a :class:`Corpus`: ``cases`` maps a short name to ``Case(path, expect)``, ``skipped`` maps the names
that could not be built on this machine to the reason.

An :class:`Expect` says what ``vidprep split CORPUS --fps SPLIT_FPS --size SPLIT_SIZE --max-pixels
TEST_MAX_PIXELS`` must do with the file: ``ok`` (frames > 0, exact counts where they are known, displayed size,
where the rotation marker ends up) or ``error`` (any of the listed substrings, case-insensitive, in the one-line
message). ``probe`` says what ``vidprep probe`` must do when it differs (a frame above the pixel limit is probed
fine and refused only when decoding). Frame counts are what the file really holds, never what its container
claims; sampled counts follow DESIGN's rule "first frame at or after each 1/F tick" (:func:`kept_at_fps`).
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import stat
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

SPLIT_FPS = 2.0
SPLIT_SIZE = 32
TEST_MAX_PIXELS = 1_000_000  # every good video is tiny; the huge one (8192x8192) is far above it
RATE = 10  # frames per second of every generated CFR video
FRAMES = 10
CANARY_RGB = (255, 0, 255)
SECRET_RGB = (0, 255, 255)
# Causes a message may give for "this is not a (complete) video"; "ffprobe failed (exit 1)" alone names no cause.
NOT_A_VIDEO = ("invalid data", "not supported", "moov atom", "no video stream", "end of file", "ended prematurely",
               "input/output error", "truncated", "not a video", "unknown format")
NOT_REGULAR = ("not a regular file",)


def kept_at_fps(pts_s: list[float], fps: float) -> int:
    """How many frames ``--fps F`` keeps: the first at or after each tick k/F (ticks from the first frame)."""
    kept, last = 0, None
    for t in pts_s:
        tick = math.floor((t - pts_s[0]) * fps + 1e-6)
        if last is None or tick > last:
            kept, last = kept + 1, tick
    return kept


def cfr_pts(frames: int = FRAMES, rate: int = RATE) -> list[float]:
    """Timestamps of a constant-rate video."""
    return [i / rate for i in range(frames)]


def display_path(path: str | os.PathLike) -> str:
    """How vidprep prints a path whose bytes may not be UTF-8 (backslash escapes)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Expect:
    """What vidprep must do with one input (see the module docstring)."""

    outcome: str  # "ok" | "error" (split, i.e. decoding)
    error: tuple[str, ...] = ()  # for "error": any of these, case-insensitive, in the message
    frames: int | None = None  # exact number of frames the file holds (None: unknown, > 0)
    sampled: int | None = None  # frames kept by --fps SPLIT_FPS (None: unknown, > 0)
    size: tuple[int, int] | None = None  # displayed (W, H) as probe reports it
    marker: str | None = None  # corner (tl/tr/bl/br) where the red marker shows in displayed frames
    claims_frames: int | None = None  # the container claims this many frames but fewer decode
    probe: str | None = None  # probe's outcome when it differs from ``outcome``

    @property
    def probe_outcome(self) -> str:
        """What `vidprep probe` must do with the file."""
        return self.probe or self.outcome


def ok(frames: int | None = FRAMES, pts: list[float] | None = None, **kw: object) -> Expect:
    """A good input; ``sampled`` follows from ``pts`` (default: CFR at RATE) unless given."""
    if "sampled" not in kw and frames is not None:
        kw["sampled"] = kept_at_fps(pts or cfr_pts(frames), SPLIT_FPS)
    return Expect("ok", frames=frames, **kw)  # type: ignore[arg-type]


def bad(*error: str, **kw: object) -> Expect:
    """An input every command must reject with one of ``error`` in its message."""
    return Expect("error", error=tuple(error), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Case:
    """One input of the corpus: its path (str; non-UTF-8 bytes as surrogate escapes) and what must happen."""

    path: str
    expect: Expect
    video_id: str  # the id vidprep must store: path relative to the corpus root, backslash-escaped

    def __iter__(self):  # a Case unpacks as (path, expect)
        return iter((self.path, self.expect))

    @property
    def shown(self) -> str:
        """The absolute path as vidprep prints it."""
        return display_path(self.path)


@dataclass
class Corpus:
    """The built corpus: where it is and what each input must do."""

    base: Path
    root: Path
    canary: Path
    secret: Path
    port: int
    cases: dict[str, Case] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def good(self, command: str = "split") -> dict[str, Case]:
        """Cases that ``command`` (split or probe) must process."""
        return {k: c for k, c in self.cases.items() if _outcome(c.expect, command) == "ok"}

    def bad(self, command: str = "split") -> dict[str, Case]:
        """Cases that ``command`` (split or probe) must reject."""
        return {k: c for k, c in self.cases.items() if _outcome(c.expect, command) == "error"}


def _outcome(expect: Expect, command: str) -> str:
    return expect.probe_outcome if command == "probe" else expect.outcome


class BuildSkip(Exception):
    """This case cannot be built here (missing encoder, muxer refuses the codec, not root...)."""


class LoopbackListener:
    """A TCP listener on 127.0.0.1 (random port) that records every connection; nothing may ever connect."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="loopback-canary", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        """Stop accepting (bounded: the accept loop wakes every 0.2 s)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


# ---------------------------------------------------------------------------------------------------- ffmpeg


def ffmpeg(*args: str, timeout: float = 60) -> bytes:
    """Run ffmpeg quietly; BuildSkip with its first error line when it fails (e.g. a muxer refuses a codec)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise BuildSkip(f"ffmpeg cannot make it: {lines[0] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


def encoders() -> set[str]:
    """Names of the encoders this ffmpeg has."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-encoders"], capture_output=True, timeout=30).stdout
    rows = [ln.split() for ln in out.decode("utf-8", "replace").splitlines() if ln.startswith(" V")]
    return {row[1] for row in rows if len(row) > 1}


def ffprobe_value(path: Path, entry: str) -> str:
    """One stream field of the first video stream (e.g. ``codec_name``), '' when there is none."""
    argv = ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", f"stream={entry}",
            "-of", "default=nw=1:nk=1", str(path)]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30).stdout
    return out.decode("utf-8", "replace").strip()


@dataclass
class Out:
    """One output of a multi-output ffmpeg run: the case (or work source) it makes, its file and options."""

    key: str
    path: Path
    args: list[str]
    expect: Expect | None = None  # None: a work source, not an input


def encode_all(inputs: list[str], outs: list[Out], have: set[str], skipped: dict[str, str]) -> list[Out]:
    """Make every output in one ffmpeg process (ffmpeg starts slowly); on failure, each alone so one bad
    output only skips itself. Outputs whose encoder is missing are skipped with that reason."""
    todo = []
    for o in outs:
        codec = o.args[o.args.index("-c:v") + 1] if "-c:v" in o.args else None
        if codec and codec not in have:
            skipped[o.key] = f"encoder {codec} is not in this ffmpeg build"
        else:
            todo.append(o)
    try:
        ffmpeg(*inputs, *[a for o in todo for a in (*o.args, str(o.path))])
        return todo
    except BuildSkip:
        made = []
        for o in todo:
            try:
                ffmpeg(*inputs, *o.args, str(o.path))
                made.append(o)
            except BuildSkip as err:
                skipped[o.key] = str(err)
        return made


def remux_all(src: Path, outs: list[Out], skipped: dict[str, str]) -> list[Out]:
    """Copy ``src``'s video into several containers with one tee muxer; refused containers are skipped with
    ffmpeg's reason (the line before the tee's 'Slave ... failed' line)."""
    slaves = "|".join(f"[f={MUXERS[o.path.suffix]}:onfail=ignore]{o.path}" for o in outs)
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-map", "0:v",
            "-c", "copy", "-f", "tee", slaves]
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    made = []
    for o in outs:
        failed = [i for i, ln in enumerate(lines) if f"{o.path}'" in ln and "Slave" in ln]
        if proc.returncode == 0 and not failed and o.path.is_file() and o.path.stat().st_size > 0:
            made.append(o)
            continue
        reason = lines[failed[0] - 1] if failed and failed[0] > 0 else (lines[0] if lines else "no output")
        skipped[o.key] = f"ffmpeg cannot make it: {reason}"
        o.path.unlink(missing_ok=True)
    return made


def lavfi(graph: str) -> list[str]:
    """Input args for an (endless) lavfi source; outputs limit the frame count."""
    return ["-f", "lavfi", "-i", graph]


def vout(key: str, path: Path, *args: str, inp: int = 0, frames: int = FRAMES, expect: Expect | None = None) -> Out:
    """A video-only output of ``frames`` frames from input ``inp``."""
    return Out(key, path, ["-map", f"{inp}:v", "-frames:v", str(frames), *args], expect)


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-threads", "1"]
H264 = [*X264, "-pix_fmt", "yuv420p"]
HEVC = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:pools=1"]
VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k", "-threads", "1"]
AV1 = ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-b:v", "200k", "-threads", "1"]
MPEG4 = ["-c:v", "mpeg4", "-q:v", "5"]
MATRIX_CODECS = ("vp9", "hevc", "av1", "mpeg4")
CONTAINERS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
MUXERS = {".mp4": "mp4", ".mkv": "matroska", ".webm": "webm", ".avi": "avi", ".mov": "mov"}
VFR_PTS = [0.03 * n * n for n in range(FRAMES)]  # 0, 0.03, 0.12, ... 2.43 s
GAP_PTS = [n / RATE + (3600 if n >= 5 else 0) for n in range(FRAMES)]  # a one-hour hole after frame 4
MS_TIMEBASE = ["-fps_mode", "passthrough", "-enc_time_base", "1:1000"]  # else ffmpeg 5.1 rounds pts to 1/rate
TESTSRC = f"testsrc2=size=32x24:rate={RATE}:duration=3"  # finite: an endless input can stall a multi-output run
MARKER = f"color=c=black:size=48x32:rate={RATE}:duration=1,drawbox=x=0:y=0:w=16:h=12:color=red:t=fill"


def color(rgb: tuple[int, int, int], size: str = "32x24") -> str:
    """A solid-colour lavfi source."""
    return f"color=c=0x{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}:size={size}:rate={RATE}:duration=1"


# ---------------------------------------------------------------------------------------------------- builder


class _Builder:
    """Makes the files; each ``case_*`` method returns ``{name: (path, expect)}`` or raises BuildSkip."""

    def __init__(self, corpus: Corpus) -> None:
        self.c = corpus
        self.work = corpus.base / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.have = encoders()
        self.src: dict[str, Path] = {}

    def at(self, name: str | bytes) -> Path:
        return Path(os.fsdecode(os.path.join(os.fsencode(self.c.root), os.fsencode(name))))

    def _collect(self, made: list[Out]) -> dict:
        cases = {}
        for o in made:
            if o.expect is None:
                self.src[o.key] = o.path
            else:
                cases[o.key] = (o.path, o.expect)
        return cases

    # -- phase 1: encodes

    def case_x264(self) -> dict:
        """Everything libx264 makes, from one ffmpeg process: work sources, outside files, geometry, timing."""
        w, at, size = self.work, self.at, (32, 24)
        ms = ["-video_track_timescale", "1000"]
        outs = [
            vout("base_mp4", w / "base.mp4", *H264), vout("base_mkv", w / "base.mkv", *H264),
            vout("base30_mp4", w / "base30.mp4", *H264, "-movflags", "+faststart", frames=30),
            vout("base30_mkv", w / "base30.mkv", *H264, frames=30),
            vout("marker", w / "marker.mkv", *H264, inp=1),
            vout("canary", self.c.canary, *H264, inp=2, frames=7),
            vout("secret", self.c.secret, *H264, inp=3, frames=7),
            vout("h264_10bit", at("h264_10bit.mp4"), *X264, "-pix_fmt", "yuv420p10le", expect=ok(size=size)),
            vout("h264_444", at("h264_444.mp4"), *X264, "-pix_fmt", "yuv444p", expect=ok(size=size)),
            vout("one_frame", at("one_frame.mp4"), *H264, frames=1, expect=ok(1, size=size)),
            vout("vfr_mkv", at("vfr.mkv"), "-vf", "settb=1/1000,setpts='30*N*N'", *H264, *MS_TIMEBASE,
                 expect=ok(pts=VFR_PTS, size=size)),
            vout("vfr_mp4", at("vfr.mp4"), "-vf", "settb=1/1000,setpts='30*N*N'", *H264, *MS_TIMEBASE, *ms,
                 expect=ok(pts=VFR_PTS, size=size)),
            vout("gap_1h_mkv", at("gap_1h.mkv"), "-vf", "settb=1/1000,setpts='100*N+gte(N,5)*3600000'", *H264,
                 *MS_TIMEBASE, expect=ok(pts=GAP_PTS, size=size)),
            vout("tiny_1x1", at("tiny_1x1.mkv"), "-vf", "scale=1:1,setsar=1", *X264, "-pix_fmt", "yuv444p",
                 expect=ok(size=(1, 1))),  # setsar: scale keeps the 4:3 shape through the SAR otherwise
            vout("tiny_2x2", at("tiny_2x2.mp4"), "-vf", "scale=2:2,setsar=1", *H264, expect=ok(size=(2, 2))),
            vout("odd_17x11", at("odd_17x11.mkv"), "-vf", "scale=17:11,setsar=1", *X264, "-pix_fmt", "yuv444p",
                 expect=ok(size=(17, 11))),
            # whether fields become frames or get deinterlaced is vidprep's choice; 2 Hz sampling is the same
            vout("interlaced_h264", at("interlaced_h264.ts"), "-vf", "scale=32:32,setsar=1", *H264,
                 "-flags", "+ildct+ilme", "-x264-params", "interlaced=1:tff=1",
                 expect=ok(None, size=(32, 32), sampled=2)),
        ]
        inputs = [*lavfi(TESTSRC), *lavfi(MARKER), *lavfi(color(CANARY_RGB)), *lavfi(color(SECRET_RGB))]
        return self._collect(encode_all(inputs, outs, self.have, self.c.skipped))

    def case_other_codecs(self) -> dict:
        """Sources for the codec x container matrix, 10-bit HEVC, alpha, interlaced MPEG-2, a JPEG image."""
        w, at, size = self.work, self.at, (32, 24)
        outs = [
            vout("src_hevc", w / "src_hevc.mkv", *HEVC, "-pix_fmt", "yuv420p"),
            vout("src_vp9", w / "src_vp9.mkv", *VP9), vout("src_av1", w / "src_av1.mkv", *AV1),
            vout("src_mpeg4", w / "src_mpeg4.mkv", *MPEG4),
            vout("hevc_10bit", at("hevc_10bit.mkv"), *HEVC, "-pix_fmt", "yuv420p10le", expect=ok(size=size)),
            vout("alpha_vp9", at("alpha_vp9.webm"), "-vf", "format=yuva420p", *VP9, expect=ok(size=size)),
            vout("alpha_qtrle", at("alpha_qtrle.mov"), "-vf", "format=argb", "-c:v", "qtrle", expect=ok(size=size)),
            vout("alpha_prores4444", at("alpha_prores4444.mov"), "-vf", "format=yuva444p10le", "-c:v", "prores_ks",
                 "-profile:v", "4444", expect=ok(size=size)),
            vout("interlaced_mpeg2", at("interlaced_mpeg2.mpg"), "-vf", "scale=32:32,setsar=1", "-c:v", "mpeg2video",
                 "-flags", "+ildct+ilme", "-top", "1", "-q:v", "4", expect=ok(None, size=(32, 32), sampled=2)),
            vout("jpeg", w / "frame.jpg", "-c:v", "mjpeg", "-f", "image2", "-update", "1", frames=1),
        ]
        return self._collect(encode_all(lavfi(TESTSRC), outs, self.have, self.c.skipped))

    def case_huge(self) -> dict:
        """One solid 8192x8192 frame (64 Mpx): cheap to store, must be refused by --max-pixels before decoding."""
        path = self.at("huge_8192x8192.mp4")
        ffmpeg(*lavfi("color=c=0x336699:size=8192x8192:rate=1"), "-frames:v", "1", *X264, "-pix_fmt", "gray", str(path))
        return {"huge_8192x8192": (path, bad("pixel", size=(8192, 8192), probe="ok"))}

    def case_no_video(self) -> dict:
        srt = self.work / "subs.srt"
        srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nnot a video\n")
        audio, subs = self.at("audio_only.mp4"), self.at("subtitle_only.mkv")
        ffmpeg(*lavfi("sine=duration=0.5"), "-i", str(srt), "-map", "0:a", "-c:a", "aac", str(audio),
               "-map", "1:s", "-c:s", "srt", str(subs))
        return {"audio_only": (audio, bad("no video stream")), "subtitle_only": (subs, bad("no video stream"))}

    # -- phase 2: derived from the work sources

    def case_matrix(self) -> dict:
        """VP9, HEVC, AV1 and MPEG-4 part 2 remuxed into every container that takes them."""
        made: list[Out] = []
        for codec in MATRIX_CODECS:
            outs = [Out(f"{codec}_{ext[1:]}", self.at(codec + ext), [], ok(size=(32, 24))) for ext in CONTAINERS]
            if f"src_{codec}" not in self.src:
                for o in outs:
                    self.c.skipped[o.key] = self.c.skipped.get(f"src_{codec}", "no source")
                continue
            # AVI wants HEVC as Annex B with its fourcc spelled out (ffmpeg 5.1 writes a zero tag otherwise)
            avi = [o for o in outs if codec == "hevc" and o.path.suffix == ".avi"]
            made += remux_all(self.src[f"src_{codec}"], [o for o in outs if o not in avi], self.c.skipped)
            for o in avi:
                try:
                    ffmpeg("-i", str(self.src["src_hevc"]), "-map", "0:v", "-c", "copy", "-bsf:v", "hevc_mp4toannexb",
                           "-tag:v", "HEVC", str(o.path))
                    made.append(o)
                except BuildSkip as err:
                    self.c.skipped[o.key] = str(err)
        for o in [o for o in made if o.path.suffix == ".avi"]:  # AVI fourccs are where muxing quietly goes wrong
            got = ffprobe_value(o.path, "codec_name")
            if got != o.key.split("_")[0]:
                self.c.skipped[o.key] = f"ffmpeg's avi muxer stores it so that it reads back as {got or 'nothing'}"
                made.remove(o)
                o.path.unlink()
        return self._collect(made)

    def case_rotation(self) -> dict:
        """The 48x32 marker video with rotate tags; where the marker must show comes from ffmpeg's autorotate."""
        tags = (0, 90, 180, 270)
        paths = [self.at(f"rotate_{t}.mp4") for t in tags]
        tagged = [("-map", "0:v", "-c", "copy", "-metadata:s:v:0", f"rotate={t}", str(p)) for t, p in zip(tags, paths)]
        ffmpeg("-i", str(self.src["marker"]), *[a for args in tagged for a in args])
        refs = [self.work / f"rotate_{t}.ppm" for t in tags]
        ffmpeg(*[a for p in paths for a in ("-i", str(p))],
               *[a for i, r in enumerate(refs) for a in ("-map", f"{i}:v", "-frames:v", "1", "-update", "1", str(r))])
        out = {}
        for t, p, r in zip(tags, paths, refs):
            width, height, corner = reference_corner(r.read_bytes(), p.name)
            out[f"rotate_{t}"] = (p, ok(size=(width, height), marker=corner))
        return out

    def case_truncated(self) -> dict:
        data = self.src["base30_mp4"].read_bytes()  # faststart: the index (claiming 30 frames) comes first
        mdat = data.find(b"mdat") - 4
        mid_mp4 = self._write("truncated_mid.mp4", data[: mdat + int((len(data) - mdat) * 0.7)])
        mkv = self.src["base30_mkv"].read_bytes()
        cluster = mkv.find(bytes.fromhex("1F43B675"))
        mid_mkv = self._write("truncated_mid.mkv", mkv[: cluster + int((len(mkv) - cluster) * 0.6)])
        plain = self.src["base_mp4"].read_bytes()  # moov at the end: cut right before it
        return {
            "truncated_mid_mp4": (mid_mp4, ok(None, size=(32, 24), claims_frames=30)),
            "truncated_mid_mkv": (mid_mkv, ok(None, size=(32, 24), claims_frames=30)),
            "truncated_header_mkv": (self._write("truncated_header.mkv", mkv[:60]), bad(*NOT_A_VIDEO)),
            "truncated_no_moov_mp4": (self._write("truncated_no_moov.mp4", plain[: plain.rfind(b"moov") - 4]),
                                      bad(*NOT_A_VIDEO)),
        }

    def case_lies(self) -> dict:
        """Containers that claim 1000x the real duration (mvhd/tkhd/mdhd, Matroska Duration)."""
        mp4 = bytearray(self.src["base_mp4"].read_bytes())
        for box, offset in ((b"mvhd", 20), (b"tkhd", 24), (b"mdhd", 20)):  # version-0 boxes: 32-bit durations
            i = mp4.find(box)
            if i < 0 or mp4[i + 4] != 0:
                raise BuildSkip(f"unexpected {box.decode()} box layout")
            (old,) = struct.unpack(">I", mp4[i + offset: i + offset + 4])
            mp4[i + offset: i + offset + 4] = struct.pack(">I", old * 1000)
        mkv = bytearray(self.src["base_mkv"].read_bytes())
        i = mkv.find(b"\x44\x89\x88")  # Segment Info Duration as an 8-byte float (milliseconds)
        if i < 0:
            raise BuildSkip("no 8-byte Matroska Duration element found")
        (old_ms,) = struct.unpack(">d", mkv[i + 3: i + 11])
        mkv[i + 3: i + 11] = struct.pack(">d", old_ms * 1000)
        return {"lies_duration_mp4": (self._write("lies_duration.mp4", bytes(mp4)), ok(size=(32, 24))),
                "lies_duration_mkv": (self._write("lies_duration.mkv", bytes(mkv)), ok(size=(32, 24)))}

    def case_names(self) -> dict:
        """Copies of the base video under hostile names, and one inside a directory named like a video."""
        names: dict[str, bytes] = {
            "good_h264": b"good_h264.mp4",
            "name_spaces": b"name with  spaces.mp4",
            "name_unicode": "ünïcødé 视频 🎞.mp4".encode(),
            "name_quotes": b"quote's \"double\".mp4",
            "name_shell": b"$(touch PWNED_subst);`touch PWNED_tick`;x.mp4",
            "name_dash": b"-rf.mp4",
            "name_dashdash": b"--help.mp4",
            "name_percent": b"percent%03d.mp4",
            "name_protocol": b"concat:looks-like-a-protocol.mp4",
            "name_latin1": b"latin1-\xe9t\xe9.mp4",  # not valid UTF-8
        }
        out = {}
        for key, raw in names.items():
            shutil.copyfile(self.src["base_mp4"], self.at(raw))
            out[key] = (self.at(raw), ok(size=(32, 24)))
        (self.c.root / "dir.mp4").mkdir()
        nested = self.c.root / "dir.mp4" / "nested.mp4"
        shutil.copyfile(self.src["base_mp4"], nested)
        out["dir_named_mp4_nested"] = (nested, ok(size=(32, 24)))
        loop = self.c.root / "loopdir"
        loop.mkdir()
        os.symlink("..", loop / "up")  # loopdir/up/loopdir/up/... must not be walked
        shutil.copyfile(self.src["base_mp4"], loop / "inner.mp4")
        out["loopdir_inner"] = (loop / "inner.mp4", ok(size=(32, 24)))
        return out

    def case_junk(self) -> dict:
        """Files that are not videos at all (the JPEG comes from the work sources when it was made)."""
        out = {
            "empty": (self._write("empty.mp4", b""), bad("empty")),
            "empty_nonutf8_name": (self._write(b"broken-\xff\xfe.mp4", b""), bad("empty")),
            "text": (self._write("text.mp4", b"This is not a video.\n" * 20), bad(*NOT_A_VIDEO)),
            "image_png": (self._write("image_png.mp4", tiny_png()), bad(*NOT_A_VIDEO)),
            "no_streams": (self._write("no_streams.mp4", mp4_without_tracks()), bad(*NOT_A_VIDEO)),
        }
        if "jpeg" in self.src:
            out["image_jpeg"] = (self._write("image_jpeg.mkv", self.src["jpeg"].read_bytes()), bad(*NOT_A_VIDEO))
        return out

    # -- phase 0: no ffmpeg needed

    def case_playlists(self) -> dict:
        """Playlists and concat scripts under video extensions, all pointing at the canary and the listener."""
        canary, url = str(self.c.canary), f"http://127.0.0.1:{self.c.port}/x.ts"
        hls = (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:1.0,\n{canary}\n#EXTINF:1.0,\n"
               f"file:{canary}\n#EXTINF:1.0,\n{url}\n#EXT-X-ENDLIST\n")
        texts = {
            "playlist_hls.mp4": hls,
            "playlist_hls.ts": hls.replace(f"\n{canary}\n", f"\n{url}\n"),
            "playlist_ffconcat.mkv": f"ffconcat version 1.0\nfile '{canary}'\nfile '{url}'\n",
            "playlist_concat.avi": f"concat:{canary}|{canary}\n",
            "playlist_subfile.mov": f"subfile,,start,0,end,0,,:{canary}\n",
            "playlist_url.webm": f"{url}\n",
        }
        return {name.replace(".", "_"): (self._write(name, text.encode()), bad(*NOT_A_VIDEO))
                for name, text in texts.items()}

    def case_special(self) -> dict:
        """A FIFO, devices, symlinks out of the corpus, dangling and self-referencing links."""
        out = {}
        os.mkfifo(self.at("fifo.mp4"))
        out["fifo"] = (self.at("fifo.mp4"), bad(*NOT_REGULAR))
        for name, target in (("dev_zero.mp4", "/dev/zero"), ("dev_urandom.mp4", "/dev/urandom")):
            os.symlink(target, self.at(name))
            out[name.split(".")[0]] = (self.at(name), bad(*NOT_REGULAR))
        try:
            os.mknod(self.at("dev_null_node.mp4"), 0o644 | stat.S_IFCHR, os.makedev(1, 3))
            out["dev_null_node"] = (self.at("dev_null_node.mp4"), bad(*NOT_REGULAR))
        except OSError as err:
            self.c.skipped["dev_null_node"] = f"mknod of a character device failed ({err.strerror}; needs root)"
        os.symlink(self.c.secret, self.at("escape.mp4"))
        out["escape"] = (self.at("escape.mp4"), bad("outside"))
        os.symlink(self.c.secret.parent, self.at("outside_link"))  # a directory link out: must not be followed
        os.symlink("no-such-target.mp4", self.at("dangling.mp4"))
        out["dangling"] = (self.at("dangling.mp4"), bad("no such file", "cannot stat", "does not exist", "missing"))
        os.symlink("selfloop.mp4", self.at("selfloop.mp4"))
        out["selfloop"] = (self.at("selfloop.mp4"), bad("symbolic links", "loop", "cannot stat"))
        return out

    def _write(self, name: str | bytes, data: bytes) -> Path:
        path = self.at(name)
        path.write_bytes(data)
        return path


def reference_corner(ppm: bytes, name: str) -> tuple[int, int, str]:
    """(W, H, corner) of the red marker in a binary PPM frame (ffmpeg's own autorotated rendering)."""
    magic, dims, _maxval, pixels = ppm.split(b"\n", 3)
    width, height = map(int, dims.split())
    spots = {"tl": (2, 2), "tr": (width - 3, 2), "bl": (2, height - 3), "br": (width - 3, height - 3)}
    red = [k for k, (x, y) in spots.items() if is_red(pixels[3 * (y * width + x): 3 * (y * width + x) + 3])]
    if magic != b"P6" or len(red) != 1:
        raise BuildSkip(f"marker not found in exactly one corner of {name} ({red})")
    return width, height, red[0]


def is_red(rgb: bytes | tuple) -> bool:
    """A pixel close to the marker colour."""
    r, g, b = (int(v) for v in rgb)
    return r > 150 and g < 100 and b < 100


def corner_of(frame: object) -> list[str]:
    """Corners (tl/tr/bl/br) of an (H, W, 3) array whose pixel 2 px in is red."""
    h, w = frame.shape[:2]  # type: ignore[attr-defined]
    spots = {"tl": (2, 2), "tr": (2, w - 3), "bl": (h - 3, 2), "br": (h - 3, w - 3)}
    return [k for k, (y, x) in spots.items() if is_red(frame[y, x])]  # type: ignore[index]


def tiny_png() -> bytes:
    """An 8x8 grey PNG."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + b"\x80" * 24 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def mp4_without_tracks() -> bytes:
    """A well-formed MP4 (ftyp + moov/mvhd) that has no streams at all."""
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = box(b"mvhd", bytes(4) + struct.pack(">IIII", 0, 0, 1000, 0) + struct.pack(">IH", 0x10000, 0x100)
               + bytes(10) + matrix + bytes(24) + struct.pack(">I", 1))
    return box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41") + box(b"moov", mvhd)


# ---------------------------------------------------------------------------------------------------- entry


REQUIRED = ("good_h264", "empty", "fifo", "playlist_hls_mp4", "vfr_mkv", "rotate_90", "huge_8192x8192")


def build_corpus(base: Path, *, port: int) -> Corpus:
    """Build every case under ``base`` (see the module docstring); cases that cannot be made here are skipped."""
    corpus = Corpus(base=base, root=base / "corpus", canary=base / "outside" / "canary.mp4",
                    secret=base / "outside" / "secret.mp4", port=port)
    corpus.root.mkdir(parents=True)
    corpus.canary.parent.mkdir()
    b = _Builder(corpus)
    steps: list[tuple[str, Callable[[], dict]]] = [("playlists", b.case_playlists), ("special", b.case_special)]
    results = [_run_step(corpus, name, fn) for name, fn in steps]
    with ThreadPoolExecutor(4) as pool:  # the huge frame is the slowest: start it first
        phase1 = [(n, pool.submit(_run_step, corpus, n, f)) for n, f in (
            ("huge", b.case_huge), ("x264", b.case_x264), ("other_codecs", b.case_other_codecs),
            ("no_video", b.case_no_video))]
        for n, fut in phase1[1:]:
            results.append(fut.result())
        phase2 = [pool.submit(_run_step, corpus, n, f) for n, f in (
            ("matrix", b.case_matrix), ("rotation", b.case_rotation), ("truncated", b.case_truncated),
            ("lies", b.case_lies), ("names", b.case_names), ("junk", b.case_junk))]
        results += [fut.result() for fut in phase2] + [phase1[0][1].result()]
    for part in results:
        for name, (path, expect) in part.items():
            rel = os.path.relpath(os.fsencode(path), os.fsencode(corpus.root))
            corpus.cases[name] = Case(str(path), expect, display_path(rel))
    missing = [n for n in REQUIRED if n not in corpus.cases] + [p.name for p in (corpus.canary, corpus.secret)
                                                                  if not p.is_file()]
    if missing:
        raise RuntimeError(f"hostile corpus: required files were not built: {missing}; skipped: {corpus.skipped}")
    return corpus


def _run_step(corpus: Corpus, name: str, fn: Callable[[], dict]) -> dict:
    """One builder step; a BuildSkip (or a missing work source) skips the whole step with its reason."""
    try:
        return fn()
    except BuildSkip as err:
        corpus.skipped[name] = str(err)
    except KeyError as err:
        corpus.skipped[name] = f"work source {err} was not built: {corpus.skipped.get(str(err).strip(chr(39)), '?')}"
    return {}


__all__ = ["Case", "Corpus", "Expect", "LoopbackListener", "build_corpus", "corner_of", "display_path",
           "kept_at_fps"]
