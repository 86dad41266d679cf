"""The sentences each notebook says about its numbers, computed from its metrics.

A notebook shows ``describe(name, metrics)`` as its conclusion and stores the sentences in
its ``metrics.json`` under ``"claims"``; ``tests/test_notebook_claims.py`` recomputes them
from the committed metrics and checks the notebook shows exactly those, so prose and
numbers cannot drift apart. Each function picks its words from the numbers.
"""
from __future__ import annotations

__all__ = ["describe", "DESCRIBERS"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def theory_toy(m: dict) -> list[str]:
    curve, terms = m["tradeoff"], {r["representation"]: r for r in m["bound_terms"]}
    best_nat = max(curve, key=lambda r: r["nat_exact"])
    best_rob = max(curve, key=lambda r: r["rob_exact"])
    out = []
    if best_nat["w_nonrobust_share"] != best_rob["w_nonrobust_share"]:
        out.append(f"The trade-off is real: the most accurate linear classifier (non-robust share "
                   f"{best_nat['w_nonrobust_share']:.2f}, natural {_pct(best_nat['nat_exact'])}) is not "
                   f"the most robust one (share {best_rob['w_nonrobust_share']:.2f}, robust "
                   f"{_pct(best_rob['rob_exact'])} against {_pct(best_nat['rob_exact'])}).")
    else:
        out.append("At these parameters one classifier is both the most accurate and the most robust.")
    inside = sum(r["nat_sim_lo"] <= r["nat_exact"] <= r["nat_sim_hi"] and
                 r["rob_sim_lo"] <= r["rob_exact"] <= r["rob_sim_hi"] for r in curve)
    out.append(f"The simulation agrees with the closed forms: {inside} of {len(curve)} classifiers "
               "have both exact accuracies inside the 95% intervals of the simulation.")
    holds = [name for name, r in terms.items() if r["holds"]]
    out.append(f"The estimated bound holds for {len(holds)} of {len(terms)} representations "
               f"({', '.join(holds) or 'none'}).")
    for name, r in terms.items():
        gap = r["err_adv_exact"] - r["err_nat_exact"]
        tight = "tight" if r["bound_exact"] - r["err_adv_exact"] < 0.1 else "loose"
        out.append(f"{name}: robustness gap {gap:+.3f}, divergence {r['divergence_exact']:.2f}, "
                   f"lambda* {r['lambda_star_exact']:.3f}: the exact bound {r['bound_exact']:.3f} is "
                   f"{tight} against err_A {r['err_adv_exact']:.3f}.")
    return out


DESCRIBERS = {"01_theory_toy_tradeoff": theory_toy}


def describe(name: str, metrics: dict) -> list[str]:
    """The conclusion sentences of notebook ``name`` for its ``metrics``."""
    if name not in DESCRIBERS:
        raise KeyError(f"no describer for notebook {name!r}; known: {sorted(DESCRIBERS)}.")
    return DESCRIBERS[name](metrics)
