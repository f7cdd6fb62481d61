"""The shipped assistant (chapter 11; chapter 12 starts from it) and the script that trains it (`make assistant`)."""

from __future__ import annotations

import json
import re
import sys

import pytest

from notebook_utils import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import train_assistant  # noqa: E402

from course.assistant_tasks import default_tasks  # noqa: E402
from course.chat_format import ChatTokenizer  # noqa: E402
from course.pretrained import SHIPPED_ASSISTANT, load_assistant  # noqa: E402


def test_the_script_trains_and_ships_a_loadable_assistant(tmp_path):
    out = tmp_path / "ship"
    code = train_assistant.main(["--steps", "2", "--per-task", "1", "--curve-per-task", "1",
                                 "--run-dir", str(tmp_path / "run"), "--out", str(out)])
    assert code == 0
    for name in ("model.safetensors", "config.json", "tokenizer.json", "metrics.jsonl", "curve.json", "info.json",
                 "TRAINING.md"):
        assert (out / name).is_file(), name
    info = json.loads((out / "info.json").read_text())
    assert info["steps"] == 2 and info["command"].startswith("python tools/train_assistant.py --steps 2")
    assert set(info["exact_match"]) == set(default_tasks())
    assert [c["step"] for c in json.loads((out / "curve.json").read_text())] == [0, 1, 2]  # before, then every step

    from course.checkpoint import load_model, load_tokenizer

    model, _ = load_model(out)
    tok = load_tokenizer(out)
    assert isinstance(tok, ChatTokenizer) and model.config.vocab_size == tok.vocab_size


def test_the_shipped_assistant_loads_with_its_chat_tokenizer():
    model, tok = load_assistant()
    assert isinstance(tok, ChatTokenizer) and not model.training
    assert model.config.vocab_size == tok.vocab_size == ChatTokenizer.for_shipped_model().vocab_size


def test_the_shipped_assistants_record_reproduces():
    """TRAINING.md is info.json's numbers, and two tasks' exact match recomputed here lands where the record says
    (greedy decoding; another CPU may flip a rare near-tie, so a count may move by a few)."""
    info = json.loads((SHIPPED_ASSISTANT / "info.json").read_text())
    text = (SHIPPED_ASSISTANT / "TRAINING.md").read_text()
    for name, v in info["exact_match"].items():
        assert re.search(rf"^\| {name} \| {v['correct']}/{v['n']} \|", text, re.M), name
    correct = sum(v["correct"] for v in info["exact_match"].values())
    total = sum(v["n"] for v in info["exact_match"].values())
    assert f"{correct}/{total}" in text and info["exact_match_overall"] == round(correct / total, 4)

    model, tok = load_assistant()
    tasks = default_tasks()
    n = info["exact_match"]["capitals"]["n"]
    mine = train_assistant.task_scores(model, tok, {k: tasks[k] for k in ("capitals", "multiply_tool")}, n, seed=0)
    for name, v in mine.items():
        assert abs(v["correct"] - info["exact_match"][name]["correct"]) <= 3, (name, v, info["exact_match"][name])


def test_a_missing_assistant_says_how_to_make_it(monkeypatch, tmp_path):
    import course.pretrained as pretrained

    monkeypatch.setattr(pretrained, "SHIPPED_ASSISTANT", tmp_path / "nothing-here")
    with pytest.raises(FileNotFoundError, match="make assistant"):
        pretrained.load_assistant()


def test_a_run_from_scratch_never_replaces_the_shipped_assistant(capsys):
    with pytest.raises(SystemExit):
        train_assistant.main(["--init", "scratch", "--steps", "2"])
    assert "give it its own --out folder" in capsys.readouterr().err


def test_the_assistant_loads_in_a_fresh_process():
    """load_assistant() works first thing in a kernel: the chat tokenizer's file format needs no import first."""
    import subprocess

    code = ("import sys\nfrom course.pretrained import load_assistant\nmodel, tok = load_assistant()\n"
            "print(type(tok).__name__, model.config.vocab_size)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.stdout.split() == ["ChatTokenizer", "91"], out.stderr
