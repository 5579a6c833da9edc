"""Default curation classes: --keep expressions over the per-clip metrics, tried in order (first match wins).

The thresholds come from the tools the metrics follow where one exists (ffmpeg ``blackdetect`` and
``freezedetect`` are inside the metrics themselves) and are otherwise measured on the labelled synthetic corpus of
``benchmarks/curation.py`` (values there; README "Curation"): each threshold sits between the class it defines and
the nearest other class. Use them as starting points for ``--keep``, e.g. ``--keep 'not (black_ratio >= 0.5)'``.
"""

from __future__ import annotations

from collections.abc import Mapping

#: class -> expression; order matters (a black clip is also "letterboxed": every row is a dark border).
CLASS_RULES: dict[str, str] = {
    "black": "black_ratio >= 0.5",
    "letterboxed": "letterbox >= 0.1",
    "blurred": "blur >= 0.6",
    "slideshow": "frozen_ratio >= 0.8 and motion_max >= 5",
    "static": "motion_max < 1",
    "frozen": "frozen_ratio >= 0.2",
    "fast_motion": "motion >= 4.5",
}
DEFAULT_CLASS = "ordinary"


def classify(values: Mapping[str, float]) -> str:
    """The first class of CLASS_RULES whose expression holds for a clip's metric values, else 'ordinary'."""
    from vidprep.stages.keep_expr import parse
    from vidprep.stages.quality import METRICS

    for name, text in CLASS_RULES.items():
        if parse(text, METRICS).evaluate(values):
            return name
    return DEFAULT_CLASS
