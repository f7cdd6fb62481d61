"""Tests of course.chat_data (chapter 11): conversations as training rows. The batch loss is the mean cross-entropy
over the assistant's tokens only (computed by hand on each unpadded conversation); nothing else gets a gradient;
too-long conversations are dropped and reported, never cut; packing keeps every trained target; the rows train
through course.train.Trainer and the checkpoint loads back with its chat tokenizer."""

from __future__ import annotations

import warnings

import pytest
import torch

from chat_helpers import TOK, tiny_model
from course.assistant_tasks import mixture
from course.sft import IGNORE
from course.chat_data import ChatRows, attach_tokenizer, chat_rows, mixture_rows, trainer_batches
from course.chat_format import ChatTokenizer, render_conversation

TOOL_CHAT = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is 4110*390?"},
    {"role": "assistant", "content": "", "tool_call": "4110*390"},
    {"role": "tool", "content": "1602900"},
    {"role": "assistant", "content": "1602900"},
]
FOLLOW_UP = [
    {"role": "user", "content": "What is 12+34?"},
    {"role": "assistant", "content": "46"},
    {"role": "user", "content": "Now multiply that by 3."},
    {"role": "assistant", "content": "138"},
]
SHORT = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A small GPT."}]
CHATS = [TOOL_CHAT, FOLLOW_UP, SHORT]


def _hand_loss(model, conversations) -> torch.Tensor:
    """Mean over every assistant token of every conversation of -log p(token | the tokens before it), unpadded."""
    losses = []
    for messages in conversations:
        ids, mask = render_conversation(messages, TOK)
        logits, _ = model(torch.tensor([ids[:-1]]))
        logp = torch.log_softmax(logits[0].double(), dim=-1)
        for i in range(1, len(ids)):
            if mask[i]:
                losses.append(-logp[i - 1, ids[i]])
    return torch.stack(losses).mean()


def test_rows_are_padded_and_masked_by_the_documented_rule():
    rows = chat_rows(CHATS, TOK, 64)
    assert isinstance(rows, ChatRows) and rows.x.shape == rows.y.shape == (3, 64)
    assert rows.x.dtype == rows.y.dtype == torch.long
    for r, messages in enumerate(CHATS):
        ids, mask = render_conversation(messages, TOK)
        n = len(ids) - 1
        assert rows.x[r, :n].tolist() == ids[:-1]
        assert (rows.x[r, n:] == TOK.end_id).all(), "inputs are padded with <|end|>"
        assert (rows.y[r, n:] == IGNORE).all(), "no target on the padding"
        expected = [t if m else IGNORE for t, m in zip(ids[1:], mask[1:])]
        assert rows.y[r, :n].tolist() == expected
    assert rows.trained_tokens == sum(sum(render_conversation(m, TOK)[1]) for m in CHATS)
    assert rows.lengths == [len(render_conversation(m, TOK)[0]) for m in CHATS]
    # the calculator's result and the user's text are never targets; the call and the answers are
    y = rows.y[0].tolist()
    trained = TOK.decode([t for t in y if t != IGNORE])
    assert trained == "<|tool_call|>4110*390<|end|>1602900<|end|>"
    assert "A small GPT.<|end|>" == TOK.decode([t for t in rows.y[2].tolist() if t != IGNORE])
    assert "conversations" in rows.summary() and 0 < rows.fill < 1


def test_batch_loss_is_the_mean_cross_entropy_over_assistant_tokens_only():
    model = tiny_model(block_size=64)
    rows = chat_rows(CHATS, TOK, 64)
    with torch.no_grad():
        _, loss = model(rows.x, rows.y)
        expected = _hand_loss(model, CHATS)
    assert abs(float(loss) - float(expected)) < 1e-5, (float(loss), float(expected))


def test_user_tool_and_padding_positions_get_no_gradient_and_do_not_change_the_loss():
    model = tiny_model(block_size=64)
    rows = chat_rows(CHATS, TOK, 64)
    kept: list[torch.Tensor] = []

    def keep_logits(module, inputs, output):
        output.retain_grad()
        kept.append(output)

    handle = model.head.register_forward_hook(keep_logits)
    _, loss = model(rows.x, rows.y)
    handle.remove()
    loss.backward()
    grad = kept[0].grad  # d loss / d logits, (rows, T, V)
    free = rows.y == IGNORE  # positions whose target is a role token, system/user/tool text or padding
    assert free.any() and (~free).any()
    assert grad[free].abs().max() == 0, "a position outside the assistant's tokens got a gradient"
    assert (grad[~free].abs().sum(-1) > 0).all(), "every assistant token must be trained"

    # the same thing as an experiment: change the model's outputs at the positions that predict a user token
    ids, mask = render_conversation(FOLLOW_UP, TOK)
    user_pos = [i - 1 for i in range(1, len(ids)) if not mask[i] and ids[i] not in TOK.special_ids.values()]
    assert user_pos
    generator = torch.Generator().manual_seed(0)

    def scramble(module, inputs, output):
        out = output.clone()
        out[1, user_pos] = torch.randn(len(user_pos), out.shape[-1], generator=generator) * 10
        return out

    with torch.no_grad():
        _, before = model(rows.x, rows.y)
        handle = model.head.register_forward_hook(scramble)
        _, after = model(rows.x, rows.y)
        handle.remove()
        changed = rows.x.clone()
        changed[1, len(ids) - 1:] = 7  # different padding inputs: nothing before them can see them
        _, padded = model(changed, rows.y)
    assert float(after) == float(before)
    assert abs(float(padded) - float(before)) < 1e-6


def test_too_long_conversations_are_dropped_and_reported_or_refused():
    long_chat = [{"role": "user", "content": "a" * 80}, {"role": "assistant", "content": "b" * 20}]
    n_long = len(render_conversation(long_chat, TOK)[0])
    with pytest.warns(UserWarning, match="1 conversation"):
        rows = chat_rows([SHORT, long_chat, FOLLOW_UP], TOK, 64)
    assert len(rows) == 2 and rows.dropped == [(1, n_long)]
    assert "1 dropped" in rows.summary()
    with pytest.raises(ValueError, match="conversation 1 has .* more than the context"):
        chat_rows([SHORT, long_chat], TOK, 64, too_long="error")
    # exactly block_size + 1 tokens fit (block_size training pairs), one more does not
    fits = [{"role": "user", "content": "x" * 10}, {"role": "assistant", "content": "y"}]
    n = len(render_conversation(fits, TOK)[0])
    assert len(chat_rows([fits], TOK, n - 1)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat_rows([fits], TOK, n - 1)  # no warning when nothing is dropped
    with pytest.raises(ValueError, match="no conversation fits.*all 1 are longer"):
        chat_rows([fits], TOK, n - 2)


def test_bad_input_is_refused_with_what_to_do():
    with pytest.raises(TypeError, match="ChatTokenizer"):
        chat_rows(CHATS, TOK.text, 64)
    with pytest.raises(ValueError, match="block_size"):
        chat_rows(CHATS, TOK, 0)
    with pytest.raises(ValueError, match="too_long"):
        chat_rows(CHATS, TOK, 64, too_long="cut")
    with pytest.raises(ValueError, match="pad_id"):
        chat_rows(CHATS, TOK, 64, pad_id=TOK.vocab_size)
    with pytest.raises(TypeError, match="list of messages"):
        chat_rows(["What is 1+1?"], TOK, 64)
    with pytest.raises(ValueError, match="empty"):
        chat_rows([], TOK, 64)


def test_packing_keeps_every_trained_target_in_fewer_rows():
    examples = list(mixture("train", 40, seed=3))
    plain = chat_rows(examples, TOK, 256)
    packed = chat_rows(examples, TOK, 256, pack=True)
    assert packed.packed and len(packed) < len(plain)
    assert packed.trained_tokens == plain.trained_tokens
    assert sorted(packed.y[packed.y != IGNORE].tolist()) == sorted(plain.y[plain.y != IGNORE].tolist())
    assert packed.fill > plain.fill
    # rows hold whole conversations, in order: concatenating the rows' tokens gives the conversations back
    stream: list[int] = []
    for x, y in zip(packed.x.tolist(), packed.y.tolist()):
        used = max(i for i, t in enumerate(y) if t != IGNORE) + 1 if any(t != IGNORE for t in y) else 0
        stream += x[:used] + [y[used - 1]]
    expected = [t for e in examples for t in render_conversation(e.messages, TOK)[0]]
    assert stream == expected


def test_mixture_rows_train_through_the_trainer_and_the_checkpoint_loads_with_its_tokenizer(tmp_path):
    from course.checkpoint import load_model, load_tokenizer
    from course.finetune import finetune_config
    from course.train import Trainer

    model = tiny_model(block_size=256)
    train = mixture_rows("train", 64, TOK, 256, seed=0)
    val = mixture_rows("validation", 8, TOK, 256, seed=0)
    assert set(train.x.flatten().tolist()) | set(val.x.flatten().tolist()) <= set(range(TOK.vocab_size))
    sampler, val_batches = trainer_batches(train, val, batch_size=4, seed=0)
    assert sum(len(x) for x, _ in val_batches) == len(val)
    config = finetune_config(max_iters=4, batch_size=4, eval_interval=4, lr=1e-2, min_lr=1e-3, warmup_iters=0,
                             device="cpu", out_dir=str(tmp_path / "run"), model=model.config)
    trainer = Trainer(config, model=model, sampler=sampler, val_batches=val_batches)
    first = trainer.evaluate()
    trainer.train()
    assert trainer.evaluate() < first
    folder = attach_tokenizer(tmp_path / "run", TOK).parent
    assert folder.parent == tmp_path / "run"
    tokenizer = load_tokenizer(tmp_path / "run")
    assert isinstance(tokenizer, ChatTokenizer) and tokenizer.vocab_size == TOK.vocab_size
    assert tokenizer.decode(tokenizer.encode("12*34")) == "12*34"
    loaded, _ = load_model(tmp_path / "run")
    assert torch.equal(loaded.head.weight, trainer.model.head.weight.detach().cpu())
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        attach_tokenizer(tmp_path, TOK)
    with pytest.raises(TypeError):
        attach_tokenizer(tmp_path / "run", TOK.text)
    with pytest.raises(ValueError, match="different lengths"):
        trainer_batches(train, chat_rows(CHATS, TOK, 64), 4)


def test_load_tokenizer_file_knows_the_chat_format(tmp_path):
    import subprocess
    import sys

    import course.chat_format as chat_format
    from course.tokenizers import _REGISTERED_BY, TokenizerFileError, load_tokenizer_file, register_tokenizer_format

    assert _REGISTERED_BY[chat_format.FORMAT] == "course.chat_format"
    TOK.save(tmp_path / "t.json")
    again = load_tokenizer_file(tmp_path / "t.json")
    assert isinstance(again, ChatTokenizer) and again.special_ids == TOK.special_ids and again.chars == TOK.chars
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    with pytest.raises(TokenizerFileError, match="course-chat-tokenizer"):
        load_tokenizer_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="new non-empty format"):
        register_tokenizer_format("course-char-tokenizer", ChatTokenizer)
    with pytest.raises(TypeError, match="load"):
        register_tokenizer_format("x", object)
    # a process that has not imported course.chat_format reads it all the same (the loader imports the module)
    code = ("import sys\nfrom course.tokenizers import load_tokenizer_file\n"
            "assert 'course.chat_format' not in sys.modules\n"
            "print(type(load_tokenizer_file(sys.argv[1])).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.json")], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "ChatTokenizer", out.stderr


def test_the_assistant_recipe_is_the_documented_one(tmp_path):
    from course.chat_data import CONVERSATIONS_PER_ROW, ROWS_PER_BATCH, VAL_CONVERSATIONS, assistant_recipe

    a = assistant_recipe(TOK, 256, 20, tmp_path / "a", seed=3)
    c = a.config
    assert (c.max_iters, c.lr, c.lr_decay_iters, c.warmup_iters) == (20, 3e-3, 20, 2) and c.min_lr == pytest.approx(3e-4)
    assert (c.batch_size, c.eval_interval, c.checkpoint_interval, c.weight_decay, c.seed) == (ROWS_PER_BATCH, 2, 2, 0.0, 3)
    assert len(a.train.lengths) + len(a.train.dropped) == 20 * ROWS_PER_BATCH * CONVERSATIONS_PER_ROW
    assert a.train.packed and len(a.val.lengths) + len(a.val.dropped) == VAL_CONVERSATIONS
    b = assistant_recipe(TOK, 256, 20, tmp_path / "b", seed=4)
    assert torch.equal(a.val.x, b.val.x)  # every seed is measured on the same validation rows
    assert not torch.equal(a.train.x, b.train.x)  # and trains on its own conversations
    assert assistant_recipe(TOK, 256, 2000, tmp_path / "c").config.warmup_iters == 100
    with pytest.raises(ValueError, match="steps"):
        assistant_recipe(TOK, 256, 0, tmp_path / "d")
