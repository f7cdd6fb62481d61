"""course.train: schedule, decay groups, batches, accumulation, resume == uninterrupted, atomic checkpoints, DDP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course.model import GPTConfig
from course.tokenizers import CharTokenizer
from course.train_cli import config_from_args
from course.checkpoint import latest_checkpoint, load_model
from course.schedule import lr_at, param_groups
from course.token_data import BatchSampler, Dataset, TokenData, load_token_files, write_token_files
from course.train import Trainer
from course.train_config import TrainConfig

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 60)
ROOT = Path(__file__).resolve().parent.parent


def tiny_data() -> Dataset:
    tok = CharTokenizer.from_text(TEXT)
    ids = np.asarray(tok.encode(TEXT), dtype=np.int64)
    cut = int(len(ids) * 0.9)
    return Dataset(TokenData(ids[:cut]), TokenData(ids[cut:]), tok, "test")


def tiny_config(**kw) -> TrainConfig:
    base = dict(
        model=GPTConfig(vocab_size=1, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1),
        batch_size=4, max_iters=12, lr=3e-3, min_lr=3e-4, warmup_iters=3, eval_interval=4, eval_iters=2,
        log_interval=1, progress=False, seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_lr_schedule_warmup_then_cosine():
    c = tiny_config(max_iters=100, warmup_iters=10, lr=1.0, min_lr=0.1)
    lrs = [lr_at(s, c) for s in range(120)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11])), "warmup must increase"
    assert lrs[0] > 0 and abs(lrs[10] - 1.0) < 1e-12
    assert all(a >= b for a, b in zip(lrs[10:100], lrs[11:101])), "decay must not increase"
    assert abs(lr_at(55, c) - (0.1 + 0.45)) < 1e-12  # halfway through the cosine: the midpoint
    assert lrs[100:] == [0.1] * 20


def test_weight_decay_only_on_matrices():
    trainer_model = Trainer(tiny_config(), data=tiny_data()).model
    decay, no_decay = param_groups(trainer_model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    n = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n == trainer_model.num_parameters(), "every parameter (the tied head once) must be in a group"


def test_windows_are_shifted_by_one():
    data = TokenData(torch.arange(100))
    x, y = data.windows(torch.tensor([0, 50]), 8)
    assert x.tolist()[1] == list(range(50, 58)) and y.tolist()[1] == list(range(51, 59))


def test_global_batch_is_split_between_micro_batches_and_processes():
    data = TokenData(torch.arange(1000))
    whole = BatchSampler(data, 8, seed=1).step_batches(12, 1)[0][0]
    accum = torch.cat([x for x, _ in BatchSampler(data, 8, seed=1).step_batches(6, 2)])
    ranks = torch.cat([BatchSampler(data, 8, seed=1).step_batches(6, 1, world_size=2, rank=r)[0][0] for r in (0, 1)])
    assert torch.equal(whole, accum) and torch.equal(whole, ranks)


def test_gradient_accumulation_equals_one_big_batch():
    """k micro-batches of b/k give the same step as one batch of b (dropout off)."""
    data = tiny_data()
    losses = []
    for batch, accum in ((8, 1), (4, 2), (2, 4)):
        c = tiny_config(batch_size=batch, grad_accum=accum, max_iters=5)
        c.model.dropout = 0.0
        t = Trainer(c, data=data)
        result = t.train()
        losses.append(result.history["loss"])
    assert np.allclose(losses[0], losses[1], atol=1e-5) and np.allclose(losses[0], losses[2], atol=1e-5), losses


def test_training_reduces_loss_and_logs(tmp_path):
    c = tiny_config(max_iters=40, out_dir=str(tmp_path / "run"), sample_interval=20, sample_tokens=10)
    result = Trainer(c, data=tiny_data()).train()
    assert result.history["val_loss"][-1] < result.history["val_loss"][0] - 0.5
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == {"event": "start", "step": 0, "max_iters": 40}
    assert {"step", "loss", "lr", "tokens_per_s"} <= set(lines[1])
    assert any("val_loss" in l for l in lines) and any("sample" in l for l in lines)
    assert result.checkpoint is not None and latest_checkpoint(tmp_path / "run") == result.checkpoint


def test_resume_equals_uninterrupted(tmp_path):
    """Stop at step 6, resume in a fresh trainer, and the losses match an uninterrupted run exactly."""
    data = tiny_data()
    straight = Trainer(tiny_config(max_iters=12), data=data).train()
    first = Trainer(tiny_config(max_iters=12, out_dir=str(tmp_path)), data=data)
    first.train(6)  # saves a checkpoint at step 6
    second = Trainer(tiny_config(max_iters=12, out_dir=str(tmp_path), resume=True), data=data)
    assert second.step == 6
    resumed = second.train()
    assert resumed.history["loss"] == straight.history["loss"]  # dropout on: RNG states restored too
    evals = dict(zip(resumed.history["eval_step"], resumed.history["val_loss"]))  # + one at the stop, step 6
    assert [evals[s] for s in straight.history["eval_step"]] == straight.history["val_loss"]


def test_keyboard_interrupt_saves_a_checkpoint(tmp_path):
    trainer = Trainer(tiny_config(max_iters=20, out_dir=str(tmp_path)), data=tiny_data())
    original = trainer.train_step

    def interrupt_at_5():
        if trainer.step == 5:
            raise KeyboardInterrupt
        return original()

    trainer.train_step = interrupt_at_5  # type: ignore[method-assign]
    result = trainer.train()
    assert result.interrupted and result.steps == 5
    assert latest_checkpoint(tmp_path).name == "ckpt_0000005"
    assert Trainer(tiny_config(max_iters=20, out_dir=str(tmp_path), resume=True), data=tiny_data()).step == 5


def test_failed_save_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(tiny_config(out_dir=str(tmp_path)), data=tiny_data())
    trainer.train(4)
    good = latest_checkpoint(tmp_path)
    trainer.train_step()

    def broken_save(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        trainer.save()
    assert latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".ckpt", "ckpt"))) == [good.name]


def test_checkpoint_loads_with_safetensors_and_weights_only(tmp_path):
    trainer = Trainer(tiny_config(out_dir=str(tmp_path)), data=tiny_data())
    trainer.train(4)
    model, config = load_model(tmp_path)
    x = torch.randint(0, config.model.vocab_size, (2, 10))
    trainer.model.eval()
    assert torch.equal(model(x)[0], trainer.model(x)[0])
    assert model.head.weight.data_ptr() == model.tok_emb.weight.data_ptr(), "the tie survives loading"
    state = latest_checkpoint(tmp_path) / "state.pt"
    torch.load(state, weights_only=True)  # would raise if anything but tensors and plain data were pickled
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        load_model(tmp_path / "nothing")


def test_only_newest_checkpoints_are_kept(tmp_path):
    trainer = Trainer(tiny_config(out_dir=str(tmp_path), checkpoint_interval=2, keep_checkpoints=2, max_iters=9), data=tiny_data())
    trainer.train()
    assert sorted(p.name for p in tmp_path.glob("ckpt_*")) == ["ckpt_0000008", "ckpt_0000009"]


def test_memory_mapped_token_files_match(tmp_path):
    data = tiny_data()
    write_token_files(data, tmp_path)
    mapped = load_token_files(tmp_path)
    assert isinstance(mapped.train.tokens, np.memmap)
    assert np.array_equal(np.asarray(mapped.train.tokens), data.train.tokens)
    starts = torch.tensor([3, 40])
    assert all(torch.equal(a, b) for a, b in zip(mapped.train.windows(starts, 8), data.train.windows(starts, 8)))
    assert mapped.tokenizer.decode(mapped.val.tokens[:20].tolist()) == data.tokenizer.decode(data.val.tokens[:20].tolist())


def test_command_line_overrides():
    c = config_from_args(["--preset", "cpu", "--max-iters", "7", "--lr", "0.01", "--model-n-layer", "3", "--resume", "true"])
    assert c.max_iters == 7 and c.lr == 0.01 and c.model.n_layer == 3 and c.resume is True
    assert c.model.n_embd == 128  # the preset's value is kept
    # the Trainer's own flags are not settings of the run
    assert config_from_args(["--preset", "cpu", "--resume", "true", "--force", "--apply-config-changes"]).resume is True


def test_bad_configs():
    with pytest.raises(ValueError, match="tokenizer"):
        tiny_config(tokenizer="words")
    with pytest.raises(ValueError, match="min_lr"):
        tiny_config(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        Trainer(tiny_config(resume=True), data=tiny_data())
    with pytest.raises(ValueError, match="too few"):
        BatchSampler(TokenData(torch.arange(10)), 16, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_train import tiny_config, tiny_data
from course.train import Trainer
c = tiny_config(batch_size={batch}, max_iters=6, threads=1)
c.model.dropout = 0.0
result = Trainer(c, data=tiny_data()).train()
if result.history["loss"] and __import__("os").environ.get("RANK", "0") == "0":
    print("LOSSES", json.dumps(result.history["loss"]))
"""


def _run(args: list[str], env: dict) -> list[float]:
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("LOSSES")][0]
    return json.loads(line.split(" ", 1)[1])


def test_two_process_ddp_follows_single_process(tmp_path):
    """torchrun --nproc_per_node=2 (gloo, CPU) with batch 4 each == 1 process with batch 8."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    tests = str(ROOT / "tests")
    single = tmp_path / "single.py"
    single.write_text(DDP_SCRIPT.format(tests=tests, batch=8))
    double = tmp_path / "double.py"
    double.write_text(DDP_SCRIPT.format(tests=tests, batch=4))
    one = _run([sys.executable, str(single)], env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", str(double)]
    two = _run(torchrun, env)
    assert np.allclose(one, two, atol=1e-5), (one, two)


class _FixedSampler:
    """A custom sampler: the same masked batch every step (as a fine-tuning task would provide)."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        self.generator = torch.Generator().manual_seed(0)

    def step_batches(self, micro_batch, grad_accum, world_size=1, rank=0):
        return [(self.x, self.y)] * grad_accum


def test_custom_sampler_and_loss_fn():
    data = tiny_data()
    x, y = BatchSampler(data.train, 16, seed=0).step_batches(4, 1)[0]
    y = y.clone()
    y[:, :8] = -100  # train only on the second half of each window
    calls = []

    def loss_fn(model, xb, yb):
        calls.append(int((yb != -100).sum()))
        return model(xb, yb)[1]

    config = tiny_config(max_iters=60, eval_interval=10)
    config.model.vocab_size = data.tokenizer.vocab_size
    from course.model import GPT

    torch.manual_seed(0)
    model = GPT(config.model)
    model.pos_emb.weight.requires_grad_(False)  # frozen parameters stay out of the optimizer
    frozen = model.pos_emb.weight.detach().clone()
    trainer = Trainer(config, model=model, sampler=_FixedSampler(x, y), val_batches=[(x, y)], loss_fn=loss_fn)
    result = trainer.train()
    assert calls[0] == 4 * 8 and len(calls) >= 60
    assert result.history["val_loss"][-1] < result.history["val_loss"][0] - 1.0, "a fixed batch must be learned"
    assert torch.equal(model.pos_emb.weight, frozen)
    with pytest.raises(ValueError, match="custom sampler"):
        Trainer(config, sampler=_FixedSampler(x, y))
    with pytest.raises(ValueError, match="no tokenizer"):
        trainer.sample()


def test_a_passed_models_checkpoint_describes_that_model(tmp_path):
    """A model passed to the Trainer (chapter 07's fine-tuning, chapter 11's assistant) is saved with its own
    architecture in config.json, not the config's default one: load_model then rebuilds it."""
    from course.model import GPT

    data = tiny_data()
    x, y = BatchSampler(data.train, 16, seed=0).step_batches(4, 1)[0]
    config = tiny_config(max_iters=2, eval_interval=2, out_dir=str(tmp_path / "run"))
    mine = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16)
    assert mine != config.model
    trainer = Trainer(config, model=GPT(mine), sampler=_FixedSampler(x, y), val_batches=[(x, y)])
    result = trainer.train()
    assert trainer.config.model == mine
    loaded, saved = load_model(result.checkpoint)
    assert saved.model == mine and all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                                           trainer.model.state_dict().values()))


# ============================================================================ issue 15


def test_the_trainer_never_changes_its_config():
    config = tiny_config()  # vocab_size=1: the trainer sizes its model to the tokenizer
    before = config.to_dict()
    trainer = Trainer(config, data=tiny_data())
    assert config.to_dict() == before, "the caller's config was changed"
    assert trainer.config is not config and trainer.config.model.vocab_size == tiny_data().tokenizer.vocab_size
    assert trainer.model.config.vocab_size == trainer.config.model.vocab_size


def test_intervals_of_zero_are_off_not_an_error(tmp_path):
    c = tiny_config(max_iters=5, eval_interval=0, log_interval=0, sample_interval=0, checkpoint_interval=0, out_dir=str(tmp_path))
    result = Trainer(c, data=tiny_data()).train()  # used to raise ZeroDivisionError
    assert result.history["step"] == [5] and result.history["eval_step"] == [5], "the last step is always logged and evaluated"
    assert [p.name for p in tmp_path.glob("ckpt_*")] == ["ckpt_0000005"]
    c = tiny_config(max_iters=6, eval_interval=4, log_interval=2, sample_interval=3, sample_tokens=3)
    result = Trainer(c, data=tiny_data()).train()
    assert result.history["step"] == [2, 4, 6] and result.history["eval_step"] == [4, 6]


def test_token_ids_are_checked_before_they_reach_the_device():
    """On a GPU the model's own check is skipped (it would synchronise): the trainer checks on the CPU instead."""
    data = tiny_data()
    vocab = data.tokenizer.vocab_size
    bad = Dataset(TokenData(np.r_[data.train.tokens, vocab + 3]), data.val, data.tokenizer, "bad")
    from course.model import GPT

    model = GPT(GPTConfig(vocab_size=vocab, block_size=16, n_layer=1, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match=f"training data holds token id {vocab + 3}"):
        Trainer(tiny_config(), data=bad, model=model)  # at once, not at some later batch
    x = torch.full((2, 16), vocab, dtype=torch.long)  # custom samplers: every batch, before it moves
    good = torch.zeros(2, 16, dtype=torch.long)
    calls = []

    def loss_fn(m, xb, yb):
        calls.append(1)
        return m(xb, yb)[1]

    trainer = Trainer(tiny_config(), model=model, sampler=_FixedSampler(x, good), val_batches=[(good, good)], loss_fn=loss_fn)
    with pytest.raises(ValueError, match="training batch of the sampler holds token id"):
        trainer.train_step()
    assert calls == [], "the ids must be checked before the model sees them"
    with pytest.raises(ValueError, match="evaluation batch holds token id"):
        Trainer(tiny_config(), model=model, sampler=_FixedSampler(good, good), val_batches=[(x, good)])


SEED_SCRIPT = r"""
import json, os, sys
import torch
sys.path.insert(0, {tests!r})
from test_train import tiny_config, tiny_data
from course.train import Trainer
t = Trainer(tiny_config(threads=1, max_iters=2), data=tiny_data())
mask = torch.nn.functional.dropout(torch.ones(64), 0.5).tolist()  # the dropout masks this process would draw
state = t.sampler.generator.get_state()
batches = []
for rank in range(2):  # this process's view of the global batch of 2 processes x 4 windows
    t.sampler.generator.set_state(state)
    batches.append(t.sampler.step_batches(4, 1, 2, rank)[0][0].tolist())
batch = batches if t.dist.world_size == 1 else batches[t.dist.rank]
weights = float(sum(p.double().sum() for p in t.model.parameters()))
state = {{"rank": t.dist.rank, "mask": mask, "batch": batch, "weights": weights}}
with open(os.path.join(os.environ["STATE_DIR"], f"rank{{t.dist.rank}}.json"), "w") as f:  # not stdout: two processes share it
    json.dump(state, f)
"""


def _states(args: list[str], env: dict, folder: Path) -> dict[int, dict]:
    folder.mkdir()
    out = subprocess.run(args, env={**env, "STATE_DIR": str(folder)}, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    states = [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]
    return {s["rank"]: s for s in states}


def test_ddp_processes_draw_different_dropout_masks_from_the_same_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    script = tmp_path / "seeds.py"
    script.write_text(SEED_SCRIPT.format(tests=str(ROOT / "tests")))
    single = _states([sys.executable, str(script)], env, tmp_path / "one")[0]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}", str(script)]
    two = _states(torchrun, env, tmp_path / "two")
    assert sorted(two) == [0, 1], two.keys()
    assert two[0]["mask"] != two[1]["mask"], "both processes would drop the same units"
    assert two[0]["mask"] == single["mask"], "process 0 must draw what a single process draws"
    assert [two[0]["batch"], two[1]["batch"]] == single["batch"], "the data each process sees is unchanged"
    assert two[0]["weights"] == two[1]["weights"] == single["weights"], "DDP starts every process from process 0's weights"


def test_the_command_line_under_torchrun(tmp_path):
    """`python -m course.train` (here under torchrun, 2 processes): the token files are written once, the run saves."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
            "-m", "course.train", "--preset", "nanogpt-cpu", "--max-iters", "2", "--model-n-layer", "1", "--batch-size", "2",
            "--eval-iters", "1", "--progress", "false", "--device", "cpu", "--threads", "1",
            "--out-dir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data")]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("done: 2 steps") == 1, out.stdout  # process 0 reports
    assert (tmp_path / "data" / "train.bin.json").is_file() and latest_checkpoint(tmp_path / "run").name == "ckpt_0000002"
    model, config = load_model(tmp_path / "run")
    assert config.lr_decay_iters is None and config.model.n_layer == 1


def test_kernels_started_by_the_tests_show_no_live_progress_bar():
    """A live tqdm widget floods nbval's IOPub queue during a long training cell (tests/conftest.py says how)."""
    from course.distributed import DistInfo
    from course.train_support import progress_bar

    assert os.environ.get("COURSE_NO_PROGRESS") == "1", "tests/conftest.py must turn the progress bars off"
    config = tiny_config(progress=True)
    bar = progress_bar(config, DistInfo(), total=10, initial=0)
    assert bar.disable, "COURSE_NO_PROGRESS=1 must disable the bar even with progress=True"
    bar.close()
