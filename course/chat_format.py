"""The chat format of the course's assistant (chapter 11).

A language model continues text; an assistant answers turns of a conversation.
What turns one into the other starts here: a way to write a conversation as one
sequence of token ids, with special tokens that mark who speaks, and a loss mask
that says which tokens the model is trained to produce.

**The tokenizer.** The assistant starts from the shipped character-level
Shakespeare model (chapter 05), and keeps its character vocabulary: every id
keeps its meaning and its trained embedding row. Characters suit the tasks
(`course.assistant_tasks`): spelling a word and counting its letters need the
letters in sight, which chapter 09's BPE hides inside word tokens, and
arithmetic goes digit by digit either way (that BPE learned no merges of digits
from a corpus that hardly has any). The price is length: a conversation takes
about three times more tokens than in BPE, in a context of 256. Tiny Shakespeare
has one digit (``3``), so `ChatTokenizer` appends, after the 65 existing ids, the
characters the tasks and the calculator need (`EXTRA_CHARS`: the digits,
``+ * / = ( ) "``, and ``< > | _`` so that a user can type the text of a special
token), then one id per special token (`SPECIAL_TOKENS`). With the shipped
vocabulary:

* ``<|system|>`` 85: the start of a system message;
* ``<|user|>`` 86: the start of a user message;
* ``<|assistant|>`` 87: the start of an assistant message;
* ``<|end|>`` 88: the end of every message (the assistant's stop token);
* ``<|tool_call|>`` 89: inside an assistant message, a calculator call follows;
* ``<|tool_result|>`` 90: the start of the calculator's answer (a "tool" message).

Ids 65-84 are the 20 added characters (in code-point order). A special token
exists only as an id: `ChatTokenizer.encode` turns text into character ids, so
the text ``"<|user|>"`` typed in a message becomes eight ordinary characters and
can never forge a turn. An unknown character is an error that names it.

**The messages** (the schema that `validate_messages` enforces) are dicts:

* ``{"role": "system", "content": str}``: only as the first message;
* ``{"role": "user", "content": str}``;
* ``{"role": "assistant", "content": str}``, optionally with ``"tool_call": str``
  (a non-empty calculator expression, written after the content);
* ``{"role": "tool", "content": str}``: the calculator's answer; it comes right
  after an assistant message with a ``tool_call``, and such a message is followed
  by its tool message (unless it is the last message, awaiting the result).

(Hugging Face's schema has a list ``tool_calls`` of JSON function calls; this
assistant has one tool, so one string is enough.)

**Rendering.** Each message is its role token, its text, and ``<|end|>``; an
assistant's tool call is ``<|tool_call|>`` and the expression before that
``<|end|>``; there is nothing between messages::

    <|user|>What is 12*34?<|end|><|assistant|><|tool_call|>12*34<|end|><|tool_result|>408<|end|><|assistant|>408<|end|>

`render_conversation` returns the ids and the **loss mask**: 1 on every token the
assistant writes (its text, its tool call and its ``<|end|>``), 0 on everything
else (the role tokens, which the template writes, and all system, user and tool
text). The mask is aligned with the ids: ``mask[i] == 1`` means "predicting
``ids[i]`` from ``ids[:i]`` is trained"; `inputs_and_targets` turns that into a
shifted (inputs, targets) pair with ``-100`` where nothing is trained.
`render_prompt` ends with ``<|assistant|>`` so that generation writes the next
reply; `decode_conversation` reads ids back into messages (the exact inverse of
`render_conversation`); `render_text` gives the text, which is also what
`CHAT_TEMPLATE`, the same format as a Jinja chat template, renders in Hugging
Face ``transformers`` (the tests check it).

**Growing the model.** `grow_model` gives a pretrained GPT the new rows of its
token embedding and output head (one matrix when they are tied), keeping the old
rows bit for bit.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .model import GPT
from .sft import IGNORE  # -100: a target left out of the loss (GPT.forward), as in chapter 07
from .tokenizers import CharTokenizer
from .validate import one_of, positive_int

__all__ = [
    "ASSISTANT", "CHAT_TEMPLATE", "ChatTokenizer", "ConversationFormatError", "END", "EXTRA_CHARS", "GROW_INITS",
    "ROLES", "SPECIAL_TOKENS", "SYSTEM", "TOOL_CALL", "TOOL_RESULT", "USER",
    "decode_conversation", "grow_model", "inputs_and_targets", "render_conversation", "render_prompt", "render_text",
    "validate_messages",
]

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
TOOL_CALL, TOOL_RESULT = "<|tool_call|>", "<|tool_result|>"
#: In id order: they follow the characters.
SPECIAL_TOKENS = (SYSTEM, USER, ASSISTANT, END, TOOL_CALL, TOOL_RESULT)
ROLES = ("system", "user", "assistant", "tool")
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT, "tool": TOOL_RESULT}
#: Characters the assistant's tasks and its calculator need; those the base vocabulary lacks are appended.
EXTRA_CHARS = "0123456789+-*/=()\"<>|_"
GROW_INITS = ("mean", "normal", "zeros")
FORMAT = "course-chat-tokenizer"
_MESSAGE_KEYS = {"role", "content", "tool_call"}

#: The same format as a Jinja chat template (Hugging Face ``tokenizer.chat_template``).
#: ``{% generation %}`` marks the text the assistant writes: transformers' assistant mask.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message.role == 'system' -%}<|system|>{{ message.content }}<|end|>"
    "{%- elif message.role == 'user' -%}<|user|>{{ message.content }}<|end|>"
    "{%- elif message.role == 'assistant' -%}<|assistant|>{% generation %}{{ message.content }}"
    "{%- if message.tool_call is defined -%}<|tool_call|>{{ message.tool_call }}{%- endif -%}"
    "<|end|>{% endgeneration %}"
    "{%- elif message.role == 'tool' -%}<|tool_result|>{{ message.content }}<|end|>"
    "{%- else -%}{{ raise_exception('unknown role: ' + message.role) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


class ConversationFormatError(ValueError):
    """Messages that break the schema, or ids that are not a rendered conversation."""


# ============================================================================ the tokenizer


class ChatTokenizer:
    """A character tokenizer grown for chat: the base ids, then `EXTRA_CHARS` it lacks, then `SPECIAL_TOKENS`.

    >>> tok = ChatTokenizer(CharTokenizer.from_text("ab"), extra_chars="1")
    >>> tok.encode("ab1"), tok.end_id, tok.decode([0, 2, tok.end_id])
    ([0, 1, 2], 6, 'a1<|end|>')
    """

    def __init__(
        self, base: CharTokenizer, extra_chars: str = EXTRA_CHARS, special_tokens: Sequence[str] = SPECIAL_TOKENS
    ) -> None:
        if not isinstance(base, CharTokenizer):
            raise TypeError(
                f"base must be a course.tokenizers.CharTokenizer (the pretrained model's), got {type(base).__name__}."
            )
        specials = tuple(special_tokens)
        if len(set(specials)) != len(specials):
            raise ValueError(f"special tokens must be distinct, got {specials}.")
        for s in specials:
            if not isinstance(s, str) or len(s) < 2:
                raise ValueError(f"a special token must be a str of at least 2 characters (never a character), got {s!r}.")
        missing = [s for s in (SYSTEM, USER, ASSISTANT, END, TOOL_CALL, TOOL_RESULT) if s not in specials]
        if missing:
            raise ValueError(f"the chat format needs the special tokens {missing}.")
        self.base_vocab_size = base.vocab_size
        self.added_chars = sorted(set(extra_chars) - set(base.chars))
        self.text = CharTokenizer(list(base.chars) + self.added_chars)  # ids 0..base-1 unchanged
        self.special_tokens = specials
        first = self.text.vocab_size
        self.special_ids: dict[str, int] = {s: first + i for i, s in enumerate(specials)}
        self._special_of_id = {i: s for s, i in self.special_ids.items()}
        self.system_id, self.user_id = self.special_ids[SYSTEM], self.special_ids[USER]
        self.assistant_id, self.end_id = self.special_ids[ASSISTANT], self.special_ids[END]
        self.tool_call_id, self.tool_result_id = self.special_ids[TOOL_CALL], self.special_ids[TOOL_RESULT]

    @classmethod
    def for_shipped_model(cls) -> "ChatTokenizer":
        """The chat tokenizer of the shipped character model (``course/checkpoints/shakespeare-char``)."""
        from .pretrained import SHIPPED

        path = SHIPPED / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing (a trimmed install): build the chat tokenizer from your model's own tokenizer, "
                "ChatTokenizer(load_pretrained().tokenizer)."
            )
        return cls(CharTokenizer.load(path))

    @property
    def vocab_size(self) -> int:
        return self.text.vocab_size + len(self.special_tokens)

    @property
    def chars(self) -> list[str]:
        """The characters, in id order (ids 0 .. len(chars) - 1)."""
        return list(self.text.chars)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (f"ChatTokenizer(vocab_size={self.vocab_size}: {self.base_vocab_size} base characters, "
                f"{len(self.added_chars)} added, {len(self.special_tokens)} special tokens)")

    def missing_chars(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that the vocabulary lacks, sorted (empty when it can encode it)."""
        return sorted(set(text) - set(self.text.stoi))

    def encode(self, text: str) -> list[int]:
        """Character ids of plain text. Never a special id: ``"<|user|>"`` in the text is eight characters."""
        return self.text.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids, special tokens written as their text (so the text alone cannot tell them from typed ones)."""
        out = []
        n = self.vocab_size
        for pos, i in enumerate(ids):
            i = int(i)
            if i in self._special_of_id:
                out.append(self._special_of_id[i])
            elif 0 <= i < self.text.vocab_size:
                out.append(self.text.chars[i])
            else:
                raise ValueError(f"id {i} at position {pos} is out of range: ids go from 0 to {n - 1}.")
        return "".join(out)

    def is_special(self, token_id: int) -> bool:
        return int(token_id) in self._special_of_id

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as readable JSON: the base characters, the added ones, the special tokens."""
        data = {"format": FORMAT, "version": 1, "base_chars": self.text.chars[: self.base_vocab_size],
                "added_chars": self.added_chars, "special_tokens": list(self.special_tokens)}
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ChatTokenizer":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not a chat tokenizer file ({type(err).__name__}: {err}).") from None
        keys = ("base_chars", "added_chars", "special_tokens")
        if (not isinstance(data, dict) or data.get("format") != FORMAT
                or not all(isinstance(data.get(k), list) for k in keys)):
            raise ValueError(f"{path} is not a chat tokenizer file (expected format {FORMAT!r} with the lists {keys}); "
                             "was it written by ChatTokenizer.save?")
        tok = cls(CharTokenizer(data["base_chars"]), "".join(data["added_chars"]), data["special_tokens"])
        if tok.added_chars != list(data["added_chars"]):
            raise ValueError(f"{path}: the added characters overlap the base ones; the file was edited by hand?")
        return tok


# ============================================================================ messages


def validate_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The messages as plain dicts, or a `ConversationFormatError` that names the message and the rule it breaks."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ConversationFormatError(
            f"messages must be a list of dicts such as {{'role': 'user', 'content': 'Hi'}}, got {type(messages).__name__}."
        )
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        where = f"message {i}"
        if not isinstance(m, Mapping):
            raise ConversationFormatError(f"{where} must be a dict with 'role' and 'content', got {type(m).__name__}.")
        unknown = sorted(set(m) - _MESSAGE_KEYS)
        if unknown:
            hint = " (this format has one calculator call per message: 'tool_call', a str)" if "tool_calls" in unknown else ""
            raise ConversationFormatError(f"{where} has unknown keys {unknown}; allowed: {sorted(_MESSAGE_KEYS)}{hint}.")
        role = m.get("role")
        if role not in ROLES:
            raise ConversationFormatError(f"{where} has role {role!r}; roles are {ROLES}.")
        if not isinstance(m.get("content"), str):
            raise ConversationFormatError(f"{where} ({role}) needs a 'content' str, got {type(m.get('content')).__name__}.")
        msg = {"role": role, "content": m["content"]}
        if "tool_call" in m:
            if role != "assistant":
                raise ConversationFormatError(
                    f"{where} is a {role} message with a 'tool_call': only the assistant calls tools."
                )
            if not isinstance(m["tool_call"], str) or not m["tool_call"]:
                raise ConversationFormatError(
                    f"{where}: 'tool_call' must be a non-empty str (an expression such as '12*34')."
                )
            msg["tool_call"] = m["tool_call"]
        if role == "system" and i != 0:
            raise ConversationFormatError(f"{where} is a system message: a system message can only come first.")
        calling = bool(out) and "tool_call" in out[-1]
        if role == "tool" and not calling:
            raise ConversationFormatError(
                f"{where} is a tool result, but message {i - 1} is not an assistant message with a 'tool_call'."
            )
        if calling and role != "tool":
            raise ConversationFormatError(
                f"message {i - 1} calls the calculator, so message {i} must be its result (role 'tool'), not {role!r}."
            )
        out.append(msg)
    return out


def _encode_message_text(text: str, tokenizer: ChatTokenizer, where: str) -> list[int]:
    try:
        return tokenizer.encode(text)
    except ValueError as err:
        raise ConversationFormatError(f"{where}: {err}") from None


def render_conversation(messages: Sequence[Mapping[str, Any]], tokenizer: ChatTokenizer) -> tuple[list[int], list[int]]:
    """``(ids, loss_mask)`` of a conversation: mask 1 on the tokens the assistant writes, 0 elsewhere.

    An assistant message gives ``<|assistant|>`` (mask 0: the template writes it),
    then its text, ``<|tool_call|>`` and the expression if it calls the tool, and
    ``<|end|>`` (all mask 1). Any other message gives its role token, its text and
    ``<|end|>``, all mask 0: the model reads them but is not trained to write them.
    """
    if not isinstance(tokenizer, ChatTokenizer):
        raise TypeError(f"tokenizer must be a ChatTokenizer, got {type(tokenizer).__name__}.")
    ids: list[int] = []
    mask: list[int] = []

    def put(tokens: list[int], trained: int) -> None:
        ids.extend(tokens)
        mask.extend([trained] * len(tokens))

    for i, m in enumerate(validate_messages(messages)):
        where = f"message {i} ({m['role']})"
        text = _encode_message_text(m["content"], tokenizer, where)
        if m["role"] == "assistant":
            put([tokenizer.assistant_id], 0)
            put(text, 1)
            if "tool_call" in m:
                put([tokenizer.tool_call_id] + _encode_message_text(m["tool_call"], tokenizer, where + ", tool_call"), 1)
            put([tokenizer.end_id], 1)
        else:
            put([tokenizer.special_ids[ROLE_TOKENS[m["role"]]]] + text + [tokenizer.end_id], 0)
    return ids, mask


def render_prompt(messages: Sequence[Mapping[str, Any]], tokenizer: ChatTokenizer) -> list[int]:
    """The ids that ask for the next assistant reply: the rendered messages, then ``<|assistant|>``."""
    msgs = validate_messages(messages)
    if msgs and "tool_call" in msgs[-1]:
        raise ConversationFormatError(
            "the last message calls the calculator: add its result ({'role': 'tool', 'content': ...}) before asking "
            "for the next reply."
        )
    return render_conversation(msgs, tokenizer)[0] + [tokenizer.assistant_id]


def render_text(messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = False) -> str:
    """The conversation as text, exactly what `CHAT_TEMPLATE` renders (special tokens as their text)."""
    parts = []
    for m in validate_messages(messages):
        if m["role"] == "assistant":
            call = TOOL_CALL + m["tool_call"] if "tool_call" in m else ""
            parts.append(ASSISTANT + m["content"] + call + END)
        else:
            parts.append(ROLE_TOKENS[m["role"]] + m["content"] + END)
    if add_generation_prompt:
        parts.append(ASSISTANT)
    return "".join(parts)


def decode_conversation(ids: Sequence[int], tokenizer: ChatTokenizer) -> list[dict[str, str]]:
    """The messages that `render_conversation` turned into ``ids`` (its exact inverse).

    Raises `ConversationFormatError` naming the position where the ids stop being a
    rendered conversation (a missing ``<|end|>``, a special token inside a message,
    a tool call outside an assistant message...).
    """
    ids = [int(i) for i in ids]
    role_of = {tokenizer.special_ids[tok]: role for role, tok in ROLE_TOKENS.items()}
    name = {i: s for s, i in tokenizer.special_ids.items()}
    messages: list[dict[str, str]] = []
    pos, n = 0, len(ids)

    def read_text(start: int) -> tuple[str, int]:
        end = start
        while end < n and not tokenizer.is_special(ids[end]):
            end += 1
        return tokenizer.decode(ids[start:end]), end

    while pos < n:
        head = ids[pos]
        if head not in role_of:
            what = name.get(head, repr(tokenizer.decode([head])))
            roles = ", ".join(ROLE_TOKENS.values())
            raise ConversationFormatError(f"position {pos}: expected a role token ({roles}), got {what}.")
        role = role_of[head]
        content, pos = read_text(pos + 1)
        msg = {"role": role, "content": content}
        if role == "assistant" and pos < n and ids[pos] == tokenizer.tool_call_id:
            msg["tool_call"], pos = read_text(pos + 1)
        if pos >= n:
            raise ConversationFormatError(f"the {role} message that starts at the end is not closed by {END}.")
        if ids[pos] != tokenizer.end_id:
            raise ConversationFormatError(
                f"position {pos}: expected {END} to close the {role} message, got {name[ids[pos]]}."
            )
        pos += 1
        messages.append(msg)
    return validate_messages(messages)


def inputs_and_targets(ids: Sequence[int], loss_mask: Sequence[int]) -> tuple[list[int], list[int]]:
    """The training pair of a rendered conversation: ``ids[:-1]`` and ``ids[1:]`` with `IGNORE` where the mask is 0."""
    if len(ids) != len(loss_mask):
        raise ValueError(f"ids and loss_mask must have the same length, got {len(ids)} and {len(loss_mask)}.")
    if len(ids) < 2:
        raise ValueError(f"a training pair needs at least 2 tokens, got {len(ids)}.")
    targets = [int(t) if m else IGNORE for t, m in zip(ids[1:], loss_mask[1:])]
    return [int(i) for i in ids[:-1]], targets


# ============================================================================ growing the model


def grow_model(model: GPT, new_vocab_size: int, init: str = "mean", *, std: float = 0.02, seed: int = 0) -> GPT:
    """A copy of ``model`` with ``new_vocab_size`` token rows; rows 0..old-1 are kept bit for bit.

    The new rows of the token embedding and of the output head (the same matrix
    when the model ties them) are initialised by ``init``:

    * ``"mean"`` (the usual choice): the mean of the existing rows. A new token's
      input looks like an average token, and its logit is the mean of the old
      logits (the head is linear), so by Jensen's inequality each new token gets
      at most 1/old_vocab_size of the probability: the pretrained model's
      predictions barely move before training. (Hewitt, 2021, "Initializing New
      Word Embeddings for Pretrained Language Models".)
    * ``"normal"``: N(0, ``std``²) with a seeded generator, as a freshly built GPT
      (``std`` 0.02). Unlike the trained rows, these are small: a logit near 0 can
      be far above or below the trained ones.
    * ``"zeros"``: zero rows; every new token's logit is exactly 0.

    The other weights are copied; the result has ``model``'s device, dtype and
    train/eval mode, and ``model`` itself is left unchanged. For inputs made of old
    tokens the hidden states are unchanged, so the old logits are too; only the
    softmax normaliser gains the new tokens' terms, which lowers every old
    token's log-probability by the same amount at a position.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a course.model.GPT, got {type(model).__name__}.")
    positive_int(new_vocab_size, "new_vocab_size")
    one_of(init, GROW_INITS, "init")
    old = model.config.vocab_size
    if new_vocab_size < old:
        raise ValueError(
            f"new_vocab_size={new_vocab_size} is smaller than the model's vocabulary ({old}): growing never drops rows."
        )
    weight = model.tok_emb.weight
    generator = torch.Generator().manual_seed(seed)

    def grown(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.detach()
        k = new_vocab_size - old
        if init == "mean":
            extra = rows.double().mean(0, keepdim=True).expand(k, -1)
        elif init == "normal":
            extra = torch.randn(k, rows.shape[1], generator=generator, dtype=torch.float64) * std
        else:
            extra = torch.zeros(k, rows.shape[1], dtype=torch.float64)
        return torch.cat([rows.cpu(), extra.to(rows.dtype)], 0)

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state["tok_emb.weight"] = grown(weight)
    if model.config.tie_weights:
        state["head.weight"] = state["tok_emb.weight"]
    else:
        state["head.weight"] = grown(model.head.weight)
    new = GPT(replace(model.config, vocab_size=new_vocab_size))
    new.load_state_dict(state)
    new.to(device=weight.device, dtype=weight.dtype)
    new.train(model.training)
    return new


# ============================================================================ the tokenizer's file format
# (added with course.chat_data / course.chat_engine / course.chat) So that course.tokenizers.load_tokenizer_file,
# and with it course.checkpoint.load_tokenizer, reads a chat checkpoint's tokenizer.json. course.tokenizers cannot
# import this module (this module builds on it), so this module registers its format there.

from .tokenizers import register_tokenizer_format  # noqa: E402

register_tokenizer_format(FORMAT, ChatTokenizer)
