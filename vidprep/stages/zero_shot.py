"""Zero-shot labels for image-text models: text prompts embedded once, one similarity per clip and prompt.

``--text-labels FILE`` holds one class prompt per line (blank lines skipped); ``--text-template 'a photo of {}'``
puts each line into a template. The prompts are embedded by the model's text tower (its tokenizer loaded offline)
when the worker builds the model; every shard stores them (``/meta/text_labels_json``: labels, prompts, template;
``/meta/text_embeddings``: (K,D) float32, l2-normalized) and per clip the cosine similarity of the clip's image
embedding with each prompt (``/clips/text_scores``: (N,K) float32). A clip with per-frame features (``--pool none``)
scores the mean of its frames' similarities. Scores are computed from the raw embeddings, before any
``--normalize``, so they do not depend on the normalization chosen.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from vidprep.config import FeaturesConfig
from vidprep.errors import UsageError

log = logging.getLogger("vidprep.stages.zero_shot")

META_LABELS = "text_labels_json"
META_EMBEDDINGS = "text_embeddings"
CLIP_SCORES = "text_scores"


def read_prompts(path: str, template: str | None) -> tuple[list[str], list[str]]:
    """Labels (the file's non-blank lines) and prompts (labels put into ``template``); UsageError naming the file."""
    from vidprep.named_files import read_text

    try:
        text = read_text(path)
    except FileNotFoundError:
        raise UsageError("--text-labels: file not found", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--text-labels: not a readable UTF-8 text file ({type(err).__name__})", path=path) from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise UsageError("--text-labels: the file holds no labels (one per line)", path=path)
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise UsageError(f"--text-labels: repeated labels: {', '.join(dupes[:5])}", path=path)
    return labels, [template.replace("{}", label) if template else label for label in labels]


def check_text_labels(feats: FeaturesConfig | None) -> None:
    """The driver's check before any decoding: readable labels, an image-text model, a tokenizer available here."""
    if feats is None or not feats.text_labels:
        return
    from vidprep.stages.models import get_backend

    read_prompts(feats.text_labels, feats.text_template)
    backend = get_backend(feats.model)
    if not backend.image_text:
        raise UsageError(f"--text-labels: {feats.model} is not an image-text model (use an open_clip: model)")
    backend.tokenizer()


class ZeroShot:
    """Text embeddings of the prompts, and the per-clip scores against them."""

    def __init__(self, extractor: Any, feats: FeaturesConfig) -> None:
        self.labels, self.prompts = read_prompts(str(feats.text_labels), feats.text_template)
        self.template = feats.text_template
        emb = np.asarray(extractor.text_embeddings(self.prompts), np.float32)
        self.embeddings = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        log.info("zero-shot: %d text labels embedded", len(self.labels))

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(K,) cosine similarities of one clip's (D,) embedding, or the mean over its frames of (T,D) ones."""
        f = np.asarray(features, np.float32)
        f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
        s = f @ self.embeddings.T
        return (s.mean(axis=0) if s.ndim == 2 else s).astype(np.float32)

    def meta(self) -> dict[str, str | np.ndarray]:
        """What every shard stores once: the prompts (``/meta/text_labels_json``) and their embeddings."""
        return {META_LABELS: json.dumps({"labels": self.labels, "prompts": self.prompts, "template": self.template},
                                        ensure_ascii=False),
                META_EMBEDDINGS: self.embeddings}


def zero_shot_for(extractor: Any, feats: FeaturesConfig | None) -> ZeroShot | None:
    """A ZeroShot when the run asks for text labels, else None."""
    if extractor is None or feats is None or not feats.text_labels:
        return None
    return ZeroShot(extractor, feats)
