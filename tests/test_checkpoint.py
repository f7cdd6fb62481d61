"""course.checkpoint: retention in a used out_dir, crash safety, clear errors, exact resume after Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch

from course.checkpoint import CheckpointError, atomic_write_text, load_checkpoint, point_latest
from course.model import GPT
from course.checkpoint import latest_checkpoint, load_model
from course.schedule import make_optimizer
from course.train import Trainer
from test_train import tiny_config, tiny_data


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def folders(out: Path) -> list[str]:
    return sorted(p.name for p in out.glob("ckpt_*"))


def pointer_target(out: Path) -> Path:
    """The folder latest.json points at, which must be complete (checked without course.checkpoint)."""
    name = json.loads((out / "latest.json").read_text())["checkpoint"]
    folder = out / name
    for file in ("model.safetensors", "state.pt", "config.json"):
        assert (folder / file).is_file(), f"latest.json points at {name}, which has no {file}"
    return folder


def a_used_out_dir(out: Path) -> None:
    """What an earlier, longer run (keep_checkpoints=2) left behind: ckpt_0004750, ckpt_0005000 and the pointer."""
    other = out.parent / "earlier-run"
    Trainer(tiny_config(max_iters=1, out_dir=str(other)), data=tiny_data()).train()
    out.mkdir()
    for step in (4750, 5000):
        shutil.copytree(other / "ckpt_0000001", out / f"ckpt_{step:07d}")
    (out / "latest.json").write_text(json.dumps({"checkpoint": "ckpt_0005000", "step": 5000}))


# ============================================================================ retention


def test_a_used_out_dir_loses_nothing_of_this_run_and_resumes(tmp_path):
    out = tmp_path / "run"
    a_used_out_dir(out)
    data = tiny_data()
    straight = Trainer(tiny_config(max_iters=8), data=data).train()

    run = Trainer(tiny_config(max_iters=8, out_dir=str(out), checkpoint_interval=2, keep_checkpoints=2), data=data)
    first = run.train(6)
    assert first.checkpoint == out / "ckpt_0000006" and latest_checkpoint(out) == first.checkpoint
    assert folders(out) == ["ckpt_0000004", "ckpt_0000006", "ckpt_0004750", "ckpt_0005000"], "keep 2 of ours, none of theirs"

    resumed_trainer = Trainer(tiny_config(max_iters=8, out_dir=str(out), checkpoint_interval=2, resume=True), data=data)
    assert resumed_trainer.step == 6, "resume must continue this run, not start from step 0"
    resumed = resumed_trainer.train()
    assert resumed.history["loss"] == straight.history["loss"]
    # the resumed run carries on with the run's own checkpoints: step 4 goes, the other run's stay
    assert folders(out) == ["ckpt_0000006", "ckpt_0000008", "ckpt_0004750", "ckpt_0005000"]


def test_keep_one_never_deletes_the_checkpoint_just_written(tmp_path):
    out = tmp_path / "run"
    a_used_out_dir(out)
    Trainer(tiny_config(max_iters=4, out_dir=str(out), checkpoint_interval=1, keep_checkpoints=1), data=tiny_data()).train()
    assert folders(out) == ["ckpt_0000004", "ckpt_0004750", "ckpt_0005000"]
    assert pointer_target(out).name == "ckpt_0000004"


# ============================================================================ crashes while saving


class Crash(BaseException):
    """A simulated crash (BaseException: no `except Exception` may swallow it)."""


def _save_under_watch(monkeypatch, out: Path, save, crash_at: int | None) -> int:
    """Run ``save()`` with os.rename, os.replace and shutil.rmtree checking before and after every call that
    latest.json points at a complete folder, and crashing at call number ``crash_at``; returns the calls made."""
    calls = [0]

    def watched(real):
        def call(*args, **kwargs):
            pointer_target(out)
            calls[0] += 1
            if calls[0] - 1 == crash_at:
                raise Crash
            result = real(*args, **kwargs)
            pointer_target(out)
            return result
        return call

    with monkeypatch.context() as m:
        for module, name in ((os, "rename"), (os, "replace"), (shutil, "rmtree")):
            m.setattr(module, name, watched(getattr(module, name)))
        if crash_at is None:
            save()
        else:
            with pytest.raises(Crash):
                save()
    return calls[0]


@pytest.mark.parametrize("case", ["save the same step again", "save the next step, keep 1"])
def test_a_crash_at_any_point_of_a_save_leaves_a_good_pointer(tmp_path, monkeypatch, case):
    def trainer_about_to_save(out: Path) -> Trainer:
        trainer = Trainer(tiny_config(max_iters=20, out_dir=str(out), keep_checkpoints=1), data=tiny_data())
        trainer.train(4)  # saves ckpt_0000004
        if case.startswith("save the next"):
            trainer.train_step()
        return trainer

    out = tmp_path / "watched"
    n = _save_under_watch(monkeypatch, out, trainer_about_to_save(out).save, None)  # goes through, watched
    assert n >= 3
    for crash_at in range(n):
        out = tmp_path / f"crash-{crash_at}"
        trainer = trainer_about_to_save(out)
        _save_under_watch(monkeypatch, out, trainer.save, crash_at)
        folder = pointer_target(out)
        assert load_checkpoint(GPT(trainer.model.config), None, out).folder == folder
        trainer.save()  # after the crash, a save that goes through
        assert trainer.checkpoints == [pointer_target(out).name]
        assert load_checkpoint(GPT(trainer.model.config), None, out).step == trainer.step


def test_saving_the_same_step_twice_keeps_one_folder(tmp_path):
    trainer = Trainer(tiny_config(out_dir=str(tmp_path)), data=tiny_data())
    trainer.train(4)
    trainer.train(4)  # nothing to do: saves step 4 again
    trainer.save()
    assert len(folders(tmp_path)) == 1 and pointer_target(tmp_path).name.startswith("ckpt_0000004")
    assert Trainer(tiny_config(out_dir=str(tmp_path), resume=True), data=tiny_data()).step == 4


def test_atomic_writes_use_unique_temporary_names(tmp_path):
    target = tmp_path / "latest.json"

    def writer_interrupted_by_another(tmp: Path) -> None:
        tmp.write_text("first")
        atomic_write_text(target, "second")  # a second writer, in the middle of the first
        assert tmp.read_text() == "first"

    from course.checkpoint import atomic_write

    atomic_write(target, writer_interrupted_by_another)
    assert target.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["latest.json"]


# ============================================================================ clear errors


@pytest.fixture
def run_with_two_checkpoints(tmp_path) -> Path:
    Trainer(tiny_config(max_iters=4, out_dir=str(tmp_path), checkpoint_interval=2), data=tiny_data()).train()
    assert folders(tmp_path) == ["ckpt_0000002", "ckpt_0000004"]
    return tmp_path


@pytest.mark.parametrize("content", ["", '{"checkpoint": "ckpt_00', "[1, 2]", '{"checkpoint": "../../etc", "step": 1}'])
def test_a_corrupt_pointer_is_a_clear_error(run_with_two_checkpoints, content):
    out = run_with_two_checkpoints
    (out / "latest.json").write_text(content)
    for attempt in (lambda: Trainer(tiny_config(out_dir=str(out), resume=True), data=tiny_data()),
                    lambda: latest_checkpoint(out), lambda: load_model(out)):
        with pytest.raises(CheckpointError, match="latest.json is corrupt") as err:
            attempt()
        assert "point_latest" in str(err.value) and "ckpt_0000004" in str(err.value) and "step 0" in str(err.value)


def test_a_dangling_pointer_is_a_clear_error_not_a_restart(run_with_two_checkpoints):
    out = run_with_two_checkpoints
    shutil.rmtree(out / "ckpt_0000004")
    with pytest.raises(CheckpointError, match="points at ckpt_0000004, which is missing") as err:
        Trainer(tiny_config(out_dir=str(out), resume=True), data=tiny_data())
    assert "point_latest" in str(err.value) and "'ckpt_0000002'" in str(err.value)
    point_latest(out, "ckpt_0000002")  # what the message says to do
    assert Trainer(tiny_config(max_iters=4, out_dir=str(out), resume=True), data=tiny_data()).step == 2


def _truncate_in_latest(out, file):
    """Cut ``file`` of the latest checkpoint (ckpt_0000004) to half its size, as a crash mid-write would."""
    path = out / "ckpt_0000004" / file
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("file", ["model.safetensors", "state.pt"])
def test_a_truncated_file_is_a_clear_error(run_with_two_checkpoints, file):
    out = run_with_two_checkpoints
    _truncate_in_latest(out, file)
    with pytest.raises(CheckpointError, match="the checkpoint is damaged") as err:
        Trainer(tiny_config(out_dir=str(out), resume=True), data=tiny_data())
    message = str(err.value)
    assert file in message and "point_latest" in message and "'ckpt_0000002'" in message
    if file == "model.safetensors":
        with pytest.raises(CheckpointError, match="damaged"):
            load_model(out)


@pytest.mark.parametrize("file", ["tokenizer.json", "config.json"])
def test_a_truncated_tokenizer_or_config_is_a_clear_error(run_with_two_checkpoints, file):
    from course.checkpoint import load_tokenizer

    out = run_with_two_checkpoints
    _truncate_in_latest(out, file)
    with pytest.raises(CheckpointError, match="the checkpoint is damaged") as err:
        # the tokenizer's kind comes from tokenizer.json's own format field: config.json is read by load_model
        load_tokenizer(out) if file == "tokenizer.json" else load_model(out)
    assert file in str(err.value) and "'ckpt_0000002'" in str(err.value)


def test_load_checkpoint_restores_weights_optimizer_and_random_states(tmp_path):
    trainer = Trainer(tiny_config(max_iters=3, out_dir=str(tmp_path)), data=tiny_data())
    result = trainer.train()
    model = GPT(trainer.model.config)
    optimizer = make_optimizer(model, trainer.config, torch.device("cpu"))
    generator = torch.Generator()
    torch.manual_seed(123)  # anything: load_checkpoint sets it
    ckpt = load_checkpoint(model, optimizer, tmp_path, generator=generator)
    assert ckpt.step == 3 and ckpt.history == result.history and ckpt.folder == result.checkpoint
    assert same_weights({k: v for k, v in model.state_dict().items()}, weights(trainer))
    assert torch.equal(generator.get_state(), trainer.sampler.generator.get_state())
    assert torch.equal(torch.get_rng_state(), torch.load(ckpt.folder / "state.pt", weights_only=True)["rng"]["torch"])
    mine, theirs = optimizer.state_dict()["state"], trainer.optimizer.state_dict()["state"]
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k]["exp_avg"], theirs[k]["exp_avg"]) for k in mine)


# ============================================================================ exact resume after Ctrl-C


@pytest.mark.parametrize("grad_accum,micro_batch", [(1, 0), (2, 1)])
def test_resume_after_an_interrupted_step_equals_an_uninterrupted_run(tmp_path, grad_accum, micro_batch):
    """Ctrl-C in the middle of step 6 (after its batch was drawn; with accumulation, after one backward)."""
    data = tiny_data()
    config = dict(max_iters=10, grad_accum=grad_accum, batch_size=4 // grad_accum)  # dropout on: RNG states matter
    straight_trainer = Trainer(tiny_config(**config), data=data)
    straight = straight_trainer.train()

    trainer = Trainer(tiny_config(**config, out_dir=str(tmp_path)), data=data)
    forwards = []

    def interrupt(module, args):
        if module.training and trainer.step == 5:
            forwards.append(1)
            if len(forwards) > micro_batch:
                raise KeyboardInterrupt

    handle = trainer.model.blocks[1].register_forward_pre_hook(interrupt)
    first = trainer.train()
    handle.remove()
    assert first.interrupted and first.steps == 5 and latest_checkpoint(tmp_path).name == "ckpt_0000005"

    resumed_trainer = Trainer(tiny_config(**config, out_dir=str(tmp_path), resume=True), data=data)
    assert resumed_trainer.step == 5
    resumed = resumed_trainer.train()
    assert resumed.history == straight.history  # losses, validation losses: bit for bit
    assert same_weights(weights(resumed_trainer), weights(straight_trainer))


@pytest.fixture
def python_handles_ctrl_c():
    """Python's own Ctrl-C handler, whatever the test run inherited.

    A process started in the background by a non-interactive shell (``cmd &``) inherits
    SIGINT as *ignored*, and Python then installs no KeyboardInterrupt handler: a
    Ctrl-C sent by this test would be lost, and the Trainer rightly leaves an
    inherited handler alone.
    """
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_the_update_lets_the_step_finish(tmp_path, python_handles_ctrl_c):
    data = tiny_data()
    straight_trainer = Trainer(tiny_config(max_iters=8), data=data)
    straight = straight_trainer.train()
    trainer = Trainer(tiny_config(max_iters=8, out_dir=str(tmp_path)), data=data)
    update = trainer.optimizer.step

    def update_with_ctrl_c(*args, **kwargs):
        if trainer.step == 3:  # the update of step 4, an evaluation step
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the update
        return update(*args, **kwargs)

    trainer.optimizer.step = update_with_ctrl_c  # type: ignore[method-assign]
    first = trainer.train()
    assert first.interrupted and first.steps == 4, "the update in progress completes, then the run stops"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed_trainer = Trainer(tiny_config(max_iters=8, out_dir=str(tmp_path), resume=True), data=data)
    assert resumed_trainer.train().history == straight.history  # the interrupted step's log line too
    assert same_weights(weights(resumed_trainer), weights(straight_trainer))
