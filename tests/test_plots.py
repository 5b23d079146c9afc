"""Tests of sparsegraph.sweep.plots and sparsegraph.sweep.report (PNG and HTML files for built-in
models)."""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

import sparsegraph as sg
from sparsegraph.errors import SparseGraphError
from sparsegraph.sweep.compare import CompareResult, compare

pytest.importorskip("matplotlib")

from sparsegraph.sweep.plots import plot_audit, plot_compression, plot_quotas  # noqa: E402
from sparsegraph.sweep.report import render_report, write_report  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCHEMES = ["uniform", "erk", "igq"]


@pytest.fixture(scope="module")
def result():
    # LeNet-300 down to 1e-4: uniform collapses inside this grid, so collapse markers appear
    return compare("lenet300", schemes=SCHEMES, densities="0.1:0.0002:6", seeds=2,
                   client=False, progress=False)


@pytest.fixture(scope="module")
def lenet5():
    model, x = sg.build_model("lenet5")
    return sg.trace(model, x)


def _read_png(path):
    from matplotlib import image

    return image.imread(path)


def _texts(fig):
    ax = fig.axes[0]
    legend = ax.get_legend()
    return {
        "xlabel": ax.get_xlabel(),
        "ylabel": ax.get_ylabel(),
        "title": ax.get_title(),
        "legend": [t.get_text() for t in legend.get_texts()] if legend else [],
        "xscale": ax.get_xscale(),
        "yscale": ax.get_yscale(),
    }


def test_compression_png(result, tmp_path):
    path = tmp_path / "c.png"
    fig = plot_compression(result, path)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = _read_png(path)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 600
    assert img.std() > 0.05  # not a blank canvas
    t = _texts(fig)
    assert t["xscale"] == t["yscale"] == "log"
    assert "direct compression" in t["xlabel"] and "effective compression" in t["ylabel"]
    assert "lenet300" in t["title"]
    for scheme in SCHEMES:
        assert scheme in t["legend"]
    assert "effective = direct" in t["legend"]
    assert any("collapse" in s for s in t["legend"])  # uniform collapses at 2e-4
    assert "seed range" in t["legend"]


def test_compression_lines_follow_the_table(result):
    fig = plot_compression(result)
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    for scheme in SCHEMES:
        rows = [r for r in result.network_rows() if r["scheme"] == scheme]
        ok = {}
        for r in rows:
            ok.setdefault(r["density"], []).append(r)
        want = sorted(
            (float(np.mean([g["direct_compression"] for g in grp])),
             float(np.mean([g["effective_compression"] for g in grp])))
            for grp in ok.values() if not any(g["collapsed"] for g in grp)
        )
        x, y = lines[scheme].get_data()
        np.testing.assert_allclose(np.column_stack([x, y]), np.array(want))
        # every plotted point sits on or above the diagonal (effective <= kept)
        assert (np.asarray(y) >= np.asarray(x) * (1 - 1e-12)).all()


def test_compression_from_records_and_sd_band(result, tmp_path):
    buf = io.BytesIO()
    plot_compression(result.to_records(), buf, band="sd", title="custom")
    assert buf.getvalue()[:8] == PNG_MAGIC
    with pytest.raises(SparseGraphError, match="band"):
        plot_compression(result, band="iqr")
    with pytest.raises(SparseGraphError, match="no successful"):
        plot_compression([])


def test_plots_do_not_touch_the_global_backend():
    code = (
        "import matplotlib, sys\n"
        # the raw rcParam (get_backend() itself would import pyplot to resolve 'auto')
        "before = dict.__getitem__(matplotlib.rcParams, 'backend')\n"
        "from sparsegraph.graph.network import Layer, Network, Node\n"
        "from sparsegraph.sweep.plots import plot_quotas\n"
        "net = Network(layers=(Layer('fc.weight', 'fc', 'linear', (2, 3), 3, 2),),\n"
        "              nodes=(Node(0, 'input', (), (3,)),\n"
        "                     Node(1, 'layer', (0,), (2,), layer=0,\n"
        "                          params={'op': 'linear'})), outputs=(1,))\n"
        "plot_quotas(net, {'a': {'fc.weight': 0.5}, 'b': {'fc.weight': 0.25}}, sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
        "assert dict.__getitem__(matplotlib.rcParams, 'backend') == before\n"
    )
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/q.png"
        proc = subprocess.run([sys.executable, "-c", code, out], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        with open(out, "rb") as fh:
            assert fh.read(8) == PNG_MAGIC


def test_audit_png(lenet5, tmp_path):
    masks = sg.random_masks(lenet5, sg.quotas(lenet5, "uniform", 0.01), seed=0)
    rep = sg.audit(lenet5, masks)
    fig = plot_audit(rep, tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC
    assert _read_png(tmp_path / "a.png").shape[0] > 200
    t = _texts(fig)
    assert t["xscale"] == "log" and "density" in t["xlabel"]
    assert any("direct" in s for s in t["legend"]) and any("effective" in s for s in t["legend"])
    ax = fig.axes[0]
    assert [lbl.get_text() for lbl in ax.get_yticklabels()] == [
        n.removesuffix(".weight") for n in lenet5.names]
    # the same figure from the JSON form (audit --json)
    data = json.loads(json.dumps(rep.to_dict()))
    plot_audit(data, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(SparseGraphError, match="AuditReport"):
        plot_audit({"x": 1})


def test_audit_marks_layers_without_effective_weights(lenet5, tmp_path):
    masks = {name: np.ones(layer.shape, bool) for name, layer in
             zip(lenet5.names, lenet5.layers, strict=True)}
    masks[lenet5.names[-1]][:] = False  # last layer empty: nothing is effective
    rep = sg.audit(lenet5, masks)
    fig = plot_audit(rep, tmp_path / "a.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("0 effective") == len(lenet5.layers)
    assert "COLLAPSED" in fig.axes[0].get_title()


def test_quotas_png(lenet5, tmp_path):
    q = {s: sg.quotas(lenet5, s, 0.05) for s in SCHEMES}
    fig = plot_quotas(lenet5, q, tmp_path / "q.png")
    assert (tmp_path / "q.png").read_bytes()[:8] == PNG_MAGIC
    ax = fig.axes[0]
    t = _texts(fig)
    assert t["yscale"] == "log" and t["legend"] == SCHEMES
    for line, scheme in zip(ax.get_lines(), SCHEMES, strict=True):
        np.testing.assert_allclose(line.get_ydata(), [q[scheme][n] for n in lenet5.names])
    assert "0.05" in t["title"]
    with pytest.raises(SparseGraphError, match="unknown layer"):
        plot_quotas(lenet5, {"x": {"nope.weight": 0.5}})
    with pytest.raises(SparseGraphError):
        plot_quotas(lenet5, {})


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)
        if tag not in ("meta", "img", "br", "link", "input"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(text):
    p = _Collect()
    p.feed(text)
    p.close()
    return p


def test_report_is_self_contained_and_names_every_scheme(result, tmp_path):
    path = write_report(result, tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    p = _parse(text)
    assert not p.errors and not p.stack, (p.errors, p.stack)
    body = " ".join(p.text)
    for scheme in SCHEMES:
        assert f"{scheme} (quota)" in " ".join(body.split())
        assert f'id="scheme-{scheme}"' in text
    assert "lenet300" in body and result.provenance["command"] in body
    for key in ("numpy", "torch", "numba", "sparsegraph"):
        assert key in body
    imgs = [v for tag, k, v in p.attrs if tag == "img" and k == "src"]
    assert len(imgs) == 2  # compression + quotas
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing fetched from outside
    for tag, k, v in p.attrs:
        if k in ("src", "href"):
            assert v.startswith(("data:", "#")), (tag, k, v)
    assert "script" not in p.tags and "link" not in p.tags


def test_report_escapes_text(result):
    hostile = CompareResult.from_dict(result.to_dict())
    hostile.provenance["command"] = "sparsegraph compare '<script>alert(1)</script>' & co"
    hostile.tasks[0] = {**hostile.tasks[0], "status": "failed", "error": "Bad <b>thing</b>",
                        "traceback": "<img src=x onerror=alert(1)>"}
    text = render_report(hostile)
    assert "<script>" not in text and "<b>thing" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&amp; co" in text
    assert "1 task(s) failed" in text
    p = _parse(text)
    assert not p.errors


def test_report_from_json_without_network(result, tmp_path):
    result.to_json(tmp_path / "r.json")
    back = CompareResult.from_json(tmp_path / "r.json")
    text = render_report(back, images={"mine": b"\x89PNG\r\n\x1a\nfake"})
    assert text.count("data:image/png;base64,") == 1 and "mine" in text
    # both figures again: the layer densities come from the table, not from the network
    text = render_report(back)
    assert text.count("data:image/png;base64,") == 2


@pytest.mark.parametrize("model", ["lenet5", "resnet20"])
def test_cli_files_for_builtin_models(model, tmp_path):
    from sparsegraph.cli import main

    out = tmp_path / model
    assert main(["compare", model, "--schemes", "uniform,erk,igq", "--densities",
                 "0.05:0.005:2", "-o", str(out), "--workers", "0", "--no-progress"]) == 0
    assert (out / "compression.png").read_bytes()[:8] == PNG_MAGIC
    assert _read_png(out / "compression.png").shape[1] > 600
    p = _parse((out / "report.html").read_text(encoding="utf-8"))
    assert not p.errors
    body = " ".join(p.text)
    for scheme in ("uniform", "erk", "igq"):
        assert scheme in body
    rows = CompareResult.from_json(out / "results.json").network_rows()
    assert len(rows) == 6 and all(math.isfinite(r["direct_compression"]) for r in rows)


# ---------------------------------------------------------------------------------------------
# what a reader needs from the figures and tables (issue 15, item 7)
# ---------------------------------------------------------------------------------------------


def _rows_collapsing_together():
    """Three schemes; erk and igq first collapse at the same direct compression."""
    rows = []
    for scheme, collapse_at in (("uniform", 100.0), ("erk", 1000.0), ("igq", 1000.0)):
        for x in (10.0, 100.0, 1000.0):
            collapsed = x >= collapse_at
            rows.append({"scheme": scheme, "density": 1 / x, "seed": 0, "layer": "__network__",
                         "direct_compression": x, "collapsed": collapsed,
                         "effective_compression": math.inf if collapsed else x * 1.5})
    return rows


def test_coincident_collapse_markers_are_all_visible():
    fig = plot_compression(_rows_collapsing_together())
    ax = fig.axes[0]
    markers = {ln.get_gid(): ln for ln in ax.get_lines() if (ln.get_gid() or "").startswith(
        "collapse:")}
    assert set(markers) == {"collapse:uniform", "collapse:erk", "collapse:igq"}
    fig.canvas.draw()
    pos = {gid: ln.get_transform().transform(np.column_stack(ln.get_data()))[0]
           for gid, ln in markers.items()}
    size = markers["collapse:erk"].get_markersize() * fig.dpi / 72  # points -> pixels
    erk, igq = pos["collapse:erk"], pos["collapse:igq"]
    assert abs(erk[0] - igq[0]) < 1 and abs(erk[1] - igq[1]) >= size  # stacked, not hidden
    labels = {t.get_gid() for t in ax.texts}
    assert {"collapse-label:erk", "collapse-label:igq"} <= labels
    assert "collapse-label:uniform" not in labels  # alone at its compression: no label needed
    for ln in markers.values():
        assert ln.get_visible() and ln.get_alpha() in (None, 1.0)


def test_quota_figure_reads_on_resnet20_and_explains_rounding():
    model, x = sg.build_model("resnet20")
    net = sg.trace(model, x)
    q = {s: sg.quotas(net, s, 0.005) for s in ("uniform", "erk", "igq")}
    fig = plot_quotas(net, q)
    ax = fig.axes[0]
    fig.canvas.draw()
    ticks = ax.get_xticklabels()
    assert len(ticks) == len(net.layers)
    assert min(t.get_fontsize() for t in ticks) >= 9
    # rotated labels do not overlap: the spacing across the text direction exceeds its height
    xs = [ax.transData.transform((i, 1))[0] for i in range(len(ticks))]
    height = ticks[0].get_fontsize() * fig.dpi / 72
    assert min(np.diff(xs)) * math.sin(math.radians(60)) > 1.2 * height
    title = ax.get_legend().get_title().get_text()
    assert "whole weights" in title and "uniform" in title


def test_quota_legend_has_no_rounding_note_when_lines_are_not_uneven(lenet5):
    flat = {"a": {n: 1.0 for n in lenet5.names}}
    fig = plot_quotas(lenet5, flat)
    assert "whole weights" not in fig.axes[0].get_legend().get_title().get_text()


def test_report_captions_layer_figure_and_missing_schemes(tmp_path):
    model, x = sg.build_model("lenet300")
    res = compare(model, example_input=x, schemes="uniform,igq,magnitude",
                  densities="0.1:0.001:3", client=False, progress=False)
    text = render_report(res)
    p = _parse(text)
    captions = [t for t in p.text if "diagonal" in t or "Per-layer density" in t]
    assert len(captions) == 2
    layer_caption = next(c for c in captions if "Per-layer" in c)
    from sparsegraph.sweep.report import layer_densities, layer_figure_density

    d, why = layer_figure_density(res)
    assert f"{d:.3g}" in layer_caption and why in layer_caption
    shown = layer_densities(res, d)
    assert set(shown) == {"uniform", "igq", "magnitude"}  # the pruner is in the figure
    mag = [r for r in res.rows if r["scheme"] == "magnitude" and r["density"] == d
           and r["layer"] != "__network__"]
    assert shown["magnitude"] == {r["layer"]: r["direct_density"] for r in mag}
    # a scheme with no successful task at that density is named as missing
    broken = CompareResult.from_dict(res.to_dict())
    broken.rows = [r for r in broken.rows if not (r["scheme"] == "igq" and r["density"] == d)]
    assert "Missing: igq" in render_report(broken)


def test_tables_hide_min_max_with_one_seed_and_show_target_and_reached(result):
    from sparsegraph.sweep.report import summary_columns

    labels = [c[0] for c in summary_columns(result)]
    assert "target density" in labels and "direct density (mean)" in labels
    assert "effective × min" in labels  # 2 seeds
    one = compare("lenet300", schemes="uniform", densities="0.1,0.01", client=False,
                  progress=False)
    labels = [c[0] for c in summary_columns(one)]
    assert not any("min" in lb or "max" in lb or "mean" in lb for lb in labels)
    text = render_report(one)
    assert "<th>min</th>" not in text and "target density" in text
    row = one.summary()[1]
    assert row["target_density"] == 0.01 and row["direct_density"] == pytest.approx(0.01, 1e-4)


def test_cli_summary_says_how_it_ran_and_hides_min_max(tmp_path, capsys):
    from sparsegraph.cli import main

    assert main(["compare", "lenet300", "--scheme", "uniform,erk", "--densities", "0.1,0.01",
                 "-o", str(tmp_path / "o"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "target density" in out and "direct density" in out and " min " not in out
    assert "ran in this process: about" in out and "s of work left" in out
