"""Tests of course.assistant_tasks (chapter 11): splits disjoint by construction (no validation or test item, and
no validation or test prompt, ever appears in training), verifiers that recompute answers, the stated
normalisation, the mixture, and every character inside the chat tokenizer's vocabulary."""

from __future__ import annotations

import doctest
from collections import Counter, defaultdict

import pytest

import course.assistant_tasks as assistant_tasks
from course.assistant_tasks import (
    IDENTITY_ANSWER,
    IDENTITY_QUESTIONS,
    SPLITS,
    Arithmetic,
    CommaListTask,
    Example,
    FollowUpTask,
    SpeakerTask,
    default_tasks,
    exact_match,
    mixture,
    normalize,
    play_lines,
    speeches,
    split_of,
)
from course.calculator import calculate
from course.chat_format import ChatTokenizer, render_conversation, render_text, validate_messages
from course.data import tinyshakespeare

PER_SPLIT = 150  # examples of every task in every split for the disjointness proof


@pytest.fixture(scope="module")
def text() -> str:
    corpus = tinyshakespeare(download_ok=False)
    if corpus.is_fallback:
        pytest.skip("Tiny Shakespeare is not available (set COURSE_DATA_DIR)")
    return corpus.text


@pytest.fixture(scope="module")
def tasks(text: str) -> dict:
    return default_tasks(text)


@pytest.fixture(scope="module")
def generated(tasks: dict) -> dict[str, dict[str, list[Example]]]:
    """PER_SPLIT examples of every task in every split, seeds from one range for all (the split is what differs)."""
    return {name: {split: [task.make(seed, split) for seed in range(PER_SPLIT)] for split in SPLITS}
            for name, task in tasks.items()}


def test_doctests() -> None:
    assert doctest.testmod(assistant_tasks).failed == 0


# ------------------------------------------------------------------ splits
def test_split_of_is_a_stable_hash() -> None:
    assert split_of("words", "crown") == split_of("words", "crown")
    counts = Counter(split_of("arithmetic", str(i)) for i in range(20_000))
    assert abs(counts["train"] / 20_000 - 0.8) < 0.01
    assert abs(counts["validation"] / 20_000 - 0.1) < 0.01
    assert abs(counts["test"] / 20_000 - 0.1) < 0.01
    # the family is part of the hash: the same key may land elsewhere in another family
    assert any(split_of("words", str(i)) != split_of("lines", str(i)) for i in range(100))


def test_examples_belong_to_their_split(generated, tasks) -> None:
    for name, by_split in generated.items():
        for split, examples in by_split.items():
            for ex in examples:
                assert ex.split == split and ex.task == name
                if name == "identity":  # listed per split, not hashed
                    assert ex.key in IDENTITY_QUESTIONS[split]
                elif name == "comma_list":  # every word of the list is an item of the split
                    assert {split_of("words", w) for w in ex.data["words"]} == {split}
                else:
                    assert split_of(tasks[name].family, ex.key) == split, (name, ex.key)


def test_no_validation_or_test_prompt_appears_in_training(generated, tasks) -> None:
    """The proof by enumeration: thousands of prompts of each split, and not one held-out prompt in training."""
    prompts = {split: set() for split in SPLITS}
    keys = {split: defaultdict(set) for split in SPLITS}
    for name, by_split in generated.items():
        for split, examples in by_split.items():
            for ex in examples:
                prompts[split].add(render_text(ex.prompt))
                keys[split][tasks[name].family].add(ex.key)
    assert len(prompts["train"]) > 1000 and len(prompts["test"]) > 1000
    for held_out in ("validation", "test"):
        assert not prompts[held_out] & prompts["train"]
        for family, held in keys[held_out].items():
            assert not held & keys["train"][family], family
    assert not prompts["validation"] & prompts["test"]


def test_held_out_words_never_appear_in_any_training_word_task(generated) -> None:
    def words(split: str) -> set[str]:
        out: set[str] = set()
        for name in ("spell", "count_letter", "capitals", "comma_list"):
            for ex in generated[name][split]:
                out |= set(ex.data.get("words", [ex.data.get("word")]))
        return out

    assert not words("test") & words("train") and not words("validation") & words("train")


def test_commutative_pairs_are_one_item() -> None:
    add = Arithmetic("+", 2)
    examples = [add.make(seed, "test") for seed in range(200)]
    for ex in examples:
        a, b = ex.data["a"], ex.data["b"]
        assert split_of("arithmetic", f"{min(a, b)}+{max(a, b)}") == "test"  # b+a is not a training item either
        assert ex.key == f"{min(a, b)}+{max(a, b)}"


def test_follow_up_first_turns_are_items_of_the_split(generated) -> None:
    for split in SPLITS:
        for ex in generated["follow_up"][split]:
            d = ex.data
            first = f"{min(d['a'], d['b'])}{d['op']}{max(d['a'], d['b'])}" if d["op"] in "+*" else f"{d['a']}-{d['b']}"
            assert split_of("arithmetic", first) == split


def test_identity_phrasings_are_disjoint() -> None:
    for a in SPLITS:
        for b in SPLITS:
            if a != b:
                assert not set(IDENTITY_QUESTIONS[a]) & set(IDENTITY_QUESTIONS[b])


# ------------------------------------------------------------------ verifiers
def test_reference_answers_score_and_follow_the_chat_schema(generated, tasks) -> None:
    for name, by_split in generated.items():
        for examples in by_split.values():
            for ex in examples:
                assert tasks[name].score(ex.answer, ex), (name, ex.answer)
                assert ex.messages[-1] == {"role": "assistant", "content": ex.answer}
                assert validate_messages(ex.messages) == ex.messages
                assert ex.question in render_text(ex.prompt)


def test_wrong_answers_fail(generated, tasks) -> None:
    for name, by_split in generated.items():
        for ex in by_split["test"][:30]:
            assert not tasks[name].score(ex.answer + "x", ex), name
            assert not tasks[name].score("", ex), name


def test_arithmetic_is_checked_by_python(tasks) -> None:
    ex = tasks["multiply"].make(3, "train")
    a, b = ex.data["a"], ex.data["b"]
    ex.answer = "0"  # the verifier never trusts the stored answer
    assert tasks["multiply"].score(str(a * b), ex)
    assert tasks["multiply"].score(f"  {a * b}. ", ex)  # normalised
    assert not tasks["multiply"].score(f"0{a * b}", ex)  # exact match: a leading zero is another answer
    assert not tasks["multiply"].score(str(a * b + 1), ex)


def test_arithmetic_settings() -> None:
    three = Arithmetic("*", 3)
    for seed in range(100):
        ex = three.make(seed, "validation")
        assert 100 <= ex.data["a"] <= 999 and 100 <= ex.data["b"] <= 999
    sub = Arithmetic("-", (1, 4))
    assert all(int(sub.make(seed, "test").answer) >= 0 for seed in range(200))
    negatives = Arithmetic("-", (1, 4), allow_negative=True)
    assert any(int(negatives.make(seed, "test").answer) < 0 for seed in range(200))
    for bad in (0, (3, 2), (1, 21), "2", (1.0, 2)):
        with pytest.raises(ValueError, match="digits must be"):
            Arithmetic("+", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="op must be one of"):
        Arithmetic("/", 2)


def test_tool_replies_use_the_calculator(tasks) -> None:
    ex = tasks["multiply_tool"].make(5, "train")
    call, result, final = ex.reply
    assert call["tool_call"] == f"{ex.data['a']}*{ex.data['b']}" and call["content"] == ""
    assert result == {"role": "tool", "content": calculate(call["tool_call"])}
    assert final["content"] == result["content"] == ex.answer
    ids, mask = render_conversation(ex.messages, ChatTokenizer.for_shipped_model())
    assert sum(mask) == len(call["tool_call"]) + 2 + len(final["content"]) + 1  # the tool's result is not trained
    tool_follow_up = FollowUpTask(tool=True).make(2, "test")
    assert [m["role"] for m in tool_follow_up.messages] == ["user", "assistant", "tool", "assistant", "user",
                                                           "assistant", "tool", "assistant"]


def test_follow_up_refers_to_the_previous_answer(tasks) -> None:
    for seed in range(50):
        ex = tasks["follow_up"].make(seed, "train")
        d = ex.data
        ops = {"+": int.__add__, "-": int.__sub__, "*": int.__mul__}
        first = ops[d["op"]](d["a"], d["b"])
        assert ex.prompt[1]["content"] == str(first)
        assert str(d["c"]) in ex.prompt[2]["content"]
        assert ex.answer == str(ops[d["op2"]](first, d["c"])) and int(ex.answer) >= 0


def test_word_tasks(tasks) -> None:
    spell = tasks["spell"].make(0, "train")
    word, sep = spell.data["word"], spell.data["sep"]
    assert spell.answer == sep.join(word) and f"'{word}'" in spell.question
    assert tasks["spell"].score(spell.answer.upper(), spell)  # case-insensitive
    count = tasks["count_letter"].make(1, "train")
    assert count.answer == str(count.data["word"].count(count.data["letter"]))
    letters = [tasks["count_letter"].make(s, "train") for s in range(200)]
    assert any(e.answer == "0" for e in letters) and any(e.answer != "0" for e in letters)
    caps = tasks["capitals"].make(2, "train")
    assert caps.answer == caps.data["word"].upper()
    assert not tasks["capitals"].score(caps.data["word"], caps)  # the one case-sensitive task
    lst = tasks["comma_list"].make(3, "train")
    words = lst.data["words"]
    assert 3 <= len(words) <= 5
    assert tasks["comma_list"].score(",".join(words), lst)
    assert tasks["comma_list"].score(" , ".join(w.upper() for w in words), lst)
    assert not tasks["comma_list"].score(" ".join(words), lst)
    assert not tasks["comma_list"].score(", ".join(reversed(words)), lst)


def test_play_tasks(tasks, text: str) -> None:
    lines = play_lines(text)
    assert len(lines) > 10_000
    said_by = defaultdict(set)
    for speaker, spoken in speeches(text):
        for line in spoken:
            said_by[line].add(speaker)
    for ex in [tasks["speaker"].make(s, "test") for s in range(100)]:
        assert said_by[ex.data["line"]] == {ex.answer}  # unambiguous: nobody else says it
        assert ex.data["line"] in ex.question
        assert tasks["speaker"].score(ex.answer.lower(), ex)
    one = tasks["one_word"].make(4, "validation")
    assert one.data["line"].lstrip().startswith(one.answer) and " " not in one.answer
    assert not tasks["one_word"].score(one.answer + " " + one.answer, one)


def test_speeches_and_unambiguous_lines() -> None:
    text = ("First Citizen:\nBefore we proceed any further, hear me speak.\nSpeak, speak, I pray you now.\n\n"
            "All:\nBefore we proceed any further, hear me speak.\n\n"
            "MENENIUS:\nWhat work's, my countrymen, in hand? where go you\n\n"
            "Not a speech\n\nROMEO:\n")
    assert list(speeches(text)) == [
        ("First Citizen", ["Before we proceed any further, hear me speak.", "Speak, speak, I pray you now."]),
        ("All", ["Before we proceed any further, hear me speak."]),
        ("MENENIUS", ["What work's, my countrymen, in hand? where go you"]),
    ]
    assert play_lines(text) == {"Speak, speak, I pray you now.": "First Citizen",
                                "What work's, my countrymen, in hand? where go you": "MENENIUS"}


def test_a_corpus_without_speeches_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="needs Tiny Shakespeare"):
        SpeakerTask("just some prose without any speaker at all\n").make(0, "train")


def test_identity(tasks) -> None:
    ex = tasks["identity"].make(0, "test")
    assert ex.answer == IDENTITY_ANSWER and ex.question in IDENTITY_QUESTIONS["test"]
    assert "Large Language Models: From Theory to Practice" in IDENTITY_ANSWER


def test_score_refuses_another_task_s_example(tasks) -> None:
    ex = tasks["add"].make(0, "train")
    with pytest.raises(ValueError, match="cannot score an example of 'add'"):
        tasks["multiply"].score("3", ex)
    with pytest.raises(TypeError, match="answer must be a str"):
        tasks["add"].score(3, ex)


# ------------------------------------------------------------------ normalisation
@pytest.mark.parametrize("answer, reference, case_sensitive, same", [
    (" 46 ", "46", False, True),
    ("46.", "46", False, True),
    ("46..", "46", False, False),  # one final "." only
    ("c  r\no", "c r o", False, True),
    ("ROMEO", "Romeo", False, True),
    ("ROMEO", "Romeo", True, False),
    ("046", "46", False, False),
    ("4 6", "46", False, False),
])
def test_normalisation(answer: str, reference: str, case_sensitive: bool, same: bool) -> None:
    assert exact_match(answer, reference, case_sensitive=case_sensitive) is same


def test_normalize_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="expects a str"):
        normalize(46)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the mixture and the vocabulary
def test_mixture_is_deterministic_and_covers_every_task(tasks) -> None:
    a = list(mixture("train", 400, seed=1, tasks=tasks))
    b = list(mixture("train", 400, seed=1, tasks=tasks))
    assert [e.messages for e in a] == [e.messages for e in b]
    assert [e.messages for e in a] != [e.messages for e in mixture("train", 400, seed=2, tasks=tasks)]
    assert set(Counter(e.task for e in a)) == set(tasks)
    assert all(e.split == "train" for e in a)


def test_mixture_weights(tasks) -> None:
    only = list(mixture("test", 50, weights={"add": 1, "identity": 3}, tasks=tasks))
    counts = Counter(e.task for e in only)
    assert set(counts) == {"add", "identity"} and counts["identity"] > counts["add"]
    with pytest.raises(ValueError, match="unknown tasks"):
        list(mixture("test", 5, weights={"poetry": 1}, tasks=tasks))
    with pytest.raises(ValueError, match="at least one positive"):
        list(mixture("test", 5, weights={"add": 0}, tasks=tasks))
    with pytest.raises(ValueError, match="split must be one of"):
        list(mixture("dev", 5, tasks=tasks))
    with pytest.raises(ValueError, match="non-negative int"):
        list(mixture("test", -1, tasks=tasks))


def test_every_character_is_in_the_chat_vocabulary(generated) -> None:
    tok = ChatTokenizer.for_shipped_model()
    for by_split in generated.values():
        for examples in by_split.values():
            for ex in examples:
                text = "".join(m["content"] + m.get("tool_call", "") for m in ex.messages)
                assert not tok.missing_chars(text), (ex.task, tok.missing_chars(text))
                render_conversation(ex.messages, tok)


def test_make_takes_a_seed_or_a_random_generator(tasks) -> None:
    import random

    assert tasks["add"].make(7, "train").messages == tasks["add"].make(random.Random(7), "train").messages
    with pytest.raises(TypeError, match="random.Random or an int"):
        tasks["add"].make("7", "train")
    with pytest.raises(ValueError, match="split must be one of"):
        tasks["add"].make(7, "dev")


def test_comma_list_needs_words() -> None:
    with pytest.raises(ValueError, match="five words"):
        CommaListTask("a b").make(0, "train")


def test_usable_tasks_leave_out_what_the_corpus_cannot_make(text, capsys):
    from course.assistant_tasks import usable_tasks

    assert list(usable_tasks(text)) == list(default_tasks(text))  # Tiny Shakespeare makes every task
    assert capsys.readouterr().out == ""
    import random

    rng = random.Random(0)  # prose of 3,000 made-up words, and no speeches (no "NAME:" lines)
    prose = " ".join("".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 9))) for _ in range(3000))
    usable = usable_tasks(prose)
    assert set(default_tasks(prose)) - set(usable) == {"speaker", "one_word"}
    out = capsys.readouterr().out
    assert "'speaker' cannot be made" in out and "needs Tiny Shakespeare" in out
    ex = usable["spell"].make(0, "test")  # the word tasks draw from the corpus given
    assert ex.data["word"] in prose.split()
