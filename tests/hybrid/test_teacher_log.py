"""The teacher log: what the fallback answered, kept to distill from, never with anybody's personal data.

- redaction is really applied to what is logged, with the gate's own examples (phonenumbers' example numbers,
  a stdnum-valid IBAN, a Luhn card, an e-mail), in the request and in the teacher's answer, also when the
  caller consented to sending the data as it was;
- only exchanges the fallback answered are logged, with the route reason and the device's confidence;
- size is bounded (rotation), and a writer killed mid-write never leaves a line that breaks the next read
  or glues onto the next record.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edge_sdk.runtime.hybrid import Router, RouteRequest, TeacherLog, read_log
from edge_sdk.runtime.hybrid.decision import Route

from .test_fallback import Device, chat_reply, echo, http  # noqa: F401 - the fixture, and the doubles

pn = pytest.importorskip("phonenumbers", reason="the oracle for phone numbers (the dev extra)")
stdnum_iban = pytest.importorskip("stdnum.iban")
luhn = pytest.importorskip("stdnum.luhn")

EMAIL = "jane.doe@example.com"
PHONE = pn.format_number(pn.example_number("GB"), pn.PhoneNumberFormat.INTERNATIONAL)
CARD = "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
SECRETS = (EMAIL, PHONE, CARD, IBAN)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def test_the_examples_are_what_the_oracles_call_valid():
    assert pn.is_valid_number(pn.parse(PHONE)) and stdnum_iban.is_valid(IBAN) and luhn.is_valid(_digits(CARD))


def _assert_no_personal_data(path_text: str):
    for secret in SECRETS:
        assert secret not in path_text
        if len(_digits(secret)) >= 8:  # not even with other separators
            assert _digits(secret) not in _digits(path_text), secret


def _logged(directory) -> tuple[list[dict], str]:
    raw = "".join(p.read_text(encoding="utf-8") for p in sorted(directory.glob("teacher-*.jsonl")))
    return list(read_log(directory)), raw


@pytest.mark.parametrize("consent", [False, True], ids=["redacted", "consented"])
def test_personal_data_never_reaches_the_log(http, tmp_path, consent):  # noqa: F811
    fallback = http(echo)  # the teacher repeats what it was told: its answer holds the data too
    router = Router("cloud-first", fallback_url=fallback.url, fallback_model="big", redact=True, learn=tmp_path)
    text = f"mail {EMAIL}, call {PHONE}, pay {CARD} from {IBAN}; mail {EMAIL} again"
    answer = router.generate(Device(), [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": text}], allow_cloud_pii=consent)
    router.close()
    assert answer.text == text  # the caller's answer is untouched by the log
    sent = json.loads(fallback.seen[-1]["body"])["messages"][-1]["content"]
    assert (EMAIL in sent) is consent  # consent sends it as it is; the log redacts either way
    records, raw = _logged(tmp_path)
    _assert_no_personal_data(raw)
    [record] = records
    redacted = "mail [EMAIL_1], call [PHONE_1], pay [CARD_1] from [IBAN_1]; mail [EMAIL_1] again"
    assert record["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": redacted}]
    assert record["answer"] == redacted  # the teacher's words, with the same placeholders
    assert record["reason"] == "cloud-first" and record["confidence"] is None and record["redacted"] == 4
    assert record["model"] == "big" and record["kind"] == "chat" and record["finish"] == "stop"


@pytest.mark.parametrize("consent", [False, True], ids=["redacted", "consented"])
def test_a_teachers_tool_call_is_logged_with_its_arguments_redacted(http, tmp_path, consent):  # noqa: F811
    """A teacher that answers by calling the app's tool teaches that call: it is logged, as executable JSON, with
    the personal data in its arguments replaced by the same placeholders as in the request."""

    def call_back(handler, body):  # the teacher mails whoever the last message names
        said = json.loads(body)["messages"][-1]["content"]
        to = said.split("mail ")[1].split(" ")[0]
        call = {"id": "call_1", "type": "function", "function": {"name": "send_mail",
                                                                 "arguments": json.dumps({"to": to, "n": 1})}}
        handler.reply(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": None,
                                                                 "tool_calls": [call]},
                                                     "finish_reason": "tool_calls"}]}).encode())

    router = Router("cloud-first", fallback_url=http(call_back).url, redact=True, learn=tmp_path)
    tools = [{"type": "function", "function": {"name": "send_mail", "parameters": {"type": "object"}}}]
    answer = router.generate(Device(), [{"role": "user", "content": f"mail {EMAIL} now"}], tools=tools,
                             allow_cloud_pii=consent)
    router.close()
    assert json.loads(answer.tool_calls[0]["function"]["arguments"])["to"] == EMAIL  # the app gets the real call
    records, raw = _logged(tmp_path)
    _assert_no_personal_data(raw)
    [record] = records
    assert record["messages"] == [{"role": "user", "content": "mail [EMAIL_1] now"}] and record["answer"] == ""
    [call] = record["tool_calls"]
    assert call["function"]["name"] == "send_mail" and call["id"] == "call_1"
    assert json.loads(call["function"]["arguments"]) == {"to": "[EMAIL_1]", "n": 1}
    assert record["finish"] == "tool_calls" and record["redacted"] == 1


def test_only_the_fallbacks_answers_are_logged_with_reason_and_confidence(http, tmp_path):  # noqa: F811
    fallback = http(lambda h, b: h.reply(200, chat_reply("Paris")))
    doubtful = Router("auto", fallback_url=fallback.url, threshold=0.9, learn=tmp_path)  # the device says 0.5
    confident = Router("auto", fallback_url=fallback.url, threshold=0.1, learn=tmp_path)
    question = [{"role": "user", "content": "capital of France?"}]
    assert confident.generate(Device(), question).route["target"] == "device"
    assert not list(read_log(tmp_path))  # the device answered: nothing to learn
    assert doubtful.generate(Device(), question).text == "Paris"
    [record] = read_log(tmp_path)
    assert record["reason"] == "low_confidence" and record["confidence"] == 0.5
    assert record["messages"] == question and record["answer"] == "Paris" and record["redacted"] is None
    failing = Router("cloud-first", fallback_url=http(lambda h, b: h.reply(500, b"no")).url, retries=0,
                     learn=tmp_path)
    assert failing.generate(Device(), question).route["reason"] == "fallback_failed"
    assert len(list(read_log(tmp_path))) == 1  # a failed fallback taught nothing
    for r in (doubtful, confident, failing):
        r.close()


def test_the_log_is_off_by_default_and_needs_a_fallback(http, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    router = Router("cloud-first", fallback_url=http(echo).url)
    router.generate(Device(), [{"role": "user", "content": "hi"}])
    router.close()
    assert router.teacher_log is None and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="needs a fallback"):
        Router("local-only", learn=tmp_path / "log")


def test_a_failing_disk_never_fails_the_answer(http, tmp_path):  # noqa: F811
    router = Router("cloud-first", fallback_url=http(echo).url, learn=tmp_path / "log")
    (tmp_path / "log" / "teacher-00000001.jsonl").mkdir()  # opening it for append fails (EISDIR)
    assert router.generate(Device(), [{"role": "user", "content": "hi"}]).text == "hi"
    router.close()


def _route():
    return Route("cloud", "low_confidence", confidence=0.25)


def test_rotation_bounds_the_log(tmp_path):
    log = TeacherLog(tmp_path, max_bytes=2048, keep=3)
    request = RouteRequest("chat", [{"role": "user", "content": "x" * 300}])
    for i in range(40):
        assert log.record(request, f"answer {i}", "stop", _route()) is not None
    files = log.files()
    assert len(files) == 3 and all(p.stat().st_size <= 2048 for p in files)
    answers = [r["answer"] for r in read_log(tmp_path)]
    assert answers == [f"answer {i}" for i in range(40 - len(answers), 40)]  # the newest, in order, none lost
    assert len(answers) >= 5  # three files of several records each (a record is ~500 bytes)
    assert log.record(RouteRequest("chat", [{"role": "user", "content": "y" * 4096}]), "a", "stop", _route()) is None
    assert [r["answer"] for r in read_log(tmp_path)] == answers  # too big for a file: not logged


def test_a_torn_last_line_is_skipped_and_cut_before_the_next_record(tmp_path):
    log = TeacherLog(tmp_path)
    request = RouteRequest("completion", prompt="2+2=")
    log.record(request, "4", "stop", _route())
    [path] = log.files()
    with open(path, "ab") as f:
        f.write(b'{"v": 1, "kind": "chat", "answer": "half')  # a writer died here
    stats = {}
    assert [r["answer"] for r in read_log(tmp_path, stats)] == ["4"] and stats == {"skipped": 1}
    log.record(request, "four", "stop", _route())
    stats = {}
    assert [r["answer"] for r in read_log(tmp_path, stats)] == ["4", "four"] and stats == {}
    assert path.read_bytes().count(b"\n") == 2 and b"half" not in path.read_bytes()


CHILD = """
import os, sys, time
from edge_sdk.runtime.hybrid import RouteRequest, TeacherLog
from edge_sdk.runtime.hybrid.decision import Route

real_write = os.write


def slow_disk(fd, data):  # a slow disk: the kill lands inside a write, after part of the line reached the file
    n = real_write(fd, bytes(data[:4096]))
    if len(data) > 4096:
        print("inside", flush=True)
        time.sleep(0.05)
    return n


os.write = slow_disk
log = TeacherLog(sys.argv[1])
route = Route("cloud", "context")
i = 0
while True:
    log.record(RouteRequest("completion", prompt="p" * (20000 * (i % 2))), str(i), "stop", route)
    i += 1
"""


@pytest.mark.parametrize("kills", [3])
def test_a_writer_killed_mid_write_never_breaks_the_log(tmp_path, kills):
    """Kill child writers inside their writes; a reader reads what is there; a new writer carries on."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for attempt in range(kills):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        for _ in range(attempt + 1):  # a few records in: the kill lands inside the (attempt+1)th big one
            assert child.stdout.readline() == b"inside\n"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
        [path] = TeacherLog(tmp_path).files()
        assert not path.read_bytes().endswith(b"\n")  # the kill did tear a line
        stats = {}
        before = list(read_log(tmp_path, stats))  # a reader reads what is there
        assert stats == {"skipped": 1} and before and all(r["kind"] == "completion" for r in before)
        TeacherLog(tmp_path).record(RouteRequest("completion", prompt="after"), "after", "stop", _route())
        after = list(read_log(tmp_path, stats := {}))
        assert stats == {} and [r["answer"] for r in after] == [r["answer"] for r in before] + ["after"]
        assert path.read_bytes().count(b"\n") == len(after)


def test_serve_learn_reaches_the_router(monkeypatch, tmp_path, capsys):
    pytest.importorskip("uvicorn")
    import edge_sdk.runtime.server as server
    from edge_sdk.cli import main

    seen = {}
    monkeypatch.setattr(server, "serve", lambda bundle, **kw: seen.update(kw))
    assert main(["serve", str(tmp_path), "--fallback", "http://127.0.0.1:9/v1", "--learn", str(tmp_path)]) == 0
    assert seen["router_options"]["learn"] == str(tmp_path)
    assert main(["serve", str(tmp_path), "--fallback", "http://127.0.0.1:9/v1"]) == 0
    assert "learn" not in seen["router_options"]  # off by default
    assert main(["serve", str(tmp_path), "--learn", str(tmp_path)]) == 2
    assert "--learn DIR" in capsys.readouterr().err
