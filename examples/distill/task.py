"""The example's task: route a customer-support message to one of four teams, answer with the team's name only.

A fixed-format reply, so an answer is right or wrong without judgement. The messages are written from seeded
templates; the teacher is `oracle()`, a keyword rule that reads the message (not the template it came from):
`tests/unit/test_distill_example.py` checks that the rule agrees with the template's team on every message the
generator can write, so "accuracy against the oracle" is accuracy on the task.
"""

from __future__ import annotations

import random
import re

LABELS = ("billing", "delivery", "account", "technical")

INSTRUCTION = ("Classify the customer message into exactly one category: billing, delivery, account, technical. "
               "Answer with the category name only.\n\nMessage: ")

# Each team's message templates; {thing} and {when} are filled from the lists below. Every template holds at
# least one of its team's KEYWORDS and none of another team's (the test checks every combination).
TEMPLATES = {
    "billing": (
        "I was charged twice for my {thing} {when}.",
        "Why does my invoice for the {thing} show a higher amount than the price on your site?",
        "My payment for the {thing} was declined {when} but the money left my account balance anyway.",
        "Can you send me a corrected invoice for the {thing}? The VAT number is missing.",
        "There is a subscription fee on my statement {when} that I never agreed to.",
        "The discount code was not applied and I paid full price for the {thing}.",
    ),
    "delivery": (
        "My {thing} has not arrived yet, it was supposed to come {when}.",
        "The tracking page for my {thing} has said 'in transit' since {when}.",
        "The courier left the parcel with my {thing} at the wrong house {when}.",
        "Can I change the shipping address for the {thing} I ordered {when}?",
        "The package with my {thing} arrived damaged {when}, the box was crushed.",
        "Which carrier ships the {thing}? I need to know when it will be delivered.",
    ),
    "account": (
        "I forgot my password {when} and the reset email never comes.",
        "I cannot log in since {when}, it says my username does not exist.",
        "Please delete my profile and all the data you keep about me, I gave the {thing} away.",
        "How do I change the email address on my profile? I registered the {thing} with an old one.",
        "My two-factor code is rejected every time I try to sign in {when}.",
        "Someone else seems to have access to my profile, I saw a login from another country {when}.",
    ),
    "technical": (
        "The app crashes every time I open the settings page of my {thing}.",
        "My {thing} shows error E42 after the update {when}.",
        "The {thing} keeps disconnecting from the wifi every few minutes.",
        "The firmware update for the {thing} froze at 80 percent {when}.",
        "The screen of my {thing} flickers when the battery is below half.",
        "Bluetooth pairing with my {thing} fails with a timeout.",
    ),
}

THINGS = ("headphones", "smart watch", "coffee machine", "robot vacuum", "e-reader", "desk lamp", "router",
          "electric toothbrush", "kettle", "security camera", "speaker", "thermostat")
WHENS = ("yesterday", "last week", "on Monday", "this morning", "three days ago", "at the weekend",
         "two weeks ago", "on Friday")

# The oracle's rule: the team whose keywords the message mentions most (word starts, case ignored).
KEYWORDS = {
    "billing": ("charged", "invoice", "payment", "paid", "price", "subscription fee", "discount", "statement",
                "vat"),
    "delivery": ("arrived", "tracking", "courier", "parcel", "shipping", "package", "carrier", "delivered",
                 "in transit"),
    "account": ("password", "log in", "login", "sign in", "username", "profile", "two-factor", "email address",
                "registered"),
    "technical": ("crash", "error", "disconnect", "firmware", "froze", "flicker", "bluetooth", "wifi",
                  "update"),
}
_PATTERNS = {label: [re.compile(r"\b" + re.escape(word), re.IGNORECASE) for word in words]
             for label, words in KEYWORDS.items()}


def oracle(message: str) -> str:
    """The teacher: the team whose keywords `message` mentions most ("technical" when none or a tie: the
    team that triages the rest)."""
    hits = {label: sum(bool(p.search(message)) for p in patterns) for label, patterns in _PATTERNS.items()}
    best = max(hits.values())
    winners = [label for label, n in hits.items() if n == best]
    return winners[0] if best and len(winners) == 1 else "technical"


def message_of(prompt: str) -> str:
    """The customer message inside a prompt this module wrote (the prompt itself if it is not one)."""
    return prompt[len(INSTRUCTION):] if prompt.startswith(INSTRUCTION) else prompt


def prompt_of(message: str) -> str:
    return INSTRUCTION + message


def all_messages() -> list[tuple[str, str]]:
    """Every (message, team) the templates can write, deduplicated, in a fixed order."""
    seen: dict[str, str] = {}
    for label, templates in TEMPLATES.items():
        for template in templates:
            for thing in THINGS:
                for when in WHENS:
                    seen.setdefault(template.format(thing=thing, when=when), label)
    return list(seen.items())


def split(n_train: int, n_test: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Two disjoint seeded samples of (message, team), each balanced over the teams as far as it divides."""
    rng = random.Random(seed)
    by_label: dict[str, list[str]] = {label: [] for label in LABELS}
    for message, label in all_messages():
        by_label[label].append(message)
    for messages in by_label.values():
        rng.shuffle(messages)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for i, label in enumerate(LABELS):
        k_train = n_train // len(LABELS) + (i < n_train % len(LABELS))
        k_test = n_test // len(LABELS) + (i < n_test % len(LABELS))
        # A template filled twice differs in one word: keep each template's messages on one side, so the
        # held-out messages are new sentences, not the training ones with another product name.
        templates = list(TEMPLATES[label])
        rng.shuffle(templates)
        test_templates = set(templates[:2])
        held = [m for m in by_label[label] if _template_of(m, label) in test_templates]
        rest = [m for m in by_label[label] if _template_of(m, label) not in test_templates]
        if k_test > len(held) or k_train > len(rest):
            raise ValueError(f"at most {len(rest)} training and {len(held)} held-out messages per team")
        test += [(m, label) for m in held[:k_test]]
        train += [(m, label) for m in rest[:k_train]]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def _template_of(message: str, label: str) -> str:
    for template in TEMPLATES[label]:
        pattern = re.escape(template).replace(r"\{thing\}", "(.+)").replace(r"\{when\}", "(.+)")
        if re.fullmatch(pattern, message):
            return template
    raise ValueError(f"no template writes {message!r}")


def score(answer: str) -> str | None:
    """The team an answer names if it is the fixed format (the name alone, case and a final full stop
    ignored); None for anything else (a sentence, two names): the format is part of the task."""
    text = answer.strip().rstrip(".").strip().lower()
    return text if text in LABELS else None
