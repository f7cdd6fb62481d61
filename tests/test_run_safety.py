"""What happens around a training run: divergence, stale data, resumes with other settings, logs, bad input.

Each test reproduces a bug found in review (issue "The package, round 2") and fails on the code before its fix.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from course.checkpoint import CheckpointError, load_model
from course.evaluate import sequence_logprob
from course.families import MaskedLM, Seq2Seq, mask_tokens
from course.model import GPT, GPTConfig
from course.plots.training import read_metrics
from course.token_data import BatchSampler, TokenData, load_token_files, stale_token_files, write_token_files
from course.token_data import prepare_data
from course.train import Trainer, language_model_loss
from course.train_support import TrainingDiverged, resume_changes
from test_train import tiny_config, tiny_data

ROOT = Path(__file__).resolve().parent.parent


# ============================================================================ divergence


def test_a_nan_loss_stops_the_run_and_keeps_the_good_checkpoints(tmp_path):
    state = {"trainer": None}

    def loss_fn(model, x, y):
        loss = language_model_loss(model, x, y)
        return loss * float("nan") if model.training and state["trainer"].step >= 3 else loss

    config = tiny_config(max_iters=6, out_dir=str(tmp_path), checkpoint_interval=1, keep_checkpoints=2, eval_interval=0)
    trainer = Trainer(config, data=tiny_data(), loss_fn=loss_fn)
    state["trainer"] = trainer
    with pytest.raises(TrainingDiverged, match=r"diverged at step 4.*the loss is nan.*not applied.*ckpt_0000003"):
        trainer.train()
    assert trainer.step == 3, "the diverged step was not counted"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters()), "the NaN update never reached the weights"
    folders = sorted(p.name for p in tmp_path.glob("ckpt_*"))
    assert folders == ["ckpt_0000002", "ckpt_0000003"]
    for name in folders:
        model, _ = load_model(tmp_path / name)
        assert all(torch.isfinite(p).all() for p in model.parameters()), f"{name} holds non-finite weights"


def test_an_infinite_gradient_stops_the_run_even_without_clipping(tmp_path):
    def loss_fn(model, x, y):
        loss = language_model_loss(model, x, y)
        return loss + model.head.weight.sum() * float("inf") if model.training else loss

    trainer = Trainer(tiny_config(max_iters=3, grad_clip=0.0), data=tiny_data(), loss_fn=loss_fn)
    with pytest.raises(TrainingDiverged, match="step 1"):
        trainer.train()
    assert trainer.step == 0


def test_saving_non_finite_weights_is_refused(tmp_path):
    trainer = Trainer(tiny_config(max_iters=2, out_dir=str(tmp_path)), data=tiny_data())
    trainer.train()
    with torch.no_grad():
        trainer.model.head.weight[0, 0] = float("nan")
    trainer.step += 1
    with pytest.raises(CheckpointError, match="NaN or inf"):
        trainer.save()
    assert sorted(p.name for p in tmp_path.glob("ckpt_*")) == ["ckpt_0000002"]


# ============================================================================ the run's log


def steps_logged(out_dir: Path) -> list[int]:
    return read_metrics(out_dir / "metrics.jsonl")["step"]


def test_metrics_of_a_new_run_in_a_used_out_dir_are_the_new_run_only(tmp_path):
    Trainer(tiny_config(max_iters=4, out_dir=str(tmp_path)), data=tiny_data()).train()
    Trainer(tiny_config(max_iters=3, out_dir=str(tmp_path)), data=tiny_data()).train()
    assert steps_logged(tmp_path) == [1, 2, 3]  # was [1, 2, 3, 4, 1, 2, 3]


def test_metrics_of_a_resumed_run_continue_it(tmp_path):
    Trainer(tiny_config(max_iters=6, out_dir=str(tmp_path), checkpoint_interval=2), data=tiny_data()).train(4)
    # steps 5 and 6 logged after the last checkpoint, then lost (a crash): the resume goes back to step 4
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "loss": 9.0, "lr": 0.0}) + "\n")
    Trainer(tiny_config(max_iters=6, out_dir=str(tmp_path), resume=True), data=tiny_data()).train()
    history = read_metrics(tmp_path / "metrics.jsonl")
    assert history["step"] == [1, 2, 3, 4, 5, 6] and 9.0 not in history["loss"]


def test_old_logs_without_start_records_read_as_one_run(tmp_path):
    lines = [{"step": s, "loss": 1.0 / s, "lr": 0.1} for s in (1, 2, 3)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert steps_logged(tmp_path) == [1, 2, 3]


# ============================================================================ resuming with other settings


@pytest.mark.parametrize("change", [{"weight_decay": 0.5}, {"beta2": 0.95}])
def test_resuming_with_other_optimizer_settings_is_refused_or_applied_never_silently_kept(tmp_path, change):
    Trainer(tiny_config(max_iters=4, out_dir=str(tmp_path)), data=tiny_data()).train(2)
    name = next(iter(change))
    with pytest.raises(ValueError, match=rf"{name}: .* -> .*config_changes='apply'"):
        Trainer(tiny_config(max_iters=4, out_dir=str(tmp_path), resume=True, **change), data=tiny_data())
    trainer = Trainer(tiny_config(max_iters=4, out_dir=str(tmp_path), resume=True, **change), data=tiny_data(),
                      config_changes="apply")
    groups = trainer.optimizer.param_groups
    if name == "weight_decay":
        assert groups[0]["weight_decay"] == 0.5 and groups[1]["weight_decay"] == 0.0
    else:
        assert all(g["betas"] == (0.9, 0.95) for g in groups)


def test_resume_changes_lists_what_differs_and_ignores_run_control(tmp_path):
    Trainer(tiny_config(max_iters=4, out_dir=str(tmp_path)), data=tiny_data()).train(2)
    folder = next(tmp_path.glob("ckpt_*"))
    assert resume_changes(folder, tiny_config(max_iters=4, eval_interval=1, log_interval=3)) == []
    changes = resume_changes(folder, tiny_config(max_iters=8, lr_decay_iters=4, model=GPTConfig(
        vocab_size=1, block_size=16, n_layer=3, n_head=2, n_embd=32, dropout=0.1)))
    assert changes == ["model.n_layer: 2 -> 3"]
    assert resume_changes(folder, tiny_config(max_iters=8)) == ["decay_iters: 4 -> 8"]  # the cosine would change


# ============================================================================ a stale data_dir


def test_a_data_dir_made_for_another_recipe_is_rebuilt(tmp_path, capsys):
    data_dir = tmp_path / "data"
    config = tiny_config(max_iters=1, data_dir=str(data_dir), model=GPTConfig(vocab_size=1, block_size=16, n_layer=1,
                                                                                   n_head=1, n_embd=16))
    Trainer(config)
    assert stale_token_files(config, data_dir) is None
    meta = json.loads((data_dir / "meta.json").read_text())
    assert meta["recipe"]["tokenizer"] == "char" and len(meta["recipe"]["corpus_sha256"]) == 64
    assert meta["train_tokens"] > meta["val_tokens"] > 0
    # the case: the same folder under a BPE config is stale (no BPE training needed to tell)
    why = stale_token_files(tiny_config(tokenizer="bpe", bpe_vocab_size=300), data_dir)
    assert "tokenizer: 'char' there, 'bpe' now" in why and "bpe_vocab_size" in why
    # another validation fraction: rebuilt, with a note, instead of training on the old split
    other = tiny_config(max_iters=1, data_dir=str(data_dir), val_fraction=0.2, model=config.model)
    trainer = Trainer(other)
    assert "val_fraction: 0.1 there, 0.2 now" in capsys.readouterr().err
    assert json.loads((data_dir / "meta.json").read_text())["recipe"]["val_fraction"] == 0.2
    assert len(trainer.data.val) > meta["val_tokens"]


def test_a_data_dir_without_a_recipe_is_rebuilt(tmp_path):
    data = prepare_data(tiny_config())
    data.recipe = {}
    write_token_files(data, tmp_path)
    assert "does not say how the files were made" in stale_token_files(tiny_config(), tmp_path)


def test_the_tokenizer_kind_comes_from_the_files_format_field(tmp_path):
    data = tiny_data()
    write_token_files(data, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["tokenizer"] = "BPETokenizer"  # a misleading class name: the tokenizer file's own format decides
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert type(load_token_files(tmp_path).tokenizer).__name__ == "CharTokenizer"


# ============================================================================ the quick stand-in model


def test_an_interrupted_stand_in_is_never_cached(tmp_path, monkeypatch):
    import course.pretrained as pretrained
    import course.train as train

    real = train.Trainer.train

    def interrupted_after_two_steps(self, max_iters=None, **kw):
        result = real(self, 2, **kw)
        result.interrupted = True
        return result

    monkeypatch.setattr(train.Trainer, "train", interrupted_after_two_steps)
    with pytest.raises(KeyboardInterrupt, match="nothing was cached"):
        pretrained.quick_cpu_model(tmp_path / "quick", max_iters=20)
    assert not list((tmp_path / "quick").rglob("info.json"))


def test_a_cached_stand_in_with_a_nan_loss_counts_as_incomplete(tmp_path):
    from course.pretrained import _complete_quick_run

    (tmp_path / "info.json").write_text(json.dumps({"steps": 2, "final_val_loss": float("nan")}))
    assert not _complete_quick_run(tmp_path)
    (tmp_path / "info.json").write_text(json.dumps({"steps": 600, "final_val_loss": 2.1}))
    assert _complete_quick_run(tmp_path)


# ============================================================================ eval mode, masking


def test_seq2seq_greedy_decoding_is_deterministic_in_training_mode():
    torch.manual_seed(0)
    model = Seq2Seq(GPTConfig(vocab_size=12, block_size=10, n_layer=1, n_head=2, n_embd=16, dropout=0.3)).train()
    src = torch.randint(3, 12, (4, 6))
    a, b = model.generate(src, bos=1, eos=2, max_len=8), model.generate(src, bos=1, eos=2, max_len=8)
    assert torch.equal(a, b), "dropout was on during decoding"
    assert model.training, "generate gives the model back in the mode it found it"


def test_masking_always_masks_at_least_one_token_and_the_loss_is_finite():
    model = MaskedLM(GPTConfig(vocab_size=20, block_size=6, n_layer=1, n_head=1, n_embd=8))
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        ids = torch.randint(1, 20, (1, 6), generator=g)
        inputs, targets = mask_tokens(ids, 0, 20, p=0.15, generator=g)
        assert (targets != -100).sum() >= 1
        assert math.isfinite(float(model(inputs, targets)[1]))
    special = torch.tensor([[True, True, False, True, True, True]])
    for seed in range(20):
        _, targets = mask_tokens(torch.arange(1, 7)[None], 0, 20, p=0.01, special=special,
                                 generator=torch.Generator().manual_seed(seed))
        assert targets.tolist() == [[-100, -100, 3, -100, -100, -100]], "only the one eligible token, never padding"


def test_masking_leaves_rows_that_have_a_chosen_token_as_they_were():
    ids = torch.randint(1, 50, (64, 40), generator=torch.Generator().manual_seed(1))
    inputs, targets = mask_tokens(ids, 0, 50, p=0.3, generator=torch.Generator().manual_seed(2))
    u = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2))
    assert torch.equal(targets != -100, u < 0.3)  # every row had one: the draws decide alone


# ============================================================================ clear errors for bad input


def test_a_non_utf8_config_or_meta_says_the_file_is_damaged(tmp_path):
    Trainer(tiny_config(max_iters=1, out_dir=str(tmp_path / "run")), data=tiny_data()).train()
    folder = next((tmp_path / "run").glob("ckpt_*"))
    (folder / "config.json").write_bytes(b"\xff\xfe{not utf-8")
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(folder)
    write_token_files(tiny_data(), tmp_path / "data")
    (tmp_path / "data" / "meta.json").write_bytes(b"\xff\xfe")
    with pytest.raises(ValueError, match="meta.json is damaged"):
        load_token_files(tmp_path / "data")


def test_a_checkpoint_of_another_architecture_says_so(tmp_path):
    trainer = Trainer(tiny_config(max_iters=1, out_dir=str(tmp_path)), data=tiny_data())
    trainer.train()
    other = GPT(GPTConfig(vocab_size=trainer.model.config.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=48))
    from course.checkpoint import load_checkpoint

    with pytest.raises(CheckpointError, match="another architecture .* is \\(.*\\) in the file but"):
        load_checkpoint(other, None, tmp_path)


def test_sequence_logprob_rejects_ids_outside_the_vocabulary():
    model = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="continuation token id -1 is outside the vocabulary"):
        sequence_logprob(model, [1, 2], [3, -1])
    with pytest.raises(ValueError, match="id 64 is outside"):
        sequence_logprob(model, [1, 2], [64])


def test_empty_val_batches_fail_before_training():
    data = tiny_data()
    model = GPT(GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=1, n_embd=8))
    sampler = BatchSampler(data.train, 16, 0)
    with pytest.raises(ValueError, match="val_batches is empty"):
        Trainer(tiny_config(), model=model, sampler=sampler, val_batches=[])


def test_too_little_data_names_the_split_and_what_to_do():
    with pytest.raises(ValueError, match="the validation split has 15 tokens.*val_fraction"):
        BatchSampler(TokenData(np.arange(15)), 16, 0, what="the validation split")


# ============================================================================ structure


def _imports(path: Path) -> set[str]:
    """The course modules a module imports, leaving out what runs only as a script (``if __name__ == "__main__"``)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from .x import y, from . import x
                base = ".".join(path.relative_to(ROOT).with_suffix("").parts[: -node.level])
                module = f"{base}.{node.module}" if node.module else base
                found.add(module)
                if not node.module:
                    found.update(f"{base}.{a.name}" for a in node.names)
            elif node.module and node.module.startswith("course"):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("course"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_package_has_no_import_cycle():
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (ROOT / "course").rglob("*.py")}
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    # a package's __init__ importing its own submodules is no cycle of concern; edges *into* a package are
    cycles = []

    def walk(node: str, stack: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in stack:
                cycle = stack[stack.index(nxt):] + [nxt]
                if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in zip(cycle, cycle[1:])):
                    cycles.append(" -> ".join(cycle))
            elif len(stack) < 12:
                walk(nxt, stack + [nxt])

    for m in graph:
        walk(m, [m])
    assert not cycles, f"import cycles in course/: {sorted(set(cycles))[:5]}"


def _defined_names(path: Path) -> set[str]:
    """Names a module defines itself at top level (functions, classes, assignments; also inside if/try)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        for n in ([node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node)):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                names.update(x.id for t in targets for x in ast.walk(t) if isinstance(x, ast.Name))
    return names


def _course_imports(path: Path, text: str):
    """(module, name) for each ``from course.X import name`` (and relative imports inside course/)."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = list(path.relative_to(ROOT).with_suffix("").parts)[: -node.level]
            module = ".".join(parts + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == "course" or module.startswith("course."):
            yield from ((module, a.name) for a in node.names)


def test_no_module_re_exports_another_modules_names():
    """Every name is imported from the module that defines it: no hub passes on another module's names
    (a package's __init__ is its public face and may). Checks course/, tests/, tools/, benchmarks/, solutions/ and
    the chapters' code cells."""
    import re

    def module_file(module: str) -> Path | None:
        base = ROOT.joinpath(*module.split("."))
        return base / "__init__.py" if (base / "__init__.py").is_file() else base.with_suffix(".py") if base.with_suffix(".py").is_file() else None

    files = [(p, p.read_text(encoding="utf-8")) for d in ("course", "tests", "tools", "benchmarks", "solutions")
             for p in (ROOT / d).rglob("*.py")]
    for md in (ROOT / "notebooks").glob("*.md"):
        cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", md.read_text(encoding="utf-8"), re.S)
        files.append((md, "\n".join(line for c in cells for line in c.splitlines() if not line.startswith((":", "%", "!")))))
    passed_on = []
    for path, text in files:
        for module, name in _course_imports(path, text):
            source = module_file(module)
            if source is None or source.name == "__init__.py" or module_file(f"{module}.{name}") is not None:
                continue
            if name not in _defined_names(source):
                passed_on.append(f"{path.relative_to(ROOT)}: {name} from {module}")
    assert not passed_on, f"names imported from a module that does not define them: {passed_on[:10]}"


# ============================================================================ the run folder's manifest


def _shuffled(data):
    from course.token_data import Dataset

    tokens = np.random.default_rng(1).permutation(np.asarray(data.train.tokens))
    return Dataset(TokenData(tokens), data.val, data.tokenizer, data.corpus_name)


def test_a_run_writes_its_manifest_and_a_resume_on_other_data_stops(tmp_path):
    from course.run_manifest import MANIFEST, read_manifest

    config = tiny_config(max_iters=2, out_dir=str(tmp_path), checkpoint_interval=1, eval_interval=0)
    Trainer(config, data=tiny_data()).train()
    manifest = read_manifest(tmp_path)
    assert manifest is not None and (tmp_path / MANIFEST).is_file()
    assert manifest["data"]["train_tokens"] == len(tiny_data().train.tokens) and manifest["model"]["class"] == "GPT"
    assert manifest["config"]["max_iters"] == 2
    resumed = Trainer(tiny_config(max_iters=2, out_dir=str(tmp_path), resume=True, checkpoint_interval=1,
                                  eval_interval=0), data=tiny_data())
    assert resumed.step == 2  # the same data: it goes on
    other = _shuffled(tiny_data())  # the same sizes and vocabulary, other tokens
    with pytest.raises(ValueError, match=r"started on other data.*data train_sha256.*force=True.*new out_dir"):
        Trainer(tiny_config(max_iters=2, out_dir=str(tmp_path), resume=True, eval_interval=0), data=other)
    forced = Trainer(tiny_config(max_iters=2, out_dir=str(tmp_path), resume=True, eval_interval=0), data=other,
                     force=True)
    assert forced.step == 2


def test_a_damaged_manifest_says_so(tmp_path):
    from course.run_manifest import MANIFEST, read_manifest

    (tmp_path / MANIFEST).write_bytes(b"\xff\xfe not json")
    with pytest.raises(ValueError, match="run.json cannot be read.*new out_dir"):
        read_manifest(tmp_path)


def test_a_new_run_in_a_used_out_dir_writes_its_own_manifest(tmp_path):
    from course.run_manifest import read_manifest

    Trainer(tiny_config(max_iters=1, out_dir=str(tmp_path), eval_interval=0), data=tiny_data()).train()
    Trainer(tiny_config(max_iters=1, out_dir=str(tmp_path), eval_interval=0, seed=7), data=_shuffled(tiny_data())).train()
    assert read_manifest(tmp_path)["config"]["seed"] == 7


def test_a_manifest_written_before_a_config_field_existed_still_resumes(tmp_path):
    """run.json of an older version lacks fields added to GPTConfig since (n_kv_head): they had their defaults, so
    the resume goes on; a real change of the model still stops it."""
    from course.run_manifest import MANIFEST, read_manifest

    config = tiny_config(max_iters=2, out_dir=str(tmp_path), checkpoint_interval=1, eval_interval=0)
    Trainer(config, data=tiny_data()).train()
    manifest = read_manifest(tmp_path)
    del manifest["model"]["config"]["n_kv_head"]
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    resumed = Trainer(tiny_config(max_iters=2, out_dir=str(tmp_path), resume=True, eval_interval=0), data=tiny_data())
    assert resumed.step == 2
    manifest["model"]["config"]["n_head"] = 1
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="another model"):
        Trainer(tiny_config(max_iters=2, out_dir=str(tmp_path), resume=True, eval_interval=0), data=tiny_data())
