"""Chapter 11's chat widget in JupyterLab, used as a learner uses it: type a question, press Enter, read the reply.

A two-cell notebook (the chapter's own widget cell: the shipped assistant and `course.widgets.chat.chat_widget`)
is served from a temporary folder by JupyterLab as `make lab` starts it (test_lab.running_lab). Steps, each with a
screenshot in _build/browser/lab-chat/:

1. Run All: the widget appears live with its first exchange (12*34, through the calculator);
2. typing "What is 4821*376?" into the box and pressing Enter streams in a reply: the calculator call shows while
   the reply is still being written, then the right product;
3. Reset empties the transcript.
"""

from __future__ import annotations

import nbformat
import pytest

from test_lab import run_all_cells, running_lab

CELLS = [
    "from course.pretrained import load_assistant\nfrom course.widgets.chat import chat_widget\n"
    "assistant, assistant_tok = load_assistant()",
    'chat = chat_widget(assistant, assistant_tok, example="What is 12*34?")\nchat',
]


@pytest.fixture(scope="module")
def chat_lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab-chat")
    work = root / "notebooks"
    work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, work / "chat.ipynb")
    with running_lab(root, work) as url:
        yield url


def test_a_learner_types_a_question_into_the_chat_and_reads_the_reply(chat_lab, page, shots):
    out = shots / "lab-chat"
    out.mkdir(exist_ok=True)
    page.goto(f"{chat_lab}/lab/tree/chat.ipynb", wait_until="load")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.wait_for_timeout(3000)  # the kernel connects
    run_all_cells(page)

    # 1. the widget, live, with its first exchange
    box = page.locator(".jp-OutputArea-output input[type='text']").first
    box.wait_for(timeout=180_000)
    history = page.locator(".jp-OutputArea-output .widget-html-content", has_text="12*34").first
    history.wait_for(timeout=60_000)
    page.screenshot(path=str(out / "1-chat-live.png"))
    assert "408" in history.inner_text()

    # 2. a new question, typed and sent with Enter; the reply streams in with the calculator call
    box.click()
    box.type("What is 4821*376?")
    box.press("Enter")
    reply = page.locator(".jp-OutputArea-output .widget-html-content", has_text="4821*376 = 1812696").first
    reply.wait_for(timeout=120_000)  # the call is shown while the reply is still being written (a cursor follows it)
    page.screenshot(path=str(out / "2-streaming.png"))
    page.wait_for_function("() => !document.body.innerText.includes('\u258c')", timeout=120_000)  # the cursor goes
    page.screenshot(path=str(out / "3-reply.png"))
    text = reply.inner_text()
    assert "you> What is 4821*376?\nassistant> [calculator: 4821*376 = 1812696]1812696" in text, text
    assert box.input_value() == "", "the box is emptied when a message is sent"

    # 3. Reset empties the conversation
    page.locator(".jp-OutputArea-output button", has_text="Reset").first.click()
    page.wait_for_function("() => !document.body.innerText.includes('4821*376')", timeout=30_000)
    page.screenshot(path=str(out / "4-reset.png"))
    assert page.errors == [], f"JavaScript errors: {page.errors}"
