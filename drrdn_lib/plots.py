"""Figures for the notebooks. Each returns the matplotlib Figure; the caller saves it."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

BOUND_TERMS = {"err_nat": "err_N", "err_adv": "err_A (observed)", "divergence": "divergence / 2",
               "lambda_star": "lambda*", "bound": "bound"}


def _bound_frame(records, x: str) -> pd.DataFrame:
    """Long table (x, term, value) from rows holding x and the :data:`BOUND_TERMS` keys."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    missing = [c for c in (x, *BOUND_TERMS) if c not in frame.columns]
    if frame.empty or missing:
        raise ValueError(f"records lack columns {missing} (have {sorted(frame.columns)}); pass "
                         f"BoundReport.to_record() rows with an added {x!r} entry.")
    frame = frame.assign(divergence=frame["divergence"] / 2)
    long = frame.melt(id_vars=[x], value_vars=list(BOUND_TERMS), var_name="term",
                      value_name="value")
    return long.assign(term=long["term"].map(BOUND_TERMS))


def plot_bound_terms(records, x: str = "method", ax=None):
    """err_N, err_A, divergence / 2, lambda* and the bound per method or per epoch.

    Args:
        records: a pandas DataFrame or a list of dicts, one row per measurement, e.g.
            ``{**report.to_record("mlp"), "method": "drrdn", "seed": 0}``; needs the columns
            x, err_nat, err_adv, divergence (the full proxy A-distance, halved here),
            lambda_star, bound. Several rows per x (seeds) are averaged, error bars 1 sd.
        x: the column on the horizontal axis: ``"method"`` (bars) or a numeric one such as
            ``"epoch"`` (lines).
        ax: an existing matplotlib Axes, or None for a new figure.

    Returns:
        the matplotlib Figure. Values are fractions (errors in [0, 1], lambda* and the bound
        up to 2).
    """
    long = _bound_frame(records, x)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    if pd.api.types.is_numeric_dtype(long[x]):
        sns.lineplot(data=long, x=x, y="value", hue="term", style="term", markers=True,
                     errorbar="sd", ax=ax)
    else:
        sns.barplot(data=long, x=x, y="value", hue="term", errorbar="sd", ax=ax)
    ax.axhline(1.0, color="black", lw=0.8, label="1: a bound above it is vacuous")
    ax.set_ylabel("fraction (bound terms)")
    ax.set_title("err_A <= err_N + divergence / 2 + lambda*")
    ax.legend(title=None, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)
    return ax.figure


def plot_bound_over_training(records, panel: str = "method", x: str = "epoch"):
    """:func:`plot_bound_terms` against ``x`` (epochs), one panel per value of ``panel``
    (methods), sharing the y axis. ``records``: rows as for plot_bound_terms plus the
    ``panel`` and ``x`` columns. Returns the matplotlib Figure."""
    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if frame.empty or panel not in frame.columns:
        raise ValueError(f"records need a {panel!r} column and at least one row.")
    names = list(dict.fromkeys(frame[panel]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 1, 3.6), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes[0], names):
        plot_bound_terms(frame[frame[panel] == name], x=x, ax=ax)
        ax.set_title(str(name))
        if ax is not axes[0][-1]:
            ax.get_legend().remove()
    axes[0][-1].legend(title=None, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle("err_A <= err_N + divergence / 2 + lambda*, over training")
    fig.tight_layout()
    return fig


def _legend_outside(ax, title=None):
    ax.legend(title=title, fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left",
              borderaxespad=0)


def plot_accuracy_intervals(summary, columns, column_labels: dict, model_labels: dict,
                            title: str, ax=None):
    """Accuracy (fraction) per attack column and model, with the rows' intervals as error
    bars (Wilson 95% for one seed, mean +/- sd over seeds for several).

    Args:
        summary: a frame with ``model``, ``column``, ``value``, ``lo``, ``hi`` (fractions),
            e.g. ``experiments.summarise_seeds``.
        columns: the column keys on the x axis, in order; column_labels / model_labels:
            key -> what the reader sees.
        title: the figure's title (say the scale in it).
    Returns: the matplotlib Figure (a line marks accuracy 1, the legend sits outside).
    """
    frame = summary[summary["column"].isin(columns)]
    models = list(dict.fromkeys(frame["model"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(columns) + 3, 4.2))
    width = 0.8 / max(len(models), 1)
    markers = "osD^vP*X"
    for i, model in enumerate(models):
        rows = frame[frame["model"] == model].set_index("column").reindex(columns)
        x = [j - 0.4 + width * (i + 0.5) for j in range(len(columns))]
        ax.errorbar(x, rows["value"], yerr=[rows["value"] - rows["lo"], rows["hi"] - rows["value"]],
                    fmt=markers[i % len(markers)], capsize=3, label=model_labels.get(model, model))
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([textwrap.fill(column_labels.get(c, c), 18) for c in columns], fontsize="small")
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_title(title)
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure


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


def plot_paper_vs_ours(comparison, model_labels: dict, title: str, ax=None):
    """Our accuracy against the paper's, one point per (model, column) with our interval;
    the dashed diagonal is agreement, and lines mark accuracy 1 on both axes.

    Args:
        comparison: ``experiments.compare_with_paper`` (``paper``, ``ours``, ``lo``, ``hi``
            in percent, ``model``).
    Returns: the matplotlib Figure."""
    frame = comparison if isinstance(comparison, pd.DataFrame) else pd.DataFrame(comparison)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.6))
    markers = "osD^vP*X"
    for i, model in enumerate(dict.fromkeys(frame["model"])):
        rows = frame[frame["model"] == model]
        ax.errorbar(rows["paper"] / 100, rows["ours"] / 100,
                    yerr=[(rows["ours"] - rows["lo"]) / 100, (rows["hi"] - rows["ours"]) / 100],
                    fmt=markers[i % len(markers)], capsize=3, label=model_labels.get(model, model))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="ours = paper")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set(xlim=(-0.02, 1.05), ylim=(-0.02, 1.05), xlabel="the paper's accuracy (fraction)",
           ylabel="our accuracy (fraction)", title=title)
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure


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
    frame = frame[frame["column"].isin(columns)]
    models = list(dict.fromkeys(frame["model"]))
    if ax is None:
        _, ax = plt.subplots(figsize=(1.1 * len(columns) + 3, 4.2))
    width = 0.8 / max(len(models), 1)
    markers = "osD^vP*X"
    for i, model in enumerate(models):
        rows = frame[frame["model"] == model].set_index("column").reindex(columns)
        x = [j - 0.4 + width * (i + 0.5) for j in range(len(columns))]
        diff = rows["ours"] - rows["paper"]
        ax.errorbar(x, diff, yerr=[rows["ours"] - rows["lo"], rows["hi"] - rows["ours"]],
                    fmt=markers[i % len(markers)], capsize=3, label=model_labels.get(model, model))
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([textwrap.fill(column_labels.get(c, c), 18) for c in columns], fontsize="small")
    ax.set_ylabel("ours - paper (percentage points)")
    ax.set_title(title)
    _legend_outside(ax)
    ax.figure.tight_layout()
    return ax.figure
