"""`r42 ask -i`: a chat on the terminal, with history and a few slash commands.

Each turn is routed afresh (score and rank the whole conversation) unless /model pins a model.
Answers go to stdout as they arrive; the prompt, notes and command output go to stderr.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from r42.availability import BUILTIN_LOCAL
from r42.cli.answers import Asker, answer_to_terminal, summary_line
from r42.modes import MODES
from r42.errors import R42Error

HELP = (
    "/info  configuration and available models · /route  why the last answer came from where it did\n"
    "/mode [MODE]  show or set the routing mode · /model [PROVIDER/MODEL|auto]  pin a model or route again\n"
    "/clear  forget the conversation · /exit  leave (or Ctrl-D)"
)


class Chat:
    def __init__(self, asker: Asker) -> None:
        self.asker = asker
        self.term = asker.term
        self.history: list[dict[str, Any]] = []
        self.last: dict[str, Any] | None = None
        self.commands: dict[str, Callable[[str], bool]] = {
            "/info": self.info,
            "/route": self.route,
            "/mode": self.mode,
            "/model": self.model,
            "/clear": self.clear,
            "/exit": self.exit,
            "/quit": self.exit,
            "/help": self.help,
        }

    def run(self) -> None:
        self.term.note(
            f"r42 chat · mode {self.asker.mode} · {self.asker.model or 'routed per turn'} · "
            "/help for commands, Ctrl-D to leave"
        )
        while True:
            line = self._read()
            if line is None:
                return
            if not line.strip():
                continue
            if line.startswith("/"):
                name, _, argument = line.strip().partition(" ")
                command = self.commands.get(name)
                if command is None:
                    self.term.note(f"unknown command {name}\n{HELP}")
                elif not command(argument.strip()):
                    return
                continue
            self.turn(line)

    def _read(self) -> str | None:
        self.term.stderr.write("> ")
        self.term.stderr.flush()
        raw = self.term.stdin.readline()
        if not raw:
            self.term.note("")
            return None
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def turn(self, text: str) -> None:
        self.history.append({"role": "user", "content": text})
        try:
            self.last = answer_to_terminal(self.asker, {"messages": list(self.history)})
        except R42Error as exc:
            self.history.pop()  # the turn did not happen: do not send it again
            self.term.note(f"r42: error: {exc.one_line()}")
            return
        message = self.last["response"]["choices"][0]["message"]
        self.history.append({"role": "assistant", "content": message.get("content") or ""})

    # --- commands: each returns False to leave ------------------------------------------------

    def info(self, _: str) -> bool:
        asker = self.asker
        settings = asker.settings
        lines = [
            f"mode {asker.mode}; model {asker.model or 'routed per turn'}; force {asker.force or 'local and cloud'}; "
            f"max cost {settings.max_cost if settings.max_cost is not None else 'none'}",
            f"max attempts {asker.executor.limits.max_attempts}; timeouts connect {settings.connect_timeout:g}s, "
            f"first byte {settings.first_byte_timeout:g}s; deadline {settings.deadline:g}s",
            "providers:",
        ]
        catalog = asker.router.catalog
        for provider in sorted(catalog.providers.values(), key=lambda p: p.id):
            status = asker.router.availability.check(provider)
            count = sum(1 for m in catalog.models if m.provider == provider.id and m.available)
            mark = "ok " if status.ok else "-- "
            lines.append(f"  {mark}{provider.id:<11} {count:>4} models  {status.source}")
        if not any(asker.router.availability.check(p).ok for p in catalog.providers.values() if p.id != BUILTIN_LOCAL):
            lines.append("no cloud provider configured: set a key such as OPENAI_API_KEY or ANTHROPIC_API_KEY")
        self.term.note("\n".join(lines))
        return True

    def route(self, _: str) -> bool:
        if self.last is None:
            self.term.note("no answer yet")
            return True
        doc = self.last
        lines = [summary_line(doc)]
        score = doc.get("score")
        if score:
            lines.append(
                f"prompt: complexity {score['complexity']:.2f} ({score['level']}), domain {score['domain']}, "
                f"{score['tokens']} tokens"
            )
        ranking = doc.get("ranking")
        if ranking:
            lines.append(f"ranking ({ranking['mode']}, quality needed {ranking['required_quality']:.2f}):")
            for index, candidate in enumerate(ranking["candidates"][:5], start=1):
                lines.append(f"  {index}. {candidate['model']}: " + "; ".join(candidate["reasons"][:3]))
        else:
            lines.append("model pinned with /model or --model: no ranking")
        for attempt in doc["route"]["attempts"]:
            lines.append(
                f"  attempt {attempt['model']}: {'ok' if attempt['ok'] else attempt['error']} ({attempt['ms']} ms)"
            )
        self.term.note("\n".join(lines))
        return True

    def mode(self, argument: str) -> bool:
        if not argument:
            self.term.note(f"mode {self.asker.mode} (modes: {', '.join(MODES)})")
        elif argument not in MODES:
            self.term.note(f"unknown mode {argument!r}; modes: {', '.join(MODES)}")
        else:
            self.asker.settings = replace(self.asker.settings, mode=argument)
            self.term.note(f"mode {argument}")
        return True

    def model(self, argument: str) -> bool:
        if not argument:
            self.term.note(f"model {self.asker.model or 'routed per turn'}")
            return True
        if argument == "auto":
            self.asker.model = None
            self.term.note("model: routed per turn")
            return True
        try:
            target = self.asker.executor.target(argument)
        except R42Error as exc:
            self.term.note(f"r42: error: {exc.one_line()}")
            return True
        self.asker.model = target.id
        self.term.note(f"model {target.id}")
        return True

    def clear(self, _: str) -> bool:
        self.history.clear()
        self.last = None
        self.term.note("conversation cleared")
        return True

    def help(self, _: str) -> bool:
        self.term.note(HELP)
        return True

    def exit(self, _: str) -> bool:
        return False


def chat(asker: Asker) -> None:
    Chat(asker).run()
