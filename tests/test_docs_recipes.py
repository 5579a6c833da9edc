"""The loading recipes of docs/format.md run as written: each code block after a ``<!-- recipe: NAME -->`` marker
is executed in a folder holding ``OUT/`` (HDF5 frame shards of a labelled split), ``OUT_mp4/`` (the same as
mp4 clips) and ``OUT_wds/``, ``OUT_wds_mp4/`` (the same as WebDataset tars of jpg / mp4 samples). A recipe that
raises, or a marker without a python block, fails the test.
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
EXPECTED = {"ddp", "resume", "sampler", "collate", "parquet", "videofolder", "webdataset", "wds-datasets", "wds-mp4"}
OUTS = {"OUT": ("--format", "h5"), "OUT_mp4": ("--format", "mp4"), "OUT_wds": ("--format", "wds"),
        "OUT_wds_mp4": ("--format", "wds", "--wds-media", "mp4")}


def recipes() -> dict[str, str]:
    """name -> code of every marked recipe in docs/format.md."""
    text = DOC.read_text(encoding="utf-8")
    found = dict(RECIPE_RE.findall(text))
    markers = re.findall(r"<!-- recipe: [\w-]+ -->", text)
    assert len(found) == len(markers), "a recipe marker is not followed by a ```python block"
    return found


def test_the_doc_has_every_recipe() -> None:
    assert set(recipes()) == EXPECTED


@pytest.fixture(scope="module")
def workdir(make_video: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with OUT/ (h5), OUT_mp4/ and OUT_wds*/ from videos/{cat,dog}/{0,1}.mp4 in clips of 4 frames."""
    root = tmp_path_factory.mktemp("recipes")
    for k, src in enumerate(["testsrc2", "mandelbrot", "smptebars", "testsrc"]):
        cls = ("cat", "dog")[k % 2]
        (root / "videos" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(make_video(f"recipe_{k}.mp4", source=f"{src}=size=64x48:rate=25", seconds=0.8),
                    root / "videos" / cls / f"{k}.mp4")
    args = ("--label-from-dir", "--clip-frames", "4", "--executor", "serial", "-q")
    for out, fmt in OUTS.items():
        result = cli("split", root / "videos", "-o", root / out, *fmt, *args)
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
    for out in OUTS:
        (run_dir / out).symlink_to(workdir / out)
    monkeypatch.chdir(run_dir)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # datasets' cache stays in the test's folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # what torchrun would set for a one-process group
    env = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    namespace: dict = {"__name__": f"recipe_{name}"}
    exec(compile(code, f"docs/format.md:{name}", "exec"), namespace)
    if name == "collate":
        assert namespace["clips"].shape[0] == 8 and namespace["mask"].dtype.is_floating_point is False
    if name == "parquet":
        assert namespace["clip"]["label_name"] == "cat"
    if name in ("webdataset", "wds-datasets"):
        assert namespace["frames"].shape == (4, 48, 64, 3)
    if name == "webdataset":
        assert tuple(namespace["clips"].shape) == (8, 4, 48, 64, 3) and namespace["meta"]["label_name"] == "cat"
    if name == "wds-datasets":
        assert namespace["name"] == "cat" and namespace["label"] == 0
    if name == "wds-mp4":
        assert tuple(namespace["frames"].shape) == (4, 3, 48, 64) == (namespace["sample"]["json"]["frames"], 3, 48, 64)
    if name == "videofolder":
        assert tuple(namespace["frames"].shape) == (4, 3, 48, 64) and namespace["paths"].endswith(".mp4")
