"""One definition of the shipped model's validation loss (course.evaluate.validation_loss).

Chapters 05, 06 and 08 quote it; the checkpoint's info.json and TRAINING.md record
it. These tests check the definition against an independent computation, the
recorded value against the model, and that the chapters agree with each other.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from course.data import VAL_FRACTION, validation_text
from course.evaluate import validation_loss
from course.pretrained import SHIPPED, load_pretrained
from notebook_utils import NOTEBOOKS, assert_quoted, read_ipynb


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained()


def _by_hand(model, ids: list[int]) -> float:
    """Mean NLL with every target predicted once, windows of block_size back to back, float64 softmax."""
    block = model.config.block_size
    total, count = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(ids) - 1, block):
            window = ids[begin: begin + block + 1]
            x, y = torch.tensor(window[:-1])[None], torch.tensor(window[1:])[None]
            logits, _ = model(x)
            total += float(F.cross_entropy(logits[0].double(), y[0], reduction="sum"))
            count += y.numel()
    return total / count


def test_definition_matches_an_independent_computation(shipped):
    model, tok = shipped
    text = validation_text(tok)[:3000]  # 11 full windows and a partial one
    ours = validation_loss(model, tok, text)
    assert math.isclose(ours, _by_hand(model, tok.encode(text)), rel_tol=1e-6)


def test_uses_the_whole_validation_split(shipped):
    model, tok = shipped
    from course.data import tinyshakespeare, train_val_split

    text = tinyshakespeare().text
    val = validation_text(tok)
    assert val == train_val_split(text, VAL_FRACTION)[1] and text.endswith(val)
    assert len(val) == 111_539  # 111,538 predictions


def test_recorded_value_is_the_models(shipped):
    """info.json records the full-split value; any CPU reproduces it to rounding level."""
    model, tok = shipped
    info = json.loads((SHIPPED / "info.json").read_text())
    assert abs(validation_loss(model, tok) - info["val_loss"]) < 5e-4
    assert "1.536" in (SHIPPED / "TRAINING.md").read_text()
    # the training log's random-batch estimate is of the same quantity: close, not equal
    assert abs(info["final_val_loss"] - info["val_loss"]) < 0.02


def test_readme_quotes_it():
    info = json.loads((SHIPPED / "info.json").read_text())
    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    assert f"validation loss {info['val_loss']:.2f}" in readme, "the README should quote the shipped model's validation loss, rounded"


# the name under which each chapter's prose quotes course.evaluate.validation_loss of the shipped model
QUOTED = {
    "05_pretraining.ipynb": "ch05_shipped_val_loss",
    "06_sampling.ipynb": "ch06_val_loss",
    "08_efficiency_and_scale.ipynb": "shipped_val_loss",
}


@pytest.mark.parametrize("chapter", sorted(QUOTED))
def test_chapters_quote_the_same_validation_loss(chapter):
    info = json.loads((SHIPPED / "info.json").read_text())
    assert_quoted(chapter, QUOTED[chapter], info["val_loss"])
