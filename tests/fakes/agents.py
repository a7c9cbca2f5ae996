"""What the fake upstream does for agents, as Gemini does it (../shared/GEMINI_WIRE.md):

- a request that declares function tools is answered, step by step, with a call to each
  declared function in turn (one step each), then with text naming what they returned;
- a model named ``gemini-3*`` puts a thought signature (URL-safe base64 of ``aistudio:…``) on
  each step's first function call, and checks the current turn of every request: a step whose
  first call has no signature is a 400 (missing ``thought_signature``), and one issued by the
  other endpoint (``vertex:…``) or not base64 at all is a 400 (corrupted). Google's stand-in
  ``skip_thought_signature_validator`` passes;
- other models (``gemini-2.5-flash-lite``) call functions without signatures.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

STAND_IN = "skip_thought_signature_validator"
MISSING = (
    "Function call is missing a thought_signature in functionCall parts. This is required for "
    "tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {at}."
)
CORRUPTED = "Corrupted thought signature."


def checks_signatures(model: str) -> bool:
    return model.startswith("gemini-3")


def signature_for(model: str, step: int, endpoint: str = "aistudio") -> str:
    return base64.urlsafe_b64encode(f"{endpoint}:{model}:{step}".encode()).decode()


def _parts(content: Any) -> list[Any]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return parts if isinstance(parts, list) else []


def _call_of(part: Any) -> Any:
    return part.get("functionCall") or part.get("function_call") if isinstance(part, dict) else None


def _signature_of(part: dict[str, Any]) -> Any:
    return part.get("thoughtSignature") or part.get("thought_signature")


def _response_only(content: Any) -> bool:
    parts = _parts(content)
    return bool(parts) and all(
        isinstance(p, dict) and ("functionResponse" in p or "function_response" in p) for p in parts
    )


def current_turn(contents: list[Any]) -> list[Any]:
    for i in range(len(contents) - 1, -1, -1):
        c = contents[i]
        if isinstance(c, dict) and c.get("role", "user") == "user" and not _response_only(c):
            return contents[i + 1 :]
    return contents


def _bad_signature(signature: str, endpoint: str = "aistudio") -> bool:
    if signature == STAND_IN:
        return False
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except (binascii.Error, ValueError):
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return True
    return not raw.startswith(f"{endpoint}:".encode())


def signature_refusal(model: str, data: dict[str, Any], endpoint: str = "aistudio") -> str:
    """Gemini 3's 400 message for the current turn's signatures, or "" (a signature another
    endpoint issued is corrupted here)."""
    if not checks_signatures(model):
        return ""
    contents = data.get("contents")
    if contents is None and isinstance(data.get("generateContentRequest"), dict):
        contents = data["generateContentRequest"].get("contents")
    if not isinstance(contents, list):
        return ""
    step_open, first_seen = False, False
    for at, content in enumerate(current_turn(contents)):
        if not (isinstance(content, dict) and content.get("role") == "model"):
            step_open, first_seen = False, False
            continue
        if not step_open:
            step_open, first_seen = True, False
        for part in _parts(content):
            call = _call_of(part)
            if call is None or first_seen:
                continue
            first_seen = True
            signature = _signature_of(part)
            if not signature:
                return MISSING.format(name=call.get("name", "?"), at=at)
            if _bad_signature(str(signature), endpoint):
                return CORRUPTED
    return ""


def openai_signature_refusal(model: str, data: dict[str, Any]) -> str:
    """The same for ``messages`` (``tool_calls[].extra_content.google.thought_signature``)."""
    if not checks_signatures(model):
        return ""
    messages = data.get("messages")
    if not isinstance(messages, list):
        return ""
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], dict) and messages[i].get("role") == "user":
            start = i + 1
            break
    in_step = False
    for message in messages[start:]:
        if not (isinstance(message, dict) and message.get("role") == "assistant"):
            in_step = False
            continue
        calls = message.get("tool_calls") or []
        if in_step or not calls:
            in_step = in_step or bool(calls)
            continue
        in_step = True
        google = (calls[0].get("extra_content") or {}).get("google") or {}
        signature = google.get("thought_signature")
        if not signature:
            return MISSING.format(name=calls[0].get("function", {}).get("name", "?"), at=0)
        if _bad_signature(str(signature)):
            return CORRUPTED
    return ""


def declared(data: dict[str, Any]) -> list[str]:
    """The function names the request declares, in order."""
    return list(declared_args(data))


def declared_args(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Each declared function, with the arguments the fake calls it with (every parameter it
    declares, as ``"Rome"``)."""
    out: dict[str, dict[str, str]] = {}
    for tool in data.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        decls = tool.get("functionDeclarations") or tool.get("function_declarations") or []
        if tool.get("type") == "function":  # OpenAI's shape
            decls = [tool.get("function", {})]
        for decl in decls:
            params = (
                decl.get("parameters")
                or decl.get("parametersJsonSchema")
                or decl.get("parameters_json_schema")
                or {}
            )
            props = params.get("properties") if isinstance(params, dict) else None
            out[str(decl.get("name"))] = {p: "Rome" for p in props or {}}
    return out


def answered(data: dict[str, Any]) -> list[Any]:
    """The function responses of the current turn, in order."""
    out: list[Any] = []
    for content in current_turn(data.get("contents") or []):
        for part in _parts(content):
            if isinstance(part, dict):
                found = part.get("functionResponse") or part.get("function_response")
                if found is not None:
                    out.append(found.get("response"))
    return out


def tool_parts(
    model: str, data: dict[str, Any], endpoint: str = "aistudio"
) -> list[dict[str, Any]] | None:
    """The answer's parts for a request with function tools: the next call, or the final text
    once every declared function answered. None: the request declares no function."""
    functions = declared_args(data)
    names = list(functions)
    if not names:
        return None
    done = answered(data)
    if len(done) < len(names):
        name = names[len(done)]
        part: dict[str, Any] = {"functionCall": {"name": name, "args": functions[name]}}
        if checks_signatures(model):
            part["thoughtSignature"] = signature_for(model, len(done), endpoint)
        return [part]
    return [{"text": f"done on {model}: {done}"}]
