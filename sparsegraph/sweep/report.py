"""One self-contained HTML report of a comparison: plots, tables, the command and the versions.

The file has no external assets (no scripts, no style sheets, no fonts, no image links): images
are PNGs embedded as base64 ``data:`` URIs and every piece of text is escaped with
:func:`html.escape`, so it can be attached to an issue or a review and opened anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "layer_densities",
    "layer_figure_density",
    "render_report",
    "summary_columns",
    "write_report",
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;
 max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.6em;
 border-bottom:1px solid #ddd;padding-bottom:.2em} h3{font-size:1.05em;margin-bottom:.3em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
tr.collapsed td{background:#fdecea}
pre{background:#f6f6f6;padding:.7em;overflow-x:auto;white-space:pre-wrap;word-break:break-all}
img{max-width:100%;height:auto;border:1px solid #eee}
.muted{color:#666;font-size:.9em} .fail{color:#b00020}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return ""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    x = float(x)
    if x.is_integer() and abs(x) >= 1000:
        return f"{x:,.0f}"
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞"
    return f"{x:.{digits}g}"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _png(figure_fn: Any, *args: Any, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    figure_fn(*args, buf, **kwargs)
    return buf.getvalue()


def _as_bytes(image: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(image, bytes):
        return image
    return Path(image).read_bytes()


def layer_densities(result: Any, density: float) -> dict[str, dict[str, float]]:
    """``{scheme: {layer: density reached}}`` at one target density, the mean over the seeds
    that succeeded, read from the table (so it works for results read back from JSON, and
    pruners are shown with the per-layer densities their scores gave)."""
    per: dict[str, dict[str, list[float]]] = {}
    for r in result.rows:
        if r["layer"] == "__network__" or r["density"] != density:
            continue
        per.setdefault(r["scheme"], {}).setdefault(r["layer"], []).append(r["direct_density"])
    return {s: {k: sum(v) / len(v) for k, v in layers.items()}
            for s, layers in per.items()}


def layer_figure_density(result: Any) -> tuple[float, str]:
    """The target density the per-layer figure shows, and why: the lowest one of the grid at
    which no seed of any scheme has collapsed (the sparsest point where every allocation still
    carries signal), else the highest density of the grid."""
    args = result.provenance["arguments"]
    collapsed = {r["density"] for r in result.network_rows() if r["collapsed"]}
    done = {r["density"] for r in result.network_rows()}
    alive = [d for d in args["densities"] if d in done and d not in collapsed]
    if alive:
        return min(alive), ("the lowest density of the grid at which no scheme has collapsed "
                            "for any seed")
    return max(args["densities"]), ("the highest density of the grid (every scheme collapsed "
                                    "at some seed at every density)")


def _layer_figure(result: Any) -> tuple[bytes, str] | None:
    """The per-layer densities figure and its caption."""
    from .plots import plot_quotas

    d, why = layer_figure_density(result)
    shown = layer_densities(result, d)
    if not shown:
        return None
    order = [s for s in result.schemes if s in shown]
    missing = [s for s in result.schemes if s not in shown]
    params = {r["layer"]: r["params"] for r in result.rows if r["layer"] != "__network__"}
    net = getattr(result, "net", None)
    png = _png(plot_quotas, net, {s: shown[s] for s in order}, params=params,
               title=f"{result.provenance['model']['name']}: layer densities at target density "
               f"{d:.3g}")
    caption = (f"Per-layer density (kept / weights, log scale) of each scheme's masks at target "
               f"density {d:.3g}, {why}: quota schemes show their quota, pruners the densities "
               "their scores ended with (mean over seeds). Layers whose density is far below the "
               "others are where a scheme's masks lose paths first.")
    if missing:
        caption += (f" Missing: {', '.join(missing)} (no successful task at this density; see "
                    "the table).")
    return png, caption


def _compression_caption(result: Any) -> str:
    seeds = len(result.provenance["arguments"]["seeds"])
    band = " The shaded band is the range over seeds." if seeds > 1 else ""
    return (
        "Effective against direct compression, one line per scheme (mean over seeds), log-log. "
        "On the dashed diagonal every kept weight is effective; the height of a line above it "
        "is the factor by which dead connections inflate the true compression. × on the top "
        "edge marks the direct compression at which a scheme first collapsed (no input-output "
        "path left) for some seed; markers at the same compression are stacked." + band
    )


def summary_columns(result: Any, *, detail: bool = False
                    ) -> list[tuple[str, str, Callable[[Mapping[str, Any]], str]]]:
    """``(label, key, formatter)`` of the summary table (one row per scheme x density), the
    same for the command line and the report. With one seed the min and max columns, which
    would repeat the mean, are left out; ``detail`` adds kept weights, dead units and failed
    seeds."""
    several = len(result.provenance["arguments"]["seeds"]) > 1
    mean = " (mean)" if several else ""
    cols: list[tuple[str, str, Callable[[Mapping[str, Any]], str]]] = [
        ("scheme", "scheme", lambda r: str(r["scheme"])),
        ("target density", "target_density", lambda r: _num(r["density"])),
        ("direct density" + mean, "direct_density", lambda r: _num(r.get("direct_density"))),
        ("effective density" + mean, "effective_density",
         lambda r: _num(r["effective_density"])),
    ]
    if detail:
        cols.append(("kept" + mean, "kept", lambda r: _num(r["kept"], 7)))
    cols += [
        ("direct ×" + mean, "direct_compression", lambda r: _num(r["direct_compression"])),
        ("effective ×" + mean, "effective_compression",
         lambda r: _num(r["effective_compression"])),
    ]
    if several:
        cols += [("effective × min", "effective_compression_min",
                  lambda r: _num(r["effective_compression_min"])),
                 ("effective × max", "effective_compression_max",
                  lambda r: _num(r["effective_compression_max"]))]
    cols.append(("collapsed", "collapsed", lambda r: f"{r['collapsed']}/{r['seeds']}"))
    if detail:
        cols += [("dead units" + mean, "dead_units", lambda r: _num(r["dead_units"])),
                 ("failed", "failed", lambda r: str(r["failed"]))]
    return cols


def render_report(
    result: Any,
    *,
    title: str | None = None,
    images: Mapping[str, bytes | str | os.PathLike[str]] | None = None,
) -> str:
    """The HTML text of the report of a :func:`sparsegraph.compare` result.

    Parameters
    ----------
    result : CompareResult
        The comparison (also one read back with ``CompareResult.from_json``).
    title : str, optional
        The page title; by default names the model.
    images : mapping of str to bytes or path, optional
        ``{caption: PNG}`` to embed instead of drawing the figures again. By default the
        compression figure (:func:`sparsegraph.sweep.plots.plot_compression`) and the per-layer
        densities of every scheme at :func:`layer_figure_density`, each with a caption that
        says what to read from it.

    Returns
    -------
    str
        A complete HTML5 document without external references.
    """
    prov = result.provenance
    args = prov["arguments"]
    model = prov.get("model", {})
    name = model.get("name") or model.get("spec") or "model"
    title = title or f"sparsegraph compare: {name}"
    ex = prov.get("execution", {})

    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        '<p class="muted">'
        f"{_e(name)}: {_num(model.get('params'))} prunable weights in "
        f"{_num(model.get('layers'))} layers; schemes {_e(', '.join(args['schemes']))}; "
        f"{len(args['densities'])} densities from {_num(max(args['densities']))} to "
        f"{_num(min(args['densities']))}; seeds {_e(', '.join(map(str, args['seeds'])))}; "
        f"{_num(ex.get('tasks'))} tasks, {_e(ex.get('mode', '?'))} "
        f"({_num(ex.get('workers'))} worker(s)), {_num(ex.get('wall_s'), 3)} s; "
        f"created {_e(prov.get('created', ''))}.</p>",
        *([f'<p class="muted">Ran {"serially" if ex.get("mode") == "serial" else "on Dask"}: '
           f"{_e(ex['reason'])}.</p>"] if ex.get("reason") else []),
    ]

    failures = result.failures
    if failures:
        parts.append(f'<p class="fail"><b>{len(failures)} task(s) failed</b> after their '
                     "retries; see <a href=\"#failures\">Failures</a>.</p>")

    # figures
    figures: list[tuple[str, bytes]] = []
    if images is not None:
        figures = [(str(k), _as_bytes(v)) for k, v in images.items()]
    elif result.network_rows():
        try:
            from .plots import plot_compression

            figures.append((_compression_caption(result), _png(plot_compression, result)))
            layer = _layer_figure(result)
            if layer is not None:
                figures.append((layer[1], layer[0]))
        except ImportError as exc:
            parts.append(f'<p class="muted">No figures: {_e(exc)}</p>')
    if figures:
        parts.append("<h2>Figures</h2>")
        for caption, png in figures:
            parts.append(f"<figure>{_img(png, caption)}<figcaption class=\"muted\">"
                         f"{_e(caption)}</figcaption></figure>")
    parts.append(
        '<p class="muted">Direct compression = parameters / kept weights; effective '
        "compression = parameters / effective weights (kept weights on at least one "
        "input-to-output path). ∞ means the network collapsed: no path is left. The target "
        "density is the one asked for; the direct density is the one the masks reached.</p>"
    )

    # one table per scheme
    parts.append("<h2>Results per scheme</h2>")
    summary = result.summary()
    columns = summary_columns(result, detail=True)
    header = "".join(f"<th>{_e(label)}</th>" for label, _, _ in columns[1:])
    for scheme in args["schemes"]:
        rows = [r for r in summary if r["scheme"] == scheme]
        kind = rows[0]["kind"] if rows else ""
        parts.append(f'<h3 id="scheme-{_e(scheme)}">{_e(scheme)} '
                     f'<span class="muted">({_e(kind)})</span></h3>')
        parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>")
        for r in rows:
            cls = ' class="collapsed"' if r["collapsed"] else ""
            cells = "".join(f"<td>{_e(fmt(r))}</td>" for _, _, fmt in columns[1:])
            parts.append(f"<tr{cls}>{cells}</tr>")
        parts.append("</tbody></table>")

    if failures:
        parts.append('<h2 id="failures">Failures</h2><table><thead><tr>'
                     '<th class="l">scheme</th><th>density</th><th>seed</th>'
                     '<th class="l">error</th></tr></thead><tbody>')
        for t in failures:
            parts.append(f'<tr><td class="l">{_e(t["scheme"])}</td><td>{_num(t["density"])}'
                         f'</td><td>{_e(t["seed"])}</td><td class="l">{_e(t["error"])}</td>'
                         "</tr>")
        parts.append("</tbody></table>")
        for t in failures:
            if t.get("traceback"):
                parts.append(f"<details><summary>{_e(t['scheme'])} density "
                             f"{_num(t['density'])} seed {_e(t['seed'])}</summary>"
                             f"<pre>{_e(t['traceback'])}</pre></details>")

    # provenance
    parts.append("<h2>Reproduce</h2><p>Command:</p>")
    parts.append(f"<pre>{_e(prov.get('command', ''))}</pre>")
    if prov.get("python_call") and prov.get("python_call") != prov.get("command"):
        parts.append(f"<p>Python:</p><pre>{_e(prov['python_call'])}</pre>")
    parts.append(f"<p class=\"muted\">Exact densities: {_e(args['densities'])}</p>")
    parts.append(f"<p class=\"muted\">Network fingerprint {_e(model.get('fingerprint', ''))}"
                 "</p>")
    parts.append('<h3>Versions</h3><table><tbody>')
    for key, value in prov.get("versions", {}).items():
        parts.append(f'<tr><th class="l">{_e(key)}</th><td class="l">'
                     f"{_e(value if value is not None else 'not installed')}</td></tr>")
    parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(
    result: Any,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    images: Mapping[str, bytes | str | os.PathLike[str]] | None = None,
) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8); returns the path.

    Examples
    --------
    >>> import tempfile, pathlib, sparsegraph as sg
    >>> from sparsegraph.sweep.report import write_report
    >>> res = sg.compare("lenet300", schemes="uniform,erk", densities="0.1,0.01",
    ...                  client=False, progress=False)
    >>> out = write_report(res, pathlib.Path(tempfile.mkdtemp()) / "report.html")
    >>> text = out.read_text()
    >>> text.startswith("<!DOCTYPE html>") and "erk" in text and "http" not in text
    True
    """
    out = Path(path)
    out.write_text(render_report(result, title=title, images=images), encoding="utf-8")
    return out
