"""The library API: `import vidprep` stays light, and `vidprep.run` gives the same outputs as the CLI (compared with
the golden harness's digest: every dataset, attribute, index and manifest entry except times)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import golden
from clihelp import cli


def _digest(out: Path) -> dict:
    golden._ROOT[:] = [str(out)]
    return golden.digest_output(out)


@pytest.fixture(scope="module")
def corpus(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api")
    for i, src in enumerate(("testsrc2", "mandelbrot")):
        path = make_video(f"api_{i}.mp4", source=f"{src}=size=64x48:rate=25", seconds=1.0)
        (root / f"v{i}.mp4").write_bytes(path.read_bytes())
    return root


def test_import_is_light_and_exports_the_api() -> None:
    code = ("import sys, vidprep\n"
            "heavy = [m for m in ('torch', 'cv2', 'h5py', 'albumentations') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert {'run', 'RunConfig', 'probe', 'ShardSet', '__version__'} <= set(dir(vidprep))\n"
            "assert vidprep.RunConfig.__name__ == 'RunConfig' and vidprep.ShardSet.__name__ == 'ShardSet'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("tables, args", [
    ({"split": {"clip_frames": 4, "stride": 6, "size": 32}, "enhance": {"contrast": "autolevels"}},
     ["enhance", "--clip-frames", "4", "--stride", "6", "--size", "32", "--contrast", "autolevels"]),
    ({"split": {"size": 32}, "features": {"model": "resnet18", "weights": "none"}, "run": {"seed": 1}},
     ["features", "--size", "32", "--model", "resnet18", "--weights", "none", "--seed", "1"]),
])
def test_api_and_cli_give_identical_outputs(corpus: Path, tmp_path: Path, tables: dict, args: list[str]) -> None:
    import vidprep

    summary = vidprep.run(tables, corpus, tmp_path / "api", executor="serial")
    assert summary.exit_code == 0 and len(summary.shards) == 1
    res = cli(args[0], corpus, "-o", tmp_path / "cli", *args[1:], "--executor", "serial")
    assert res.exit_code == 0, res.stderr
    problems = golden.diff(_digest(tmp_path / "cli"), _digest(tmp_path / "api"))
    assert not problems, problems[:10]
    assert vidprep.ShardSet(tmp_path / "api").videos() == ["v0.mp4", "v1.mp4"]


def test_the_example_in_docs_api_runs() -> None:
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "['clip.mp4'] 6" in proc.stdout
