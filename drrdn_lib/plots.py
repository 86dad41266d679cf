"""Figures for the notebooks. Each returns the matplotlib Figure; the caller saves it."""
from __future__ import annotations

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
    ax.set_ylabel("fraction (bound terms)")
    ax.set_title("err_A <= err_N + divergence / 2 + lambda*")
    ax.legend(title=None, fontsize="small")
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
