"""The privacy gate's figures (docs/server.md, "The privacy gate"): what it costs, and why it does not ask
phonenumbers about numbers without a country code.

    python benchmarks/privacy_gate.py            # ~1-2 minutes; needs the dev extra (phonenumberslite, python-stdnum)

1. Can a phone library tell a bare national number from any other number? For random digit strings of each
   length, the share that phonenumbers calls a valid number in at least one of its regions.
2. phonenumbers' own finder over every region vs the gate, on the same text.
3. The gate's time per request: a chat prompt (ASCII), the same in other scripts (normalisation runs), and a
   1 MB body full of numbers (the server's body cap is 8 MB); several runs, the spread shown.
4. Import time of the libraries, each in a fresh interpreter.
"""
from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time


def spread(xs: list[float], unit: str = "ms", scale: float = 1e3) -> str:
    xs = sorted(x * scale for x in xs)
    return f"{statistics.median(xs):.1f} {unit} (min {xs[0]:.1f}, max {xs[-1]:.1f}, {len(xs)} runs)"


def validity(samples: int) -> list[tuple[int, float]]:
    import phonenumbers as pn

    regions = sorted(pn.SUPPORTED_REGIONS)

    def valid_somewhere(digits: str) -> bool:
        for r in regions:
            try:
                if pn.is_valid_number(pn.parse(digits, r)):
                    return True
            except pn.NumberParseException:
                pass
        return False

    rng = random.Random(0)
    out = []
    for n in range(6, 16):
        hits = sum(valid_somewhere(str(rng.randrange(10 ** (n - 1), 10**n))) for _ in range(samples))
        out.append((n, hits / samples))
    return out


CHAT = ("Hi! Could you write a short note to my landlord? He is reachable at +44 20 7946 0958 or "
        "john.smith@example.co.uk. The rent (EUR 1,250.00) goes to DE89 3704 0044 0532 0130 00 on 2026-12-01; "
        "my order 123456 arrived at 10:30. Mention flat 4B, version 1.2.3 of the contract. ")


def timings(runs: int) -> dict[str, str]:
    import phonenumbers as pn

    from edge_sdk.runtime.hybrid import Redactor, RouteRequest, find_pii, scan

    texts = {
        "chat prompt, 10 KB ASCII": (CHAT * 40)[:10_000],
        "chat prompt, 10 KB in other scripts": ("Привет! Напишите мне: +7 912 345-67-89, почта "
                                                "пётр@пример.рф. こんにちは、０９０－１２３４－５６７８ です。"
                                                * 100)[:10_000],
        "1 MB of numbers and addresses": ("card 4111 1111 1111 1111, call 030 1234 5678, mail a.b@c.de; "
                                          * 17000)[:1 << 20],
    }
    out = {}
    for name, text in texts.items():
        find_pii(text)  # warm up (regex compilation, the stdnum registry)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            find_pii(text)
            times.append(time.perf_counter() - t0)
        out[f"gate: {name}"] = spread(times)
    many = RouteRequest("chat", [{"role": "user", "content": f"write to a{i}@example.com"} for i in range(20_000)])
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        Redactor().redact_all(scan(many.texts()))
        times.append(time.perf_counter() - t0)
    out["gate and redaction: 20,000 messages with an address each"] = spread(times)
    sample = CHAT * 2  # ~0.5 KB
    regions = sorted(pn.SUPPORTED_REGIONS)
    for r in regions:  # load every region's metadata first: count matching only
        list(pn.PhoneNumberMatcher("+1 201 555 0123", r))
    times = []
    for _ in range(max(1, runs // 3)):
        t0 = time.perf_counter()
        for r in regions:
            list(pn.PhoneNumberMatcher(sample, r, leniency=pn.Leniency.VALID))
        times.append(time.perf_counter() - t0)
    out[f"phonenumbers.PhoneNumberMatcher over all {len(regions)} regions, {len(sample)} chars"] = spread(times)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        find_pii(sample)
        times.append(time.perf_counter() - t0)
    out[f"gate: the same {len(sample)} chars"] = spread(times)
    return out


def imports(runs: int) -> dict[str, str]:
    out = {}
    for module in ("phonenumbers", "stdnum.iban", "edge_sdk.runtime.hybrid"):
        times = []
        for _ in range(runs):  # edge_sdk itself (numpy, onnxruntime) first: the gate's own share is what counts
            first = "import edge_sdk, numpy; " if module.startswith("edge_sdk.") else ""
            code = f"{first}import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
            times.append(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                              check=True).stdout))
        out[f"import {module}" + (" (after edge_sdk and numpy)" if module.startswith("edge_sdk.") else "")] = \
            spread(times)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=100, help="random digit strings per length (default 100)")
    p.add_argument("--runs", type=int, default=7, help="timed runs of each measurement (default 7)")
    args = p.parse_args()
    print(f"Share of random digit strings that phonenumbers calls valid in some region ({args.samples} per length):\n")
    rows = validity(args.samples)
    print("| digits | " + " | ".join(str(n) for n, _ in rows) + " |")
    print("|---|" + "---|" * len(rows))
    print("| valid somewhere | " + " | ".join(f"{share:.0%}" for _, share in rows) + " |\n")
    print("| what | time |\n|---|---|")
    for name, value in {**timings(args.runs), **imports(args.runs)}.items():
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
