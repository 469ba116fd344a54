#!/usr/bin/env python3
"""attnlab's figures, drawn with matplotlib from the data files, which stay the source of truth.

  plot.py ablate DIR     DIR/results.csv of `attnlab ablate`  -> throughput.png, memory.png, pareto.png
  plot.py generate DIR   DIR/results.csv of `attnlab bench-generate` -> tokens_per_s.png, cache_memory.png
  plot.py loss --out FILE [--x step|tokens] [--title TEXT] --run METRICS_JSONL LABEL [--run ...]

Conventions: round ticks; sequence/context length on a log2 axis with ticks at the measured
lengths; tokens/s in k or M; memory in GiB; legends outside the data; out-of-memory and failed
cells marked where their point would be. Beside each absolute panel of an ablation, the ratio to
the baseline (the first variant of the grid), as in FlashAttention's benchmark figures.

Each figure X.png comes with X.plot.json: what it drew (titles, axis labels, tick labels, legend
entries) and the texts that leave the canvas or overlap another text (both empty when the figure
is readable); the tests read it. attnlab calls this script (train/figures.cpp); exit codes:
0 drawn, 2 bad input, 3 matplotlib not importable (silent: the caller prints the warning),
4 nothing to draw.
"""
import argparse
import csv
import json
import math
import os
import sys

MISSING_MATPLOTLIB, NOTHING_TO_DRAW, BAD_INPUT = 3, 4, 2


class BadInput(Exception):
    pass


# ---- number formats ---------------------------------------------------------------------------
def compact(v):
    """1234 -> '1.23k', 2.5e6 -> '2.5M': tokens, tokens/s, counts."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def memory_unit(gib_values):
    """GiB, or MiB where everything is under 1 GiB (CPU runs of tiny models): (unit, factor from GiB)."""
    return ("GiB", 1.0) if max(gib_values, default=0) >= 1 else ("MiB", 1024.0)


def length_label(n):
    return f"{int(n)}"


# ---- reading the data files -------------------------------------------------------------------
def read_csv(path):
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}")


def number(row, key):
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        where = row.get("cell") or row.get("mode") or "?"
        raise BadInput(f"results.csv: {key} = {row.get(key)!r} is not a number (row {where})")


class Series:
    """One line of a figure: its points (x, y) and its marked failures (x, 'OOM' | 'failed')."""

    def __init__(self, name):
        self.name, self.points, self.failed = name, [], []


def group(rows, name_of, x_of, y_of):
    out = {}
    for r in rows:
        s = out.setdefault(name_of(r), Series(name_of(r)))
        if r.get("status", "ok") == "ok":
            s.points.append((x_of(r), y_of(r)))
        else:
            s.failed.append((x_of(r), "OOM" if r["status"] == "oom" else "failed"))
    for s in out.values():
        s.points.sort()
    return list(out.values())


# ---- drawing ----------------------------------------------------------------------------------
def setup_matplotlib():
    try:
        import matplotlib
    except ImportError:
        sys.exit(MISSING_MATPLOTLIB)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
                         "savefig.dpi": 150})
    return plt


def style_x_lengths(ax, lengths, label):
    """log2 axis, ticks at the measured lengths only."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log", base=2)
    lengths = sorted(set(lengths))
    ax.xaxis.set_major_locator(FixedLocator(lengths))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: length_label(v)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(lengths[0] / 2 ** 0.35, lengths[-1] * 2 ** 0.35)
    ax.set_xlabel(label)


def style_y(ax, label, fmt, zero=True):
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    if zero:
        ax.set_ylim(bottom=0)
    ax.set_ylabel(label)


def mark_failures(ax, series, colors):
    """An x at the bottom of the panel where a cell ran out of memory or failed, labelled."""
    from matplotlib.transforms import blended_transform_factory

    tr = blended_transform_factory(ax.transData, ax.transAxes)
    stacked = {}
    for s in series:
        for x, why in s.failed:
            k = stacked.get(x, 0)
            stacked[x] = k + 1
            y = 0.05 + 0.09 * k
            ax.plot([x], [y], marker="X", markersize=8, color=colors[s.name], transform=tr, clip_on=False,
                    linestyle="none")
            ax.annotate(why, (x, y), xycoords=tr, xytext=(6, -3), textcoords="offset points", fontsize=8,
                        color=colors[s.name], gid="data-label")


def palette(names):
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def lines_panel(ax, series, colors, y_label, y_fmt, x_label, lengths):
    for s in series:
        if s.points:
            xs, ys = zip(*s.points)
            ax.plot(xs, ys, marker="o", markersize=5, color=colors[s.name], label=s.name)
    style_x_lengths(ax, lengths, x_label)
    style_y(ax, y_label, y_fmt)
    mark_failures(ax, series, colors)


def ratio_panel(ax, series, colors, base, ratio, y_label, x_label, lengths):
    """ratio(value, base_value) of every series but the baseline, at the lengths both ran."""
    base_at = dict(base.points)
    ax.axhline(1.0, color=colors[base.name], linestyle="--", linewidth=1)
    for s in series:
        if s is base:
            continue
        pts = [(x, ratio(y, base_at[x])) for x, y in s.points if x in base_at and base_at[x] > 0]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", markersize=5, color=colors[s.name])
    style_x_lengths(ax, lengths, x_label)
    style_y(ax, y_label, lambda v: f"{v:g}×")
    mark_failures(ax, [s for s in series if s is not base], colors)
    gone = sorted(x for x, _ in base.failed)
    if gone:  # where the baseline did not run there is no ratio: say so in the panel
        from matplotlib.transforms import blended_transform_factory

        tr = blended_transform_factory(ax.transData, ax.transAxes)
        for x in gone:
            ax.annotate(f"{base.name}\nOOM", (x, 0.5), xycoords=tr, ha="center", va="center", fontsize=8,
                        color="0.45", gid="data-label")


def figure_legend(fig, axes, series, colors, extra=()):
    """One legend for the whole figure, below the panels (outside the data)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[s.name], marker="o", label=s.name) for s in series if s.points]
    handles += [Line2D([], [], color=colors[s.name], marker="X", linestyle="none", label=f"{s.name} (no cell ran)")
                for s in series if not s.points]
    if any(s.failed for s in series):
        handles.append(Line2D([], [], color="0.3", marker="X", linestyle="none", label="out of memory / failed"))
    handles += list(extra)
    ncol = min(len(handles), 3 if max(len(h.get_label()) for h in handles) > 24 else 4)
    return fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                      bbox_transform=fig.transFigure)


def texts_of(fig):
    """(kind, text, artist, axes) for every visible text of the figure; kind is title, label,
    xtick, ytick, legend, data-label (a label at a data point) or text."""
    out = [("title", fig._suptitle.get_text(), fig._suptitle, None)] if fig._suptitle else []
    for leg in fig.legends:
        out += [("legend", t.get_text(), t, None) for t in leg.get_texts()]
    for ax in fig.axes:
        out += [("title", ax.title.get_text(), ax.title, ax), ("label", ax.xaxis.label.get_text(), ax.xaxis.label, ax),
                ("label", ax.yaxis.label.get_text(), ax.yaxis.label, ax)]
        for kind, axis in (("xtick", ax.xaxis), ("ytick", ax.yaxis)):
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * abs(hi - lo)
            for tick in axis.get_major_ticks():
                if lo - slack <= tick.get_loc() <= hi + slack and tick.label1.get_visible():
                    out.append((kind, tick.label1.get_text(), tick.label1, ax))
        if ax.get_legend():
            out += [("legend", t.get_text(), t, ax) for t in ax.get_legend().get_texts()]
        out += [("data-label" if t.get_gid() == "data-label" else "text", t.get_text(), t, ax) for t in ax.texts]
    return [(k, s, a, ax) for k, s, a, ax in out if s and a.get_visible()]


def save(fig, path, title):
    """Writes the PNG (atomically) and its .plot.json: what was drawn, and the texts that leave
    the saved canvas or overlap another layout text (tick labels, axis labels, titles, legend)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.get_tightbbox(renderer).padded(0.1)  # inches: what savefig(bbox_inches="tight") keeps
    drawn = texts_of(fig)
    texts = [(k, s, a.get_window_extent(renderer)) for k, s, a, _ in drawn]
    dpi = fig.dpi
    outside = [s for _, s, b in texts
               if b.x0 / dpi < canvas.x0 - 1e-3 or b.x1 / dpi > canvas.x1 + 1e-3
               or b.y0 / dpi < canvas.y0 - 1e-3 or b.y1 / dpi > canvas.y1 + 1e-3]
    layout = [(s, b) for k, s, b in texts if k != "data-label"]
    overlaps = [[a, b] for i, (a, ba) in enumerate(layout) for b, bb in layout[i + 1:]
                if ba.width > 0 and bb.width > 0 and ba.shrunk(0.98, 0.9).overlaps(bb.shrunk(0.98, 0.9))]
    tmp = path + ".tmp.png"
    fig.savefig(tmp, bbox_inches="tight", pad_inches=0.1)
    os.replace(tmp, path)
    ticks = lambda ax, kind: [s for k, s, _, a in drawn if k == kind and a is ax]
    info = {"figure": os.path.basename(path), "title": title,
            "panels": [{"title": ax.get_title(), "x_label": ax.get_xlabel(), "y_label": ax.get_ylabel(),
                        "x_ticks": ticks(ax, "xtick"), "y_ticks": ticks(ax, "ytick")} for ax in fig.axes],
            "legend": [s for k, s, _ in texts if k == "legend"],
            "data_labels": [s for k, s, _ in texts if k == "data-label"],
            "outside_canvas": outside, "overlapping": overlaps}
    with open(os.path.splitext(path)[0] + ".plot.json", "w") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
    import matplotlib.pyplot as plt

    plt.close(fig)


def remove_stale(paths):
    for p in paths:
        for f in (p, os.path.splitext(p)[0] + ".plot.json"):
            if os.path.exists(f):
                os.remove(f)


# ---- attnlab ablate ---------------------------------------------------------------------------
def ablation_figures(d):
    plt = setup_matplotlib()
    outputs = [os.path.join(d, f) for f in ("throughput.png", "memory.png", "pareto.png")]
    remove_stale(outputs)
    rows = read_csv(os.path.join(d, "results.csv"))
    if not any(r.get("status") == "ok" for r in rows):
        return NOTHING_TO_DRAW
    one_precision = len({r["precision"] for r in rows}) == 1
    name_of = (lambda r: r["variant"]) if one_precision else (lambda r: f"{r['variant']} {r['precision']}")
    seq = lambda r: int(number(r, "seq_len"))
    lengths = [seq(r) for r in rows]
    tps = group(rows, name_of, seq, lambda r: number(r, "tokens_per_s"))
    unit, scale = memory_unit([number(r, "peak_gib") for r in rows if r["status"] == "ok"])
    mem = group(rows, name_of, seq, lambda r: number(r, "peak_gib") * scale)
    colors = palette([s.name for s in tps])
    tokens = {int(number(r, "batch")) * seq(r) for r in rows}
    setting = ", ".join(([rows[0]["precision"]] if one_precision else [])
                        + ([f"{tokens.pop()} tokens per batch"] if len(tokens) == 1 else []))
    base_tps = next((s for s in tps if s.points), None)
    base_mem = next(s for s in mem if s.name == base_tps.name)
    compare = len([s for s in tps if s.points]) > 1
    x_label = "sequence length (tokens, log2 scale)"

    def two_panels(name, title, series, y_label, y_fmt, base, ratio, ratio_label):
        fig, axes = plt.subplots(1, 2 if compare else 1, figsize=(12 if compare else 7, 4.6), squeeze=False,
                                 layout="constrained")
        lines_panel(axes[0][0], series, colors, y_label, y_fmt, x_label, lengths)
        axes[0][0].set_title(title)
        if compare:
            ratio_panel(axes[0][1], series, colors, base, ratio, ratio_label, x_label, lengths)
            axes[0][1].set_title(f"relative to {base.name} (higher is better)")
        if setting:
            fig.suptitle(setting, fontsize=9, color="0.35")
        figure_legend(fig, axes[0], series, colors)
        save(fig, os.path.join(d, name), title)

    two_panels("throughput.png", "training throughput", tps, "tokens/s", compact, base_tps,
               lambda y, b: y / b, f"speedup over {base_tps.name}")
    two_panels("memory.png", "peak memory", mem, f"peak memory ({unit})", lambda v: f"{v:g}", base_mem,
               lambda y, b: b / y, f"{base_mem.name}'s peak ÷ this peak")
    pareto_figure(plt, d, rows, name_of, colors, setting, unit, scale)
    return 0


def pareto_front(points):
    """The points no other point beats on both axes: less (or equal) memory and more tokens/s."""
    front, best = [], -math.inf
    for m, t in sorted(points, key=lambda p: (p[0], -p[1])):
        if t > best:
            front.append((m, t))
            best = t
    return front


def place_labels(fig, ax, points):
    """Labels (x, y, text, color) next to their points where they overlap nothing drawn so far:
    right, left, above, below, then the diagonals; a label that fits nowhere is left out (the
    point keeps its colour; the .plot.json lists what was drawn)."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()  # settle the layout, then freeze it so display positions stay put
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = []
    for x, y, _, _ in points:
        px, py = ax.transData.transform((x, y))
        taken.append(Bbox.from_extents(px - 5, py - 5, px + 5, py + 5))
    offsets = [(6, 0, "left", "center"), (-6, 0, "right", "center"), (0, 6, "center", "bottom"),
               (0, -6, "center", "top"), (5, 5, "left", "bottom"), (-5, 5, "right", "bottom"),
               (5, -5, "left", "top"), (-5, -5, "right", "top")]
    for x, y, text, color in sorted(points, key=lambda p: -p[1]):
        for dx, dy, ha, va in offsets:
            t = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=8,
                            color=color, gid="data-label")
            box = t.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(o) for o in taken):
                taken.append(box)
                break
            t.remove()


def pareto_figure(plt, d, rows, name_of, colors, setting, unit, scale):
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullLocator

    fig, ax = plt.subplots(figsize=(9, 5.6), layout="constrained")
    by_length, labels = {}, []
    for r in rows:
        if r["status"] != "ok":
            continue
        m, t, n = number(r, "peak_gib") * scale, number(r, "tokens_per_s"), int(number(r, "seq_len"))
        ax.plot([m], [t], marker="o", markersize=6, color=colors[name_of(r)], linestyle="none", zorder=3)
        labels.append((m, t, length_label(n), colors[name_of(r)]))
        by_length.setdefault(n, []).append((m, t))
    for n, pts in sorted(by_length.items()):
        front = pareto_front(pts)
        if len(front) > 1:
            xs, ys = zip(*front)
            ax.plot(xs, ys, color="0.5", linestyle="--", linewidth=1, zorder=1)
    style_y(ax, "tokens/s", compact)
    lo, hi = min(p[0] for p in labels), max(p[0] for p in labels)
    if hi >= 4 * lo:  # memory over a wide range on a log2 axis: a factor reads as the same step everywhere
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(LogLocator(base=2))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(lo / 2 ** 0.4, hi * 2 ** 0.6)
        ax.set_xlabel(f"peak memory ({unit}, log2 scale)")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        pad = 0.08 * (hi - lo) if hi > lo else 0.05 * hi
        ax.set_xlim(lo - pad, hi + 2 * pad)
        ax.set_xlabel(f"peak memory ({unit})")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    title = "throughput vs peak memory (point labels: sequence length)"
    ax.set_title(title)
    if setting:
        fig.suptitle(setting, fontsize=9, color="0.35")
    names = list(dict.fromkeys(name_of(r) for r in rows if r["status"] == "ok"))
    handles = [Line2D([], [], color=colors[n], marker="o", linestyle="none", label=n) for n in names]
    handles.append(Line2D([], [], color="0.5", linestyle="--", label="Pareto front of one sequence length"))
    failed = {}
    for r in rows:
        if r["status"] != "ok":
            failed.setdefault(name_of(r), []).append(r["seq_len"] + (" OOM" if r["status"] == "oom" else " failed"))
    for n, what in failed.items():
        handles.append(Line2D([], [], color=colors[n], marker="X", linestyle="none",
                              label=f"{n} not shown: {', '.join(what)}"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(3, len(handles)))
    place_labels(fig, ax, labels)
    save(fig, os.path.join(d, "pareto.png"), title)


# ---- attnlab bench-generate -------------------------------------------------------------------
def generate_figures(d):
    plt = setup_matplotlib()
    outputs = [os.path.join(d, f) for f in ("tokens_per_s.png", "cache_memory.png")]
    remove_stale(outputs)
    rows = read_csv(os.path.join(d, "results.csv"))
    if not rows:
        return NOTHING_TO_DRAW
    ctx = lambda r: int(number(r, "prompt") + number(r, "new_tokens"))
    name_of = lambda r: (f"{r['cache']} cache, kv_heads={r['n_kv_head']}, B={r['batch']}" if r["mode"] == "cached"
                         else f"no cache, B={r['batch']}")
    lengths = [ctx(r) for r in rows]
    x_label = "context length (prompt + new tokens, log2 scale)"
    tps = group(rows, name_of, ctx, lambda r: number(r, "tokens_per_s"))
    colors = palette([s.name for s in tps])
    cached = [r for r in rows if r["mode"] == "cached"]
    scale = max((number(r, "cache_bytes") for r in cached), default=0) >= 2 ** 30
    unit, div = ("GiB", 2 ** 30) if scale else ("MiB", 2 ** 20)
    cache = group(cached, name_of, ctx, lambda r: number(r, "cache_bytes") / div)
    for name, series, label, fmt, title in (
            ("tokens_per_s.png", tps, "generated tokens/s (decode)", compact, "generation speed"),
            ("cache_memory.png", cache, f"KV cache ({unit})", lambda v: f"{v:g}", "KV cache size")):
        if not any(s.points for s in series):
            continue
        fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
        lines_panel(ax, series, colors, label, fmt, x_label, lengths)
        ax.set_title(title)
        figure_legend(fig, [ax], series, colors)
        save(fig, os.path.join(d, name), title)
    return 0


# ---- loss curves of runs ----------------------------------------------------------------------
def read_metrics(path):
    """(train [(step, tokens, loss)], val [(step, loss)]) of a metrics.jsonl; torn lines skipped."""
    train, val = [], []
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}")
    for line in lines:
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if "loss" in j:
            train.append((j.get("step", 0), j.get("tokens_seen"), j["loss"]))
        if "val_loss" in j:
            val.append((j.get("step", 0), j["val_loss"]))
    return train, val


def loss_figure(out, x_mode, title, runs):
    plt = setup_matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    remove_stale([out])
    data = [(label, *read_metrics(path)) for path, label in runs]
    if not any(t or v for _, t, v in data):
        return NOTHING_TO_DRAW
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    colors = palette([label for label, _, _ in data])
    for label, train, val in data:
        if x_mode == "tokens":
            per_step = next((tok / step for step, tok, _ in reversed(train) if tok and step), None)
            if per_step is None:
                raise BadInput(f"{label}: no train record with tokens_seen; use --x step")
            to_x = lambda step: step * per_step
        else:
            to_x = lambda step: step
        if train:
            ax.plot([to_x(s) for s, _, _ in train], [l for _, _, l in train], color=colors[label], linewidth=1,
                    alpha=0.55)
        if val:
            ax.plot([to_x(s) for s, _ in val], [l for _, l in val], color=colors[label], linewidth=2, marker="o",
                    markersize=4)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10], integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: compact(v)))
    ax.set_xlabel("tokens seen" if x_mode == "tokens" else "step")
    ax.set_xlim(left=0)
    style_y(ax, "loss", lambda v: f"{v:g}", zero=False)
    ax.set_title(title)
    handles = [Line2D([], [], color=colors[label], linewidth=2, label=label) for label, _, _ in data if len(data) > 1]
    handles += [Line2D([], [], color="0.3", linewidth=1, alpha=0.55, label="train loss"),
                Line2D([], [], color="0.3", linewidth=2, marker="o", markersize=4, label="val loss")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save(fig, out, title)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    for name in ("ablate", "generate"):
        sub.add_parser(name).add_argument("dir")
    lp = sub.add_parser("loss")
    lp.add_argument("--out", required=True)
    lp.add_argument("--x", choices=("step", "tokens"), default="step")
    lp.add_argument("--title", default="loss")
    lp.add_argument("--run", nargs=2, action="append", required=True, metavar=("METRICS_JSONL", "LABEL"))
    a = p.parse_args()
    try:
        if a.what == "ablate":
            return ablation_figures(a.dir)
        if a.what == "generate":
            return generate_figures(a.dir)
        return loss_figure(a.out, a.x, a.title, a.run)
    except BadInput as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
