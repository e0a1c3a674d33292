"""The HTML contact sheet: one self-contained page of thumbnails grouped by label. No torch here.

Every piece of text that reaches the page (file names, labels, errors, the title) goes through
``printable`` (bytes that are not UTF-8 become \\xNN) and then ``html.escape``; what the page's
script needs travels as JSON in a ``<script type="application/json">`` block with ``<``, ``>``,
``&`` and the JavaScript line separators escaped, so no name can close the block. A content
security policy lets the page load nothing but its own inline script (by hash) and data: images.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..atomic import replaced_atomically
from ..errors import OutputWriteError, UsageError
from ..inputs.sources import is_url
from ..results import (
    BY_CATEGORY,
    BY_LABEL,
    REVIEW_MARGIN,
    REVIEW_SCORE,
    Record,
    needs_review,
    top1_match,
    top1_right,
)
from ..text import printable
from .files import read_results_meta, recorded_path
from .writers import common_folder, read_results_file

THUMBNAIL_EDGE = 160  # longest side, in pixels
THUMBNAIL_QUALITY = 70  # JPEG quality: about 5 kB for a 160-pixel photo
# A thumbnail is made by decoding the file; past this many pixels (after JPEG DCT scaling) the
# decode would cost too much memory for a preview, so the card shows none.
THUMBNAIL_MAX_PIXELS = 100_000_000
_MIME_BY_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
)

Thumbnailer = Callable[[Record], bytes | None]


@dataclass(frozen=True)
class ReportSummary:
    """What the report says about the run besides its records (None: not known, not shown)."""

    title: str = "resnet-classify report"
    model: str | None = None
    device: str | None = None
    precision: str | None = None
    elapsed: float | None = None  # the run's wall time, the model's load included
    interrupted: bool = False
    sources: tuple[str, ...] = ()  # the results files a report was made from
    generated: datetime = field(default_factory=lambda: datetime.now().astimezone())


def thumbnail_jpeg(image_file: str | bytes, edge: int = THUMBNAIL_EDGE) -> bytes | None:
    """A small upright JPEG of an image file, or of encoded image bytes (longest side
    ``edge``), or None if it cannot be made."""
    from PIL import Image, JpegImagePlugin

    from ..inputs.decode import to_rgb, upright
    from ..inputs.photo_formats import open_image

    try:
        if isinstance(image_file, bytes):
            data, name = image_file, None
        else:
            with open(image_file, "rb") as handle:
                data, name = handle.read(), image_file
        with open_image(data, name) as opened:
            image: Image.Image = opened
            if isinstance(image, JpegImagePlugin.JpegImageFile):
                image.draft("RGB", (edge, edge))  # libjpeg scales by 1/2..1/8 while decoding
            width, height = image.size
            if width * height > THUMBNAIL_MAX_PIXELS:
                return None
            image = to_rgb(upright(image))
            image.thumbnail((edge, edge))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=THUMBNAIL_QUALITY)
            return out.getvalue()
    except Exception:
        return None  # a preview is a nicety: any failure leaves the card without one


def local_thumbnail(record: Record, folders: Sequence[str] = ("",)) -> bytes | None:
    """The thumbnail of a record whose input is a local image file (looked up in ``folders``,
    relative names against each in turn); None for URLs, dataset rows and missing files."""
    if is_url(record.input):
        return None
    for folder in folders:
        path = recorded_path(record.input, folder or os.curdir)
        if os.path.isfile(path):
            return thumbnail_jpeg(path)
    return None


def make_thumbnails(records: Sequence[Record], thumbnail: Thumbnailer | None) -> list[str | None]:
    """Data URIs of the classified records' thumbnails, made in parallel (None: no preview)."""
    if thumbnail is None:
        return [None] * len(records)

    def one(record: Record) -> str | None:
        if not record.ok:
            return None
        try:
            data = thumbnail(record)
        except Exception:
            return None  # a caller's thumbnailer failing must not cost the user the report
        return data_uri(data) if data else None

    # Pillow releases the GIL while it decodes and resizes, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, records))


def data_uri(data: bytes) -> str | None:
    """``data`` as a data: URI, if it is a JPEG, PNG, GIF or WebP image (else None)."""
    mime = next((m for magic, m in _MIME_BY_MAGIC if data.startswith(magic)), None)
    if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        mime = "image/webp"
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def write_report(
    records: Iterable[Record],
    path: str | os.PathLike[str],
    *,
    summary: ReportSummary | None = None,
    thumbnail: Thumbnailer | None = local_thumbnail,
) -> int:
    """Write the HTML report of ``records`` to ``path`` (replaced atomically); return its size.

    ``thumbnail`` gives the encoded image to show for a classified record, or None for none;
    the default previews local image files. Pass ``thumbnail=None`` for a report without images.
    """
    records = list(records)
    page = render_report(records, summary or ReportSummary(), make_thumbnails(records, thumbnail))
    # Everything on the page is printable() text already; backslashreplace is the last guard.
    with (
        replaced_atomically(path) as temporary,
        open(temporary, "w", encoding="utf-8", errors="backslashreplace") as handle,
    ):
        handle.write(page)
    return Path(path).stat().st_size


def _text(value: object) -> str:
    """Any text made safe for HTML: undecodable bytes as \\xNN, control characters escaped."""
    return html.escape(printable(str(value)), quote=True)


def _breakable(name: str) -> str:
    """A file name for a narrow card: safe for HTML, with a line-break opportunity after each
    ``/``, ``_``, ``-`` and ``.``, so that it wraps there rather than mid-word."""
    return re.sub(r"([/_.-])", r"\1<wbr>", _text(name))


def script_json(data: object) -> str:
    """JSON that can sit inside a <script> element: nothing in it can close the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char in "&<>\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _score(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def render_report(
    records: Sequence[Record], summary: ReportSummary, thumbnails: Sequence[str | None]
) -> str:
    """The report page as one HTML string (``thumbnails``: a data URI or None per record)."""
    folder = common_folder([r.input for r in records])
    labels = _label_counts(records)
    headings = _group_headings(records)
    group_of = {label: index for index, (label, _) in enumerate(labels)}
    items = []
    for record in records:
        scores = [_score(p.score) for p in record.predictions]
        items.append(
            {
                "n": printable(record.input),
                "g": group_of[record.predictions[0].label] if record.predictions else -1,
                "f": not record.ok,
                "s": scores,
                "l": [printable(p.label) for p in record.predictions],
            }
        )
    cards = [
        _card(index, record, folder, thumbnails[index]) for index, record in enumerate(records)
    ]
    # The page as it is before its script runs (and without script): default thresholds,
    # lowest scores first. The script rebuilds the same layout and then follows the controls.
    top = [_score(r.predictions[0].score) if r.predictions else 0.0 for r in records]
    order = sorted(range(len(records)), key=lambda i: (top[i], printable(records[i].input)))
    review = [cards[i] for i in order if needs_review(records[i])]
    failed = [cards[i] for i in order if not records[i].ok]
    by_group: list[list[str]] = [[] for _ in labels]
    for i in order:
        if records[i].ok and not needs_review(records[i]):
            by_group[group_of[records[i].predictions[0].label]].append(cards[i])
    sections = [
        _section("g-review", "Needs review", review, "review"),
        *(
            _section(f"g{g}", headings[label], by_group[g], "label")
            for g, (label, _) in enumerate(labels)
        ),
        _section("g-failed", "Failed", failed, "failed"),
    ]
    data = {
        "items": items,
        "labels": [printable(label) for label, _ in labels],
        "review": [REVIEW_SCORE, REVIEW_MARGIN],
    }
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    return _PAGE.format(
        title=_text(summary.title),
        csp=f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'",
        style=_STYLE,
        summary=_summary_list(records, summary, len(labels), folder),
        controls=_controls([(headings[label], count) for label, count in labels], len(records)),
        sections="\n".join(sections),
        data=script_json(data),
        script=_SCRIPT,
    )


def _label_counts(records: Sequence[Record]) -> list[tuple[str, int]]:
    """Top-1 labels with how many images have each, most common first; with categories,
    grouped by category first (the most common category first), then by label."""
    counts = Counter(r.predictions[0].label for r in records if r.ok and r.predictions)
    category_of = _top_categories(records)
    in_category: Counter[str] = Counter()
    for label, count in counts.items():
        in_category[category_of.get(label) or ""] += count

    def order(item: tuple[str, int]) -> tuple[int, str, int, str]:
        category = category_of.get(item[0]) or ""
        return (-in_category[category], category, -item[1], item[0])

    return sorted(counts.items(), key=order)


def _top_categories(records: Sequence[Record]) -> dict[str, str | None]:
    """Each top-1 label's category (None where the model's labels have none)."""
    return {r.predictions[0].label: r.predictions[0].category for r in records if r.predictions}


def _group_headings(records: Sequence[Record]) -> dict[str, str]:
    """Each top-1 label's section heading: 'category: label', or the label alone."""
    return {
        label: f"{category}: {label}" if category else label
        for label, category in _top_categories(records).items()
    }


def _summary_list(
    records: Sequence[Record], summary: ReportSummary, labels: int, folder: str
) -> str:
    failed = sum(not r.ok for r in records)
    rows: list[tuple[str, str]] = [
        ("images", f"{len(records)}" + (" (interrupted)" if summary.interrupted else "")),
        ("failed", str(failed)),
        ("labels found", str(labels)),
        ("needs review", str(sum(needs_review(r) for r in records))),
    ]
    judged = [r for r in records if top1_right(r) is not None]
    if judged:  # an imagefolder's images: their class folders say what is right
        rules = Counter(top1_match(r) for r in judged)
        correct = len(judged) - rules[None]
        share = f"{100 * correct / len(judged):.1f}%"
        how = ", ".join(f"{rules[r]} by {r}" for r in (BY_LABEL, BY_CATEGORY) if rules[r])
        accuracy = f"{share} ({correct} of {len(judged)} right{how and ': ' + how})"
        rows.append(("top-1 accuracy", accuracy))
    if folder:
        rows.append(("folder", folder))
    optional = (
        ("model", summary.model),
        ("device", summary.device),
        ("precision", summary.precision),
        ("time taken", None if summary.elapsed is None else _duration(summary.elapsed, records)),
    )
    rows += [(name, value) for name, value in optional if value is not None]
    if summary.sources:
        rows.append(("from", ", ".join(summary.sources)))
    rows.append(("generated", summary.generated.strftime("%Y-%m-%d %H:%M:%S %Z").strip()))
    return "\n".join(
        f'<div><dt>{_text(name)}</dt><dd id="sum-{"-".join(name.split())}">{_text(value)}</dd>'
        "</div>"
        for name, value in rows
    )


def _duration(elapsed: float, records: Sequence[Record]) -> str:
    rate = f" ({len(records) / elapsed:.1f} images/s)" if elapsed > 0 else ""
    return f"{elapsed:.1f} s{rate}"


def _controls(labels: list[tuple[str, int]], total: int) -> str:
    options = "".join(
        f'<option value="{g}">{_text(label)} ({count})</option>'
        for g, (label, count) in enumerate(labels)
    )
    return _CONTROLS.format(
        total=total,
        options=options,
        score=REVIEW_SCORE,
        margin=REVIEW_MARGIN,
    )


def _section(section_id: str, heading: str, cards: list[str], kind: str) -> str:
    hidden = "" if cards else " hidden"
    return (
        f'<section class="group {kind}" id="{section_id}"{hidden}>'
        f'<h2>{_text(heading)} <span class="count">{len(cards)}</span></h2>'
        f'<div class="cards">{"".join(cards)}</div></section>'
    )


def _card(index: int, record: Record, folder: str, thumbnail: str | None) -> str:
    name = record.input[len(folder) + 1 :] if folder else record.input
    if thumbnail:
        picture = f'<img src="{thumbnail}" alt="">'
    else:
        picture = f'<div class="noimg">{"failed" if not record.ok else "no preview"}</div>'
    if record.error is not None:
        body = f'<p class="error">{_text(record.error)}</p>'
    else:
        rows = []
        for p in record.predictions:
            score = _score(p.score)
            width = f"{max(0.0, min(1.0, score)) * 100:.1f}%"
            top = ' class="top"' if p.rank == 1 else ""
            rows.append(
                f'<li{top}><span class="lbl">{_text(p.label)}'
                f'</span><span class="sc">{score:.4f}</span>'
                f'<span class="bar"><span style="width:{width}"></span></span></li>'
            )
        body = f'<ol class="preds">{"".join(rows)}</ol>'
    right = top1_right(record)
    verdict = {None: "", True: " right", False: " wrong"}[right]
    truth = ""
    if record.true_label is not None:
        mark = {None: "", True: "✓ ", False: "✗ "}[right]
        # Right by which rule: the label's own name, or its category.
        said = {None: "", True: f" (right, by {top1_match(record)})", False: " (wrong)"}[right]
        truth = (
            f'<div class="truth{verdict}">{mark}true label: {_text(record.true_label)}{said}</div>'
        )
    failed = " failed" if not record.ok else ""
    return (
        f'<figure class="card{failed}{verdict}" id="c{index}">{picture}<figcaption>'
        f'<div class="name" title="{_text(record.input)}">{_breakable(name)}</div>{truth}{body}'
        "</figcaption></figure>"
    )


_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<dl class="summary">
{summary}
</dl>
</header>
{controls}
<main>
{sections}
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""

_CONTROLS = """\
<div class="controls" id="controls" hidden>
<label>Label <select id="label"><option value="">all labels</option>{options}</select></label>
<label>Find <input id="search" type="search" placeholder="file name or label"></label>
<label>Show <select id="show">
<option value="all">everything</option><option value="review">needs review</option>
<option value="confident">confident only</option><option value="failed">failed only</option>
</select></label>
<label>Top-1 score from <input id="min-score" type="number" min="0" max="1" step="0.01" value="0">
to <input id="max-score" type="number" min="0" max="1" step="0.01" value="1"></label>
<label>Sort <select id="sort">
<option value="score-asc">score, lowest first</option>
<option value="score-desc">score, highest first</option>
<option value="name">file name</option>
</select></label>
<fieldset><legend>Needs review when</legend>
<label>top-1 score &lt;
<input id="review-score-range" type="range" min="0" max="1" step="0.01" value="{score}">
<input id="review-score" type="number" min="0" max="1" step="0.01" value="{score}"></label>
<label>or its lead over the second &lt;
<input id="review-margin-range" type="range" min="0" max="1" step="0.01" value="{margin}">
<input id="review-margin" type="number" min="0" max="1" step="0.01" value="{margin}"></label>
</fieldset>
<output id="shown">{total} of {total} shown</output>
</div>"""

_STYLE = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #fafafa; --card: #fff; --line: #d8d8dc;
  --muted: #6e6e73; --bar: #3a7bd5; --top: #0a7d32; --doubt: #c77700; --bad: #c62828; }
@media (prefers-color-scheme: dark) { :root { --fg: #e8e8ea; --bg: #18181a; --card: #232326;
  --line: #3a3a3e; --muted: #a0a0a6; --bar: #5b9cf0; --top: #4cc47a; --doubt: #f0a030;
  --bad: #ef5350; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem 1.5rem 3rem; font: 14px/1.4 system-ui, sans-serif;
  color: var(--fg); background: var(--bg); }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; overflow-wrap: anywhere; }
h2 .count { color: var(--muted); font-weight: normal; }
.review h2 { color: var(--doubt); } .failed h2 { color: var(--bad); }
.summary { display: flex; flex-wrap: wrap; gap: .25rem 1.5rem; margin: 0; }
.summary div { display: flex; gap: .4rem; } .summary dt { color: var(--muted); }
.summary dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.controls { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap;
  gap: .5rem 1rem; align-items: center; padding: .6rem 0; margin-top: .8rem;
  background: var(--bg); border-bottom: 1px solid var(--line); }
.controls fieldset { display: flex; flex-wrap: wrap; gap: .2rem 1rem; margin: 0;
  border: 1px solid var(--line); border-radius: 6px; padding: .2rem .6rem .4rem; }
.controls input[type=number] { width: 4.5em; } .controls input[type=range] { width: 7em; }
.controls output { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr));
  gap: .75rem; }
.card { margin: 0; padding: .5rem; background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; }
.card.doubt { border-color: var(--doubt); } .card.failed { border-color: var(--bad); }
.card img, .noimg { display: block; width: 100%; height: 160px; object-fit: contain; }
.noimg { display: flex; align-items: center; justify-content: center; color: var(--muted);
  background: repeating-linear-gradient(45deg, transparent 0 8px, var(--line) 8px 9px); }
.card.failed .noimg { color: var(--bad); }
.name { margin: .35rem 0 .2rem; font-weight: 600; overflow-wrap: anywhere; }
.preds { list-style: none; margin: 0; padding: 0; font-size: 12px; }
.preds li { display: grid; grid-template-columns: 1fr auto; column-gap: .4rem; }
.preds li.top { font-weight: 700; color: var(--top); }
.lbl { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.sc { font-variant-numeric: tabular-nums; }
.bar { grid-column: 1 / -1; height: 4px; margin-bottom: 3px; background: var(--line);
  border-radius: 2px; }
.bar span { display: block; height: 100%; background: var(--bar); border-radius: 2px; }
.preds li.top .bar span { background: var(--top); }
.card.doubt .preds li.top { color: var(--doubt); }
.card.doubt .preds li.top .bar span { background: var(--doubt); }
.error { margin: 0; color: var(--bad); overflow-wrap: anywhere; font-size: 12px; }
.truth { margin: 0 0 .2rem; font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
.truth.right { color: var(--top); } .truth.wrong { color: var(--bad); font-weight: 600; }
[hidden] { display: none !important; }
"""

# Kept short on purpose: it reads the JSON block, decides each card's group (the review rule
# below is results.needs_review's, with the page's thresholds), and moves, hides and sorts cards.
_SCRIPT = """
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const data = JSON.parse($("report-data").textContent);
  const items = data.items.map((item, i) => ({
    ...item, card: $("c" + i), score: item.s.length ? item.s[0] : 0,
    margin: item.s.length > 1 ? item.s[0] - item.s[1] : null,
    text: [item.n, ...item.l].join("\\n").toLowerCase(),
  }));
  const review = $("g-review"), failed = $("g-failed");
  const groups = data.labels.map((_, g) => $("g" + g));
  const boxes = new Map([review, ...groups, failed].map((s) => [s, s.querySelector(".cards")]));
  const number = (id, fallback) => {
    const value = parseFloat($(id).value);
    return Number.isFinite(value) ? value : fallback;
  };
  const orders = {
    "score-asc": (a, b) => a.score - b.score || a.n.localeCompare(b.n),
    "score-desc": (a, b) => b.score - a.score || a.n.localeCompare(b.n),
    "name": (a, b) => a.n.localeCompare(b.n),
  };
  function update() {
    const minScore = number("review-score", data.review[0]);
    const minMargin = number("review-margin", data.review[1]);
    const label = $("label").value, show = $("show").value;
    const query = $("search").value.trim().toLowerCase();
    const low = number("min-score", 0), high = number("max-score", 1);
    const counts = new Map();
    let shown = 0;
    const sorted = [...items].sort(orders[$("sort").value] || orders["score-asc"]);
    sorted.forEach((item, rank) => {
      const doubt = !item.f && (item.g < 0 || item.score < minScore ||
        (item.margin !== null && item.margin < minMargin));
      const section = item.f ? failed : doubt ? review : groups[item.g];
      let visible = !query || item.text.includes(query);
      if (item.f) {
        visible = visible && label === "" && (show === "all" || show === "failed");
      } else {
        visible = visible && (label === "" || String(item.g) === label) &&
          item.score >= low && item.score <= high &&
          (show === "all" || (show === "review" && doubt) || (show === "confident" && !doubt));
      }
      // Touch the DOM only where something changed: with 2,000 cards, moving every one on
      // each slider step is slow. CSS order sorts the cards without moving them.
      const box = boxes.get(section);
      if (item.card.parentNode !== box) box.appendChild(item.card);
      if (item.rank !== rank) item.card.style.order = item.rank = rank;
      if (item.card.hidden === visible) item.card.hidden = !visible;
      if (item.doubt !== doubt) item.card.classList.toggle("doubt", item.doubt = doubt);
      const count = counts.get(section) || [0, 0];
      count[0] += visible ? 1 : 0;
      count[1] += 1;
      counts.set(section, count);
      shown += visible ? 1 : 0;
    });
    for (const section of [review, ...groups, failed]) {
      const [visible, total] = counts.get(section) || [0, 0];
      section.hidden = visible === 0;
      section.querySelector(".count").textContent =
        visible === total ? String(total) : visible + " of " + total;
    }
    $("shown").textContent = shown + " of " + items.length + " shown";
    $("sum-needs-review").textContent = String((counts.get(review) || [0, 0])[1]);
  }
  for (const [range, box] of [["review-score-range", "review-score"],
                              ["review-margin-range", "review-margin"]]) {
    $(range).addEventListener("input", () => { $(box).value = $(range).value; update(); });
    $(box).addEventListener("input", () => { $(range).value = $(box).value; update(); });
  }
  for (const id of ["label", "search", "show", "min-score", "max-score", "sort"]) {
    $(id).addEventListener(id === "search" || id.endsWith("score") ? "input" : "change", update);
  }
  $("controls").hidden = false;
  update();
})();
"""


def check_report_path(path: Path, replace: bool, another: str = "choose another name") -> None:
    """Refuse a report path that cannot be written, before any work is done; ``another``
    says how to name another file."""
    if path.is_dir():
        raise UsageError(f"report {str(path)!r} is a folder: name a file such as report.html")
    if path.exists() and not replace:
        raise UsageError(
            f"report file {str(path)!r} exists: pass --overwrite to replace it, or {another}"
        )
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(
            f"cannot write report {str(path)!r}: folder {str(parent)!r} does not exist"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"cannot write report {str(path)!r}: folder {str(parent)!r} is not writable"
        )


def write_report_file(
    records: Sequence[Record],
    path: Path,
    summary: ReportSummary,
    folders: Sequence[str] = ("",),
    dataset: Any = None,
) -> str:
    """Write the HTML report and return the line that says so. Thumbnails come from local
    files, and from the rows of ``dataset`` (a DatasetInput) when there is one; a failure to
    write is exit 4's ``OutputWriteError`` (the path was checked writable before)."""

    def thumbnail(record: Record) -> bytes | None:
        found = local_thumbnail(record, folders)
        if found is None and dataset is not None:
            data = dataset.row_image(record.input)
            found = thumbnail_jpeg(data) if data else None
        return found

    try:
        size = write_report(records, path, summary=summary, thumbnail=thumbnail)
    except OSError as exc:
        message = f"cannot write report {str(path)!r}: {exc.strerror or exc}"
        raise OutputWriteError(message) from None
    failed = sum(not r.ok for r in records)
    return (
        f"wrote {path}: {len(records)} image{'s' if len(records) != 1 else ''}, "
        f"{failed} failed ({size / 1e6:.1f} MB)"
    )


def report_of_results(
    results: list[Path],
    output: Path | None,
    title: str | None,
    model: str | None,
    overwrite: bool,
) -> str:
    """``resnet-classify report``: read the results files, write the report (``output``: None
    for report.html beside the first); the line that says what was written."""
    for path in results:  # before the report's folder, which may be theirs
        if not path.exists():
            raise UsageError(f"results file {str(path)!r} does not exist")
    if output is None:
        output = results[0].parent / "report.html"
    check_report_path(output, replace=overwrite, another="name another file with -o")
    records: list[Record] = []
    for path in results:
        if output.resolve() == path.resolve():
            raise UsageError(f"{str(path)!r} is both a results file and the report: pick -o")
        try:
            records.extend(read_results_file(str(path)))
        except OSError as exc:
            raise UsageError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{str(path)!r} is not a resnet-classify results file ({exc})"
            ) from None
    names = ", ".join(path.name for path in results)
    summary = ReportSummary(
        title=title or f"resnet-classify report: {names}",
        model=model,
        sources=tuple(str(path) for path in results),
    )
    # Relative image paths are relative to where the run was (its metadata says); else try
    # here, then beside the results.
    metas = [read_results_meta(str(path)) for path in results]
    ran_in = [meta["cwd"] for meta in metas if meta and isinstance(meta.get("cwd"), str)]
    folders = tuple(dict.fromkeys([*ran_in, "", *(str(path.parent) for path in results)]))
    return write_report_file(records, output, summary, folders)
