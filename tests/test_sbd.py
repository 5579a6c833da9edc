"""The shot-boundary harness's matching rule (benchmarks/sbd.py): TransNetV2's evaluate_scenes semantics, checked
on hand-worked cases (its docstring's examples and gradual spans)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def sbd() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("sbd_harness", BENCH / "sbd.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def counts(sbd: ModuleType, dets: list[tuple[int, int]], hard: list[int], gradual: list[tuple[int, int]],
           tol: int) -> dict:
    truth = sbd.Truth(frames=100, hard=hard, gradual=gradual)
    return sbd.match(dets, truth, tol)


def test_hard_cut_tolerance_as_the_authors_examples(sbd: ModuleType) -> None:
    # evaluate_scenes' docstring: prediction scenes [0,5],[6,9] (cut at 6) against truth cut at 6, 5, 4, 3
    for truth_cut, hits in ((6, (1, 1, 1)), (5, (0, 1, 1)), (4, (0, 0, 1)), (3, (0, 0, 0))):
        got = tuple(counts(sbd, [(5, 6)], [truth_cut], [], tol)["hard"]["tp"] for tol in (0, 1, 2))
        assert got == hits, truth_cut


def test_a_gradual_transition_is_hit_anywhere_inside_its_span(sbd: ModuleType) -> None:
    # blended frames 20..29: spans (19, 30); a cut at 20, at 30 (first frame after) or a run inside all hit
    for pred in ((19, 20), (24, 25), (29, 30), (22, 27)):
        assert counts(sbd, [pred], [], [(20, 29)], 0)["gradual"] == {"tp": 1, "fp": 0, "fn": 0}, pred
    assert counts(sbd, [(30, 31)], [], [(20, 29)], 0)["gradual"] == {"tp": 0, "fp": 1, "fn": 1}
    assert counts(sbd, [(30, 31)], [], [(20, 29)], 1)["gradual"]["tp"] == 1


def test_matching_is_one_to_one_and_false_positives_go_to_the_nearest_class(sbd: ModuleType) -> None:
    got = counts(sbd, [(9, 10), (10, 11), (49, 50), (70, 71)], [10], [(45, 55)], 1)
    assert got["hard"] == {"tp": 1, "fp": 1, "fn": 0}
    assert got["gradual"] == {"tp": 1, "fp": 1, "fn": 0}


@pytest.fixture(scope="module")
def corpus() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    import sbd_corpus

    return sbd_corpus


def test_corpus_truth_is_measured_on_the_rendered_blend(corpus: ModuleType) -> None:
    # 25 fps, 1 s shots; a cut, then a 0.4 s (10-frame) fade at xfade offset 40 and a slide at offset 55. xfade's
    # progress is 1 - (frame - offset) / 10: the fade's frame at the offset is still the outgoing shot, so it
    # blends 41..49; slideleft moves the picture from the offset on, so it blends 55..64.
    shot, join = corpus.Shot, corpus.Join
    items = [shot("a", 1.0), join("cut"), shot("b", 1.0), join("fade", 0.4), shot("c", 1.0), join("slideleft", 0.4),
             shot("d", 1.0)]
    truth = corpus.measured_truth(items)
    assert (truth.frames, truth.hard, truth.gradual) == (80, [25], [(41, 49), (55, 64)])
    _, planned = corpus._graph(items, flat=True)  # the plan: xfade's whole window
    assert planned.gradual == [(40, 49), (55, 64)]
