"""The worked example's helpers (examples/distill, issue 27 item 5): the task's teacher is right on the task,
the split keeps held-out sentences new, the answer format is strict, and the teacher's server speaks the
OpenAI API as the official `openai` client reads it. The example's figures are in docs/distill.md, not here."""

from __future__ import annotations

import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distill"
sys.path.insert(0, str(EXAMPLE))

import oracle_server  # noqa: E402
import task  # noqa: E402


def test_the_rule_based_teacher_names_every_generated_message_s_team():
    messages = task.all_messages()
    assert len(messages) > 900  # every template x product x day, deduplicated
    wrong = [(m, label, task.oracle(m)) for m, label in messages if task.oracle(m) != label]
    assert wrong == []
    # It reads the message, not a label: a message of no team's words goes to the triage team, and one
    # word decides between teams.
    assert task.oracle("Hello there.") == "technical"
    assert task.oracle("Where is my parcel?") == "delivery"
    assert task.oracle("Where is my invoice?") == "billing"


def test_the_split_is_seeded_balanced_and_holds_out_whole_templates():
    train, test = task.split(40, 20, seed=3)
    assert (train, test) == task.split(40, 20, seed=3)
    assert train != task.split(40, 20, seed=4)[0]
    assert len(train) == 40 and len(test) == 20
    assert {label: sum(1 for _, l in test if l == label) for label in task.LABELS} == dict.fromkeys(task.LABELS, 5)
    train_templates = {task._template_of(m, label) for m, label in train}
    test_templates = {task._template_of(m, label) for m, label in test}
    assert not train_templates & test_templates
    assert len(task.LABELS) <= len(test_templates) <= 2 * len(task.LABELS)  # two of six per team
    with pytest.raises(ValueError, match="at most"):
        task.split(40, 2000)


@pytest.mark.parametrize("answer, team", [
    ("billing", "billing"), (" Delivery.\n", "delivery"), ("ACCOUNT", "account"),
    ("The category is billing.", None), ("billing, delivery", None), ("", None), ("tech", None),
])
def test_an_answer_counts_only_in_the_fixed_format(answer, team):
    assert task.score(answer) == team


def test_the_teacher_server_answers_the_openai_client():
    openai = pytest.importorskip("openai")
    server = ThreadingHTTPServer(("127.0.0.1", 0), oracle_server.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", api_key="unused",
                               max_retries=0)
        assert [m.id for m in client.models.list()] == [oracle_server.MODEL]
        for message, label in task.split(8, 4, seed=1)[1]:
            reply = client.chat.completions.create(model="x", messages=[
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": task.prompt_of(message)}])
            assert reply.choices[0].message.content == label
            assert reply.choices[0].finish_reason == "stop"
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="x", messages=[{"role": "system", "content": "no question"}])
    finally:
        server.shutdown()
        server.server_close()
