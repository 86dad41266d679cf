"""Figures for the notebooks. Each returns the matplotlib Figure; the caller saves it."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

BOUND_TERMS = {"err_nat": "err_N", "err_adv": "err_A (observed)", "divergence": "divergence / 2",
               "lambda_star": "lambda*", "bound": "bound"}
#: what the bound figures say they show: our formalisation, not the paper's
BOUND_TITLE = "err_A <= err_N + divergence/2 + lambda* (our formalisation, Ben-David et al. 2010)"
VACUOUS_LABEL = "1: a bound above it is vacuous"
_MARKERS = "osD^vP*X"


def _term_summary(frame: pd.DataFrame, x: str) -> pd.DataFrame:
    """Per x and term: value, lo, hi. One row per x keeps the row's ``<term>_lo`` / ``_hi``
    (none: no interval); several rows (seeds) give mean -/+ sd; ``divergence`` is halved."""
    rows = []
    for key, label in BOUND_TERMS.items():
        scale = 0.5 if key == "divergence" else 1.0
        for value, group in frame.groupby(x, sort=False):
            mean = group[key].mean() * scale
            if len(group) > 1:
                sd = group[key].std(ddof=1) * scale
                lo, hi = mean - sd, mean + sd
            elif f"{key}_lo" in group:
                lo, hi = group[f"{key}_lo"].iloc[0] * scale, group[f"{key}_hi"].iloc[0] * scale
            else:
                lo = hi = mean
            learned = bool(group["learned"].all()) if "learned" in group else True
            rows.append({x: value, "term": label, "value": mean, "lo": lo, "hi": hi,
                         "learned": learned})
    return pd.DataFrame(rows)


def _check_bound_records(records, x: str) -> pd.DataFrame:
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = [c for c in (x, *BOUND_TERMS) if c not in frame.columns]
    if frame.empty or missing:
        raise ValueError(f"records lack columns {missing} (have {sorted(frame.columns)}); pass "
                         f"BoundReport.to_record() rows with an added {x!r} entry.")
    return frame


def _errorbar(ax, xs, rows: pd.DataFrame, marker: str, color, label, line: bool) -> None:
    """Points with their intervals; rows not learned drawn hollow (labelled once)."""
    for learned in (True, False):
        part = rows["learned"] == learned
        if not part.any():
            continue
        ax.errorbar([x for x, keep in zip(xs, part) if keep], rows["value"][part],
                    yerr=[rows["value"][part] - rows["lo"][part], rows["hi"][part] - rows["value"][part]],
                    fmt=marker, capsize=2, ms=5, color=color, label=label,
                    mfc=color if learned else "white", ls="none")
        label = None
    if line:
        ax.plot(xs, rows["value"], color=color, lw=1, alpha=0.7)


def plot_bound_terms(records, x: str = "method", ax=None, labels: dict | None = None,
                     title: str | None = None):
    """err_N, err_A, divergence / 2, lambda* and the bound per method or per epoch, each
    with its interval as an error bar.

    Args:
        records: a pandas DataFrame or a list of dicts, one row per measurement, e.g.
            ``{**report.to_record("mlp"), "method": "drrdn", "seed": 0}``; needs the columns
            x, err_nat, err_adv, divergence (the full proxy A-distance, halved here),
            lambda_star, bound; with ``<term>_lo`` / ``<term>_hi`` the bars are those
            intervals (one row per x), several rows per x (seeds) are averaged, bars 1 sd.
            An optional boolean ``learned`` column draws rows that have not learned hollow.
        x: the column on the horizontal axis: ``"method"`` (categories) or a numeric one
            such as ``"epoch"`` (lines).
        labels: x value -> what the reader sees (e.g. ``experiments.MODEL_LABELS``).
        title: the axes' title (say the scale); default :data:`BOUND_TITLE`.
    Returns:
        the matplotlib Figure. Values are fractions (errors in [0, 1], lambda* and the bound
        up to 2); a line marks 1.
    """
    frame = _check_bound_records(records, x)
    summary = _term_summary(frame, x)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    order = list(dict.fromkeys(frame[x]))
    numeric = pd.api.types.is_numeric_dtype(frame[x])
    terms = list(BOUND_TERMS.values())
    width = 0.8 / len(terms)
    palette = sns.color_palette(n_colors=len(terms))
    for i, term in enumerate(terms):
        rows = summary[summary["term"] == term].set_index(x).reindex(order).reset_index()
        xs = (list(rows[x]) if numeric else
              [j - 0.4 + width * (i + 0.5) for j in range(len(order))])
        _errorbar(ax, xs, rows, _MARKERS[i % len(_MARKERS)], palette[i], term, line=numeric)
    if not numeric:
        labels = labels or {}
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels([textwrap.fill(str(labels.get(v, v)), 14) for v in order])
    ax.set_xlabel("" if not numeric else x)
    if not summary["learned"].all():
        ax.plot([], [], "o", mfc="white", color="grey", label="hollow: not trained (yet)")
    ax.axhline(1.0, color="black", lw=0.8, label=VACUOUS_LABEL)
    ax.set_ylabel("fraction (bound terms)")
    ax.set_title(title or BOUND_TITLE, fontsize="medium")
    ax.legend(title=None, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def plot_bound_over_training(records, panel: str = "method", x: str = "epoch",
                             labels: dict | None = None, title: str | None = None,
                             shared_until: float | None = None, columns: int = 3):
    """:func:`plot_bound_terms` against ``x`` (epochs), one panel per value of ``panel``
    (methods, titled by ``labels``) on a grid of ``columns``, sharing the y axis; the legend
    takes a free cell of the grid (else sits outside). ``records``: rows as for
    plot_bound_terms plus the ``panel`` and ``x`` columns. ``shared_until``: shade the epochs
    up to it (a pre-training every panel shares). Returns the matplotlib Figure."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if frame.empty or panel not in frame.columns:
        raise ValueError(f"records need a {panel!r} column and at least one row.")
    names = list(dict.fromkeys(frame[panel]))
    labels = labels or {}
    ncols = min(columns, len(names))
    nrows = -(-len(names) // ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(3.6 * ncols + (2.4 if nrows * ncols == len(names) else 0),
                                                   3.2 * nrows + 0.8), sharey=True, squeeze=False)
    axes = list(grid.flat)
    for ax, name in zip(axes, names):
        plot_bound_terms(frame[frame[panel] == name], x=x, ax=ax)
        if shared_until is not None:
            ax.axvspan(ax.get_xlim()[0], shared_until + 0.5, color="grey", alpha=0.12,
                       label="shared Standard pre-training")
        ax.set_title(str(labels.get(name, name)))
        ax.set_ylabel("fraction (bound terms)" if ax in grid[:, 0] else "")
        ax.get_legend().remove()
    handles, texts = axes[len(names) - 1].get_legend_handles_labels()
    spare = axes[len(names):]
    for ax in spare:
        ax.axis("off")
    if spare:
        spare[0].legend(handles, texts, loc="center", fontsize="small", frameon=False)
    else:
        axes[-1].legend(handles, texts, fontsize="small", bbox_to_anchor=(1.02, 1),
                        loc="upper left", frameon=False)
    fig.suptitle(title or f"{BOUND_TITLE}, over training", fontsize="medium")
    fig.tight_layout()
    return fig


def plot_lambda_by_n(rows, labels: dict | None = None, title: str = "", ax=None):
    """lambda* against the number of pairs its head was fitted on, one line per method
    with intervals; rows: ``{"method", "pairs", "value", "lo", "hi"}`` (optional
    ``learned``: hollow when False). Returns the matplotlib Figure (a line marks 1)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        raise ValueError("no lambda* rows to plot.")
    if "learned" not in frame:
        frame = frame.assign(learned=True)
    labels = labels or {}
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    count = frame["method"].nunique()
    palette = sns.color_palette(n_colors=count)
    for i, (method, group) in enumerate(frame.groupby("method", sort=False)):
        group = group.sort_values("pairs").reset_index(drop=True)
        name = labels.get(method, method) + ("" if group["learned"].all() else " (not trained)")
        dodge = 1 + 0.04 * (i - (count - 1) / 2)   # side by side on the log axis
        _errorbar(ax, [k * dodge for k in group["pairs"]], group, _MARKERS[i % len(_MARKERS)],
                  palette[i], name, line=True)
    ax.axhline(1.0, color="black", lw=0.8, label="1")
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.set_xticks(sorted(frame["pairs"].unique()))
    ax.set_xticklabels([str(v) for v in sorted(frame["pairs"].unique())])
    ax.set(xlabel="natural-adversarial pairs the head is fitted on (log scale)",
           ylabel="lambda* = err_N(h') + err_A(h') (in [0, 2])", title=title)
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure


def _legend_outside(ax, title=None):
    ax.legend(title=title, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left",
              borderaxespad=0)


def _dodged_errorbars(frame: pd.DataFrame, columns, model_labels: dict, value: str,
                      shift: str | None = None, ax=None, style_order: list | None = None):
    """One marker per (model, column) of ``frame`` with its [``lo``, ``hi``] error bar,
    the models side by side within each column's slot; the plotted value is ``value``
    minus ``shift`` (a column of ``frame``) when given. ``style_order``: the models whose
    positions in it fix each model's colour and marker (default: ``frame``'s models), so
    that two panels of one figure agree. Returns the axes."""
    frame = frame[frame["column"].isin(columns)]
    models = list(dict.fromkeys(frame["model"]))
    style_order = style_order or models
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(columns) + 3, 4.2))
    width = 0.8 / max(len(models), 1)
    markers = "osD^vP*X"
    for i, model in enumerate(models):
        rows = frame[frame["model"] == model].set_index("column").reindex(columns)
        x = [j - 0.4 + width * (i + 0.5) for j in range(len(columns))]
        y = rows[value] - (rows[shift] if shift else 0)
        k = style_order.index(model)
        ax.errorbar(x, y, yerr=[rows[value] - rows["lo"], rows["hi"] - rows[value]],
                    fmt=markers[k % len(markers)], color=f"C{k % 10}", capsize=3,
                    label=model_labels.get(model, model))
    return ax


def _zoomed_limits(lo, hi, margin: float = 0.01) -> tuple[float, float]:
    """Axis limits around the fractions [min lo, max hi], widened by ``margin``, within [0, 1.05]."""
    return max(0.0, float(min(lo)) - margin), min(1.05, float(max(hi)) + margin)


def plot_accuracy_intervals(summary, columns, column_labels: dict, model_labels: dict,
                            title: str, ax=None, zoom: list | None = None):
    """Accuracy (fraction) per attack column and model, with the rows' intervals as error
    bars (Wilson 95% for one seed, mean +/- sd over seeds for several).

    Args:
        summary: a frame with ``model``, ``column``, ``value``, ``lo``, ``hi`` (fractions),
            e.g. ``experiments.summarise_seeds``.
        columns: the column keys on the x axis, in order; column_labels / model_labels:
            key -> what the reader sees.
        title: the figure's title (say the scale in it).
        zoom: models (e.g. the robust ones) drawn again in a second panel whose y axis spans
            only their intervals, so that gaps of a few points are visible; ignored with ``ax``.
    Returns: the matplotlib Figure (a line marks accuracy 1, the legend sits outside).
    """
    frame = summary if isinstance(summary, pd.DataFrame) else pd.DataFrame(summary)
    panels = [ax]
    if ax is None:
        _, panels = plt.subplots(1, 2 if zoom else 1, squeeze=False,
                                 figsize=((1.6 if zoom else 1.1) * len(columns) + 3, 4.4))
        panels = list(panels[0])
    order = list(dict.fromkeys(frame["model"]))
    for i, axis in enumerate(panels):
        part = frame if i == 0 else frame[frame["model"].isin(zoom)]
        _dodged_errorbars(part, columns, model_labels, "value", ax=axis, style_order=order)
        axis.axhline(1.0, color="black", lw=0.8)
        axis.set_xticks(range(len(columns)))
        axis.set_xticklabels([textwrap.fill(column_labels.get(c, c), 12) for c in columns], fontsize="small")
        shown = part[part["column"].isin(columns)]
        axis.set_ylim(*((-0.02, 1.05) if i == 0 else _zoomed_limits(shown["lo"], shown["hi"])))
        axis.set_title("every model" if len(panels) == 2 and i == 0 else
                       f"zoom: {', '.join(model_labels.get(m, m) for m in zoom)}" if i else "",
                       fontsize="medium")
    panels[0].set_ylabel("test accuracy (fraction)")
    panels[0].figure.suptitle(textwrap.fill(title, 110), fontsize="medium")
    handles, names = panels[0].get_legend_handles_labels()   # every model, one style each
    panels[-1].legend(handles, names, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left",
                      borderaxespad=0)
    panels[0].figure.tight_layout()
    return panels[0].figure


def plot_transfer_matrix(cells, model_labels: dict, title: str, ax=None):
    """The black-box table as a heatmap: rows the attacked model (target), columns the model
    the examples were crafted on (surrogate); each cell its accuracy and Wilson interval in
    percent; the diagonal (white box, empty in the paper) is left blank.

    Args:
        cells: ``TransferResult.to_frame()`` (target, surrogate, accuracy, lo, hi).
    Returns: the matplotlib Figure."""
    frame = cells if isinstance(cells, pd.DataFrame) else pd.DataFrame(cells)
    targets = list(dict.fromkeys(frame["target"]))
    surrogates = list(dict.fromkeys(frame["surrogate"]))
    grid = frame.pivot(index="target", columns="surrogate", values="accuracy").loc[targets, surrogates]
    text = frame.assign(t=[("" if pd.isna(a) else f"{100 * a:.1f}\n[{100 * lo:.1f}, {100 * hi:.1f}]")
                           for a, lo, hi in zip(frame["accuracy"], frame["lo"], frame["hi"])]
                        ).pivot(index="target", columns="surrogate", values="t").loc[targets, surrogates]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.5 * len(surrogates) + 2.5, 0.9 * len(targets) + 1.8))
    sns.heatmap(grid, annot=text.values, fmt="", vmin=0, vmax=1, cmap="viridis", ax=ax,
                cbar_kws={"label": "accuracy (fraction, 1 = every example resisted)"},
                annot_kws={"fontsize": "small"})
    ax.set_xticklabels([model_labels.get(s, s) for s in surrogates], rotation=20, ha="right")
    ax.set_yticklabels([model_labels.get(t, t) for t in targets], rotation=0)
    ax.set_xlabel("surrogate (examples crafted on)")
    ax.set_ylabel("target (attacked model)")
    ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure


def plot_paper_vs_ours(comparison, model_labels: dict, title: str, ax=None,
                       zoom_above: float = 0.8):
    """Our accuracy against the paper's, one point per (model, column) with our interval;
    the dashed diagonal is agreement, and lines mark accuracy 1 on both axes. A second
    panel zooms on the cells the paper puts above ``zoom_above`` (the robust models under
    attack crowd one corner of the full view); ignored with ``ax``.

    Args:
        comparison: ``experiments.compare_with_paper`` (``paper``, ``ours``, ``lo``, ``hi``
            in percent, ``model``).
    Returns: the matplotlib Figure."""
    frame = comparison if isinstance(comparison, pd.DataFrame) else pd.DataFrame(comparison)
    panels = [ax]
    if ax is None:
        _, panels = plt.subplots(1, 2, figsize=(11, 4.8))
    markers = "osD^vP*X"
    models = list(dict.fromkeys(frame["model"]))
    for j, axis in enumerate(panels):
        part = frame if j == 0 else frame[frame["paper"] >= 100 * zoom_above]
        for i, model in enumerate(models):
            rows = part[part["model"] == model]
            if len(rows):
                axis.errorbar(rows["paper"] / 100, rows["ours"] / 100,
                              yerr=[(rows["ours"] - rows["lo"]) / 100, (rows["hi"] - rows["ours"]) / 100],
                              fmt=markers[i % len(markers)], capsize=3, label=model_labels.get(model, model))
        axis.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="ours = paper")
        axis.axhline(1.0, color="black", lw=0.8)
        axis.axvline(1.0, color="black", lw=0.8)
        if j == 0 or not len(part):
            limits = {"xlim": (-0.02, 1.05), "ylim": (-0.02, 1.05)}
        else:
            limits = {"xlim": _zoomed_limits(part["paper"] / 100, part["paper"] / 100),
                      "ylim": _zoomed_limits(part["lo"] / 100, part["hi"] / 100)}
        axis.set(**limits, xlabel="the paper's accuracy (fraction)", ylabel="our accuracy (fraction)")
        axis.set_title("every cell" if j == 0 else f"zoom: the paper's cells above {zoom_above:.0%}",
                       fontsize="medium")
    panels[0].figure.suptitle(textwrap.fill(title, 100), fontsize="medium")
    _legend_outside(panels[-1])
    panels[0].figure.tight_layout()
    return panels[0].figure


def plot_difference_from_paper(comparison, columns, column_labels: dict, model_labels: dict,
                               title: str, ax=None):
    """Ours minus the paper's accuracy, in percentage points, per attack column and model,
    with our 95% interval moved by the same amount (0: agreement; a bar crossing 0: the
    paper's number lies inside our interval). Readable when every accuracy is near 100%.

    Args:
        comparison: ``experiments.compare_with_paper`` rows (``model``, ``column``,
            ``paper``, ``ours``, ``lo``, ``hi`` in percent).
        columns: the column keys on the x axis, in order; column_labels / model_labels:
            key -> what the reader sees.
    Returns: the matplotlib Figure."""
    frame = comparison if isinstance(comparison, pd.DataFrame) else pd.DataFrame(comparison)
    ax = _dodged_errorbars(frame, columns, model_labels, "ours", shift="paper", ax=ax)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([textwrap.fill(column_labels.get(c, c), 18) for c in columns], fontsize="small")
    ax.set_ylabel("ours - paper (percentage points)")
    ax.set_title(textwrap.fill(title, 90), fontsize="medium")
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure


def plot_eps_curves(curves, labels: dict, trained: dict, train_eps: float, title: str,
                    chance: float | None = 0.1, ax=None):
    """PGD accuracy against eps per model with Wilson intervals; models that have not
    learned are drawn dashed, hollow and named so.

    Args:
        curves: ``{model: {eps: cell}}`` (``value``, ``lo``, ``hi``: fractions), e.g. from
            ``experiments.pgd_accuracy_curve``.
        labels: model -> what the reader sees; trained: model -> learned (claims rule).
        train_eps: marked by a dotted line; chance: a dashed line (None: none).
    Returns: the matplotlib Figure (a line marks accuracy 1, the legend sits outside)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 4.2))
    palette = sns.color_palette(n_colors=len(curves))
    for i, (model, curve) in enumerate(curves.items()):
        eps = sorted(curve)
        value = [curve[e]["value"] for e in eps]
        err = [[v - curve[e]["lo"] for e, v in zip(eps, value)],
               [curve[e]["hi"] - v for e, v in zip(eps, value)]]
        ok = trained.get(model, True)
        ax.errorbar(eps, value, yerr=err, fmt=_MARKERS[i % len(_MARKERS)] + ("-" if ok else "--"),
                    capsize=3, color=palette[i], mfc=palette[i] if ok else "white",
                    label=labels.get(model, model) + ("" if ok else " (not trained)"))
    ax.axvline(train_eps, color="grey", ls=":", lw=1, label=f"training eps {train_eps:g}")
    if chance is not None:
        ax.axhline(chance, color="grey", ls="--", lw=0.8, label=f"chance ({chance:.0%})")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set(xlabel="L-inf eps of the PGD attack", ylabel="test accuracy (fraction)",
           ylim=(-0.02, 1.05), title=title)
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure


def plot_frontier(points, title: str, ax=None):
    """Natural against robust accuracy with Wilson intervals on both axes: each family
    (a swept hyperparameter) a line through its trained points, each point annotated
    with its value; single reference models as markers; points that have not learned
    hollow, off the lines, and named so in the legend.

    Args:
        points: rows ``{"family", "value" (None for a reference model), "label",
            "trained", "clean": cell, "worst_case": cell}``.
    Returns: the matplotlib Figure (lines mark accuracy 1 on both axes)."""
    frame = pd.DataFrame(list(points))
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 5))
    families = list(dict.fromkeys(frame["family"]))
    palette = sns.color_palette(n_colors=len(families))
    hollow_named = False
    for i, family in enumerate(families):
        group = frame[frame["family"] == family]
        color, marker = palette[i], _MARKERS[i % len(_MARKERS)]
        for j, r in enumerate(group.itertuples()):
            c, w = r.clean, r.worst_case
            swept = r.value is not None and not pd.isna(r.value)
            ax.errorbar(c["value"], w["value"], xerr=[[c["value"] - c["lo"]], [c["hi"] - c["value"]]],
                        yerr=[[w["value"] - w["lo"]], [w["hi"] - w["value"]]], fmt=marker,
                        color=color, mfc=color if r.trained else "white", capsize=2, ms=6,
                        zorder=3 if swept else 2, alpha=1.0 if swept else 0.6)
            if swept:
                spread = 13 * (j - (len(group) - 1) / 2)   # near-equal points keep apart labels
                ax.annotate(f"{r.value:g}", (c["value"], w["value"]), fontsize=9, color=color,
                            xytext=(-34 if i % 2 == 0 else 34, spread - 18 if i % 2 == 0 else spread + 18),
                            textcoords="offset points", ha="center", va="center",
                            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6})
            if not r.trained and not hollow_named:
                ax.plot([], [], marker, mfc="white", color="grey", label="hollow: not trained")
                hollow_named = True
        learned = group[group["trained"]].sort_values("value", na_position="last")
        if learned["value"].notna().any():
            ax.plot([r["value"] for r in learned["clean"]], [r["value"] for r in learned["worst_case"]],
                    color=color, lw=1)
        ax.plot([], [], marker + ("-" if group["value"].notna().any() else ""), color=color,
                label=family)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axvline(1.0, color="black", lw=0.8)
    low = min(min(r["lo"] for r in frame["clean"]), min(r["lo"] for r in frame["worst_case"]))
    start = max(-0.02, low - 0.08)
    ax.set(xlabel="natural accuracy (fraction)", ylabel="robust accuracy, worst case (fraction)",
           xlim=(start, 1.03), ylim=(start, 1.03), title=title)
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure


def _lr_drops(frame: pd.DataFrame) -> list[int]:
    """The own-stage epochs whose lr is below the previous epoch's (first seed, any model)."""
    if "lr" not in frame:
        return []
    own = frame[frame.get("stage", "own") == "own"] if "stage" in frame else frame
    lrs = own.drop_duplicates("epoch").set_index("epoch")["lr"].sort_index()
    return [int(e) for e, prev, now in zip(lrs.index[1:], lrs.values[:-1], lrs.values[1:]) if now < prev]


def _kept_epoch(rows: pd.DataFrame) -> int | None:
    """The epoch training keeps (highest validation PGD, ties by natural accuracy) among a
    model's own-stage epochs; None when it has no PGD rows."""
    own = rows[rows["stage"] == "own"] if "stage" in rows else rows
    pgd = own[own["split"] == "PGD"].set_index("epoch")["value"]
    if pgd.empty:
        return None
    natural = own[own["split"] == "natural"].set_index("epoch")["value"]
    return int(max(pgd.index, key=lambda e: (pgd[e], natural.get(e, 0.0))))


def plot_learning_curves(curves, model_labels: dict, title: str):
    """Validation accuracy after every epoch, natural and under the run's validation PGD,
    one line per model (the first seed when there are several) with Wilson 95% error bars;
    epochs of a shared pre-training (``stage`` "pre-training") left of a dotted line.

    Args:
        curves: ``experiments.learning_curves(runs)`` (method, seed, epoch, split, stage,
            value, lo, hi as fractions).
        title: the figure's title (say the scale and the validation attack in it).
    Returns: the matplotlib Figure (two panels sharing the y axis)."""
    frame = curves if isinstance(curves, pd.DataFrame) else pd.DataFrame(curves)
    frame = frame[frame["seed"] == frame["seed"].min()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    pre = frame[frame["stage"] == "pre-training"]["epoch"] if "stage" in frame else pd.Series(dtype=float)
    for ax, split in zip(axes, ("natural", "PGD")):
        for i, (method, rows) in enumerate(frame[frame["split"] == split].groupby("method", sort=False)):
            rows = rows.sort_values("epoch")
            ax.errorbar(rows["epoch"] + 0.04 * (i - 2), rows["value"],
                        yerr=[rows["value"] - rows["lo"], rows["hi"] - rows["value"]],
                        marker=_MARKERS[i % len(_MARKERS)], ms=4, capsize=2, lw=1,
                        label=model_labels.get(method, method))
        if len(pre):
            ax.axvline(pre.max() + 0.5, color="grey", ls=":", lw=1)
        for epoch in _lr_drops(frame):
            ax.axvline(epoch - 0.5, color="tab:red", ls="--", lw=0.8)
        for i, (method, rows) in enumerate(frame[frame["split"] == split].groupby("method", sort=False)):
            kept = _kept_epoch(frame[frame["method"] == method])
            if kept is not None:
                at = rows[rows["epoch"] == kept]
                ax.scatter(at["epoch"] + 0.04 * (i - 2), at["value"], s=140, facecolors="none",
                           edgecolors="black", lw=1.2, zorder=4,
                           label="kept epoch (best validation PGD)" if i == 0 else None)
        ax.set_title(f"validation accuracy, {split}", fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_xticks(sorted(frame["epoch"].unique()))
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("accuracy (fraction)")
    _legend_outside(axes[1])
    fig.suptitle(textwrap.fill(title, 110), fontsize="medium")
    notes = (["left of the dotted line: the shared pre-training"] if len(pre) else []) + \
        (["red dashes: the lr is lowered before that epoch"] if _lr_drops(frame) else [])
    if notes:
        fig.text(0.01, 0.01, "; ".join(notes), fontsize="small", color="dimgrey")
    fig.tight_layout(rect=(0, 0.04 if notes else 0, 1, 1))
    return fig
