"""Tests of course.finetune (chapter 07): tasks, the response-only mask, the classifier, LoRA, training hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course.classification import (GPTClassifier, accuracy, bag_of_chars, classification_loss, confusion_matrix,
                                   fit_logistic_regression, predict_classes, speaker_examples)
from course.early_stopping import EarlyStopping
from course.finetune import ExampleSampler, batches, finetune_config, restrict_to_vocab, set_dropout
from course.lora import LoRALinear, apply_lora, count_parameters, merge_lora, remove_lora
from course.memory import optimizer_state_bytes
from course.sft import (IGNORE, apply_word_task, corpus_words, encode_sft, exact_match, greedy_complete,
                        response_targets, split_words, word_task_examples)
from course.model import GPT, GPTConfig
from course.tokenizers import CharTokenizer
from course.train import Trainer

ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PLAY = (
    "ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east.\n\n"
    "MENENIUS:\nWhat work's, my countrymen, in hand? where go you\nWith bats and clubs?\n\n"
    "ROMEO:\nShe speaks, yet she says nothing: what of that?\n\n"
    "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo?\n\n"
    "MENENIUS:\nWhy, masters, my good friends, mine honest neighbours,\nWill you undo yourselves?\n"
)


@pytest.fixture
def tok() -> CharTokenizer:
    return CharTokenizer(list(ALPHABET))


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(ALPHABET), block_size=32, n_layer=2, n_head=2, n_embd=16, **kw))


# ---------------------------------------------------------------- tasks


def test_word_tasks_and_determinism():
    assert apply_word_task("upper", "crown") == "CROWN"
    assert apply_word_task("reverse", "crown") == "nworc"
    assert apply_word_task("lower", "CROWN") == "crown"
    words = corpus_words("The crown, the KING and a crown of gold; goldfinches", 3, 8)
    assert words == ["and", "crown", "gold", "the"]  # lower-case runs of 3..8 letters
    a = word_task_examples(words, 50, seed=3)
    assert a == word_task_examples(words, 50, seed=3)
    assert a != word_task_examples(words, 50, seed=4)
    for prompt, response in a:
        task, _, word = prompt.rstrip("\n").partition(": ")
        assert response == apply_word_task(task, word) + "\n" and response != word + "\n"
    train, test = split_words([f"w{i}" for i in range(100)], 0.2, seed=0)
    assert len(test) == 20 and not set(train) & set(test) and len(set(train) | set(test)) == 100
    with pytest.raises(ValueError, match="unknown task"):
        word_task_examples(words, 5, 0, tasks=("shout",))
    with pytest.raises(ValueError, match="words is empty"):
        word_task_examples([], 5, 0)


def test_speaker_examples_rule():
    texts, labels = speaker_examples(PLAY, ("ROMEO", "MENENIUS"), length=20, seed=0)
    assert sorted(labels) == [0, 0, 1, 1]  # ROMEO has 2 lines of >= 20 characters, MENENIUS 4: balanced to 2 each
    assert all(len(t) == 20 for t in texts)
    for t, label in zip(texts, labels):
        assert ("ROMEO:\n" if label == 0 else "MENENIUS:\n") in PLAY.split(t)[0].rsplit("\n\n", 1)[-1]
    assert (texts, labels) == speaker_examples(PLAY, ("ROMEO", "MENENIUS"), length=20, seed=0)
    assert not any("Romeo" in t for t in texts)  # JULIET's line is in neither class
    with pytest.raises(ValueError, match="no line of 'Romeo'"):
        speaker_examples(PLAY, ("Romeo", "MENENIUS"))


def test_restrict_to_vocab(tok):
    assert restrict_to_vocab("x = [1]", tok) == "x         "[:7]
    with pytest.raises(ValueError, match="replacement"):
        restrict_to_vocab("x", tok, replacement="#")


# ---------------------------------------------------------------- the response-only mask


def test_response_targets_mask_exactly_the_prompt():
    ids = [10, 11, 12, 20, 21]  # prompt of 3 tokens, response of 2
    x, y = response_targets(ids, 3)
    assert x == [10, 11, 12, 20]
    assert y == [IGNORE, IGNORE, 20, 21]  # position 2 (last prompt token) predicts the first response token
    with pytest.raises(ValueError, match="prompt_len"):
        response_targets(ids, 5)


def test_encode_sft_pads_and_masks(tok):
    examples = [("upper: ab\n", "AB\n"), ("reverse: abcd\n", "dcba\n")]
    x, y = encode_sft(examples, tok, pad_id=0)
    assert x.shape == y.shape == (2, len("reverse: abcd\ndcba\n") - 1)
    for row, (p, r) in enumerate(examples):
        kept = y[row][y[row] != IGNORE].tolist()
        assert tok.decode(kept) == r  # the loss sees the response and nothing else
        n = len(p) + len(r) - 1
        assert tok.decode(x[row, :n].tolist()) == (p + r)[:-1]
        assert (x[row, n:] == 0).all() and (y[row, n:] == IGNORE).all()
    _, y_all = encode_sft(examples, tok, mask_prompt=False)
    assert int((y_all != IGNORE).sum()) == sum(len(p) + len(r) - 1 for p, r in examples)


@torch.no_grad()
def test_masked_loss_equals_loss_on_response_only(tok):
    model = tiny_gpt()
    x, y = encode_sft([("upper: ab\n", "AB\n"), ("lower: XYZ\n", "xyz\n")], tok)
    logits, loss = model(x, y)
    keep = y != IGNORE
    manual = torch.nn.functional.cross_entropy(logits[keep], y[keep])
    torch.testing.assert_close(loss, manual)
    # the prompt's targets really are left out: learning them too gives a different loss
    _, loss_all = model(x, encode_sft([("upper: ab\n", "AB\n"), ("lower: XYZ\n", "xyz\n")], tok, mask_prompt=False)[1])
    assert abs(float(loss_all) - float(loss)) > 1e-4


def test_greedy_complete_and_exact_match(tok):
    model = tiny_gpt()
    prompts = ["ab", "abc", "xy", "q"]
    out = greedy_complete(model, prompts, tok, max_new=5)
    for p, o in zip(prompts, out):  # agrees with an unbatched greedy loop
        ids = torch.tensor([tok.encode(p)])
        text = ""
        for _ in range(5):
            nxt = int(model(ids)[0][0, -1].argmax())
            text += tok.decode([nxt])
            ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
            if text.endswith("\n"):
                break
        assert o == text
    assert exact_match(["A\n", "b\n"], ["A\n", "B\n"]) == 0.5
    with pytest.raises(ValueError, match="as many"):
        exact_match(["a"], ["a", "b"])


# ---------------------------------------------------------------- classification


def test_classifier_uses_last_token_and_metrics():
    gpt = tiny_gpt()
    clf = GPTClassifier(gpt, 3).eval()
    x = torch.randint(0, len(ALPHABET), (4, 10))
    hidden, _ = gpt._trunk(x, None, return_weights=False)
    torch.testing.assert_close(clf(x), clf.head(hidden[:, -1]))
    x2 = x.clone()
    x2[:, -1] = (x2[:, -1] + 1) % len(ALPHABET)  # the last token changes the output
    assert not torch.allclose(clf(x2), clf(x))
    pred, target = torch.tensor([0, 1, 1, 2, 0]), torch.tensor([0, 1, 2, 2, 1])
    assert accuracy(pred, target) == pytest.approx(0.6)
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]] and int(cm.sum()) == 5
    with pytest.raises(ValueError):
        GPTClassifier(gpt, 1)


def test_bag_of_chars_logistic_regression_learns_a_rule():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 10, (400, 12), generator=gen)
    y = (x == 3).sum(1).gt((x == 7).sum(1)).long()  # more 3s than 7s
    feats = bag_of_chars(x, 10)
    torch.testing.assert_close(feats.sum(1), torch.ones(400))
    lin = fit_logistic_regression(feats[:300], y[:300], 2)
    assert accuracy(lin(feats[300:]).argmax(1), y[300:]) > 0.85


# ---------------------------------------------------------------- LoRA


def test_lora_starts_as_identity_change_and_counts():
    base = nn.Linear(8, 6)
    lora = LoRALinear(base, rank=2, alpha=4)
    x = torch.randn(3, 8)
    assert torch.equal(lora.lora_B, torch.zeros(6, 2))
    torch.testing.assert_close(lora(x), base(x), rtol=0, atol=0)
    assert count_parameters(lora) == (2 * (8 + 6), 2 * (8 + 6) + 8 * 6 + 6)
    with torch.no_grad():
        lora.lora_B.normal_()
    torch.testing.assert_close(lora(x), base(x) + 2.0 * x @ lora.lora_A.T @ lora.lora_B.T)
    torch.testing.assert_close(lora.merged()(x), lora(x), rtol=1e-5, atol=1e-6)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rank"):
            LoRALinear(nn.Linear(8, 6), bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rank=7"):
        LoRALinear(nn.Linear(8, 6), 7)


def test_apply_merge_remove_lora_on_gpt():
    model = tiny_gpt().eval()
    x = torch.randint(0, len(ALPHABET), (2, 12))
    before = model(x)[0]
    total_before = count_parameters(model)[1]
    names = apply_lora(model, rank=4, targets=("attn.qkv", "mlp.fc"))
    assert names == ["blocks.0.attn.qkv", "blocks.0.mlp.fc", "blocks.1.attn.qkv", "blocks.1.mlp.fc"]
    trainable, total = count_parameters(model)
    d = 16
    assert trainable == 2 * 4 * (d + 3 * d) + 2 * 4 * (d + 4 * d)
    assert total == total_before + trainable
    torch.testing.assert_close(model(x)[0], before, rtol=0, atol=0)  # B = 0: nothing changed yet
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(std=0.1)
    adapted = model(x)[0]
    assert not torch.allclose(adapted, before, atol=1e-4)
    assert merge_lora(model) == 4
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(x)[0], adapted, rtol=1e-5, atol=1e-5)  # merged == adapter model
    assert count_parameters(model) == (0, total_before)  # merged layers stay frozen, like the rest

    fresh = tiny_gpt().eval()
    apply_lora(fresh, rank=2)
    with torch.no_grad():
        for m in fresh.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_()
    assert remove_lora(fresh) == 4
    torch.testing.assert_close(fresh(x)[0], before, rtol=0, atol=0)  # the base weights were never touched


def test_apply_lora_bad_input():
    model = tiny_gpt()
    with pytest.raises(ValueError, match="rank must be a positive int"):
        apply_lora(model, 0)
    with pytest.raises(ValueError, match=r"no linear layer matches \['attn.query'\].*attn.qkv"):
        apply_lora(model, 2, targets=("attn.query",))
    assert all(p.requires_grad for p in model.parameters())  # a failed call changes nothing
    apply_lora(model, 2)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, 2)
    clf = GPTClassifier(tiny_gpt(), 2)
    apply_lora(clf, 2, train=("head",))
    trainable = {n for n, p in clf.named_parameters() if p.requires_grad}
    expected = {"head.weight", "head.bias"} | {
        f"gpt.blocks.{i}.attn.{w}.lora_{m}" for i in (0, 1) for w in ("qkv", "proj") for m in "AB"
    }
    assert trainable == expected
    with pytest.raises(ValueError, match="names no module"):
        apply_lora(GPTClassifier(tiny_gpt(), 2), 2, train=("classifier",))


# ---------------------------------------------------------------- training through the Trainer


def test_sft_and_lora_training_through_trainer(tok):
    examples = [("upper: ab\n", "AB\n"), ("upper: cd\n", "CD\n"), ("reverse: ab\n", "ba\n")]
    x, y = encode_sft(examples, tok)
    model = tiny_gpt()
    apply_lora(model, rank=4, targets=("attn.qkv", "mlp.fc", "head"))  # a tiny random model needs the head to move
    frozen = model.tok_emb.weight.detach().clone()
    config = finetune_config(max_iters=60, lr=1e-2, min_lr=1e-3, eval_interval=20, batch_size=3)
    trainer = Trainer(config, model=model, sampler=ExampleSampler(x, y, 0), val_batches=batches(x, y, 8))
    result = trainer.train()
    assert result.history["val_loss"][-1] < result.history["val_loss"][0] - 0.5
    assert torch.equal(model.tok_emb.weight, frozen)
    n_trainable = count_parameters(model)[0]
    assert optimizer_state_bytes(trainer.optimizer) == 2 * 4 * n_trainable  # AdamW: two float32 moments


def test_classifier_trains_and_early_stopping_keeps_best():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, len(ALPHABET), (64, 8), generator=gen)
    y = (x[:, -1] % 2).long()
    clf = GPTClassifier(tiny_gpt(), 2)
    stopper = EarlyStopping(patience=2)
    config = finetune_config(max_iters=80, lr=3e-3, eval_interval=10, batch_size=16)
    trainer = Trainer(config, model=clf, sampler=ExampleSampler(x, y, 0), val_batches=batches(x, y, 64),
                      loss_fn=classification_loss)
    result = trainer.train(on_eval=stopper)
    assert stopper.best_loss == min(result.history["val_loss"])
    assert accuracy(predict_classes(clf, x), y) > 0.9
    stopper.restore(clf)
    assert trainer.evaluate() == pytest.approx(stopper.best_loss, abs=1e-6)
    with pytest.raises(ValueError, match="no evaluation"):
        EarlyStopping().restore(clf)


def test_sampler_determinism_and_set_dropout():
    x, y = torch.arange(20).view(10, 2), torch.arange(10)
    a = ExampleSampler(x, y, 5).step_batches(4, 2)
    b = ExampleSampler(x, y, 5).step_batches(4, 2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    two = ExampleSampler(x, y, 5).step_batches(2, 2, world_size=2, rank=1)
    assert torch.equal(two[0][1], a[0][1][2:])  # rank 1 of 2 takes the second half of the global batch
    with pytest.raises(ValueError, match="same, non-zero"):
        ExampleSampler(x, y[:3], 0)
    model = tiny_gpt()
    set_dropout(model, 0.3)
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, nn.Dropout))
    with pytest.raises(ValueError, match="dropout"):
        set_dropout(model, 1.0)


# ---------------------------------------------------------------- the chapter's exercise checks


def test_checks_pass_solutions_and_name_classic_mistakes():
    from course.checks import ExerciseFailed, NotImplementedYet
    from course.checks.ch07 import check_lora_forward, check_merge_lora_weight, check_sft_example
    from solutions.ch07_finetuning import lora_forward, merge_lora_weight, sft_example

    check_sft_example(sft_example)
    check_lora_forward(lora_forward)
    check_merge_lora_weight(merge_lora_weight)

    def unmasked(p, r):
        ids = list(p) + list(r)
        return torch.tensor(ids[:-1]), torch.tensor(ids[1:])

    def one_too_many(p, r):
        x, y = sft_example(p, r)
        y = y.clone()
        y[len(p) - 1] = IGNORE
        return x, y

    def masks_response(p, r):
        x, y = sft_example(p, r)
        return x, torch.where(y == IGNORE, torch.tensor(7), torch.tensor(IGNORE))

    for bad, message in ((unmasked, "nothing is masked"), (one_too_many, "one target too many"),
                         (masks_response, "the response's targets are masked")):
        with pytest.raises(ExerciseFailed, match=message):
            check_sft_example(bad)
    with pytest.raises(ExerciseFailed, match="scaling"):
        check_lora_forward(lambda x, w, b, A, B, s: x @ w.T + b + (x @ A.T) @ B.T)
    with pytest.raises(ExerciseFailed, match="frozen layer"):
        check_lora_forward(lambda x, w, b, A, B, s: s * (x @ A.T) @ B.T)
    with pytest.raises(ExerciseFailed, match="scaling"):
        check_merge_lora_weight(lambda w, A, B, s: w + B @ A)

    def in_place(w, A, B, s):
        w += s * B @ A
        return w

    with pytest.raises(ExerciseFailed, match="in place"):
        check_merge_lora_weight(in_place)

    def stub(*args):
        raise NotImplementedError

    for check in (check_sft_example, check_lora_forward, check_merge_lora_weight):
        with pytest.raises(NotImplementedYet):
            check(stub)


# ---------------------------------------------------------------- greedy_complete: token lengths, the window, generate


def _greedy_by_hand(model, ids: list[int], tok, max_new: int, stop: str = "\n") -> str:
    """One prompt, unbatched, the context windowed to the last block_size tokens."""
    block = model.config.block_size
    ids, new = list(ids), []
    for _ in range(max_new):
        nxt = int(model(torch.tensor([ids[-block:]]))[0][0, -1].argmax())
        ids.append(nxt)
        new.append(nxt)
        if stop in tok.decode(new):
            break
    text = tok.decode(new)
    return text[: text.index(stop) + len(stop)] if stop in text else text


def test_greedy_complete_groups_by_token_length_with_a_bpe_tokenizer():
    from course.tokenizers import BPETokenizer

    bpe = BPETokenizer.train(PLAY * 4 + "upper: the\nlower: XYZ\n", 300)
    prompts = ["upper: the\n", "lower: XYZ\n", "upper: ab\n"]
    assert len(prompts[0]) == len(prompts[1]) and len(bpe.encode(prompts[0])) != len(bpe.encode(prompts[1])), \
        "the test needs two prompts of equal characters but different tokens"
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=1, n_head=2, n_embd=16)).eval()
    out = greedy_complete(model, prompts, bpe, max_new=6)  # grouped by characters, this raised
    assert out == [_greedy_by_hand(model, bpe.encode(p), bpe, 6) for p in prompts]


def test_greedy_complete_windows_the_context_to_block_size(tok):
    model = tiny_gpt().eval()  # block_size 32
    prompts = ["the east is where the sun is", "ab"]  # 28 characters + 8 new > 32: the window must slide
    out = greedy_complete(model, prompts, tok, max_new=8, stop="$")  # this model never writes "$": all 8 tokens
    assert [len(o) for o in out] == [8, 8]
    assert out == [_greedy_by_hand(model, tok.encode(p), tok, 8, stop="$") for p in prompts]
    with pytest.raises(ValueError, match="encodes to no token"):
        greedy_complete(model, [""], tok)
    with pytest.raises(TypeError, match="list of strings"):
        greedy_complete(model, "ab", tok)


def test_greedy_complete_goes_through_sampling_generate(tok, monkeypatch):
    import course.sft
    from course.sampling import generate

    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return generate(*args, **kwargs)

    monkeypatch.setattr(course.sft, "generate", spy)
    greedy_complete(tiny_gpt(), ["ab", "xy", "abc"], tok, max_new=3)
    assert len(calls) == 2 and all(c["greedy"] for c in calls), "one generate call per token length"


def test_greedy_complete_multi_character_stop_and_mode(tok):
    model = tiny_gpt()
    model.train()
    prompts = ["the", "ab"]
    out = greedy_complete(model, prompts, tok, max_new=12, stop="fX")
    assert model.training, "the caller's mode is restored"
    model.eval()
    assert out == [_greedy_by_hand(model, tok.encode(p), tok, 12, stop="fX") for p in prompts]
    assert out[0].endswith("fX"), "this model's greedy text holds the stop (the test needs it to)"


# ---------------------------------------------------------------- the split by concept


def test_lora_is_self_contained():
    import ast
    from pathlib import Path

    import course.lora

    tree = ast.parse(Path(course.lora.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)] + [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert all(m.split(".")[0] in ("__future__", "math", "typing", "torch") for m in imported), imported
    assert all(n.level == 0 for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)), "lora.py imports nothing from course"


def test_predict_classes_restores_the_mode_even_on_error():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError("boom")

    model = Broken().train()
    with pytest.raises(RuntimeError, match="boom"):
        predict_classes(model, torch.zeros(3, 2, dtype=torch.long))
    assert model.training, "the caller's mode is restored after an error"
    with pytest.raises(ValueError, match="batch_size"):
        predict_classes(tiny_gpt(), torch.zeros(3, 2, dtype=torch.long), batch_size=0)
