"""Helpers of the page walk: every full page of the URL map, axe-core, and the layout checks."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, url_for

AXE_SCRIPT = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
NOT_PAGES = ("static", "api.", "webhooks.", "rq_dashboard.")  # machine endpoints and rq-dashboard's own pages


def candidate_urls(app: Flask, ids: dict) -> tuple[list[str], list[str]]:
    """GET routes filled with the ids of one object of each kind; also the rules no id could fill."""
    urls, unfilled = [], []
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
            if "GET" not in rule.methods or rule.endpoint.startswith(NOT_PAGES):
                continue
            missing = [name for name in rule.arguments if name not in ids]
            if missing:
                unfilled.append(f"{rule.rule} (no {', '.join(missing)})")
                continue
            urls.append(url_for(rule.endpoint, **{name: ids[name] for name in rule.arguments}))
    return urls, unfilled


def full_pages(client, urls: list[str]) -> list[str]:
    """The URLs that answer a whole HTML page (not a fragment, a download or a redirect)."""
    pages = []
    for url in urls:
        response = client.get(url)
        if response.status_code == 200 and response.mimetype == "text/html" and '<main id="main">' in response.text:
            pages.append(url)
    return pages


AXE_RUN = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return result.violations.map(v => `${v.id} (${v.impact}): ${v.help} — ` +
    v.nodes.slice(0, 4).map(n => n.target.join(" ") + (n.failureSummary ? " [" + n.failureSummary.replace(/\\s+/g, " ") + "]" : "")).join(" | "));
}"""


def axe_violations(page) -> list[str]:
    """axe-core's WCAG 2.0/2.1 A and AA violations on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT.read_text(encoding="utf-8"))  # evaluated, not a <script> tag: the CSP refuses those
    return page.evaluate(AXE_RUN, AXE_TAGS)


def sideways_overflow(page) -> str | None:
    """None when the page does not scroll sideways; else by how much, and the elements that stick out."""
    return page.evaluate(
        """() => {
          const over = document.scrollingElement.scrollWidth - window.innerWidth;
          if (over <= 0) return null;
          const wide = [...document.querySelectorAll("body *")]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + "." + [...e.classList].join("."));
          return `${over}px (${wide.join(", ")})`;
        }"""
    )


def clipped(page, box_selector: str) -> dict | None:
    """None when the SVG inside `box_selector` is wholly visible in the box; else the sizes that disagree."""
    return page.evaluate(
        """(selector) => {
          const box = document.querySelector(selector);
          const svg = box && box.querySelector("svg");
          if (!svg) return {missing: selector};
          const outer = box.getBoundingClientRect(), inner = svg.getBoundingClientRect();
          const inside = inner.left >= outer.left - 1 && inner.right <= outer.right + 1
            && inner.top >= outer.top - 1 && inner.bottom <= outer.bottom + 1;
          const scrolls = box.scrollWidth > box.clientWidth + 1 || box.scrollHeight > box.clientHeight + 1;
          return inside && !scrolls ? null : {box: [outer.width, outer.height], svg: [inner.width, inner.height],
            scroll: [box.scrollWidth, box.clientWidth, box.scrollHeight, box.clientHeight]};
        }""",
        box_selector,
    )
