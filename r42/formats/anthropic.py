"""OpenAI chat <-> Anthropic Messages.

request_to_anthropic / message_to_openai / StreamToOpenAI serve the provider adapter (OpenAI in,
Anthropic on the wire); request_to_openai / completion_to_anthropic / ChunksToAnthropic serve a
gateway that speaks Anthropic to its clients. Plain dicts in the wire's JSON shape.
"""

from __future__ import annotations

from typing import Any, Iterator

from r42.formats import openai as oa

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used when the request sets none
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else."

STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "function_call": "tool_use",
}


# --- OpenAI request -> Anthropic request ---------------------------------------------------------


def request_to_anthropic(request: dict[str, Any]) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request (model name already the provider's)."""
    system, messages = _split_system(request.get("messages") or [])
    wants_json, schema = oa.json_mode_of(request)
    if wants_json and not schema:
        system.append(JSON_INSTRUCTION)  # no JSON mode without a schema: ask in words
    params: dict[str, Any] = {
        "model": request["model"],
        "messages": _merge_same_role([_message(m) for m in messages]),
        "max_tokens": oa.max_tokens_of(request) or DEFAULT_MAX_TOKENS,
    }
    if system:
        params["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p"):
        if request.get(key) is not None:
            params[key] = request[key]
    stops = oa.stops_of(request)
    if stops:
        params["stop_sequences"] = stops
    tools = oa.function_tools(request)
    if tools:
        params["tools"] = [
            {
                "name": t["name"],
                "description": t.get("description", ""),
                "input_schema": t.get("parameters") or {"type": "object", "properties": {}},
            }
            for t in tools
        ]
        choice = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
        if choice:
            params["tool_choice"] = choice
    if request.get("user"):
        params["metadata"] = {"user_id": str(request["user"])}
    if schema:
        params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}  # structured outputs
    return params


def _split_system(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    system = [oa.text_of(m.get("content")) for m in messages if m.get("role") in ("system", "developer")]
    return [s for s in system if s], [m for m in messages if m.get("role") not in ("system", "developer")]


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role in ("tool", "function"):
        result = {
            "type": "tool_result",
            "tool_use_id": message.get("tool_call_id") or message.get("name", ""),
            "content": _tool_result_content(message.get("content")),
        }
        return {"role": "user", "content": [result]}
    blocks = [_block(part) for part in oa.parts_of(message.get("content"))]
    blocks = [b for b in blocks if b is not None]
    if role == "assistant":
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id", ""),
                    "name": function.get("name", ""),
                    "input": oa.parse_arguments(function.get("arguments")),
                }
            )
        return {"role": "assistant", "content": blocks}
    return {"role": "user", "content": blocks}


def _tool_result_content(content: Any) -> Any:
    if isinstance(content, list):
        return [b for b in (_block(p) for p in content) if b is not None]
    return oa.text_of(content)


def _block(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind in ("text", "input_text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "image_url":
        url = oa.image_url_of(part) or ""
        inline = oa.split_data_url(url)
        if inline:
            return {"type": "image", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}
        return {"type": "image", "source": {"type": "url", "url": url}}
    return None


def _merge_same_role(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anthropic wants user and assistant turns to alternate: join neighbours of one role
    (several tool results, or tool results followed by the user's next words)."""
    merged: list[dict[str, Any]] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + message["content"]}
        else:
            merged.append(message)
    return merged


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("function"):
        out = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        out = {"type": "auto"} if parallel is False else None
    if parallel is False and out is not None and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


# --- Anthropic response -> OpenAI response ------------------------------------------------------


def usage_to_openai(usage: dict[str, Any] | None) -> dict[str, int] | None:
    if not usage:
        return None
    prompt = (
        (usage.get("input_tokens") or 0)
        + (usage.get("cache_read_input_tokens") or 0)
        + (usage.get("cache_creation_input_tokens") or 0)
    )
    return oa.usage(prompt, usage.get("output_tokens"))


def message_to_openai(message: dict[str, Any]) -> dict[str, Any]:
    texts, calls, thinking = [], [], []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use":
            calls.append(oa.tool_call(block.get("id", ""), block.get("name", ""), block.get("input")))
        elif kind == "thinking":
            thinking.append(block.get("thinking", ""))
    out_message = oa.assistant_message("".join(texts), calls)
    if thinking:
        out_message["reasoning_content"] = "".join(thinking)
    finish = STOP_TO_FINISH.get(message.get("stop_reason") or "", "stop")
    return oa.completion(
        message.get("model", ""), out_message, finish, usage_to_openai(message.get("usage")), id=message.get("id")
    )


class StreamToOpenAI:
    """Translates Anthropic stream events (message_start ... message_stop) into OpenAI chunks."""

    def __init__(self) -> None:
        self.id = oa.new_id()
        self.model = ""
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool call index
        self.finish: str | None = None
        self.done = False

    def feed(self, event: dict[str, Any]) -> Iterator[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = message.get("id") or self.id
            self.model = message.get("model", "")
            self.usage.update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
            yield self._chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            yield from self._block_start(event.get("index", 0), event.get("content_block") or {})
        elif kind == "content_block_delta":
            yield from self._block_delta(event.get("index", 0), event.get("delta") or {})
        elif kind == "message_delta":
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            stop = (event.get("delta") or {}).get("stop_reason")
            if stop:
                self.finish = STOP_TO_FINISH.get(stop, "stop")
                yield self._chunk({}, self.finish)
        elif kind == "message_stop":
            self.done = True
            yield oa.chunk(self.id, self.model, None, usage=usage_to_openai(self.usage))
        # ping, content_block_stop and unknown future events carry nothing to translate

    def _block_start(self, index: int, block: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if block.get("type") == "tool_use":
            position = len(self.tool_index)
            self.tool_index[index] = position
            call = {
                "index": position,
                "id": block.get("id", ""),
                "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""},
            }
            yield self._chunk({"tool_calls": [call]})
        elif block.get("type") == "text" and block.get("text"):
            yield self._chunk({"content": block["text"]})

    def _block_delta(self, index: int, delta: dict[str, Any]) -> Iterator[dict[str, Any]]:
        kind = delta.get("type")
        if kind == "text_delta":
            yield self._chunk({"content": delta.get("text", "")})
        elif kind == "input_json_delta" and index in self.tool_index:
            piece = delta.get("partial_json", "")
            if piece:
                yield self._chunk({"tool_calls": [{"index": self.tool_index[index], "function": {"arguments": piece}}]})
        elif kind == "thinking_delta":
            yield self._chunk({"reasoning_content": delta.get("thinking", "")})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return oa.chunk(self.id, self.model, delta, finish)


# --- the other way round, for a gateway that speaks Anthropic to its clients ---------------------


def request_to_openai(params: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat request for an Anthropic Messages body."""
    messages: list[dict[str, Any]] = []
    system = params.get("system")
    if system:
        messages.append(
            {
                "role": "system",
                "content": system if isinstance(system, str) else "".join(b.get("text", "") for b in system),
            }
        )
    for message in params.get("messages") or []:
        messages.extend(_to_openai_messages(message))
    out: dict[str, Any] = {"model": params.get("model"), "messages": messages, "max_tokens": params.get("max_tokens")}
    for key in ("temperature", "top_p", "stream"):
        if params.get(key) is not None:
            out[key] = params[key]
    if params.get("stop_sequences"):
        out["stop"] = params["stop_sequences"]
    if params.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema"),
                },
            }
            for t in params["tools"]
        ]
    choice = params.get("tool_choice") or {}
    mapping = {"any": "required", "none": "none", "auto": "auto"}
    if choice.get("type") == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice.get("type") in mapping:
        out["tool_choice"] = mapping[choice["type"]]
    return out


def _to_openai_messages(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for block in content or []:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            url = (
                source.get("url")
                if source.get("type") == "url"
                else f"data:{source.get('media_type')};base64,{source.get('data')}"
            )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "tool_use":
            calls.append(oa.tool_call(block.get("id", ""), block.get("name", ""), block.get("input")))
        elif kind == "tool_result":
            body = block.get("content")
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": body if isinstance(body, str) else oa.text_of(body),
                }
            )
    out: list[dict[str, Any]] = list(results)
    if message["role"] == "assistant":
        text = oa.text_of(parts)
        out.append(oa.assistant_message(text, calls))
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def completion_to_anthropic(response: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Message for an OpenAI chat.completion."""
    choice = oa.first_choice(response)
    message = choice.get("message") or {}
    blocks: list[dict[str, Any]] = []
    text = oa.text_of(message.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": oa.parse_arguments(function.get("arguments")),
            }
        )
    usage = response.get("usage") or {}
    return {
        "id": response.get("id", ""),
        "type": "message",
        "role": "assistant",
        "model": response.get("model", ""),
        "content": blocks,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": {"input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0)},
    }


class ChunksToAnthropic:
    """Translates OpenAI chunks into Anthropic stream events ((event name, data) pairs)."""

    def __init__(self, model: str = "", id: str | None = None) -> None:
        self.model = model
        self.id = id or "msg_" + oa.new_id("r42")[-24:]
        self.started = False
        self.block: int = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}
        self.finish: str | None = None
        self.usage: dict[str, int] = {}

    def feed(self, chunk: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if not self.started:
            self.started = True
            self.model = self.model or chunk.get("model", "")
            message = {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            yield "message_start", {"type": "message_start", "message": message}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                yield from self._open("text", {"type": "text", "text": ""})
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.block,
                        "delta": {"type": "text_delta", "text": delta["content"]},
                    },
                )
            for call in delta.get("tool_calls") or []:
                yield from self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def _open(self, kind: str, block: dict[str, Any], key: int | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.block_kind == kind and (kind == "text" or key is None):
            return
        yield from self._close()
        self.block += 1
        self.block_kind = kind
        yield "content_block_start", {"type": "content_block_start", "index": self.block, "content_block": block}

    def _tool_delta(self, call: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self.tool_blocks:
            yield from self._open(
                "tool_use",
                {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": {}},
                key=index,
            )
            self.tool_blocks[index] = self.block
        if function.get("arguments"):
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self.tool_blocks[index],
                    "delta": {"type": "input_json_delta", "partial_json": function["arguments"]},
                },
            )

    def _close(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.block_kind is not None:
            yield "content_block_stop", {"type": "content_block_stop", "index": self.block}
            self.block_kind = None

    def end(self) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self._close()
        stop = FINISH_TO_STOP.get(self.finish or "stop", "end_turn")
        usage = {"output_tokens": self.usage.get("completion_tokens", 0)}
        yield (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage},
        )
        yield "message_stop", {"type": "message_stop"}
