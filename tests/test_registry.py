"""The stage registry and the step protocols: every stage registered whole, every list of stage names derived from
the registry, and the worker composing whatever steps a registry entry builds (a fake stage, end to end)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Optional
from pathlib import Path

import h5py
import numpy as np
import pytest
from pydantic import BaseModel

from clihelp import cli
from vidprep.config import RunConfig
from vidprep.engine.registry import OUTPUT_OPTIONS, REGISTRY, BuildEnv, build_steps, stage_names
from vidprep.engine.stage_options import OptionSpec
from vidprep.engine.steps import Chunk, ClipStep, FrameStep, Observer, RowStep, Steps, Video
from vidprep.types import ClipRow


def test_every_stage_has_config_options_builder_and_help() -> None:
    assert stage_names()[0] == "split"
    for name, entry in REGISTRY.items():
        assert entry.name == name
        assert issubclass(entry.config, BaseModel)
        assert entry.options and all(isinstance(o, OptionSpec) for o in entry.options)
        unknown = {o.name for o in entry.options} - set(entry.config.model_fields)
        assert not unknown, f"{name}: options that are not config keys: {unknown}"
        assert callable(entry.build) and "Examples:" in entry.help


def test_every_list_of_stage_names_is_the_registry() -> None:
    from vidprep.cli.app import app

    fields = RunConfig.model_fields
    assert [f for f in fields if f in REGISTRY] == list(stage_names())
    for name, entry in REGISTRY.items():  # each RunConfig stage field holds that stage's config model
        assert entry.config in (fields[name].annotation, *getattr(fields[name].annotation, "__args__", ()))
    assert set(stage_names()) <= {c.name for c in app.registered_commands}
    full = RunConfig(**{n: REGISTRY[n].config() for n in stage_names()})
    assert full.stages() == list(stage_names()[1:])


def test_cli_option_groups_and_help_come_from_the_registry() -> None:
    res = cli("split", "--help")
    assert res.exit_code == 0
    for spec in (*REGISTRY["split"].options, *OUTPUT_OPTIONS):
        assert spec.flags[0].split("/")[0] in res.stdout
    res = cli("run", "--help")
    assert all(f"[{name}]" in res.stdout for name in (*stage_names(), "run"))


class _FakeConfig(BaseModel):
    factor: int = 2


def test_a_registered_fake_stage_is_a_known_pipeline_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidprep.config_tables import load_toml
    from vidprep.errors import ConfigError

    path = tmp_path / "p.toml"
    path.write_text("[split]\nfps = 1\n[fake]\nfactor = 3\n")
    with pytest.raises(ConfigError, match=r"unknown stage table \[fake\]"):
        load_toml(path)
    option = OptionSpec("factor", Optional[int], ("--factor",), "Fake factor.", "Fake")
    entry = dataclasses.replace(REGISTRY["enhance"], name="fake", config=_FakeConfig, options=(option,),
                                help="A fake stage.\n\nExamples:\n\n  vidprep fake v/ -o o/ --factor 3\n")
    monkeypatch.setitem(REGISTRY, "fake", entry)
    assert stage_names()[-1] == "fake"
    assert load_toml(path)["fake"] == {"factor": 3}
    # the stage commands come from the registry: a command for the new stage, with every earlier group and its own
    import typer
    from typer.testing import CliRunner

    from vidprep.cli import stage_cmds

    app = typer.Typer()
    stage_cmds.register(app)
    fake_help = CliRunner().invoke(app, ["fake", "--help"]).stdout
    assert all(flag in fake_help for flag in ("--factor", "--contrast", "--fps", "--format", "A fake stage"))
    assert "--factor" not in CliRunner().invoke(app, ["split", "--help"]).stdout


class CountFrames(Observer):
    """A fake frame step: counts the frames pushed and stores one per-video array."""

    name = "count"
    stage = "split"
    stored: tuple[str, ...] = ("fake_count",)

    def start(self, video: Video) -> None:
        self.seen: list[int] = []
        self.started_with = video.video_id

    def push(self, chunk: Chunk) -> Chunk:
        self.seen.append(len(chunk[0]))
        return chunk

    def finish(self) -> dict[str, np.ndarray]:
        return {"fake_count": np.asarray([sum(self.seen)], np.int64), "not_stored": np.zeros(3)}


class Invert(CountFrames):
    """A fake pixel-changing frame step (registered after the observer: it must still run first)."""

    name = "invert"
    transforms = True
    stored = ()

    def push(self, chunk: Chunk) -> Chunk:
        rgb, pts, idx = chunk
        return 255 - rgb, pts, idx


class LabelByCount(RowStep):
    """A fake clip step: every row gets the frame count the frame step found as its label."""

    name = "label"
    stage = "split"

    def apply(self, video: Video, rows: list[ClipRow]) -> list[ClipRow]:
        count = int(video.arrays["count"]["fake_count"][0])
        return [dataclasses.replace(r, label=count) for r in rows]


def test_step_protocols_are_structural() -> None:
    frame: FrameStep = CountFrames()
    clip: ClipStep = LabelByCount()
    assert not frame.transforms and Invert().transforms and not clip.rereads
    assert Steps([frame, Invert()], [clip]).ordered().frame[0].name == "invert"
    video = Video("v", None, pts=np.arange(4.0), idx=np.arange(4))
    frame.start(video)
    chunk = (np.zeros((4, 2, 2, 3), np.uint8), np.arange(4.0), np.arange(4))
    assert frame.push(chunk) is chunk
    video.arrays["count"] = frame.finish()
    rows = clip.apply(video, [ClipRow(0, 4, 0, 0.0, 0.4, 0)])
    assert [r.label for r in rows] == [4]


def test_the_worker_composes_a_registered_fake_stage(make_video: Callable[..., Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage is a registry entry whose builder returns steps: the worker runs them with no change of its own."""
    import vidprep
    from vidprep.engine import worker

    video = make_video("registry.mp4", source="testsrc2=size=64x48:rate=25", seconds=1.0)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "r.mp4").write_bytes(video.read_bytes())
    split = REGISTRY["split"]

    def build(config: RunConfig, env: BuildEnv) -> Steps:
        return split.build(config, env).extend(Steps([CountFrames(), Invert()], [LabelByCount()]))

    monkeypatch.setitem(REGISTRY, "split", dataclasses.replace(split, build=build))
    monkeypatch.setattr(worker, "_CONTEXTS", {})
    assert [s.name for s in build_steps(RunConfig()).frame][:1] == ["invert"]
    tables = {"split": {"fps": 5, "clip_frames": 2, "metrics": False}, "run": {"seed": 4321}}
    summary = vidprep.run(tables, tmp_path / "in", tmp_path / "out", executor="serial")
    assert summary.exit_code == 0
    plain = tmp_path / "plain"
    monkeypatch.setitem(REGISTRY, "split", split)
    monkeypatch.setattr(worker, "_CONTEXTS", {})
    assert vidprep.run(tables, tmp_path / "in", plain, executor="serial").exit_code == 0
    (shard,) = sorted((tmp_path / "out").glob("shard-*.h5"))
    (base,) = sorted(plain.glob("shard-*.h5"))
    with h5py.File(shard, "r") as f, h5py.File(base, "r") as g:
        n = f["frames/0/pts_s"].shape[0]
        assert n == 5 and f["frames/0/fake_count"][()].tolist() == [n]
        assert "not_stored" not in f["frames/0"] and "fake_count" not in g["frames/0"]
        assert np.array_equal(f["frames/0/rgb"][()], 255 - g["frames/0/rgb"][()])  # inverted before storing
        assert f["clips/label"][()].tolist() == [n] * len(g["clips/label"][()])


# ------------------------------------------------------------------------------------------------- OutputConfig


def test_output_options_live_in_output_config_and_old_split_tables_still_work(tmp_path: Path) -> None:
    from vidprep.config import OutputConfig, SplitConfig
    from vidprep.config_tables import load_toml, run_config_from
    from vidprep.engine.sinks import output_format
    from vidprep.errors import ConfigError

    assert {o.name for o in OUTPUT_OPTIONS} == set(OutputConfig.model_fields)
    assert not set(OutputConfig.model_fields) & set(SplitConfig.model_fields)
    new = tmp_path / "new.toml"
    new.write_text('[split]\nfps = 1\n[output]\nformat = "jpg"\njpeg_quality = 70\n')
    old = tmp_path / "old.toml"
    old.write_text('[split]\nfps = 1\nformat = "jpg"\njpeg_quality = 70\n')
    a, b = (run_config_from(load_toml(p)) for p in (new, old))
    assert a == b and a.output == OutputConfig(format="jpg", jpeg_quality=70) and output_format(a) == "jpg"
    # recorded where shards always recorded them: same /meta/config_json keys and resume fingerprints as before
    record = a.record()
    assert "output" not in record and record["split"]["format"] == "jpg" and record["split"]["jpeg_quality"] == 70
    assert record["split"]["frame_codec"] == "raw" and record["split"]["fps"] == 1
    with pytest.raises(ConfigError, match=r"\[split\] format and \[output\] format"):
        run_config_from({"split": {"format": "png"}, "output": {"format": "jpg"}})
    with pytest.raises(ConfigError, match="--jpeg-quality"):
        run_config_from({"output": {"jpeg_quality": 0}})
    with pytest.raises(ConfigError, match="--format jpg: features writes feature shards"):
        run_config_from({"split": {"format": "jpg"}, "features": {"model": "resnet18"}})


def test_cli_output_flags_override_either_table(tmp_path: Path) -> None:
    from vidprep.cli.stage_cmds import build_config
    from vidprep.config_tables import load_toml

    old = tmp_path / "old.toml"
    old.write_text('[split]\nformat = "png"\n')
    new = tmp_path / "new.toml"
    new.write_text('[output]\nformat = "png"\nframe_codec = "jpeg"\n')
    for path in (old, new):
        cfg = build_config("split", {"format": "jpg"}, load_toml(path))
        assert cfg.output.format == "jpg"
    assert build_config("enhance", {}, load_toml(new)).output.frame_codec == "jpeg"
