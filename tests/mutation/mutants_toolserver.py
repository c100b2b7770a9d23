"""Mutants of the server's structured output and tool calling (runtime/server/structured.py, the hybrid
forwarding of response_format and tools): each a breakage the server tests must catch."""
from __future__ import annotations

from .mutants import Mutant

_S = "tests/server/test_structured_server.py"
_H = "tests/server/test_structured_hybrid.py"

MUTANTS = (
    Mutant("server ignores response_format", "runtime/server/structured.py",
           "FIELDS = (\"response_format\", \"tools\", \"tool_choice\", \"parallel_tool_calls\")",
           "FIELDS = (\"tools\", \"tool_choice\", \"parallel_tool_calls\")",
           (f"{_S}::test_raw_json_schema_strict_and_json_object",)),
    Mutant("server reports content with tool calls", "runtime/server/structured.py",
           '"content": text if (text or not tool_calls) else None}', '"content": text}',
           (f"{_S}::test_named_and_required_tool_choice",)),
    Mutant("streamed tool call's first delta without its name", "runtime/server/structured.py",
           'call.update(id=event.id, type="function", function={"name": event.name, "arguments": event.arguments})',
           'call.update(id=event.id, type="function", function={"arguments": event.arguments})',
           (f"{_S}::test_streamed_tool_calls_as_openai_streams_them",)),
    Mutant("streamed tool calls finish as stop", "runtime/server/structured.py",
           'return holder[0].reply.finish_reason if holder and holder[0].reply is not None else "stop"',
           'return "stop"',
           (f"{_S}::test_streamed_tool_calls_as_openai_streams_them",)),
    Mutant("grammar compile errors not answered as a 400", "runtime/server/structured.py",
           "    except (ValueError, TypeError, RecursionError, TemplateError) as e:",
           "    except (TypeError, RecursionError, TemplateError) as e:",
           (f"{_S}::test_hostile_requests_are_a_400_and_the_server_keeps_serving",)),
    Mutant("tool results dropped from the history", "runtime/server/structured.py",
           '        out = {"role": "tool", "tool_call_id": call_id, "content": content}',
           '        out = {"role": "tool", "tool_call_id": call_id, "content": ""}',
           (f"{_S}::test_a_tool_result_turn",)),
    Mutant("structured requests keep the repetition penalty", "runtime/model.py",
           "        if constraint is not None:  # a structured", "        if False:  # a structured",
           ("tests/structured/test_generate_tiny.py::test_a_grammar_turns_the_default_repetition_penalty_off",)),
    Mutant("a reply that copies its context keeps the default penalty", "runtime/generation_defaults.py",
           '    if settings.get("repetition_penalty") is not None:\n        return settings',
           "    return settings",
           ("tests/structured/test_generate_tiny.py::test_a_grammar_turns_the_default_repetition_penalty_off",
            "tests/rag/test_grounded.py::test_a_grounded_answer_has_no_repetition_penalty_unless_asked")),
    Mutant("a grounded answer keeps the chat's penalty", "runtime/rag/grounded.py",
           "    generation = for_copying(generation)", "    pass",
           ("tests/rag/test_grounded.py::test_a_grounded_answer_has_no_repetition_penalty_unless_asked",)),
    Mutant("tools not forwarded to the fallback", "runtime/hybrid/request.py",
           '"stop", "response_format", "tools", "tool_choice",\n             "parallel_tool_calls")',
           '"stop", "response_format")',
           (f"{_H}::test_tools_and_response_format_reach_the_fallback_unchanged",)),
    Mutant("the gate skips tool definitions", "runtime/hybrid/request.py",
           'SCANNED = ("stop", "response_format", "tools", "tool_choice")', 'SCANNED = ("stop", "response_format")',
           (f"{_H}::test_the_gate_reads_tool_arguments_results_and_definitions",)),
    Mutant("the fallback's tool calls dropped", "runtime/hybrid/request.py",
           "    return Reply(text or \"\", finish if finish in FINISH else \"stop\", counts, calls)",
           "    return Reply(text or \"\", finish if finish in FINISH else \"stop\", counts)",
           (f"{_H}::test_tools_and_response_format_reach_the_fallback_unchanged",)),
)
