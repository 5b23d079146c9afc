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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["render_report", "write_report"]

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


def _quota_figure(result: Any) -> tuple[bytes, float] | None:
    """Layerwise densities of the quota schemes at the middle density of the grid."""
    net = getattr(result, "net", None)
    args = result.provenance["arguments"]
    names = [s for s, k in zip(args["schemes"], args.get("kinds", []), strict=False)
             if k == "quota"]
    if net is None or not names:
        return None
    from ..masks.quotas import quotas
    from .plots import plot_quotas

    densities = sorted(args["densities"])
    d = densities[len(densities) // 2]
    try:
        q = {s: quotas(net, s, d) for s in names}
    except Exception:  # noqa: BLE001 - the figure is optional
        return None
    return _png(plot_quotas, net, q, title=f"{net.name}: layerwise quotas at density {d:.3g}"), d


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
        compression figure (:func:`sparsegraph.sweep.plots.plot_compression`) and, when the result
        holds its network and has quota schemes, the layerwise quotas at the middle density.

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

            figures.append(("Effective vs direct compression", _png(plot_compression, result)))
            quota = _quota_figure(result)
            if quota is not None:
                figures.append((f"Layerwise quotas at density {quota[1]:.3g}", quota[0]))
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
        "input-to-output path). ∞ means the network collapsed: no path is left.</p>"
    )

    # one table per scheme
    parts.append("<h2>Results per scheme</h2>")
    summary = result.summary()
    for scheme in args["schemes"]:
        rows = [r for r in summary if r["scheme"] == scheme]
        kind = rows[0]["kind"] if rows else ""
        parts.append(f'<h3 id="scheme-{_e(scheme)}">{_e(scheme)} '
                     f'<span class="muted">({_e(kind)})</span></h3>')
        parts.append(
            "<table><thead><tr><th>density</th><th>kept</th><th>direct compression</th>"
            "<th>effective compression (mean)</th><th>min</th><th>max</th>"
            "<th>effective density</th><th>collapsed seeds</th><th>dead units (mean)</th>"
            "<th>failed</th></tr></thead><tbody>"
        )
        for r in rows:
            cls = ' class="collapsed"' if r["collapsed"] else ""
            parts.append(
                f"<tr{cls}><td>{_num(r['density'])}</td><td>{_num(r['kept'], 7)}</td>"
                f"<td>{_num(r['direct_compression'])}</td>"
                f"<td>{_num(r['effective_compression'])}</td>"
                f"<td>{_num(r['effective_compression_min'])}</td>"
                f"<td>{_num(r['effective_compression_max'])}</td>"
                f"<td>{_num(r['effective_density'])}</td>"
                f"<td>{r['collapsed']} / {r['seeds']}</td><td>{_num(r['dead_units'])}</td>"
                f"<td>{r['failed']}</td></tr>"
            )
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
