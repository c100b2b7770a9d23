"""edge-sdk distill on a tiny random llama, end to end: a learnable teacher (its answer is fixed by the
prompt's topic) is learnt (held-out loss falls, the student's greedy answers move to the teacher's, the
router would escalate less), the adapter goes into the bundle (`adapter add`, validated against PEFT) and into
a merged export, a teacher server and prompt baking build their own data, and user mistakes are one-line
errors that leave nothing behind."""
from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import edge_sdk  # noqa: E402
from edge_sdk.cli import main  # noqa: E402
from edge_sdk.errors import DistillDataError, OutputExistsError  # noqa: E402
from edge_sdk.exporters.distill import data as data_mod  # noqa: E402
from edge_sdk.exporters.distill.train import IGNORE, TrainConfig, encode_example, labels_of, train_lora  # noqa: E402

from ..hybrid.test_fallback import chat_reply, http  # noqa: E402,F401 - the in-process OpenAI-compatible server

WORDS = "quick brown fox jumps lazy dog hello world edge device phone model token cache".split()
# The teacher's rule: the topic word in the prompt decides the answer (learnable by a 2-layer model in seconds).
TOPICS = {"paris": "france capital.", "sea": "blue water."}


def teacher_rule(prompt: str) -> str:
    return next(a for w, a in TOPICS.items() if w in prompt.split())


def prompts(n: int, offset: int = 0) -> list[str]:
    topics = list(TOPICS)
    return [f"{WORDS[(i * 5 + offset) % len(WORDS)]} {topics[i % 2]} {WORDS[(i * 3 + 1) % len(WORDS)]} {i}"
            for i in range(n)]


def write_records(path, n: int = 16):
    # the teacher log's own record shape (runtime/hybrid), so a log and a file read alike
    path.write_text("".join(json.dumps({"v": 1, "kind": "chat", "messages": [{"role": "user", "content": p}],
                                        "answer": teacher_rule(p), "reason": "low_confidence"}) + "\n"
                            for p in prompts(n)))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edge_sdk.exporters.export import export
    from edge_sdk.exporters.testing import make_tiny_lora, make_tiny_model_dir

    root = tmp_path_factory.mktemp("distill")
    base = make_tiny_model_dir(root / "tiny-llama")
    bundle = root / "bundle"  # with adapter slots, so a distilled adapter can be switched in
    export(str(base), bundle, recipe="fp32", adapters={"one": make_tiny_lora(base, root / "one")}, progress=False,
           validate=False)
    data = write_records(root / "records.jsonl")
    out = root / "learned"
    code = main(["distill", str(bundle), "--data", str(data), "--output", str(out), "--epochs", "4", "--lr", "0.02",
                 "--batch-size", "8", "--max-new-tokens", "8"])
    assert code == 0
    return {"root": root, "base": base, "bundle": bundle, "data": data, "out": out}


def test_the_student_learns_the_teacher(setup, capsys):
    report = json.loads((setup["out"] / "report.json").read_text())
    loss = report["training"]["held_out_loss"]
    assert min(loss[1:]) < 0.5 * loss[0]  # the held-out loss falls
    before, after = report["before"], report["after"]
    held = [json.loads(line) for line in (setup["out"] / "held_out.jsonl").read_text().splitlines()]
    assert [r["teacher"] for r in after["answers"]] == [h["answer"] for h in held]
    # the untrained random model never says the teacher's answer; the trained one mostly does
    assert before["exact_match"] == 0 and after["exact_match"] >= 0.6 and after["token_f1"] > before["token_f1"]
    # the router's confidence measure, recomputed from the answers: escalations fall at the same threshold
    assert after["escalation_rate"] < before["escalation_rate"]
    for side in (before, after):
        rate = sum(r["confidence"] < side["threshold"] for r in side["answers"]) / len(side["answers"])
        assert side["escalation_rate"] == pytest.approx(rate, abs=1e-3)
    assert {"adapter_config.json", "adapter_model.safetensors", "report.json", "train.jsonl"} <= \
        {p.name for p in setup["out"].iterdir()}
    assert not [p for p in setup["root"].iterdir() if ".partial" in p.name]


def test_the_adapter_is_switched_in_and_merged(setup, tmp_path):
    from edge_sdk.exporters.adapters.add import add_adapter
    from edge_sdk.exporters.export import export

    bundle = tmp_path / "bundle"
    shutil.copytree(setup["bundle"], bundle)
    assert main(["adapter", "add", str(bundle), f"learned={setup['out']}"]) == 0
    entry = add_adapter(bundle, "learned", setup["out"], source=str(setup["base"]), force=True)
    assert entry["validation"]["passed"]  # the device's adapter matches PEFT's on the source model
    model = edge_sdk.load(bundle)
    held = [json.loads(line) for line in (setup["out"] / "held_out.jsonl").read_text().splitlines()]
    said = [str(model.generate(h["messages"], max_new_tokens=8, adapter="learned")) for h in held]
    plain = [str(model.generate(h["messages"], max_new_tokens=8, adapter=None)) for h in held]
    right = sum(s == h["answer"] for s, h in zip(said, held))
    # the report's confidence is the device router's: the same score from the device's own decode
    from edge_sdk.runtime.hybrid import Confidence

    report = json.loads((setup["out"] / "report.json").read_text())
    for h, row, text in zip(held, report["after"]["answers"], said):
        confidence = Confidence()
        assert "".join(model.stream_ids(model.encode_prompt(h["messages"]), confidence=confidence, max_new_tokens=8,
                                        adapter="learned")) == text == row["answer"]
        assert confidence.score == pytest.approx(row["confidence"], abs=2e-3)
    assert right >= 2 and sum(p == h["answer"] for p, h in zip(plain, held)) == 0
    merged = tmp_path / "merged"
    export(str(setup["base"]), merged, recipe="fp32", adapter=str(setup["out"]), progress=False, validate=False)
    assert [str(edge_sdk.load(merged).generate(h["messages"], max_new_tokens=8)) for h in held] == said


def test_the_loss_counts_answer_tokens_only(setup):
    model = edge_sdk.load(setup["bundle"])
    messages = [{"role": "user", "content": "hello paris"}]
    enc = encode_example(model, messages, "france capital.", 512)
    prompt = model.encode_prompt(messages)
    assert enc.ids[:len(prompt)] == prompt and enc.ids[-1] in model.eos_token_ids
    labels = labels_of(enc)
    assert labels[:len(prompt)] == [IGNORE] * len(prompt) and labels[len(prompt):] == enc.ids[len(prompt):]
    assert model.tokenizer.decode(enc.ids[len(prompt):-1]) == "france capital."


def _encoded(setup, n=8):
    model = edge_sdk.load(setup["bundle"])
    return [encode_example(model, [{"role": "user", "content": p}], teacher_rule(p), 512) for p in prompts(n)]


def test_early_stopping_stops_and_keeps_the_best(setup):
    from transformers import AutoModelForCausalLM

    items = _encoded(setup)
    logs = []
    # lr 0: the held-out loss never improves, so training stops after `patience` epochs
    _, history = train_lora(AutoModelForCausalLM.from_pretrained(setup["base"]), items[:6], items[6:],
                            TrainConfig(lr=0.0, epochs=6, patience=2), pad_id=2, log=logs.append)
    assert history.stopped_early and len(history.held_loss) == 3 and history.best_epoch == 0
    assert any("stopped early" in line for line in logs) and any("epoch 1/6" in line for line in logs)


def test_records_are_deduplicated_and_split_by_seed(tmp_path):
    path = write_records(tmp_path / "r.jsonl", 10)
    path.write_text(path.read_text() * 2)  # every record twice
    examples = data_mod.read_examples([path])
    distinct = data_mod.dedupe(examples)
    assert len(examples) == 20 and len(distinct) == 10
    train, held = data_mod.split(distinct, 0.3, seed=1)
    assert len(held) == 3 and not {e.messages for e in train} & {e.messages for e in held}
    assert data_mod.split(distinct, 0.3, seed=1) == (train, held)
    assert data_mod.split(distinct, 0.3, seed=2) != (train, held)
    with pytest.raises(DistillDataError, match="too few"):
        data_mod.split(distinct[:2], 0.2)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("empty", "no records"),
    ("not json", "not a JSON line"),
    ("no answer", "answer"),
    ("too few", "too few"),
    ("no source", "records no source"),
    ("prompts with data", "--prompts is for"),
])
def test_user_mistakes_are_one_line_errors(setup, tmp_path, capsys, case, message):
    data, bundle = tmp_path / "d.jsonl", setup["bundle"]
    if case == "empty":
        data.write_text("\n")
    elif case == "not json":
        data.write_text('{"prompt": "hi", "answer": "yo"}\n{"prompt": \n')
    elif case == "no answer":
        data.write_text('{"prompt": "hi"}\n')
    elif case == "too few":
        write_records(data, 2)
    elif case == "no source":
        write_records(data, 8)
        bundle = tmp_path / "bundle"
        shutil.copytree(setup["bundle"], bundle)
        manifest = json.loads((bundle / "edge_manifest.json").read_text())
        del manifest["provenance"]["source"]
        (bundle / "edge_manifest.json").write_text(json.dumps(manifest))
    elif case == "prompts with data":
        write_records(data, 8)
    out = tmp_path / "out"
    extra = ["--prompts", str(data)] if case == "prompts with data" else []
    assert main(["distill", str(bundle), "--data", str(data), "--output", str(out), *extra]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_a_teacher_server_builds_the_data(setup, tmp_path, http, monkeypatch):  # noqa: F811
    def teach(handler, body):
        handler.reply(200, chat_reply(teacher_rule(json.loads(body)["messages"][-1]["content"])))

    server = http(teach)
    (tmp_path / "prompts.txt").write_text("\n".join(prompts(10, offset=3)) + "\n\n")
    monkeypatch.setenv("TEACHER_KEY", "sk-distill-test")
    out = tmp_path / "out"
    assert main(["distill", str(setup["bundle"]), "--teacher", server.url, "--teacher-model", "big",
                 "--teacher-key-env", "TEACHER_KEY", "--prompts", str(tmp_path / "prompts.txt"), "--output", str(out),
                 "--epochs", "1", "--max-new-tokens", "8"]) == 0
    assert len(server.seen) == 10
    sent = json.loads(server.seen[0]["body"])
    assert sent["model"] == "big" and sent["temperature"] == 0 and sent["messages"][-1]["content"] == prompts(10, 3)[0]
    assert server.seen[0]["headers"]["Authorization"] == "Bearer sk-distill-test"
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert rows and all(r["answer"] == teacher_rule(r["messages"][-1]["content"]) for r in rows)
    assert json.loads((out / "report.json").read_text())["teacher"] == f"server {server.url}"


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_prompt_baking(setup, tmp_path, capsys):
    system = tmp_path / "system.txt"
    system.write_text("You are a helpful assistant for the edge device. Always answer with the capital of france. " * 2)
    (tmp_path / "prompts.txt").write_text("\n".join(prompts(16, offset=1)) + "\n")
    out = tmp_path / "baked"
    assert main(["distill", str(setup["bundle"]), "--bake-system", str(system), "--prompts",
                 str(tmp_path / "prompts.txt"), "--output", str(out), "--epochs", "5", "--lr", "0.03",
                 "--batch-size", "8", "--max-new-tokens", "8", "--json"]) == 0
    report = json.loads((out / "report.json").read_text())
    # --json: stdout is the report alone, and the progress still goes to stderr (it used to be swallowed,
    # leaving a run of tens of minutes on the real model silent until its end)
    printed = capsys.readouterr()
    assert json.loads(printed.out) == report
    assert "the long-prompt teacher answered" in printed.err and "distill: epoch 1/5" in printed.err
    loss = report["training"]["held_out_loss"]
    assert min(loss[1:]) < 0.6 * loss[0]
    bake = report["baking"]
    # the teacher's answers are the bundle's own, with the system prompt, greedy
    model = edge_sdk.load(setup["bundle"])
    first = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    with_system = [{"role": "system", "content": system.read_text().strip()}] + first["messages"]
    assert first["answer"] == str(model.generate(with_system, max_new_tokens=8, temperature=0.0))
    assert bake["prompt_tokens"]["with_system"] > bake["prompt_tokens"]["baked"] + 50
    assert len(bake["ttft_ms"]["runs"]["baked"]) == 5 and bake["ttft_ms"]["baked"] > 0
    # the baked adapter, without the prompt, answers closer to the long-prompt answers than the plain model does
    rows = bake["agreement"]["answers"]
    baked = sum(_common_prefix(r["baked"], r["with_system"]) for r in rows)
    plain = sum(_common_prefix(r["plain"], r["with_system"]) for r in rows)
    assert baked > plain, rows


def test_a_failed_write_leaves_the_old_adapter_and_no_partial(setup, tmp_path, monkeypatch):
    from edge_sdk.exporters.distill import run

    out = tmp_path / "out"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")  # an earlier adapter, replaced only by a whole new one
    earlier = json.dumps({"format": run.FORMAT})  # what distill writes: --force may replace it
    (out / "report.json").write_text(earlier)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "_name_base", disk_full)  # fails after the adapter's weights were written
    with pytest.raises(OSError, match="No space"):
        run.distill(setup["bundle"], out, data=[str(setup["data"])], config=TrainConfig(epochs=1), force=True,
                    max_new_tokens=4, log=lambda line: None)
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "report.json"]
    assert (out / "adapter_config.json").read_text() == "{}" and (out / "report.json").read_text() == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_force_never_replaces_a_folder_that_distill_did_not_write(setup, tmp_path):
    # `--output ~/Documents --force` must not delete the user's files: --force replaces a previous distilled
    # adapter only (its report.json says so), refused before any training starts
    from edge_sdk.exporters.distill import run

    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (out / "report.json").write_text('{"format": "something else"}')
    with pytest.raises(OutputExistsError, match="not a previous distilled adapter"):
        run.distill(setup["bundle"], out, data=[str(setup["data"])], config=TrainConfig(epochs=1), force=True,
                    max_new_tokens=4, log=lambda line: None)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "report.json"]
    assert (out / "mine.txt").read_text() == "keep me"


def test_the_closing_hint_fits_the_bundle(setup, tmp_path):
    # `adapter add` only works on a bundle with adapter slots; the worked example's bundle (the default export)
    # has none, and the hint sent it to a command that refuses: it must say to export again instead.
    from edge_sdk.cli.distill import switch_in_hint

    assert "edge-sdk adapter add" in switch_in_hint(setup["bundle"], "lora/x")
    plain = tmp_path / "plain"
    plain.mkdir()
    manifest = json.loads((setup["bundle"] / "edge_manifest.json").read_text())
    del manifest["lora"]
    (plain / "edge_manifest.json").write_text(json.dumps(manifest))
    hint = switch_in_hint(plain, "lora/x")
    assert "adapter add" not in hint and "no adapter slots" in hint
    assert f"edge-sdk export {manifest['provenance']['source']} --recipe fp32 --adapters NAME=lora/x" in hint
