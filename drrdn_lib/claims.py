"""The sentences each notebook says about its numbers, computed from its metrics.

A notebook shows ``describe(name, metrics)`` as its conclusion and stores the sentences in
its ``metrics.json`` under ``"claims"``; ``tests/test_notebook_claims.py`` recomputes them
from the committed metrics and checks the notebook shows exactly those, so prose and
numbers cannot drift apart. Each function picks its words from the numbers.
"""
from __future__ import annotations

from .experiments import FULL_DRRDN

__all__ = ["describe", "DESCRIBERS"]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _vacuous(row: dict, key: str = "bound") -> bool:
    """A bound on an error above 1 says nothing."""
    return row[key] > 1.0


def _holding(rows: dict) -> tuple[list[str], list[str], list[str]]:
    """(holds and non-vacuous, vacuous, fails) names of ``rows`` {name: row}."""
    vacuous = [k for k, r in rows.items() if _vacuous(r)]
    holds = [k for k, r in rows.items() if r["holds"] and k not in vacuous]
    fails = [k for k, r in rows.items() if not r["holds"] and k not in vacuous]
    return holds, vacuous, fails


def _holding_sentence(rows: dict, what: str) -> str:
    holds, vacuous, fails = _holding(rows)
    return (f"The estimated bound holds and is below 1 for {len(holds)} of {len(rows)} {what}"
            f" ({', '.join(holds) or 'none'}); it is vacuous (above 1) for {len(vacuous)}"
            f"{' (' + ', '.join(vacuous) + ')' if vacuous else ''} and fails for {len(fails)}"
            f"{' (' + ', '.join(fails) + ')' if fails else ''}.")


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
    out.append(_holding_sentence(terms, "representations"))
    for name, r in terms.items():
        gap = r["err_adv_exact"] - r["err_nat_exact"]
        tight = ("vacuous (above 1)" if _vacuous(r, "bound_exact") else
                 "tight" if r["bound_exact"] - r["err_adv_exact"] < 0.1 else "loose")
        out.append(f"{name}: robustness gap {gap:+.3f}, divergence {r['divergence_exact']:.2f}, "
                   f"lambda* {r['lambda_star_exact']:.3f}: the exact bound {r['bound_exact']:.3f} is "
                   f"{tight} against err_A {r['err_adv_exact']:.3f}.")
    return out


def _robustness_sentences(acc: dict, baseline: str = "standard") -> list[str]:
    """Who is most robust / most accurate, and whether adversarial training helped."""
    out = []
    most_robust = max(acc, key=lambda m: acc[m]["worst_case"])
    most_accurate = max(acc, key=lambda m: acc[m]["clean"])
    out.append(f"Most robust (worst case over all attacks): {most_robust} at "
               f"{_pct(acc[most_robust]['worst_case'])}; most accurate on clean inputs: "
               f"{most_accurate} at {_pct(acc[most_accurate]['clean'])}.")
    if baseline in acc:
        for m in acc:
            if m == baseline:
                continue
            delta = acc[m]["worst_case"] - acc[baseline]["worst_case"]
            verdict = "more" if delta > 0 else "not more"
            out.append(f"{m} is {verdict} robust than {baseline} training "
                       f"({_pct(acc[m]['worst_case'])} vs {_pct(acc[baseline]['worst_case'])}; "
                       f"clean {_pct(acc[m]['clean'])} vs {_pct(acc[baseline]['clean'])}).")
    return out


def _bound_sentence(row: dict, who: str) -> str:
    verdict = ("is vacuous (above 1, it says nothing)" if _vacuous(row) else
               "holds" if row["holds"] else "does NOT hold")
    return (f"On {who}, the estimated bound {verdict}: err_A {row['err_adv']:.3f} against "
            f"err_N {row['err_nat']:.3f} + divergence/2 {row['divergence'] / 2:.3f} + lambda* "
            f"{row['lambda_star']:.3f} = {row['bound']:.3f}.")


def quickstart(m: dict) -> list[str]:
    return _robustness_sentences(m["accuracy"]) + [_bound_sentence(m["bound_drrdn"], "DRRDN's z_s")]


def main_results(m: dict) -> list[str]:
    acc = m["accuracy"]
    out = _robustness_sentences(acc)
    order = [k for k in m["parameters"].get("methods", []) if k in acc] or list(acc)  # JSON may reorder keys
    gaps = {k: acc[k]["clean"] - acc[k]["worst_case"] for k in order}
    smallest = min(gaps, key=gaps.get)
    out.append(f"Smallest accuracy-robustness gap: {smallest} ({_pct(gaps[smallest])} points); "
               + ", ".join(f"{k} {_pct(v)}" for k, v in gaps.items()) + ".")
    return out


def ablation(m: dict) -> list[str]:
    acc = m["accuracy"]
    full = acc[FULL_DRRDN]
    out = [f"Full DRRDN: clean {_pct(full['clean'])}, robust {_pct(full['worst_case'])}."]
    for variant, a in acc.items():
        if variant == FULL_DRRDN:
            continue
        delta = a["worst_case"] - full["worst_case"]
        word = "raises" if delta > 0 else ("lowers" if delta < 0 else "leaves")
        out.append(f"{variant} {word} robust accuracy ({_pct(a['worst_case'])}, {100 * delta:+.1f} points; "
                   f"clean {_pct(a['clean'])}).")
    return out


def bound_check(m: dict) -> list[str]:
    terms = m["by_method"]
    rows = {k: {**terms[k], "holds": m["holds"][k]} for k in terms}
    smallest_gap = min(terms, key=lambda k: terms[k]["gap"])
    smallest_div = min(terms, key=lambda k: terms[k]["divergence"])
    out = [_holding_sentence(rows, "methods"),
           f"Smallest robustness gap err_A - err_N: {smallest_gap} ({terms[smallest_gap]['gap']:.3f}); "
           f"smallest divergence of natural and adversarial representations: {smallest_div} "
           f"({terms[smallest_div]['divergence']:.3f}).",
           ("The method with the smallest gap also has the most aligned representation, as the bound suggests."
            if smallest_gap == smallest_div else
            "The method with the smallest gap is not the one with the most aligned representation.")]
    # R_rob = R_nat + R_bdy holds for any two boolean vectors: a unit test
    # (tests/test_bounds.py), not a finding
    unkept = m.get("runs_without_kept_weights", [])
    if unkept:
        out.append(f"Left out of the terms over training: {', '.join(unkept)} (cached runs that kept "
                   "no per-epoch weights; delete them from results/runs to retrain).")
    return out + _over_training(m.get("over_epochs", []), m.get("gap_divergence_spearman"))


def _over_training(rows: list[dict], spearman: float | None) -> list[str]:
    """How the bound's terms moved between the first and the last kept epoch (seed means)."""
    if not rows:
        return ["No run kept per-epoch weights (keep_every), so the terms over training are not shown."]
    holds = sum(r["holds"] and not _vacuous(r) for r in rows)
    vacuous = sum(_vacuous(r) for r in rows)
    out = [f"Over training, the estimated bound holds and is below 1 at {holds} of {len(rows)} "
           f"(method, seed, epoch) estimates; it is vacuous (above 1) at {vacuous}."]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        first, last = min(r["epoch"] for r in mine), max(r["epoch"] for r in mine)

        def mean(key, epoch):
            values = [r[key] for r in mine if r["epoch"] == epoch]
            return sum(values) / len(values)
        out.append(f"{method}, epoch {first} -> {last}: err_N {mean('err_nat', first):.3f} -> "
                   f"{mean('err_nat', last):.3f}, gap {mean('gap', first):.3f} -> {mean('gap', last):.3f}, "
                   f"divergence {mean('divergence', first):.3f} -> {mean('divergence', last):.3f}.")
    if spearman is not None:
        link = ("a larger divergence goes with a larger gap, as the bound suggests" if spearman > 0.3 else
                "a larger divergence goes with a smaller gap: the bound caps the gap by divergence/2 + "
                "lambda*, it does not make the gap follow the divergence" if spearman < -0.3 else
                "the two are not clearly related")
        out.append(f"Across all methods and epochs, the rank correlation of the gap with the "
                   f"divergence is {spearman:+.2f}: {link}.")
    return out


def _compare(a: float, b: float, if_larger: str, otherwise: str, margin: float = 0.05) -> str:
    """``if_larger`` when ``a`` exceeds ``b`` by more than ``margin`` (5 points), else ``otherwise``."""
    return if_larger if a - b > margin else otherwise


def representations(m: dict) -> list[str]:
    parts = {r["part"]: r for r in m["summary"]}
    zs, zi = parts["z_s"], parts["z_i"]
    out = [f"A domain classifier (MLP) tells natural from adversarial at {_pct(zs['domain_acc_mlp'])} on z_s "
           f"and {_pct(zi['domain_acc_mlp'])} on z_i (50% = indistinguishable): "
           + _compare(zi["domain_acc_mlp"], zs["domain_acc_mlp"], "z_i carries more domain information, as DRRDN intends.",
                      "z_i does not carry clearly more domain information than z_s here.")]
    out.append(f"A linear probe reads the class from adversarial inputs at {_pct(zs['label_acc_adv'])} on z_s and "
               f"{_pct(zi['label_acc_adv'])} on z_i: "
               + _compare(zs["label_acc_adv"], zi["label_acc_adv"], "label information sits mostly in z_s.",
                          "z_i keeps as much label information as z_s: the class has not been removed from it."))
    z = parts["z"]
    out.append(f"The decoder reconstructs z with relative error {z['rec_error_nat']:.3f} (natural) and "
               f"{z['rec_error_adv']:.3f} (adversarial).")
    return out


def sensitivity(m: dict) -> list[str]:
    by_method: dict[str, list] = {}
    for row in m["eps_curve"]:
        by_method.setdefault(row["method"], []).append((row["eps"], row["accuracy"]))
    monotone = [k for k, pts in by_method.items()
                if all(b[1] <= a[1] + 0.02 for a, b in zip(sorted(pts), sorted(pts)[1:]))]
    out = [f"Accuracy falls (within 2 points) as eps grows for {len(monotone)} of {len(by_method)} methods"
           + (f"; not for {', '.join(k for k in by_method if k not in monotone)}." if len(monotone) < len(by_method) else ".")]
    largest = max(r["eps"] for r in m["eps_curve"])
    at_largest = {r["method"]: r["accuracy"] for r in m["eps_curve"] if r["eps"] == largest}
    out.append(f"At eps {largest:g}: " + ", ".join(f"{k} {_pct(v)}" for k, v in at_largest.items()) + ".")
    for family in sorted({r["family"] for r in m["frontier"]}):
        pts = sorted((r for r in m["frontier"] if r["family"] == family), key=lambda r: r["value"])
        out.append(f"{family}: " + "; ".join(f"{r['value']:g} -> clean {_pct(r['clean'])}, robust {_pct(r['robust'])}"
                                                for r in pts) + ".")
    return out


DESCRIBERS = {"06_sensitivity": sensitivity, "05_representations": representations, "03_ablation": ablation, "04_bound_check": bound_check, "02_main_results": main_results, "00_quickstart": quickstart, "01_theory_toy_tradeoff": theory_toy}


def describe(name: str, metrics: dict) -> list[str]:
    """The conclusion sentences of notebook ``name`` for its ``metrics``."""
    if name not in DESCRIBERS:
        raise KeyError(f"no describer for notebook {name!r}; known: {sorted(DESCRIBERS)}.")
    return DESCRIBERS[name](metrics)
