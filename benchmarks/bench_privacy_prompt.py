"""What a user's own privacy-judge template costs the gateway and the dashboard, against baselines.

Seeds a fresh store (in a temporary R42_HOME) with N users who each saved a template (default
10,000), then measures, in one run on one machine, medians of many calls:

  * lookup:   template_for(user): the store read the gateway makes for a prompt with privacy cues
              when the judge is on; baseline: `SELECT 1` on the same connection (one SQLite round trip)
  * panel:    the dashboard's Privacy judge panel (lookup + HTML); baseline: the page around it
              (render_page of the same day's data without the panel), and the panel's weight in bytes

    .venv/bin/python benchmarks/bench_privacy_prompt.py [--users 10000] [--repeat 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable


def median_us(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def seed(users: int) -> None:
    from r42.store.db import writing

    rows = [(f"user{n:05d}", f"User {n}'s rules.\n{{prompt}}\nYES or NO?", time.time()) for n in range(users)]
    with writing() as conn:
        conn.executemany("INSERT INTO privacy_prompts (user_name, template, updated) VALUES (?, ?, ?)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="r42-bench-") as home:
        os.environ["R42_HOME"] = home
        from r42.store.db import connect
        from r42.store.prompts import template_for
        from r42.store.queries import dashboard_data
        from r42.views_html import privacy_panel, render_page

        seed(args.users)
        conn = connect()
        assert conn is not None
        middle = f"user{args.users // 2:05d}"
        lookup = median_us(lambda: template_for(middle, None), args.repeat)
        round_trip = median_us(lambda: conn.execute("SELECT 1").fetchone(), args.repeat)
        data = dashboard_data("24h", middle, None)

        def panel() -> str:
            return privacy_panel({**template_for(middle, None).as_dict(), "max_chars": 4000}, "x" * 32)

        panel_us = median_us(panel, args.repeat)
        page_us = median_us(lambda: render_page(data, title="t", subtitle="s", live=True, csrf="x"), args.repeat // 10)
        print(f"CPU: {cpu_model()}; load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{args.users:,} stored templates, medians of {args.repeat:,} calls")
        print(f"template_for (the gateway's lookup): {lookup:.1f} µs   baseline SELECT 1: {round_trip:.1f} µs")
        print(f"privacy panel (lookup + HTML):       {panel_us:.1f} µs   baseline page without it: {page_us:.1f} µs")
        print(f"panel weight: {len(panel().encode()):,} bytes")


if __name__ == "__main__":
    main()
