"""Which repetition penalty should greedy decoding default to? Loops against answers.

Greedy decoding without a repetition penalty loops on small models (SmolLM2-135M repeats a sentence until
max_new_tokens). For each penalty this prints, over open prompts, the share of repeated 4-grams in the
reply and how many replies loop (a 4-gram seen 4+ times), and over factual questions, how many replies
contain the expected answer (the quality column next to the loop column).

    .venv/bin/python benchmarks/chat_defaults.py --bundle BUNDLE --half first --penalty 1.0 1.05 1.1 1.15 1.2
    .venv/bin/python benchmarks/chat_defaults.py --bundle BUNDLE --half second --penalty 1.0 1.1 1.15
"""
from __future__ import annotations

import argparse
import json
from collections import Counter

OPEN = [
    "Hello", "Tell me about yourself.", "Write a story about a dragon.", "Describe the ocean.",
    "What do you like to do?", "Write a poem about winter.", "Explain how a car works.",
    "Give me some advice for my first day at a new job.", "What is love?", "Tell me about the history of Rome.",
    # second half (added to check that the choice made on the first half holds on prompts it never saw)
    "Hi there! How are you?", "Write a song about the sea.", "Describe your perfect day.", "What is happiness?",
    "Tell me a story about a lost cat.", "Write a short poem about the moon.", "Explain why the sky is blue.",
    "What makes a good friend?", "Describe a forest in autumn.", "Tell me about the history of Egypt.",
]
FACTS = [  # (question, answer the reply must contain)
    ("Name the capital of France.", "Paris"), ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"), ("How many days are in a week?", "seven|7"),
    ("What color is the sky on a clear day?", "blue"), ("What is the largest planet in our solar system?", "Jupiter"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"), ("What is the boiling point of water in Celsius?", "100"),
    ("How many legs does a spider have?", "eight|8"), ("What is the chemical symbol for gold?", "Au"),
    ("What is 2 + 2?", "4|four"), ("In which continent is Kenya?", "Africa"),
    # second half
    ("What is the capital of Germany?", "Berlin"), ("What is the capital of Spain?", "Madrid"),
    ("How many hours are in a day?", "24|twenty-four"), ("What is the freezing point of water in Celsius?", "0|zero"),
    ("Which planet is known as the Red Planet?", "Mars"), ("What gas do plants absorb from the air?", "carbon dioxide|CO2"),
    ("Who painted the Mona Lisa?", "Leonardo|da Vinci"), ("What is the largest ocean on Earth?", "Pacific"),
    ("How many continents are there?", "seven|7"), ("What is 10 times 10?", "100|hundred"),
    ("What language is spoken in Brazil?", "Portuguese"), ("What is the tallest mountain in the world?", "Everest"),
]


def repeated_4grams(ids: list[int]) -> tuple[float, bool]:
    grams = [tuple(ids[i:i + 4]) for i in range(len(ids) - 3)]
    if not grams:
        return 0.0, False
    counts = Counter(grams)
    return 1 - len(counts) / len(grams), max(counts.values()) >= 4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--penalty", type=float, nargs="+", default=[1.0, 1.1])
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--half", choices=["first", "second", "all"], default="all",
                    help="which half of the prompts (the first chose the default, the second checked it)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import edge_sdk

    model = edge_sdk.load(args.bundle, threads=args.threads)
    pick = {"first": slice(0, 10), "second": slice(10, None), "all": slice(None)}[args.half]
    open_prompts = OPEN[pick]
    facts = FACTS[{"first": slice(0, 12), "second": slice(12, None), "all": slice(None)}[args.half]]
    rows = []
    for penalty in args.penalty:
        rep, loops, correct, replies = [], 0, 0, {}
        for prompt in open_prompts:
            text = model.generate(prompt, max_new_tokens=args.max_new_tokens, temperature=0.0,
                                  repetition_penalty=penalty)
            share, looped = repeated_4grams(model.tokenizer.encode(text))
            rep.append(share)
            loops += looped
            replies[prompt] = text
        for question, answer in facts:
            text = model.generate(question, max_new_tokens=48, temperature=0.0, repetition_penalty=penalty)
            correct += any(a.lower() in text.lower() for a in answer.split("|"))
            replies[question] = text
        rows.append({"penalty": penalty, "repeated_4grams": round(sum(rep) / len(rep), 3), "looping": loops,
                     "open_prompts": len(open_prompts), "facts_correct": correct, "facts": len(facts), "replies": replies})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    print(f"{'penalty':>8} {'repeated 4-grams':>17} {'looping replies':>16} {'facts correct':>14}")
    for r in rows:
        print(f"{r['penalty']:>8} {r['repeated_4grams']:>17.1%} {r['looping']:>9}/{r['open_prompts']:<6} "
              f"{r['facts_correct']:>8}/{r['facts']}")


if __name__ == "__main__":
    main()
