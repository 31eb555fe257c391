"""Wire formats: translation between the OpenAI chat format and the Anthropic, Gemini and Ollama
formats, and server-sent events.

Everything here is pure functions over plain dicts (the JSON on the wire), with no I/O and no SDK
imports, so that the providers (request out, response in) and the gateway (request in, response
out) share one set of translations.

OpenAI chat is the lingua franca: a request is an OpenAI chat-completions body, a response a
`chat.completion` object, a stream a sequence of `chat.completion.chunk` objects.
"""
