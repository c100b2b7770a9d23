"""LoRA training of the student on the teacher's answers: the loss counts the answer tokens only, and the
adapter kept is the one with the lowest held-out loss (early stopping after `patience` epochs without a
better one).

An example is tokenized as the device will see it: the prompt through the bundle's own chat template and
tokenizer (Model.encode_prompt), then the answer's tokens and the end-of-turn token the device stops on. So
the student learns the exact ids the runtime feeds it and the exact ids it must produce.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

IGNORE = -100  # the label transformers' cross-entropy skips


@dataclass
class Encoded:
    ids: list[int]  # prompt + answer + end of turn
    prompt_len: int  # the first prompt_len ids are the prompt: no loss on them


def encode_example(device_model, messages: list[dict], answer: str, max_len: int) -> Encoded:
    """Prompt ids by the bundle's chat template, answer ids by its tokenizer, then its end-of-turn token;
    the answer is cut so that the whole fits in `max_len` (the prompt is never cut: it is what is asked)."""
    prompt = device_model.encode_prompt(messages)
    reply = device_model.tokenizer.encode(answer) + [device_model.eos_token_ids[0]]
    room = max_len - len(prompt)
    if room < 2:
        return Encoded(prompt[: max(0, max_len - 2)] + reply[:2], max(0, max_len - 2))  # degenerate: kept short
    return Encoded(prompt + reply[:room], len(prompt))


def labels_of(item: Encoded) -> list[int]:
    """The training target: the answer's ids, the prompt's masked out (the student is not taught to write
    the question, only to answer it)."""
    return [IGNORE] * item.prompt_len + item.ids[item.prompt_len:]


def batches(items: list[Encoded], size: int, pad_id: int):
    """(input_ids, attention_mask, labels) tensors of `size` examples each, right-padded."""
    import torch

    for start in range(0, len(items), size):
        group = items[start:start + size]
        width = max(len(it.ids) for it in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        labels = torch.full((len(group), width), IGNORE, dtype=torch.long)
        for row, it in enumerate(group):
            n = len(it.ids)
            ids[row, :n] = torch.tensor(it.ids)
            mask[row, :n] = 1
            labels[row, :n] = torch.tensor(labels_of(it))
        yield ids, mask, labels


def mean_loss(model, items: list[Encoded], pad_id: int, size: int = 8) -> float:
    """Mean cross-entropy per answer token over `items` (no gradient)."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ids, mask, labels in batches(items, size, pad_id):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # [b, t-1, vocab]
            target = labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                     target.reshape(-1), ignore_index=IGNORE, reduction="sum")
            total += float(loss)
            count += int((target != IGNORE).sum())
    return total / max(count, 1)


@dataclass
class TrainConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lr: float = 2e-4
    epochs: int = 3
    batch_size: int = 4
    patience: int = 2  # epochs without a better held-out loss before stopping
    min_delta: float = 1e-4  # an improvement smaller than this does not count
    seed: int = 0


@dataclass
class History:
    held_loss: list[float] = field(default_factory=list)  # before training, then after each epoch
    train_loss: list[float] = field(default_factory=list)  # mean over each epoch
    best_epoch: int = 0  # 0: training never beat the untrained adapter
    stopped_early: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"held_out_loss": [round(x, 5) for x in self.held_loss],
                "train_loss": [round(x, 5) for x in self.train_loss],
                "best_epoch": self.best_epoch, "stopped_early": self.stopped_early}


def should_stop(history: History, patience: int) -> bool:
    """Stop when the last `patience` epochs brought no better held-out loss than the best before them."""
    return len(history.held_loss) - 1 - history.best_epoch >= patience


def train_lora(model, train: list[Encoded], held: list[Encoded], cfg: TrainConfig, pad_id: int,
               log: Callable[[str], None] | None = None):
    """Wrap `model` (transformers, fp32) in a fresh PEFT LoRA and train it; returns (peft model holding the
    best adapter, History). A progress line per epoch goes to `log` (stderr by default)."""
    import peft
    import torch

    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    torch.manual_seed(cfg.seed)
    lora = peft.LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout,
                           target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    student = peft.get_peft_model(model, lora)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed)
    history = History()
    history.held_loss.append(mean_loss(student, held, pad_id))
    best = [p.detach().clone() for p in params]
    log(f"distill: epoch 0/{cfg.epochs}  held-out loss {history.held_loss[0]:.4f}  "
        f"({len(train)} train, {len(held)} held out)")
    for epoch in range(1, cfg.epochs + 1):
        student.train()
        order = torch.randperm(len(train), generator=rng).tolist()
        shuffled = [train[i] for i in order]
        start, total, steps = time.monotonic(), 0.0, 0
        n_steps = math.ceil(len(shuffled) / cfg.batch_size)
        for ids, mask, labels in batches(shuffled, cfg.batch_size, pad_id):
            loss = student(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total, steps = total + loss.item(), steps + 1
            if n_steps >= 20 and steps % max(1, n_steps // 10) == 0:
                log(f"distill: epoch {epoch}/{cfg.epochs}  step {steps}/{n_steps}  loss {loss.item():.4f}")
        history.train_loss.append(total / max(steps, 1))
        held_loss = mean_loss(student, held, pad_id)
        history.held_loss.append(held_loss)
        better = held_loss < min(history.held_loss[:-1]) - cfg.min_delta
        if better:
            history.best_epoch = epoch
            best = [p.detach().clone() for p in params]
        log(f"distill: epoch {epoch}/{cfg.epochs}  train loss {history.train_loss[-1]:.4f}  held-out loss "
            f"{held_loss:.4f}{'  (best)' if better else ''}  {time.monotonic() - start:.1f}s")
        if epoch < cfg.epochs and should_stop(history, cfg.patience):
            history.stopped_early = True
            log(f"distill: stopped early: no better held-out loss for {cfg.patience} epochs; keeping epoch "
                f"{history.best_epoch}")
            break
    with torch.no_grad():  # the best adapter, not the last one
        for p, b in zip(params, best):
            p.copy_(b)
    student.eval()
    return student, history
