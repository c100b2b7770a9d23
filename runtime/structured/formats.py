"""How each model family writes tool calls, as data: one ToolFormat per syntax, one Family per model family.

A bundle's format is read off its chat template (the template decides how tools and earlier calls are
rendered, so it is the thing to trust), by the markers below; a template with none of them gets the
generic JSON envelope. tests/structured/test_formats.py checks each family's real template, where its
license lets us keep a copy, against this table.

| format       | a call looks like                                                     | tools reach the prompt   |
|--------------|-----------------------------------------------------------------------|--------------------------|
| hermes       | <tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call> (one per call) | the template's `tools`   |
| llama3-json  | {"name": "f", "parameters": {...}} (one call per reply)                | the template's `tools`   |
| phi4-mini    | <|tool_call|>[{"name": "f", "arguments": {...}}, ...]<|/tool_call|>   | system message's `tools` |
| generic      | {"tool_calls": [{"name": "f", "arguments": {...}}]} or {"response": "text"} | a system message we write |
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ToolFormat", "Family", "FORMATS", "FAMILIES", "detect_format"]


@dataclass(frozen=True)
class ToolFormat:
    name: str
    markers: tuple[str, ...]  # a chat template containing all of these renders tools in this format
    tools_via: str  # "template" (its `tools` variable) | "system-message" (message["tools"]) | "envelope" (ours)
    key: str = "arguments"  # the key of a call object that holds the arguments
    open: str = ""  # text (usually one added token) before each call ("hermes") or before the call list
    close: str = ""
    call_list: bool = False  # the calls are one JSON array between open and close (phi4-mini)
    parallel: bool = True  # whether one reply may hold several calls
    text_must_not_start_with: str = ""  # with tool_choice "auto", so a text reply cannot be read as a call
    description: str = ""


FORMATS: dict[str, ToolFormat] = {f.name: f for f in (
    ToolFormat("hermes", markers=("<tool_call>", "tools"), tools_via="template", open="<tool_call>",
               close="</tool_call>", text_must_not_start_with="<",
               description="Hermes-style blocks, as Qwen2.5 and Qwen3 are trained: one <tool_call> block per call"),
    ToolFormat("llama3-json", markers=("<|python_tag|>", "tools"), tools_via="template", key="parameters",
               parallel=False, text_must_not_start_with="{",
               description="Llama 3.1/3.2 JSON tool calling: a bare JSON object; the template takes one call per "
                           "turn"),
    ToolFormat("phi4-mini", markers=("<|tool|>", "message['tools']"), tools_via="system-message",
               open="<|tool_call|>", close="<|/tool_call|>", call_list=True, text_must_not_start_with="<",
               description="Phi-4-mini: tools as JSON in the system message's 'tools' field, calls as a JSON list "
                           "between <|tool_call|> and <|/tool_call|>"),
    ToolFormat("generic", markers=(), tools_via="envelope",
               description="for templates that render no tools (llama.cpp's 'Generic' format): the whole reply is "
                           "one JSON object, a call list or a response"),
)}


@dataclass(frozen=True)
class Family:
    name: str
    model_type: str  # the architecture in the manifest
    format: str  # key of FORMATS
    template_source: str  # where the template the format was checked against comes from


FAMILIES: tuple[Family, ...] = (
    Family("SmolLM2", "llama", "generic", "the chat template in the SmolLM2-135M-Instruct GGUF (ChatML, no tools)"),
    Family("TinyLlama", "llama", "generic", "TinyLlama-1.1B-Chat-v1.0's Zephyr-style template (tests/unit; no tools)"),
    Family("Llama 3.2", "llama", "llama3-json", "documented format only (the Llama 3.2 license keeps its template "
                                                "out of this repository)"),
    Family("Qwen2.5", "qwen2", "hermes", "Qwen2.5-0.5B-Instruct tokenizer_config.json (Apache-2.0)"),
    Family("Qwen3", "qwen3", "hermes", "Qwen3-0.6B tokenizer_config.json (Apache-2.0)"),
    Family("Phi-4-mini", "phi3", "phi4-mini", "Phi-4-mini-instruct tokenizer_config.json (MIT)"),
    Family("Gemma 3", "gemma3_text", "generic", "Gemma 3's chat template (exporters/testing.py; no tools)"),
)


def detect_format(template_source: str | None) -> ToolFormat:
    """The tool format a chat template renders (generic when it renders no tools, or there is no template)."""
    if template_source:
        for fmt in FORMATS.values():
            if fmt.markers and all(m in template_source for m in fmt.markers):
                return fmt
    return FORMATS["generic"]
