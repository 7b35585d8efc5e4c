"""The self-contained HTML page of ``shakegen inspect --html``: no request leaves it.

The records, the script (``inspect_view.js``, shared with the served page) and the styles are
inlined, and a Content-Security-Policy forbids the page any fetch, image, font or frame.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

VIEW_SCRIPT = Path(__file__).parents[1] / "serve" / "static" / "inspect_view.js"  # shared with the served page
POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #111; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em; }}
.meta {{ color: #555; margin: 0 0 1em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; font-size: 14px; }}
td, th {{ padding: .15em .7em; border-bottom: 1px solid #ddd; text-align: left; }}
code {{ font-family: ui-monospace, Menlo, Consolas, monospace; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="meta">{meta}</p>
<div id="inspect"></div>
{findings}
<script type="application/json" id="sg-data">{data}</script>
<script>{script}</script>
<script>shakegenInspect(document.getElementById("inspect"), JSON.parse(document.getElementById("sg-data").textContent));</script>
</body>
</html>
"""


def view_script() -> str:
    return VIEW_SCRIPT.read_text(encoding="utf-8")


def page_data(inspection, units=(), findings=()) -> dict:
    """What the view script draws: the records, the units it may colour by and the findings naming them.

    Records are compact here, [char, bits, rank, [[guess, probability], ...], [value of each unit]],
    numbers rounded to what a person reads (a page of text stays a few hundred kilobytes).
    """
    units = list(units)

    def compact(record):
        top = None if record.top is None else [[char, round(p, 5)] for char, p in record.top]
        bits = None if record.bits is None else round(record.bits, 4)
        return [record.char, bits, record.rank, top, [round(record.units[name], 4) for name in units]]

    return {
        "records": [compact(record) for record in inspection.characters],
        "units": units,
        "findings": [finding.to_json() for finding in findings],
    }


def _json_for_script(value) -> str:
    # Inside <script>, "</" would end the element: escape every "<" (and the line separators JS once refused).
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render(inspection, *, title: str, meta: str, units=(), findings=(), hint: str = "") -> str:
    """The page as a string (write it with ``fileio``)."""
    rows = "".join(
        f"<tr><td>{html.escape(f.property)}</td><td><code>{html.escape(f.unit)}</code></td>"
        f"<td>{f.correlation:+.3f}</td></tr>"
        for f in findings
    )
    findings_html = (
        "<h2>Units that track simple properties</h2>"
        f"<p class='meta'>{html.escape(hint)}</p>"
        f"<table><tr><th>property</th><th>unit (layer:index)</th><th>correlation</th></tr>{rows}</table>"
        if findings
        else ""
    )
    return PAGE.format(
        policy=POLICY,
        title=html.escape(title),
        meta=html.escape(meta),
        findings=findings_html,
        data=_json_for_script(page_data(inspection, units, findings)),
        script=view_script(),
    )
