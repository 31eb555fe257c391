"""Prometheus text exposition of the gateway's counters, written by hand (no client library).

Requests and errors per endpoint and status, latency and time-to-first-token histograms per
endpoint, tokens and cost per model, and requests in flight.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1
        for index, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.counts[index] += 1
                break

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(BUCKETS, self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels},le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = time.time()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = defaultdict(Histogram)
        self.ttft: dict[str, Histogram] = defaultdict(Histogram)
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)
        self.cost: dict[str, float] = defaultdict(float)
        self.model_requests: dict[str, int] = defaultdict(int)
        self.inflight = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    def request(self, endpoint: str, status: int, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.requests[(endpoint, status)] += 1
            self.latency[endpoint].observe(seconds)
            if error:
                self.errors[(endpoint, error)] += 1

    def answered(self, endpoint: str, model: str, route: dict) -> None:
        usage = route.get("usage") or {}
        with self.lock:
            self.model_requests[model] += 1
            self.tokens[(model, "input")] += int(usage.get("input_tokens") or 0)
            self.tokens[(model, "output")] += int(usage.get("output_tokens") or 0)
            self.cost[model] += float(route.get("cost_usd") or 0.0)
            if route.get("ttft_ms") is not None:
                self.ttft[endpoint].observe(route["ttft_ms"] / 1000)

    def render(self) -> bytes:
        with self.lock:
            lines = [
                "# HELP r42_uptime_seconds Seconds since the gateway started.",
                "# TYPE r42_uptime_seconds gauge",
                f"r42_uptime_seconds {time.time() - self.started:.3f}",
                "# HELP r42_requests_in_flight Requests being handled now.",
                "# TYPE r42_requests_in_flight gauge",
                f"r42_requests_in_flight {self.inflight}",
                "# HELP r42_requests_total Requests answered, by endpoint and HTTP status.",
                "# TYPE r42_requests_total counter",
            ]
            lines += [
                f'r42_requests_total{{endpoint="{_label(e)}",status="{s}"}} {n}'
                for (e, s), n in sorted(self.requests.items())
            ]
            lines += [
                "# HELP r42_errors_total Failed requests, by endpoint and kind.",
                "# TYPE r42_errors_total counter",
            ]
            lines += [
                f'r42_errors_total{{endpoint="{_label(e)}",kind="{_label(k)}"}} {n}'
                for (e, k), n in sorted(self.errors.items())
            ]
            lines += [
                "# HELP r42_request_duration_seconds Time from request to the end of the response.",
                "# TYPE r42_request_duration_seconds histogram",
            ]
            for endpoint, histogram in sorted(self.latency.items()):
                lines += histogram.lines("r42_request_duration_seconds", f'endpoint="{_label(endpoint)}"')
            lines += [
                "# HELP r42_time_to_first_token_seconds Time to the first token of a stream.",
                "# TYPE r42_time_to_first_token_seconds histogram",
            ]
            for endpoint, histogram in sorted(self.ttft.items()):
                lines += histogram.lines("r42_time_to_first_token_seconds", f'endpoint="{_label(endpoint)}"')
            lines += [
                "# HELP r42_model_requests_total Requests answered, by the model that answered.",
                "# TYPE r42_model_requests_total counter",
            ]
            lines += [
                f'r42_model_requests_total{{model="{_label(m)}"}} {n}' for m, n in sorted(self.model_requests.items())
            ]
            lines += [
                "# HELP r42_tokens_total Tokens reported by providers, by model and direction.",
                "# TYPE r42_tokens_total counter",
            ]
            lines += [
                f'r42_tokens_total{{model="{_label(m)}",direction="{d}"}} {n}'
                for (m, d), n in sorted(self.tokens.items())
            ]
            lines += [
                "# HELP r42_cost_usd_total Cost in USD from catalog prices, by model.",
                "# TYPE r42_cost_usd_total counter",
            ]
            lines += [f'r42_cost_usd_total{{model="{_label(m)}"}} {c:.8f}' for m, c in sorted(self.cost.items())]
        return ("\n".join(lines) + "\n").encode()
