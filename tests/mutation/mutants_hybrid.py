"""Breakages of the hybrid router, its privacy gate and its fallback client that the fast suite must catch."""
from __future__ import annotations

from .mutants import Mutant

PII = "tests/hybrid/test_pii.py"
FALLBACK = "tests/hybrid/test_fallback.py"
DECISION = "tests/hybrid/test_decision.py"

MUTANTS = (
    Mutant("Luhn mis-reduces doubled digits", "runtime/hybrid/pii.py",
           "d = d * 2 - 9 if d > 4 else d * 2", "d = d * 2 - 10 if d > 4 else d * 2",
           (f"{PII}::test_luhn_agrees_with_stdnum",)),
    Mutant("IBAN length bound drops a country", "runtime/hybrid/pii.py",
           "if not 15 <= len(compact) <= 34", "if not 16 <= len(compact) <= 34",
           (f"{PII}::test_ibans_of_every_country_in_every_style",)),
    Mutant("the gate reads only the last message", "runtime/hybrid/request.py",
           "_walk(self.messages if self.kind", "_walk(self.messages[-1:] if self.kind",
           (f"{FALLBACK}::test_the_gate_reads_every_message_tool_calls_and_stop_strings",)),
    Mutant("data split across messages is read message by message", "runtime/hybrid/pii.py",
           'spans = tuple(find_pii(" ".join(texts)))', "spans = tuple(s for t in texts for s in find_pii(t))",
           (f"{FALLBACK}::test_the_gate_reads_every_message_tool_calls_and_stop_strings",)),
    Mutant("tool-call arguments read as raw JSON text", "runtime/hybrid/request.py",
           '        parsed = _json_arguments(obj) if key == "arguments" else None\n        if parsed is not None:\n'
           "            _walk(parsed, out)",
           "        parsed = None\n        if parsed is not None:\n            _walk(parsed, out)",
           (f"{FALLBACK}::test_the_gate_reads_every_message_tool_calls_and_stop_strings",)),
    Mutant("the router sends when consent is a string", "runtime/hybrid/decision.py",
           "consent = request.allow_cloud_pii is True", "consent = bool(request.allow_cloud_pii)",
           (f"{DECISION}::test_only_true_is_consent",)),
    Mutant("auto escalates a doubtful answer holding personal data", "runtime/hybrid/decision.py",
           '    if not may_send:\n        return Route("device", "personal_data", confidence=device)\n', "",
           (f"{DECISION}::test_every_case_routes_as_the_docs_say",)),
    Mutant("stop strings go to the fallback unredacted", "runtime/hybrid/request.py",
           'SCANNED = ("stop", "response_format", "tools", "tool_choice")',
           'SCANNED = ("response_format", "tools", "tool_choice")',
           (f"{FALLBACK}::test_stop_strings_go_redacted",)),
    Mutant("a placeholder typed by the user is not escaped", "runtime/hybrid/redact.py",
           "for m in LOOKALIKE.finditer(norm.text):", 'for m in LOOKALIKE.finditer(""):',
           (f"{FALLBACK}::test_a_typed_placeholder_never_becomes_someones_data",)),
    Mutant("zero-width characters are not dropped", "runtime/hybrid/normalize.py",
           'cluster = "".join(c for c in cluster if not _invisible(c))', "cluster = cluster",
           (f"{PII}::test_disguises_do_not_hide_data",)),
    Mutant("the first Luhn window in a run wins", "runtime/hybrid/pii.py",
           "key=lambda w: (-w[0], w[1])", "key=lambda w: (w[1], -w[0])",
           (f"{PII}::test_disguises_do_not_hide_data",)),
    Mutant("dates count as phone numbers", "runtime/hybrid/pii.py",
           'masked = _DATE.sub(lambda m: "#" * len(m.group()), t)', "masked = t",
           (f"{PII}::test_dates_are_not_phone_numbers",)),
    Mutant("the fallback timeout is per read, not a deadline", "runtime/hybrid/client.py",
           "        timer.start()\n", "",
           (f"{FALLBACK}::test_the_timeout_is_a_deadline_for_the_whole_call",)),
    Mutant("fallback calls are not bounded", "runtime/hybrid/calls.py",
           "if self.running + self.waiting >= self.concurrency + self.queue:", "if False:",
           (f"{FALLBACK}::test_calls_are_bounded_and_counted",)),
)
