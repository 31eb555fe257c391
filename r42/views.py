"""How documents look on a terminal (stdout is a TTY). In a pipe they are JSON instead."""

from __future__ import annotations

from typing import Any


def render_score(doc: dict[str, Any]) -> str:
    score = doc["score"]
    domains = ", ".join(f"{d} {p:.2f}" for d, p in sorted(score["domains"].items(), key=lambda kv: -kv[1]) if p >= 0.05)
    needs = [name for name in ("tools", "vision", "json") if score["needs"][name]]
    lines = [
        f"complexity  {score['complexity']:.2f} ({score['level']})",
        f"domain      {score['domain']}  [{domains}]",
        f"tokens      {score['tokens']} prompt, {score['needs']['context_tokens']} context needed",
        f"needs       {', '.join(needs) or 'text only'}",
        f"sensitive   {', '.join(score['sensitive']) or 'none found'}",
        f"scorer      {score['scorer']}",
    ]
    return "\n".join(lines)


def render_ranking(doc: dict[str, Any]) -> str:
    from tabulate import tabulate

    ranking = doc["ranking"]
    rows = [
        [
            index,
            c["model"],
            f"{c['score']:.3f}",
            f"{c['quality']:.2f}",
            "?" if c["cost_usd"] is None else f"${c['cost_usd']:.4f}",
            f"{c['latency_s']:.1f}s",
            "; ".join(c["reasons"][:2]),
        ]
        for index, c in enumerate(ranking["candidates"], start=1)
    ]
    score = doc.get("score", {})
    head = (
        f"mode {ranking['mode']}, complexity {score.get('complexity', 0):.2f} ({score.get('level', '?')}), "
        f"domain {score.get('domain', '?')}, quality needed {ranking['required_quality']:.2f}"
    )
    table = (
        tabulate(rows, headers=["#", "model", "score", "quality", "cost/call", "latency", "why"])
        if rows
        else "no candidate"
    )
    excluded = ", ".join(f"{reason}: {count}" for reason, count in ranking["excluded"].items())
    return "\n".join([head, table, f"excluded: {excluded or 'none'}"])
