"""A real webhook receiver on 127.0.0.1 that checks R42-Signature the way the README tells users to."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def readme_verify():  # noqa: ANN201
    """The verification snippet from the README's Webhooks section, run as written (not r42.webhooks)."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```python\nimport hashlib, hmac, time")
    code = text[start + len("```python\n") : text.index("```", start + 3)]
    namespace: dict = {}
    exec(compile(code, "README.md (webhook verification snippet)", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verify"]


README = Path(__file__).resolve().parents[1] / "README.md"
verify = readme_verify()


class Receiver:
    """Records each POST as {verified, event, headers}. `statuses` are answered in turn (then 200);
    `hold` (an Event) makes the handler wait until it is set: a dead endpoint."""

    def __init__(self, secret: str, statuses: list[int] | None = None, hold: threading.Event | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])
        self.hold = hold
        self.received: list[dict] = []
        self.reached = threading.Event()  # a request has arrived (before `hold` is waited on)
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.reached.set()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                ok = verify(receiver.secret, body, self.headers.get("R42-Signature", "t=0"))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                with receiver.arrived:
                    receiver.received.append(
                        {"verified": ok, "event": json.loads(body), "headers": dict(self.headers), "status": status}
                    )
                    receiver.arrived.notify_all()
                self.send_response(status if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def events(self, event_type: str | None = None) -> list[dict]:
        return [r["event"] for r in self.received if event_type is None or r["event"]["type"] == event_type]

    def wait_for(self, count: int, event_type: str | None = None, timeout: float = 30.0) -> list[dict]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.events(event_type)) >= count, timeout)
        return self.events(event_type)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
