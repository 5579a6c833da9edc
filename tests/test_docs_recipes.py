"""The loading recipes of docs/format.md run as written: each code block after a ``<!-- recipe: NAME -->`` marker
is executed in a folder holding ``OUT/`` (HDF5 frame shards of a labelled split) and ``OUT_mp4/`` (the same as mp4
clips). A recipe that raises, or a marker without a python block, fails the test.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from clihelp import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "format.md"
RECIPE_RE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```python\n(.*?)\n```", re.S)
EXPECTED = {"ddp", "resume", "sampler", "collate", "parquet", "videofolder"}


def recipes() -> dict[str, str]:
    """name -> code of every marked recipe in docs/format.md."""
    text = DOC.read_text(encoding="utf-8")
    found = dict(RECIPE_RE.findall(text))
    assert len(found) == len(re.findall(r"<!-- recipe: [\w-]+ -->", text)), "a recipe marker is not followed by a ```python block"
    return found


def test_the_doc_has_every_recipe() -> None:
    assert set(recipes()) == EXPECTED


@pytest.fixture(scope="module")
def workdir(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with OUT/ (h5) and OUT_mp4/ from videos/{cat,dog}/{0,1}.mp4 in clips of 4 frames."""
    root = tmp_path_factory.mktemp("recipes")
    for k, src in enumerate(["testsrc2", "mandelbrot", "smptebars", "testsrc"]):
        cls = ("cat", "dog")[k % 2]
        (root / "videos" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(make_video(f"recipe_{k}.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.8),
                    root / "videos" / cls / f"{k}.mp4")
    args = ("--label-from-dir", "--clip-frames", "4", "--executor", "serial", "-q")
    for out, fmt in (("OUT", "h5"), ("OUT_mp4", "mp4")):
        result = cli("split", root / "videos", "-o", root / out, "--format", fmt, *args)
        assert result.exit_code == 0, result.output
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_runs(name: str, workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = recipes()[name]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for out in ("OUT", "OUT_mp4"):
        (run_dir / out).symlink_to(workdir / out)
    monkeypatch.chdir(run_dir)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # datasets' cache stays in the test's folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # what torchrun would set for a one-process group
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    namespace: dict = {"__name__": f"recipe_{name}"}
    exec(compile(code, f"docs/format.md:{name}", "exec"), namespace)
    if name == "collate":
        assert namespace["clips"].shape[0] == 8 and namespace["mask"].dtype.is_floating_point is False
    if name == "parquet":
        assert namespace["clip"]["label_name"] == "cat"
    if name == "videofolder":
        assert tuple(namespace["frames"].shape) == (4, 3, 48, 64) and namespace["paths"].endswith(".mp4")
