"""Synthetic shot-boundary corpus with known truth, made with ffmpeg's lavfi sources (deterministic, seeded).

Each video is a chain of shots (varied sources, each with its own motion: scrolling, zooming, rotating, panning,
hue drift, cellular automata) joined by hard cuts (``concat``) or gradual transitions (``xfade``: dissolves,
fades, wipes, slides, circle opens, fades through black and white, 0.5-2 s). Some shots carry 1-3-frame white
flashes or are a fast pan; those are *not* boundaries and are listed separately so the harness can count false
cuts on them. One variant is made variable-frame-rate by dropping frames (every 7th and 11th), with the truth
remapped onto the decoded ordinals.

Truth, in decoded-frame ordinals: a hard cut is the first frame of the new shot; a gradual transition is the
inclusive range of blended frames ``[first, last]``. ``gradients`` is not used: ffmpeg 5.1 ignores its seed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

RATE = 25
W, H = 320, 180

SOURCES = {
    "testsrc2": f"testsrc2=size={W}x{H}:rate={RATE}",
    "mandelbrot": f"mandelbrot=size={W}x{H}:rate={RATE}:start_scale=2.5:end_scale=0.3",
    "smptebars": f"smptebars=size={W}x{H}:rate={RATE},scroll=horizontal=0.004",
    "life": f"life=size={W // 2}x{H // 2}:rate={RATE}:seed=7:ratio=0.35:mold=12:life_color=#40e040:"
            f"death_color=#802020:mold_color=#203080,scale={W}:{H}:flags=neighbor",
    "cellauto": f"cellauto=size={W}x{H}:rate={RATE}:seed=11:rule=110:scroll=1,hue=h=t*60:s=1.5,"
                "colorchannelmixer=rr=0.4:bb=0.9",
    "rgbtestsrc": f"rgbtestsrc=size={W}x{H}:rate={RATE},rotate=a=t*0.4:fillcolor=0x303060",
    "sierpinski": f"sierpinski=size={W}x{H}:rate={RATE}:seed=5:jump=3:type=carpet,hue=h=120",
    "yuvtestsrc": f"yuvtestsrc=size={W}x{H}:rate={RATE},scroll=vertical=0.01",
    "colorspectrum": f"colorspectrum=size={W}x{H}:rate={RATE}:type=all,scroll=horizontal=0.01",
    "testsrc_zoom": f"testsrc=size={2 * W}x{2 * H}:rate={RATE},crop=w='{2 * W}-n*4':h='{2 * H}-n*2.25',"
                    f"scale={W}:{H}",
    "pan": f"mandelbrot=size={4 * W}x{H}:rate={RATE}:start_scale=1.2:end_scale=1.2,crop={W}:{H}:x='n*18':y=0",
}
"""Shot sources: every one moves, so a shot is never a still picture (except what a cellular automaton does)."""


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
        "hardcuts": [Shot("testsrc2", 2.0), cut, Shot("mandelbrot", 1.6), cut, Shot("smptebars", 1.2), cut,
                     Shot("life", 2.0, flashes=[(20, 21)]), cut, Shot("cellauto", 1.4), cut, Shot("rgbtestsrc", 1.8),
                     cut, Shot("sierpinski", 1.0), cut, Shot("yuvtestsrc", 1.5), cut, Shot("colorspectrum", 1.2)],
        "gradual": [Shot("testsrc2", 2.0), Join("fade", 1.0), Shot("mandelbrot", 2.5), Join("fadeblack", 1.0),
                    Shot("rgbtestsrc", 3.5), Join("wipeleft", 1.5), Shot("colorspectrum", 3.0),
                    Join("fadewhite", 0.5), Shot("sierpinski", 3.5), Join("dissolve", 2.0), Shot("yuvtestsrc", 3.5),
                    Join("slideleft", 1.0), Shot("smptebars", 3.5), Join("circleopen", 1.5), Shot("testsrc_zoom", 2.5)],
        "mixed": [Shot("yuvtestsrc", 1.5), cut, Shot("pan", 2.0), cut, Shot("testsrc2", 2.0, flashes=[(15, 15)]),
                  Join("dissolve", 1.0), Shot("life", 2.0), cut, Shot("mandelbrot", 2.0, flashes=[(25, 27)]),
                  Join("wiperight", 0.8), Shot("cellauto", 1.6), cut, Shot("testsrc_zoom", 2.0),
                  Join("fadeblack", 1.5), Shot("colorspectrum", 2.0)],
    }


def _graph(items: list[Shot | Join]) -> tuple[str, Truth]:
    """An ffmpeg filter graph producing ``[out]`` for the chain, and its truth at the constant rate."""
    parts: list[str] = []
    truth = Truth(frames=0)
    acc, length, join = "", 0, None  # length in frames so far
    for k, item in enumerate(items):
        if isinstance(item, Join):
            join = item
            continue
        n = round(item.seconds * RATE)
        chain = f"{SOURCES[item.source]},trim=end_frame={n},setpts=N/({RATE}*TB),format=yuv420p"
        for a, b in item.flashes:
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
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, Truth]] = {}
    for name, items in _plan().items():
        graph, truth = _graph(items)
        path = folder / f"{name}.mp4"
        if not path.exists():
            _encode(graph, path, [])
        out[name] = (path, truth)
    graph, truth = _graph(_plan()["mixed"])
    expr, vfr_truth = _vfr(truth)
    path = folder / "mixed_vfr.mkv"
    if not path.exists():
        _encode(graph.replace("null[out]", f"{expr}[out]"), path, ["-fps_mode", "vfr"])
    out["mixed_vfr"] = (path, vfr_truth)
    (folder / "truth.json").write_text(json.dumps({k: asdict(t) for k, (_, t) in out.items()}, indent=1))
    return out
