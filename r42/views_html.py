"""The dashboard as HTML: one self-contained page (inline CSS, inline SVG charts, no CDN, no build
step) rendered from the document r42.store.queries.panels() returns.

The gateway's /dashboard serves it live (with sign-out and a small polling script) and
`r42 stats --html` writes it as a standalone file. Every value from the store goes through
html.escape (a model id, a user name or an error text could hold markup); no key or session token
is ever part of the data.
"""

from __future__ import annotations

import html
import re
import time
from typing import Any

PERIOD_LABELS = {"1h": "last hour", "24h": "last day", "30d": "last 30 days"}
PALETTE = ("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4b5563")  # ≥ 4.5:1 on white
NUMERIC = re.compile(r"-?\+?-?\$?[\d,.]+|-$")  # a column of such cells is right-aligned
PANEL_IDS = ("overview", "time", "splits", "complexity", "latency", "errors", "keys", "feedback", "health")

CSS = """
:root{--fg:#111827;--muted:#4b5563;--line:#d1d5db;--bg:#fff;--card:#f9fafb;--accent:#1d4ed8;--bad:#b91c1c}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg);margin:0;padding:16px;max-width:1400px;margin:auto}h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:0 0 8px}h3{font-size:14px;margin:12px 0 4px}header{display:flex;flex-wrap:wrap;gap:12px;
align-items:center;justify-content:space-between;margin-bottom:12px}form.inline{display:flex;flex-wrap:wrap;gap:8px;
align-items:end}label{display:flex;flex-direction:column;font-size:12px;color:var(--muted)}
select,input,button{font:inherit;color:var(--fg);padding:4px 8px;border:1px solid #6b7280;border-radius:4px;
background:#fff}button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.plain{background:#fff;color:var(--fg);border-color:#6b7280}:focus-visible{outline:3px solid #f59e0b;
outline-offset:1px}.muted{color:var(--muted)}.bad{color:var(--bad)}section{background:var(--card);
border:1px solid var(--line);border-radius:6px;padding:12px;margin:0 0 12px}.cards{display:grid;
grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px}.card{background:#fff;border:1px solid var(--line);
border-radius:6px;padding:8px}.card b{display:block;font-size:20px}.grid{display:grid;
grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}
.wide{grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr))}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}th,td{padding:3px 8px;text-align:left;
border-bottom:1px solid var(--line);white-space:nowrap}.n{text-align:right}
th{font-weight:600;color:var(--muted)}svg{display:block;width:100%;height:auto}svg text{font-size:11px;fill:#374151}
details summary{cursor:pointer;color:var(--accent)}ol.chain{margin:4px 0;padding-left:20px}
ol.chain li{white-space:normal}.legend span{display:inline-block;margin-right:10px}.sw{display:inline-block;
width:10px;height:10px;margin-right:4px}
textarea{font:13px/1.4 ui-monospace,monospace;color:var(--fg);width:100%;padding:6px;border:1px solid #6b7280;
border-radius:4px}.ok{color:#047857}pre{white-space:pre-wrap}
"""

SCRIPT = """
(function(){var box=document.getElementById('live'),st=document.getElementById('live-status');
function tick(){if(!box||!box.checked)return;fetch(location.pathname.replace(/\\/?$/,'/data')+location.search,
{credentials:'same-origin',headers:{'Accept':'application/json'}})
.then(function(r){if(!r.ok)throw r.status;return r.json()})
.then(function(d){var open=[].map.call(document.querySelectorAll('details[open]'),function(e){return e.id});
Object.keys(d.panels).forEach(function(k){var el=document.getElementById(k);if(el)el.innerHTML=d.panels[k]});
open.forEach(function(i){var e=document.getElementById(i);if(e)e.open=true});st.textContent='updated '+d.generated})
.catch(function(e){st.textContent='refresh failed ('+e+')'})}
setInterval(tick,INTERVAL);})();
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(value: float | None) -> str:
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}" if abs(value) >= 100 else f"{sign}${abs(value):,.4f}"


def num(value: float | int | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


# ---- charts ------------------------------------------------------------------------------------


def bar_chart(
    label: str,
    points: list[tuple[str, float]],
    fmt: Any = num,
    color: str = PALETTE[0],
    overlay: list[float] | None = None,
) -> str:
    """A bar chart as inline SVG: one bar per point, an optional overlay (errors) drawn in red over
    each bar, each bar titled with its value (hover). role="img" with a label for screen readers."""
    width, height, left, bottom = 600, 160, 56, 20
    top_value = max([v for _, v in points] + [0]) or 1
    step = (width - left) / max(1, len(points))
    bar = max(1.0, step * 0.8)
    parts = [f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>']
    for fraction in (0, 0.5, 1):
        y = height - bottom - (height - bottom - 8) * fraction
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(fmt(top_value * fraction))}</text>'
        )
    scale = (height - bottom - 8) / top_value
    label_every = max(1, len(points) // 6)
    for index, (name, value) in enumerate(points):
        x = left + index * step + (step - bar) / 2
        h = value * scale
        parts.append(
            f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{esc(name)}: {esc(fmt(value))}</title></rect>"
        )
        if overlay and overlay[index]:
            oh = overlay[index] * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bottom - oh:.1f}" width="{bar:.1f}" height="{oh:.1f}" fill="#b91c1c">'
                f"<title>{esc(name)}: {esc(num(overlay[index]))} failed</title></rect>"
            )
        if index % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 5}" text-anchor="middle">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _bucket_label(start: float, bucket_s: int) -> str:
    return time.strftime("%m-%d" if bucket_s >= 86_400 else "%H:%M", time.gmtime(start))


def stacked_histogram(bins: list[dict[str, Any]], colors: dict[str, str]) -> str:
    """The complexity histogram: one bar per bin, stacked by the model that answered."""
    width, height, left, bottom = 600, 180, 56, 20
    top_value = max([b["requests"] for b in bins] + [0]) or 1
    step = (width - left) / len(bins)
    scale = (height - bottom - 8) / top_value
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Requests by complexity, stacked by model">'
        "<title>Requests by complexity, stacked by model</title>"
        f'<text x="{left - 4}" y="12" text-anchor="end">{num(top_value)}</text>'
    ]
    for index, item in enumerate(bins):
        x, y = left + index * step + step * 0.1, float(height - bottom)
        for model, count in item["models"].items():
            h = count * scale
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" height="{h:.1f}"'
                f' fill="{colors.get(model, PALETTE[-1])}">'
                f"<title>{item['low']:.1f}-{item['high']:.1f}: {esc(model)} {num(count)}</title></rect>"
            )
        parts.append(f'<text x="{x + step * 0.4:.1f}" y="{height - 5}" text-anchor="middle">{item["low"]:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def model_colors(bins: list[dict[str, Any]]) -> dict[str, str]:
    """The six models with the most requests get a colour each; the rest share grey."""
    totals: dict[str, int] = {}
    for item in bins:
        for model, count in item["models"].items():
            totals[model] = totals.get(model, 0) + count
    top = sorted(totals, key=lambda m: (-totals[m], m))[: len(PALETTE) - 1]
    return {model: PALETTE[index] for index, model in enumerate(top)}


# ---- panels ------------------------------------------------------------------------------------


def table(
    headers: list[str], rows: list[list[str]], caption: str | None = None, empty: str = "nothing in this period"
) -> str:
    """A table of already-escaped cells."""
    if not rows:
        return f'<p class="muted">{esc(empty)}</p>'
    numeric = [all(NUMERIC.match(row[i]) for row in rows if i < len(row)) for i in range(len(headers))]
    cls = [' class="n"' if n else "" for n in numeric]
    head = "".join(f'<th scope="col"{cls[i]}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{cls[i]}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    cap = f'<caption class="muted">{esc(caption)}</caption>' if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def overview(data: dict[str, Any]) -> str:
    t, ref = data["totals"], data["reference"]
    saved = f"{money(t['savings_usd'])} ({pct(t['savings_pct'])})" if ref else "-"
    versus = (
        f"against {esc(ref['model'])}: it would have cost {money(t['reference_cost_usd'])}"
        if ref
        else "no priced reference model"
    )
    cards = [
        ("Requests", num(t["requests"]), f"{num(t['errors'])} failed ({pct(100 * t['error_rate'])})"),
        (
            "Tokens",
            num(t["input_tokens"] + t["output_tokens"]),
            f"{num(t['input_tokens'])} in, {num(t['output_tokens'])} out",
        ),
        ("Cost", money(t["cost_usd"]), "what the answers cost"),
        ("Saved by routing", saved, versus),
        ("Latency p50 / p95", f"{num(t['latency_ms']['p50'])} / {num(t['latency_ms']['p95'])} ms", "answered requests"),
        ("First token p50 / p95", f"{num(t['ttft_ms']['p50'])} / {num(t['ttft_ms']['p95'])} ms", "streamed answers"),
    ]
    body = "".join(
        f'<div class="card"><span class="muted">{esc(a)}</span><b data-metric="{esc(a)}">{esc(b)}</b>'
        f'<span class="muted">{c}</span></div>'
        for a, b, c in cards
    )
    why = f'<p class="muted">Reference: {esc(ref["model"])}, {esc(ref["why"])}.</p>' if ref else ""
    return f'<h2>Overview</h2><div class="cards">{body}</div>{why}'


def over_time(data: dict[str, Any]) -> str:
    bucket = data["bucket_s"]
    series = data["series"]
    names = [_bucket_label(p["start"], bucket) for p in series]
    width = {300: "5 minutes", 3600: "hour", 86_400: "day"}.get(bucket, f"{bucket} s")
    charts = [
        (
            "Requests (failed in red)",
            bar_chart(
                "Requests per " + width,
                list(zip(names, [p["requests"] for p in series])),
                overlay=[p["errors"] for p in series],
            ),
        ),
        ("Tokens", bar_chart("Tokens per " + width, list(zip(names, [p["tokens"] for p in series])), color=PALETTE[2])),
        (
            "Cost (USD)",
            bar_chart(
                "Cost per " + width, list(zip(names, [p["cost_usd"] for p in series])), fmt=money, color=PALETTE[1]
            ),
        ),
    ]
    inner = "".join(f"<div><h3>{esc(title)}</h3>{svg}</div>" for title, svg in charts)
    return f'<h2>Over time <span class="muted">(per {esc(width)}, UTC)</span></h2><div class="grid">{inner}</div>'


def split_table(title: str, groups: dict[str, dict[str, Any]], with_latency: bool = False) -> str:
    total = sum(g["requests"] for g in groups.values()) or 1
    headers = [title, "requests", "share", "failed", "tokens", "cost", "saved"] + (
        ["p50 ms", "p95 ms"] if with_latency else []
    )
    rows = []
    for key, g in groups.items():
        row = [
            esc(key),
            num(g["requests"]),
            pct(100 * g["requests"] / total),
            num(g["errors"]),
            num(g["input_tokens"] + g["output_tokens"]),
            money(g["cost_usd"]),
            money(g["savings_usd"]),
        ]
        if with_latency:
            row += [num(g["latency_ms"]["p50"]), num(g["latency_ms"]["p95"])]
        rows.append(row)
    return f"<div><h3>By {esc(title)}</h3>{table(headers, rows)}</div>"


def splits(data: dict[str, Any]) -> str:
    parts = [
        split_table("model", data["by_model"], with_latency=True),
        split_table("provider", data["by_provider"]),
        split_table("mode", data["by_mode"]),
        split_table("domain", data["by_domain"]),
    ]
    if data.get("by_user") is not None:
        parts.append(split_table("user", data["by_user"]))
    return f'<h2>Splits</h2><div class="grid wide">{"".join(parts)}</div>'


def complexity_panel(data: dict[str, Any]) -> str:
    bins = data["complexity"]
    colors = model_colors(bins)
    legend = "".join(
        f'<span><i class="sw" aria-hidden="true">{_swatch(c)}</i>{esc(m)}</span>' for m, c in colors.items()
    )
    rows = []
    for item in bins:
        went = ", ".join(f"{esc(m)} {num(n)}" for m, n in list(item["models"].items())[:4])
        more = len(item["models"]) - 4
        rows.append(
            [
                f"{item['low']:.1f}–{item['high']:.1f}",
                num(item["requests"]),
                went + (f", +{more} more" if more > 0 else ""),
            ]
        )
    return (
        f'<h2>Complexity and where each level went</h2><div class="grid"><div>{stacked_histogram(bins, colors)}'
        f'<p class="legend">{legend}<span><i class="sw" aria-hidden="true">{_swatch(PALETTE[-1])}</i>'
        "other</span></p></div>"
        f"<div>{table(['complexity', 'requests', 'answered by (most first)'], rows)}</div></div>"
    )


def _swatch(color: str) -> str:
    return f'<svg width="10" height="10"><rect width="10" height="10" fill="{color}"/></svg>'


def latency_panel(data: dict[str, Any]) -> str:
    lat = data["latency"]
    rows = [
        [name, *(num(lat[key][p]) for p in ("p50", "p90", "p95", "p99"))]
        for name, key in (("latency (ms)", "latency_ms"), ("time to first token (ms)", "ttft_ms"))
    ]
    return f"<h2>Latency</h2>{table(['answered requests', 'p50', 'p90', 'p95', 'p99'], rows)}"


def errors_panel(data: dict[str, Any], filters: dict[str, str | None], form: bool) -> str:
    failed = data["failures"]
    controls = ""
    if form:
        controls = (
            '<form class="inline" method="get" action="/dashboard" aria-label="Filter failed requests">'
            f'<input type="hidden" name="period" value="{esc(data.get("period") or "24h")}">'
            + _select("provider", "Provider", failed["providers"], filters.get("provider"))
            + _select("kind", "Error kind", failed["kinds"], filters.get("kind"))
            + '<button type="submit">Filter</button></form>'
        )
    items = []
    for row in failed["rows"]:
        chain = (
            "".join(_attempt(index, a) for index, a in enumerate(row["attempts"], 1)) or "<li>no attempt was made</li>"
        )
        items.append(
            f'<tr><td><details id="fail-{row["id"]}" data-request-id="{esc(row["request_id"])}">'
            f"<summary>{esc(row['time'])}</summary>"
            f'<ol class="chain">{chain}</ol></details></td><td>{esc(row["user"] or "-")}</td>'
            f"<td>{esc(row['endpoint'])}</td>"
            f"<td>{esc(row['error'] or row['status'])}</td><td>{len(row['attempts'])}</td>"
            f"<td>{esc(row['request_id'])}</td></tr>"
        )
    shown = f"{num(len(failed['rows']))} most recent of {num(failed['matched'])} failed requests"
    body = table(
        ["time (UTC): open for attempts", "user", "endpoint", "error", "attempts", "request id"],
        [],
        empty="no failed requests",
    )
    if items:
        body = (
            '<div class="scroll"><table><thead><tr>'
            + "".join(
                f'<th scope="col">{h}</th>'
                for h in ("time (UTC): open for attempts", "user", "endpoint", "error", "attempts", "request id")
            )
            + f"</tr></thead><tbody>{''.join(items)}</tbody></table></div>"
        )
    return f'<h2>Error review</h2>{controls}<p class="muted" data-matched="{failed["matched"]}">{shown}</p>{body}'


def _attempt(index: int, a: dict[str, Any]) -> str:
    if a["ok"]:
        return (
            f'<li class="attempt" data-ok="1">{esc(a["model"])}: answered'
            f" (HTTP {esc(a['status'])}, {num(a['ms'])} ms)</li>"
        )
    then = f"; fell back to {esc(a['fallback'])}" if a["fallback"] else "; no fallback left"
    return (
        f'<li class="attempt" data-ok="0"><span class="bad">{esc(a["model"])}: {esc(a["kind"])}</span>'
        f" (status {esc(a['status'] if a['status'] is not None else 'none')}, {num(a['ms'])} ms)"
        f" {esc(a['error'] or '')}{then}</li>"
    )


def _select(name: str, label: str, choices: list[str], chosen: str | None) -> str:
    options = [f'<option value=""{"" if chosen else " selected"}>all</option>']
    for choice in choices:
        selected = " selected" if choice == chosen else ""
        options.append(f'<option value="{esc(choice)}"{selected}>{esc(choice)}</option>')
    return f'<label for="f-{name}">{esc(label)}<select id="f-{name}" name="{name}">{"".join(options)}</select></label>'


def _use(used: float, limit: float | None, fmt: Any = num) -> str:
    if limit is None:
        return f'{fmt(used)} <span class="muted">(no limit)</span>'
    share = 100 * used / limit if limit else 100.0
    cls = ' class="bad"' if share >= 90 else ""
    return f"<span{cls}>{fmt(used)} of {fmt(limit)} ({share:.0f}%)</span>"


def keys_panel(data: dict[str, Any]) -> str:
    rows = [
        [
            esc(k["prefix"]) + "…",
            esc(k["user"]) + (" (admin)" if k["admin"] else ""),
            _use(k["requests_minute"], k["rpm"]),
            _use(k["requests_day"], k["rpd"]),
            _use(k["cost_month_usd"], k["budget_usd"], money),
            esc(k["last_used"] or "never"),
        ]
        for k in data["keys"]
    ]
    headers = ["key", "user", "requests this minute", "requests today (24 h)", "spend this month", "last used (UTC)"]
    return f"<h2>Rate limits and budgets per key</h2>{table(headers, rows, empty='no active keys')}"


def feedback_panel(data: dict[str, Any]) -> str:
    rows = [[esc(f["model"]), num(f["good"]), num(f["bad"]), esc(f["last"])] for f in data["feedback"]]
    note = (
        '<p class="muted">Verdicts sent with <code>r42 feedback</code> or POST /v1/feedback; rank learns from them.</p>'
    )
    rows_html = table(["model", "good", "bad", "latest (UTC)"], rows, empty="no feedback in this period")
    learning = learning_table(data["learning"]) if "learning" in data else ""
    return f"<h2>Feedback and learning</h2>{note}{rows_html}{learning}"


def learning_table(changes: list[dict[str, Any]] | None) -> str:
    """What rank learned: each adjustment of a model's score in a domain, with its evidence."""
    if changes is None:
        return '<h3>What learning changed</h3><p class="muted">Being worked out; it shows with the next refresh.</p>'
    rows = [
        [
            esc(c["user"] or "(CLI)"),
            esc(c["model"]),
            esc(c["domain"] or "-"),
            f"{c['value']:+.3f}",
            num(c["good"]),
            num(c["bad"]),
            num(c["failures"]),
            num(c["slow"]),
        ]
        for c in changes
    ]
    headers = ["user", "model", "domain", "rank adjustment", "good", "bad", "failed attempts", "slow"]
    intro = "<h3>What learning changed</h3>"
    return intro + table(headers, rows, empty="rank has learned nothing yet (no feedback, failures or slow answers)")


STATE_WORDS = {"closed": "healthy (closed)", "half_open": "probing (half-open)", "open": "unhealthy (open)"}


def health_panel(data: dict[str, Any]) -> str:
    """Each provider's and model's circuit: state, failures in the window, error kinds, latency."""
    health = data.get("health")
    intro = "<h2>Provider and model health</h2>"
    if health is None:
        return intro + '<p class="muted">Not tracked here (the health setting is off).</p>'
    rows = []
    for key, s in health.items():
        kind, _, ident = key.partition(":")
        state = STATE_WORDS.get(s["state"], s["state"])
        state_html = f'<span class="bad">{esc(state)}</span>' if s["state"] != "closed" else esc(state)
        errors = ", ".join(f"{k} {n}" for k, n in sorted(s["errors"].items())) or "-"
        rows.append(
            [
                esc(kind),
                esc(ident),
                state_html,
                f"{s['failures']} / {s['attempts']}",
                esc(errors),
                num(s["latency_ms_p50"]),
                num(s["ttft_ms_p50"]),
                esc(s.get("reason") or ""),
            ]
        )
    headers = ["kind", "name", "circuit", "failed / attempts", "errors", "p50 ms", "TTFT p50 ms", "reason"]
    note = '<p class="muted">The last attempts of each provider and model (r42 serve and r42 ask share them).</p>'
    rows_html = table(headers, rows, empty="no attempts in the window yet")
    return f'{intro}{note}<div class="scroll">{rows_html}</div>'


def privacy_panel(privacy: dict[str, Any], csrf: str) -> str:
    """The signed-in user's privacy-judge template in a form (a plain POST: works without script).

    `privacy`: template, source ("yours"/"default"), default, max_chars, and optionally message and
    error (a note after saving, or why the template was refused, with the refused text as template)."""
    source = "your own" if privacy["source"] == "yours" else "the default"
    state = "on" if privacy.get("enabled") else "off (the operator turns it on with privacy_judge)"
    note = ""
    if privacy.get("message"):
        cls, role = ("bad", "alert") if privacy.get("error") else ("ok", "status")
        note = f'<p class="{cls}" role="{role}" id="privacy-message">{esc(privacy["message"])}</p>'
    return (
        "<h2>Privacy judge</h2>"
        '<p class="muted">When the gateway\'s privacy judge is on, a local model reads each prompt with privacy '
        "cues using this template and says YES (keep it on local models) or NO. "
        f"<code>{{prompt}}</code> marks where the prompt goes (exactly once). You are using {source} template. "
        f"On this gateway the judge is {esc(state)}.</p>"
        f"{note}"
        '<form method="post" action="/dashboard/privacy-prompt">'
        f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
        '<p><label for="privacy-template">Your privacy-judge template'
        f'<textarea id="privacy-template" name="template" rows="9" maxlength="{int(privacy["max_chars"])}">'
        f"{esc(privacy['template'])}</textarea></label></p>"
        '<p><button type="submit" name="action" value="save">Save</button> '
        '<button class="plain" type="submit" name="action" value="reset">Reset to default</button></p></form>'
        f"<details><summary>The default template</summary><pre>{esc(privacy['default'])}</pre></details>"
    )


def render_panels(
    data: dict[str, Any], filters: dict[str, str | None] | None = None, form: bool = True
) -> dict[str, str]:
    """Each panel's inner HTML by its section id (the live script swaps them in place)."""
    filters = filters or {}
    return {
        "overview": overview(data),
        "time": over_time(data),
        "splits": splits(data),
        "complexity": complexity_panel(data),
        "latency": latency_panel(data),
        "errors": errors_panel(data, filters, form),
        "keys": keys_panel(data),
        "feedback": feedback_panel(data),
        "health": health_panel(data),
    }


def render_page(
    data: dict[str, Any],
    *,
    title: str,
    subtitle: str,
    filters: dict[str, str | None] | None = None,
    live: bool = False,
    csrf: str | None = None,
    nonce: str | None = None,
    refresh_s: int = 15,
    privacy: dict[str, Any] | None = None,
) -> str:
    """The whole page. live: the period form, sign-out (with its CSRF token) and the polling
    script (with the CSP nonce); otherwise a standalone report. privacy: the signed-in user's
    privacy-judge form (privacy_panel), after the panels; the live refresh leaves it alone."""
    panels = render_panels(data, filters, form=live)
    style = f'<style nonce="{esc(nonce)}">' if nonce else "<style>"
    head = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title>{style}{CSS}</style></head><body>"
    )
    controls = ""
    if live:
        options = "".join(
            f'<option value="{p}"{" selected" if p == data.get("period") else ""}>{esc(label)}</option>'
            for p, label in PERIOD_LABELS.items()
        )
        controls = (
            '<form class="inline" method="get" action="/dashboard" aria-label="Period">'
            f'<label for="period">Period<select id="period" name="period">{options}</select></label>'
            '<button type="submit">Show</button>'
            '<label for="live">Live refresh<input type="checkbox" id="live" checked></label>'
            '<span id="live-status" class="muted" role="status"></span></form>'
            '<form method="post" action="/dashboard/logout">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
            '<button class="plain" type="submit">Sign out</button></form>'
        )
    header = f'<header><div><h1>{esc(title)}</h1><p class="muted">{esc(subtitle)}</p></div>{controls}</header>'
    sections = "".join(
        f'<section id="{pid}" aria-labelledby="{pid}-h">{_label_heading(pid, panels[pid])}</section>'
        for pid in PANEL_IDS
    )
    if live and privacy is not None:
        sections += (
            '<section id="privacy" aria-labelledby="privacy-h">'
            f"{_label_heading('privacy', privacy_panel(privacy, csrf or ''))}</section>"
        )
    script = ""
    if live and nonce:
        script = f'<script nonce="{esc(nonce)}">{SCRIPT.replace("INTERVAL", str(refresh_s * 1000))}</script>'
    return f"{head}{header}<main>{sections}</main>{script}</body></html>"


def _label_heading(pid: str, inner: str) -> str:
    """Give the panel's first <h2> the id its section is labelled by."""
    return inner.replace("<h2>", f'<h2 id="{pid}-h">', 1)


def login_page(message: str | None = None, nonce: str | None = None) -> str:
    style = f'<style nonce="{esc(nonce)}">' if nonce else "<style>"
    note = f'<p class="bad" role="alert">{esc(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>r42 dashboard: sign in</title>{style}{CSS}</style></head><body><main><section>"
        f"<h1>r42 dashboard</h1>{note}"
        '<form method="post" action="/dashboard/login"><p><label for="key">Gateway key (r42_…)'
        '<input id="key" name="key" type="password" autocomplete="current-password" required size="50"></label></p>'
        '<p><button type="submit">Sign in</button></p></form>'
        '<p class="muted">Create a key with <code>r42 keys create USER</code>. '
        "An admin key sees every user; other keys see their own requests.</p></section></main></body></html>"
    )
