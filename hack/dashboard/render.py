"""Renders the Grafana dashboard JSON of the chart as a static page: every panel's PromQL targets queried over a
time range from a real Prometheus, drawn with uPlot (the chart library of Grafana's time series panel) at the
panel's place on Grafana's 24-column grid, then (optionally) screenshotted in headless Chromium.

This is not Grafana (which cannot be installed on this machine, see docs/observability.md): it is a rendering of
the dashboard's own queries, so a panel without data here is a panel without data in Grafana.

    python render.py --dashboard corral.json --prometheus URL --uplot DIR --out page.html
                     [--minutes 15] [--screenshot shot.png] [--require-data]

Prints one line per panel (series count, data or not); with --require-data exits 1 when a panel has none.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[dict]:
    """The matrix Prometheus returns for expr over [start, end]; raises on a query error."""
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{params}", timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"query failed: {expr}: {body.get('error')}")
    return body["data"]["result"]


def legend(fmt: str | None, labels: dict[str, str]) -> str:
    """Grafana's legend format: {{label}} replaced by the series' label value; the label set without one."""
    if fmt:
        return LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), fmt).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}" if shown else "value"


def number(value: str) -> float | None:
    x = float(value)
    return None if math.isnan(x) or math.isinf(x) else x


def panel_data(prometheus: str, panel: dict, times: list[float], start: float, end: float, step: float) -> dict:
    """The panel's series on the shared time grid (None where Prometheus has no point)."""
    index = {round(t, 3): i for i, t in enumerate(times)}
    series = []
    for target in panel.get("targets", []):
        expr = target["expr"]
        if "$" in expr:
            raise RuntimeError(f"panel {panel['title']!r}: template variables in queries are not supported: {expr}")
        for result in query_range(prometheus, expr, start, end, step):
            values: list[float | None] = [None] * len(times)
            for t, v in result["values"]:
                i = index.get(round(float(t), 3))
                if i is not None:
                    values[i] = number(v)
            series.append({"label": legend(target.get("legendFormat"), result["metric"]), "values": values})
    has_data = any(v is not None for s in series for v in s["values"])
    return {
        "title": panel["title"],
        "type": panel["type"],
        "grid": panel["gridPos"],
        "unit": panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short"),
        "series": series,
        "hasData": has_data,
        "queries": [t["expr"] for t in panel.get("targets", [])],
    }


def page(dashboard: dict, panels: list[dict], times: list[float], uplot: Path, source: str, prometheus: str) -> str:
    data = {"title": dashboard["title"], "times": times, "panels": panels}
    # Inline everything: the page is one file that opens anywhere, with no server and no network.
    script = (uplot / "dist" / "uPlot.iife.min.js").read_text()
    style = (uplot / "dist" / "uPlot.min.css").read_text()
    renderer = (Path(__file__).parent / "page.js").read_text()
    css = (Path(__file__).parent / "page.css").read_text()
    payload = json.dumps(data).replace("</", "<\\/")
    start, end = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in (times[0], times[-1]))
    note = (f"Every panel of {source}, its PromQL queried from a real Prometheus ({prometheus}) that scraped "
            "Corral's components on the local cluster during a demo run, drawn with uPlot: a rendering of the "
            "dashboard's queries, not Grafana itself.")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(dashboard['title'])}</title>
<style>{style}</style><style>{css}</style></head>
<body>
<header><h1>{html.escape(dashboard['title'])}</h1><span class="range">{start} to {end}</span>
<p class="note">{html.escape(note)}</p></header>
<main id="grid"></main>
<script>{script}</script>
<script>const DASHBOARD = {payload};</script>
<script>{renderer}</script>
</body></html>
"""


def screenshot(html_path: Path, png: Path, width: int) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={width},1000", "--force-device-scale-factor=1"]:
        options.add_argument(arg)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.get(html_path.resolve().as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.rendered === '1'"))
        # The whole page in one picture: a viewport as tall as the page (the layout does not depend on the height).
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        if not driver.save_screenshot(str(png)):
            raise RuntimeError(f"cannot save the screenshot to {png}")
    finally:
        driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dashboard", required=True, type=Path)
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--uplot", required=True, type=Path, help="the uplot npm package's directory")
    parser.add_argument("--out", required=True, type=Path, help="the HTML page to write")
    parser.add_argument("--minutes", type=float, default=15, help="time range: the last N minutes")
    parser.add_argument("--screenshot", type=Path, help="save a PNG of the page taken in headless Chromium")
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--require-data", action="store_true", help="exit 1 when a panel has no data")
    args = parser.parse_args()

    dashboard = json.loads(args.dashboard.read_text())
    end = float(int(time.time()))
    start = end - args.minutes * 60
    step = max(5.0, round(args.minutes * 60 / 240))
    times = [start + i * step for i in range(int((end - start) // step) + 1)]
    panels = []
    for panel in sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"])):
        if panel["type"] == "row":
            panels.append({"title": panel["title"], "type": "row", "grid": panel["gridPos"]})
            continue
        panels.append(panel_data(args.prometheus, panel, times, start, end, step))
    args.out.write_text(page(dashboard, panels, times, args.uplot, str(args.dashboard), args.prometheus))

    empty = []
    for p in panels:
        if p["type"] == "row":
            continue
        print(f"{'data   ' if p['hasData'] else 'NO DATA'}  {len(p['series']):2d} series  {p['title']}")
        if not p["hasData"]:
            empty.append(p["title"])
    if args.screenshot:
        screenshot(args.out, args.screenshot, args.width)
        print(f"screenshot: {args.screenshot}")
    if empty:
        print(f"{len(empty)} panel(s) without data: {', '.join(empty)}", file=sys.stderr)
        return 1 if args.require_data else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
