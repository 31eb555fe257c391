"""OpenAI chat <-> Gemini generateContent (the REST JSON, camelCase).

Gemini names the assistant "model", carries the system prompt in `systemInstruction`, tool calls
as `functionCall` parts with object arguments and tool results as `functionResponse` parts in a
user turn; a stream (streamGenerateContent?alt=sse) is a series of whole GenerateContentResponse
objects with no terminator: the last one has `finishReason`.
"""

from __future__ import annotations

from typing import Any, Iterator

from r42.formats import openai as oa

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def request_to_gemini(request: dict[str, Any]) -> dict[str, Any]:
    """The generateContent body (without the model, which goes in the URL)."""
    messages = request.get("messages") or []
    system = [oa.text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    names = {
        c.get("id", ""): (c.get("function") or {}).get("name", "") for m in messages for c in m.get("tool_calls") or []
    }
    contents = _merge([_content(m, names) for m in messages if m.get("role") not in ("system", "developer")])
    body: dict[str, Any] = {"contents": contents}
    if any(system):
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(s for s in system if s)}]}
    tools = oa.function_tools(request)
    if tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in tools]}]
        config = _tool_config(request.get("tool_choice"))
        if config:
            body["toolConfig"] = config
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    return body


def _declaration(tool: dict[str, Any]) -> dict[str, Any]:
    out = {"name": tool["name"], "description": tool.get("description", "")}
    if tool.get("parameters"):
        out["parametersJsonSchema"] = tool["parameters"]
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if isinstance(choice, dict) and choice.get("function"):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name", "")]}}
    return None


def _generation_config(request: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key, name in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if request.get(key) is not None:
            config[name] = request[key]
    if oa.max_tokens_of(request):
        config["maxOutputTokens"] = oa.max_tokens_of(request)
    if oa.stops_of(request):
        config["stopSequences"] = oa.stops_of(request)
    wants_json, schema = oa.json_mode_of(request)
    if wants_json:
        config["responseMimeType"] = "application/json"
        if schema:
            config["responseJsonSchema"] = schema
    return config


def _content(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    role = message.get("role")
    if role in ("tool", "function"):
        call_id = message.get("tool_call_id", "")
        response = {
            "name": names.get(call_id) or message.get("name", ""),
            "response": {"result": oa.text_of(message.get("content"))},
        }
        if call_id:
            response["id"] = call_id
        return {"role": "user", "parts": [{"functionResponse": response}]}
    parts = [p for p in (_part(part) for part in oa.parts_of(message.get("content"))) if p]
    if role == "assistant":
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            part = {"name": function.get("name", ""), "args": oa.parse_arguments(function.get("arguments"))}
            if call.get("id"):
                part["id"] = call["id"]
            parts.append({"functionCall": part})
        return {"role": "model", "parts": parts}
    return {"role": "user", "parts": parts}


def _part(part: dict[str, Any]) -> dict[str, Any] | None:
    if part.get("type") in ("text", "input_text"):
        return {"text": part.get("text", "")}
    if part.get("type") == "image_url":
        url = oa.image_url_of(part) or ""
        inline = oa.split_data_url(url)
        if inline:
            return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
        return {"fileData": {"mimeType": "image/*", "fileUri": url}}
    return None


def _merge(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: list[dict[str, Any]] = []
    for content in contents:
        if merged and merged[-1]["role"] == content["role"]:
            merged[-1] = {"role": content["role"], "parts": merged[-1]["parts"] + content["parts"]}
        else:
            merged.append(content)
    return merged


def usage_to_openai(metadata: dict[str, Any] | None) -> dict[str, int] | None:
    if not metadata:
        return None
    output = (metadata.get("candidatesTokenCount") or 0) + (metadata.get("thoughtsTokenCount") or 0)
    return oa.usage(metadata.get("promptTokenCount"), output)


def _parts_of(response: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    candidates = response.get("candidates") or [{}]
    candidate = candidates[0]
    return (candidate.get("content") or {}).get("parts") or [], candidate.get("finishReason")


def _split(parts: list[dict[str, Any]], first_call: int = 0) -> tuple[str, str, list[dict[str, Any]]]:
    text, thought, calls = [], [], []
    for part in parts:
        if "functionCall" in part:
            call = part["functionCall"]
            calls.append(
                oa.tool_call(
                    call.get("id") or f"call_{first_call + len(calls)}", call.get("name", ""), call.get("args")
                )
            )
        elif part.get("thought"):
            thought.append(part.get("text", ""))
        elif "text" in part:
            text.append(part["text"])
    return "".join(text), "".join(thought), calls


def _finish(reason: str | None, has_calls: bool) -> str | None:
    if reason is None:
        return None
    return "tool_calls" if has_calls else FINISH.get(reason, "stop")


def response_to_openai(response: dict[str, Any], model: str = "") -> dict[str, Any]:
    parts, reason = _parts_of(response)
    text, thought, calls = _split(parts)
    message = oa.assistant_message(text, calls)
    if thought:
        message["reasoning_content"] = thought
    finish = _finish(reason or "STOP", bool(calls))
    return oa.completion(
        response.get("modelVersion") or model,
        message,
        finish,
        usage_to_openai(response.get("usageMetadata")),
        id=response.get("responseId"),
    )


class StreamToOpenAI:
    """Translates the responses of a Gemini stream into OpenAI chunks."""

    def __init__(self, model: str = "") -> None:
        self.id = oa.new_id()
        self.model = model
        self.started = False
        self.calls = 0
        self.usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, response: dict[str, Any]) -> Iterator[dict[str, Any]]:
        self.model = response.get("modelVersion") or self.model
        if response.get("usageMetadata"):
            self.usage = response["usageMetadata"]
        parts, reason = _parts_of(response)
        text, thought, calls = _split(parts, self.calls)
        delta: dict[str, Any] = {}
        if not self.started:
            self.started = True
            delta["role"] = "assistant"
        if text:
            delta["content"] = text
        if thought:
            delta["reasoning_content"] = thought
        if calls:
            delta["tool_calls"] = [{"index": self.calls + i, **c} for i, c in enumerate(calls)]
            self.calls += len(calls)
        if delta:
            yield oa.chunk(self.id, self.model, delta)
        if reason:
            self.done = True
            yield oa.chunk(self.id, self.model, {}, _finish(reason, self.calls > 0))

    def end(self) -> Iterator[dict[str, Any]]:
        """The usage chunk, once the stream is over (Gemini may send usage with the last response)."""
        yield oa.chunk(self.id, self.model, None, usage=usage_to_openai(self.usage))
