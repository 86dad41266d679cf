"""The sentences each notebook says about its numbers, computed from its metrics.

A notebook shows ``describe(name, metrics)`` as its conclusion and stores the sentences in
its ``metrics.json`` under ``"claims"``; ``tests/test_notebook_claims.py`` recomputes them
from the committed metrics and checks the notebook shows exactly those, so prose and
numbers cannot drift apart. Each function picks its words from the numbers.
"""
from __future__ import annotations

from .experiments import FULL_DRRDN, attack_label
from .stats import ALPHA, accuracy_cell, binomial_ci, format_p, paired_words

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
    out.append(_marginal_alignment_lesson(terms))
    for name, r in terms.items():
        gap = r["err_adv_exact"] - r["err_nat_exact"]
        tight = ("vacuous (above 1)" if _vacuous(r, "bound_exact") else
                 "tight" if r["bound_exact"] - r["err_adv_exact"] < 0.1 else "loose")
        out.append(f"{name}: robustness gap {gap:+.3f}, divergence {r['divergence_exact']:.2f}, "
                   f"lambda* {r['lambda_star_exact']:.3f}: the exact bound {r['bound_exact']:.3f} is "
                   f"{tight} against err_A {r['err_adv_exact']:.3f}.")
    return out


def _marginal_alignment_lesson(terms: dict) -> str:
    """What Proposition 1 buys, on the toy's exact terms: the most aligned representation
    (smallest divergence of the natural and adversarial marginals) against the most robust."""
    aligned = min(terms, key=lambda k: terms[k]["divergence_exact"])
    robust = min(terms, key=lambda k: terms[k]["err_adv_exact"])
    a, b = terms[aligned], terms[robust]
    if a["err_adv_exact"] - b["err_adv_exact"] <= 0.05:
        return (f"Here the most aligned representation ({aligned}, divergence "
                f"{a['divergence_exact']:.2f}) is also among the most robust.")
    return (f"Marginal alignment is not robustness: on the {aligned} representation the natural "
            f"and adversarial distributions coincide (divergence {a['divergence_exact']:.2f}, the "
            f"alignment Proposition 1 promises for z_s) yet robust accuracy is "
            f"{_pct(1 - a['err_adv_exact'])}, while the {robust} representation, divergence "
            f"{b['divergence_exact']:.2f}, keeps {_pct(1 - b['err_adv_exact'])}; what separates them "
            f"is the joint-error term lambda* ({a['lambda_star_exact']:.3f} against "
            f"{b['lambda_star_exact']:.3f}), i.e. whether the classes stay apart across domains "
            "(class-conditional alignment), not the marginal divergence.")


def _official_cell(cell: dict) -> dict:
    """An ``official_eval.accuracy_cell`` (``accuracy``, ``lo``, ``hi``, ``n``) as :func:`_acc` reads it."""
    return {"kind": "wilson", "value": cell["accuracy"], "lo": cell["lo"], "hi": cell["hi"], "n": cell["n"]}


def _inside(value: float, cell: dict) -> bool:
    return cell["lo"] <= value <= cell["hi"]


def _zoo_model_sentence(name: str, m: dict) -> str:
    """One zoo model: its accuracies, where the paper's row falls, and whether its card agrees."""
    info, acc = m["models"][name], m["accuracy"][name]
    line = (f"{info['label']}: natural {_acc(_official_cell(acc['clean']))}, PGD-40 {_acc(_official_cell(acc['pgd40']))}, "
            f"worst case {_acc(_official_cell(acc['worst_case']))}")
    rows = [r for r in m["comparison"] if r["model"] == name]
    if info["paper_row"] is None or not rows:
        line += "; the paper has no row for it"
    else:
        outside = [r for r in rows if not r["paper_inside"]]
        line += (f"; the paper's {info['paper_row']} number lies inside our interval for "
                 f"{len(rows) - len(outside)} of {len(rows)} columns")
        if outside:
            line += " (outside: " + "; ".join(
                f"{attack_label(r['column'])} paper {r['paper']:.2f}%, ours {r['ours']:.1f}%"
                for r in outside) + ")"
    card = [k for k in ("clean", "pgd40") if not _inside(info["card"][k], acc[k])]
    line += (f"; its card ({info['card_n']:,} digits) is "
             + ("consistent with this run on natural and PGD-40" if not card else
                "NOT consistent with this run on " + " and ".join(attack_label(k) for k in card)
                + " (its value lies outside our interval: rerun tests/test_zoo.py)"))
    return line + "."


def _zoo_claim_sentence(m: dict) -> str | None:
    """The paper's claim, DRRDN above Madry and TRADES under PGD-40, on the zoo's models: by
    exact McNemar on the same digits (``m["paired"]``), by intervals only in older metrics."""
    by_method = {}
    for name in m["zoo"]:
        by_method.setdefault(m["models"][name]["method"], name)
    if "drrdn" not in by_method or not {"pgd_at", "trades"} & set(by_method):
        return None
    drrdn = _official_cell(m["accuracy"][by_method["drrdn"]]["pgd40"])
    parts = []
    for k in ("pgd_at", "trades"):
        if k not in by_method:
            continue
        other, label = by_method[k], m["models"][by_method[k]]["method_label"]
        row = _paired(m, by_method["drrdn"], other, what="pgd40") if "paired" in m else None
        if row is None:
            parts.append(f"{_relation(drrdn, _official_cell(m['accuracy'][other]['pgd40']))} {label}'s")
            continue
        direction = _paired_direction(row)
        parts.append(f"{'not distinguishable from' if direction is None else direction + ' than'} "
                     f"{label}'s {_acc(_official_cell(m['accuracy'][other]['pgd40']))}: the two "
                     f"models {'are ' if direction is None else ''}{paired_words(row)}")
    from .paper_numbers import paper_value
    paper = {row: paper_value("table1", row, "pgd40") for row in ("DRRDN", "Madry", "TRADES")}
    return (f"The paper's claim (DRRDN {paper['DRRDN']:.2f}% under PGD-40, above Madry "
            f"{paper['Madry']:.2f}% and TRADES {paper['TRADES']:.2f}%), on these trained models "
            f"(one run each: models, not methods): DRRDN's PGD-40 accuracy {_acc(drrdn)} is "
            + "; and ".join(parts) + ".")


def quickstart(m: dict) -> list[str]:
    out = []
    if not m["zoo"]:
        out.append("No zoo models are installed (zoo/ holds no cards), so this run compares nothing "
                   "with the paper's Table 1; add finished runs with scripts/add_to_zoo.py and rebuild "
                   "this notebook.")
    else:
        n = m["n_test"]
        lo, hi = binomial_ci(round(0.97 * n), n)
        out.append(f"{len(m['zoo'])} zoo model{'s' if len(m['zoo']) != 1 else ''}, each on {n:,} official MNIST test digits "
                   f"(class-stratified, seed {m['parameters']['seed']}) under the paper's attacks at eps "
                   f"0.3 in float32: every accuracy carries a 95% Wilson interval, {100 * (hi - lo):.1f} "
                   "points wide at 97% with this n, so differences from the paper smaller than that "
                   "are not resolved.")
        out += [_zoo_model_sentence(name, m) for name in m["zoo"]]
        claim = _zoo_claim_sentence(m)
        if claim:
            out.append(claim)
    if m["autoattack"]:
        first = next(iter(m["autoattack"].values()))
        out.append(f"{first['label']} on {first['n']:,} of the digits: " + "; ".join(
            f"{m['models'][k]['label']} {_acc(_official_cell(v))}" for k, v in m["autoattack"].items())
            + ("." if first["standard"] else
               ": a reduced AutoAttack, weaker than the standard one, so not AutoAttack's number."))
    live = m["live"]
    out.append(f"Live training shows the API, not a result: a {live['method']} {live['model']} trained "
               f"for {live['epochs']} epoch{'s' if live['epochs'] != 1 else ''} on "
               f"{live['train_examples']:,} {live['dataset']} "
               f"training digits reaches {_acc(_official_cell(live['test_clean']))} clean accuracy on "
               f"{live['test_clean']['n']:,} official test digits it never saw.")
    return out


#: "Not trained at this scale": clean accuracy below ``min_clean``, or more than
#: ``max_below_standard`` below the Standard model's (fractions). Such a model is reported
#: as not trained and left out of every ranking and comparison.
NOT_TRAINED_RULE = {"min_clean": 0.5, "max_below_standard": 0.30}


def not_trained_rule_text(rule: dict = NOT_TRAINED_RULE, reference: str = "the Standard model's") -> str:
    """The rule in words."""
    return (f"clean accuracy below {100 * rule['min_clean']:.0f}%, or more than "
            f"{100 * rule['max_below_standard']:.0f} points below {reference}")


def trained_models(clean: dict[str, float], standard: str = "standard",
                   rule: dict = NOT_TRAINED_RULE) -> dict[str, bool]:
    """model -> True if it learned by ``rule`` (``clean``: model -> clean accuracy in [0, 1];
    the relative part applies when ``standard`` is present and itself learned)."""
    ref = clean.get(standard)
    if ref is not None and ref < rule["min_clean"]:
        ref = None
    return {k: v >= rule["min_clean"] and (ref is None or v >= ref - rule["max_below_standard"])
            for k, v in clean.items()}


def _acc(cell: dict) -> str:
    """``70.0% [63.3, 75.9]`` (Wilson 95%) or ``70.0% ± 2.1 (sd, n=3 seeds)``."""
    if cell["kind"] == "sd":
        return f"{100 * cell['value']:.1f}% ± {100 * cell['sd']:.1f} (sd, n={cell['n']} seeds)"
    return f"{100 * cell['value']:.1f}% [{100 * cell['lo']:.1f}, {100 * cell['hi']:.1f}]"


def _overlap(a: dict, b: dict) -> bool:
    return a["lo"] <= b["hi"] and b["lo"] <= a["hi"]


def _versus(a: dict, b: dict) -> str:
    """Two estimates read by their intervals only, where no paired test exists (estimates
    from held-out heads, or no per-example record): "higher" / "lower" when the intervals
    are apart (conservative for positively correlated estimates), "overlap" (undecided)
    otherwise. Never the words for two accuracies on the same examples (:func:`_paired`)."""
    return "overlap" if _overlap(a, b) else ("higher" if a["value"] > b["value"] else "lower")


def _relation(a: dict, b: dict) -> str:
    """:func:`_versus` as a relation to name ``b`` after: "higher than (intervals apart)"..."""
    return {"overlap": "undecided (intervals overlap, not a paired test) against",
            "higher": "higher (intervals apart) than",
            "lower": "lower (intervals apart) than"}[_versus(a, b)]


def _paired(m: dict, a: str, b: str, **match) -> dict | None:
    """The row of ``m["paired"]`` (``stats.paired_rows``) comparing ``a`` with ``b`` whose
    other fields equal ``match`` (e.g. ``what="worst_case"``), oriented a-then-b; None if
    the metrics hold none (older metrics: no per-example comparison)."""
    for r in m.get("paired", []):
        if {r["a"], r["b"]} == {a, b} and all(r.get(k) == v for k, v in match.items()):
            return r if r["a"] == a else {**r, "a": a, "b": b, "a_only": r["b_only"], "b_only": r["a_only"]}
    return None


def _paired_text(row: dict | None) -> str:
    return paired_words(row) if row else "not compared by a paired test (these metrics hold no per-example comparison)"


def _paired_direction(row: dict | None) -> str | None:
    """"higher" / "lower" when ``row``'s a differs from its b beyond example noise (Holm's
    p below ALPHA), None when they are not distinguishable or were not compared."""
    if not row or row.get("p_holm", row["p_value"]) >= ALPHA:
        return None
    return "higher" if row["a_only"] > row["b_only"] else "lower"


def _models_not_methods(m: dict) -> str | None:
    seeds = m["parameters"].get("seeds", [0])
    if len(seeds) == 1:
        return ("One training run per method: every comparison above is between two trained models "
                "on the same examples, not between the methods.")
    return None


def _scale_sentence(m: dict) -> str:
    p = m["parameters"]
    if m.get("paper_scale"):
        return (f"Paper scale ({p['dataset']}, the protocol's eps and attacks, {len(p['seeds'])} "
                f"seed(s)): the comparison with the paper's table is meaningful.")
    if m.get("paper_budget"):
        ramp = p.get("eps_ramp_epochs")
        aa = (f"standard AutoAttack on {m.get('n_autoattack', m['n_test']):,}"
              if p.get("autoattack") == "standard" else "AutoAttack not run")
        return (f"The paper's budget on a shorter schedule ({p['dataset']}, the protocol's eps and "
                f"attacks on {m['n_test']:,} test images, {aa}, "
                f"{p['epochs']} epochs against the paper's {m.get('paper_epochs', 100)}"
                + (f", the training eps ramped up over the first {ramp:g} epoch(s)" if ramp else "")
                + f", {len(p['seeds'])} seed(s)): the comparison with the paper's table is indicative; "
                "a longer schedule could raise every model's accuracy, and one seed gives no "
                "spread over training runs.")
    parts = [p["dataset"], f"{p['train_limit']:,} training images" if p.get("train_limit")
             else "the full training split", f"eps {p['eps']}" if p.get("eps") is not None
             else "the protocol's eps"]
    if p.get("init_from_standard"):
        parts.append(f"{p['epochs']} epochs of Standard training then {p['finetune_epochs']} of "
                     "each method")
    else:
        parts.append(f"{p['epochs']} epoch{'s' if p['epochs'] != 1 else ''}")
    if p.get("attack_steps"):
        a, b = p["attack_steps"]
        parts.append(f"PGD/CW-{a} and -{b} in place of the paper's 40 and 100 steps")
    if p.get("autoattack") == "fast":
        parts.append(m["labels"]["autoattack"])
    parts.append(f"{m['n_test']:,} test images")
    return ("Not the paper's scale (" + ", ".join(parts) + "): these numbers check the pipeline "
            "and are not findings; the differences from the paper are not a reproduction result.")


def _overstatement(m: dict, model: str, paper_cols) -> dict | None:
    """The lowest of the paper's attacks minus the worst case over every attack, on the digits
    the worst case was measured on (the AutoAttack subset when there is one), from the stored
    evaluation records (mean over seeds): ``points`` (a fraction), ``digits`` (summed over
    seeds), ``n``. None without records (an older metrics file)."""
    records = [e for key, e in m.get("evaluations", {}).items()
               if key.split("/")[0] == model and key.endswith("/autoattack subset")]
    records = records or [e for key, e in m.get("evaluations", {}).items()
                          if key.split("/")[0] == model and key.count("/") == 1]
    if not records:
        return None
    points, digits = [], 0
    for e in records:
        lowest = min(e["attacks"][c]["n_correct"] for c in paper_cols if c in e["attacks"])
        points.append((lowest - e["n_worst_case_correct"]) / e["n"])
        digits += lowest - e["n_worst_case_correct"]
    return {"points": sum(points) / len(points), "digits": digits, "n": records[0]["n"]}


def main_results(m: dict) -> list[str]:
    acc, labels, names = m["accuracy"], m["labels"], m["model_labels"]
    order = [k for k in m["parameters"].get("methods", []) if k in acc] or list(acc)
    out = [_scale_sentence(m)]
    trained = trained_models({k: acc[k]["clean"]["value"] for k in order})
    rule = not_trained_rule_text()
    lost = [k for k in order if not trained[k]]
    if lost:
        out.append("Not trained at this scale (" + rule + "): " + "; ".join(
            f"{names[k]} (natural {_acc(acc[k]['clean'])})" for k in lost)
            + ". Left out of every ranking and comparison below.")
    else:
        out.append(f"Every model learned by this run's rule (none has {rule}).")
    ok = [k for k in order if trained[k]]
    worst = labels.get("worst_case", "worst case over every attack")
    for k in ok:
        out.append(f"{names[k]}: natural {_acc(acc[k]['clean'])}, {worst} {_acc(acc[k]['worst_case'])}.")
    if len(ok) >= 2:
        top = max(ok, key=lambda k: acc[k]["worst_case"]["value"])
        out.append(f"Most robust of the trained models ({worst}): {names[top]} {_acc(acc[top]['worst_case'])}; "
                   + "; ".join(f"{names[k]} {_acc(acc[k]['worst_case'])}: "
                               f"{_paired_text(_paired(m, top, k, what='worst_case'))}"
                               for k in ok if k != top) + ".")
    if "drrdn" in acc:
        if not trained["drrdn"]:
            out.append("DRRDN did not train at this scale, so this run says nothing about the paper's claim.")
        else:
            rivals = [k for k in ok if k not in ("drrdn", "standard")]
            if rivals:
                out.append(f"The paper's claim, DRRDN's model against each trained baseline's under the "
                           f"{worst}: " + "; ".join(
                               f"vs {names[k]} ({_acc(acc['drrdn']['worst_case'])} vs {_acc(acc[k]['worst_case'])}), "
                               f"{_paired_text(_paired(m, 'drrdn', k, what='worst_case'))}"
                               for k in rivals) + ".")
    paper_cols = m["white_box_columns"]
    gaps = {k: g for k in ok for g in [_overstatement(m, k, paper_cols)] if g}
    if gaps:
        n = next(iter(gaps.values()))["n"]
        out.append("What the paper's attacks alone would overstate, on the same "
                   f"{n:,} digits: the lowest single paper attack minus the {worst} (points; digits "
                   "right under that attack but not under every attack): " + ", ".join(
                       f"{names[k]} {100 * g['points']:.1f} ({g['digits']})" for k, g in gaps.items()) + ".")
    aa = labels.get("autoattack")
    if not aa:
        out.append("AutoAttack was not run: the worst case covers the paper's attacks and the "
                   "transfer examples only, so it can overstate robustness.")
    if aa and ok and all("autoattack" in acc[k] for k in ok):
        lower = [names[k] for k in ok if acc[k]["autoattack"]["value"] < min(acc[k][c]["value"] for c in paper_cols)]
        out.append(f"{aa} is stronger (lower accuracy) than every one of the paper's attacks for "
                   f"{len(lower)} of {len(ok)} trained models" + (f" ({', '.join(lower)})." if lower else "."))
    strongest = paper_cols[2] if len(paper_cols) > 2 else paper_cols[-1]
    adversarial = [k for k in ok if k != "standard" and "black_box" in acc[k]]
    if adversarial:
        out.append(f"Black box (worst surrogate) against white-box {labels[strongest]}, each model's two "
                   "attacks on the same images: " + "; ".join(
            f"{names[k]} {_acc(acc[k]['black_box'])} vs {_acc(acc[k][strongest])}, "
            f"{_paired_text(_paired(m, 'black_box', strongest, what=k))}" for k in adversarial) + ".")
    out.append(_checks_sentence(m.get("checks", []), names))
    caveat = _models_not_methods(m)
    if caveat and len(ok) >= 2:
        out.append(caveat)
    comparison = [r for r in m.get("paper_comparison", []) if trained.get(r["model"], False)]
    if comparison:
        inside = sum(r["paper_inside"] for r in comparison)
        diffs = sorted(r["difference"] for r in comparison)
        median = diffs[len(diffs) // 2] if len(diffs) % 2 else (diffs[len(diffs) // 2 - 1] + diffs[len(diffs) // 2]) / 2
        out.append(f"Beside the paper's {m['paper_table']}: its number lies inside our interval for "
                   f"{inside} of {len(comparison)} cells of the trained models; median difference "
                   f"ours - paper {median:+.1f} points"
                   + ("." if m.get("paper_scale") else
                      " (a shorter schedule than the paper's: indicative)." if m.get("paper_budget") else
                      " (a different scale: only the cpu/paper parameter files make this a comparison)."))
    return out


def ablation(m: dict) -> list[str]:
    cells = {(r["model"], r["column"]): r for r in m["summary"]}
    variants = list(dict.fromkeys(r["model"] for r in m["summary"]))
    clean = {v: cells[(v, "clean")]["value"] for v in variants}
    learned = trained_models(clean, standard=FULL_DRRDN)
    p = m["parameters"]
    if p.get("train_limit") is None and p["dataset"] in ("mnist", "cifar10"):
        out = [f"cpu scale ({p['dataset']}, the full training split, eps {p['eps'] or 'of the protocol'}, "
               f"{p['epochs']} epochs against the paper's 100, {len(p['seeds'])} seed(s), {m['n_test']:,} "
               "test images): indicative of Table 4, not a reproduction of its schedule."]
    else:
        out = [f"CI scale ({p['dataset']}, {p['train_limit']} training images, eps {p['eps']}, "
               f"{p['epochs']} epochs, {m['n_test']} test images): these numbers check the pipeline "
               "and are not findings about the paper's Table 4."]
    full = cells[(FULL_DRRDN, "worst_case")]
    pgd_b = m["pgd_columns"][1]
    if not learned[FULL_DRRDN]:
        return out + [f"{FULL_DRRDN} has not learned at this scale (clean {_acc(cells[(FULL_DRRDN, 'clean')])}); "
                      "no variant is compared with it."]
    out.append(f"{FULL_DRRDN}: clean {_acc(cells[(FULL_DRRDN, 'clean')])}, {attack_label(pgd_b)} "
               f"{_acc(cells[(FULL_DRRDN, pgd_b)])}, worst case {_acc(full)}.")
    for v in variants:
        if v == FULL_DRRDN:
            continue
        if not learned[v]:
            out.append(f"{v}: not trained at this scale ("
                       f"{not_trained_rule_text(reference=FULL_DRRDN + chr(39) + 's')}; clean "
                       f"{_acc(cells[(v, 'clean')])}); not compared.")
            continue
        mine, pgd = cells[(v, "worst_case")], cells[(v, pgd_b)]
        seed = min(p.get("seeds", [0]))
        out.append(f"{v} against {FULL_DRRDN} (seed {seed}, the same test images): {attack_label(pgd_b)} "
                   f"{_acc(pgd)} vs {_acc(cells[(FULL_DRRDN, pgd_b)])}, "
                   f"{_paired_text(_paired(m, v, FULL_DRRDN, column=pgd_b, seed=seed))}; worst case "
                   f"{_acc(mine)} vs {_acc(full)}, "
                   f"{_paired_text(_paired(m, v, FULL_DRRDN, column='worst_case', seed=seed))} "
                   f"(clean {_acc(cells[(v, 'clean')])}).")
    curve = _curve_peaks(m.get("learning_curves", []), [v for v in variants if learned[v]])
    if curve:
        out.append(curve)
    if "checks" in m:
        out.append(_checks_sentence(m["checks"], {v: v for v in variants}))
    if len(p.get("seeds", [0])) == 1 and sum(learned.values()) >= 2:
        out.append("One training run per variant: these compare trained models, not the losses "
                   "they leave out (a claim about a loss needs several seeds).")
    paper = [r for r in m.get("paper_comparison", []) if learned.get(r["variant"])]
    if paper:
        a, b = (attack_label(c) for c in m["pgd_columns"])
        inside = sum(r["inside_pgd40"] for r in paper)
        inside_b = sum(r["inside_pgd100"] for r in paper)
        scale = ("on a shorter schedule (epochs, seeds)" if (p.get("eps") is None and p.get("attack_steps") is None)
                 else "at this scale (eps, data, epochs, steps all differ)")
        out.append(f"The paper's Table 4 (PGD-40 and PGD-100 at eps 0.3): its number lies inside our "
                   f"{a} interval for {inside} and inside our {b} interval for {inside_b} of "
                   f"{len(paper)} trained rows; {scale} the difference measures the scale as much "
                   "as the reproduction.")
    return out


def _checks_sentence(checks: list[dict], names: dict) -> str:
    """One sentence on the gradient-masking checks (``checks``: :meth:`MainTable.checks_frame`
    records; ``names``: model key -> display name): which failed, or that all passed."""
    if not checks:
        return "Gradient-masking checks: not run, so nothing here rules out masked gradients."
    failed = [c for c in checks if c["passed"] is False]
    skipped = [c for c in checks if c["passed"] is None]
    return (f"Gradient-masking checks ({', '.join(dict.fromkeys(c['check'] for c in checks))}): "
            + (f"{len(failed)} of {len(checks)} failed: "
               + "; ".join(f"{names[c['model']]} {c['check']}" for c in failed)
               + ". The robust accuracy of those models may be overestimated." if failed
               else f"all {len(checks) - len(skipped)} run passed.")
            + (f" {len(skipped)} skipped." if skipped else ""))


def _curve_peaks(curves: list[dict], models: list[str]) -> str | None:
    """One sentence on where each model's validation PGD peaked and where it ended (first
    seed, the run's own epochs; ``curves``: ``experiments.learning_curves`` records). The
    peak is the epoch training keeps: highest PGD, then highest natural accuracy."""
    parts, lr_drop = [], None
    for model in models:
        own = [r for r in curves if r["method"] == model and r.get("stage", "own") == "own"]
        if not own:
            continue
        own = [r for r in own if r["seed"] == min(r["seed"] for r in own)]
        natural = {r["epoch"]: r["value"] for r in own if r["split"] == "natural"}
        rows = sorted((r for r in own if r["split"] == "PGD"), key=lambda r: r["epoch"])
        peak = max(rows, key=lambda r: (r["value"], natural.get(r["epoch"], 0.0)))
        lr_drop = lr_drop or next((r["epoch"] for r in rows if r["lr"] < rows[0]["lr"]), None)
        peak, end = {**peak, "kind": "wilson"}, {**rows[-1], "kind": "wilson"}
        if peak["epoch"] == end["epoch"]:
            parts.append(f"{model} peaks at its last epoch ({end['epoch']}, {_acc(end)})")
            continue
        verdict = ("its interval overlaps the peak's (no per-digit validation record: not a paired test, "
                   "undecided)" if _overlap(peak, end) else "below the peak's interval")
        parts.append(f"{model} peaks at epoch {peak['epoch']} ({_acc(peak)}) and ends at epoch "
                     f"{end['epoch']} with {_acc(end)}, {verdict}")
    if not parts:
        return None
    n = next(r["n"] for r in curves if r["split"] == "PGD")
    drop = f"; epoch {lr_drop} is the first at a lower lr" if lr_drop else ""
    return (f"Validation PGD per epoch (the learning curves, one seed, {n:,} held-out images{drop}): "
            + "; ".join(parts) + ". Each variant is evaluated at its peak (its best checkpoint).")


_BOUND_WORDS = {"holds": "holds", "undecided": "is undecided (the intervals overlap)",
                "fails": "FAILS", "vacuous": "is vacuous (above 1, it says nothing)"}
_LAMBDA_WORDS = {"covers": "lambda* alone covers the gap (the bound holds without its divergence term)",
                 "short": "lambda* alone falls short of the gap (the bound needs its divergence term)",
                 "undecided": "whether lambda* alone covers the gap is undecided"}
#: the rule of notebook 04, in words (drrdn_lib.bounds.bound_verdict)
BOUND_RULE = ("Rule: the bound holds when the gap's upper 95% end is at most the lower end of "
              "divergence/2 + lambda*, fails when the gap's lower end is above its upper end, and "
              "is undecided otherwise; a bound on err_A above 1 is vacuous (it says nothing).")


def _est(c: dict) -> str:
    """``0.700 [0.633, 0.759]`` or ``0.700 ± 0.021 (sd, n=3 seeds)`` (fractions)."""
    if c.get("kind") == "sd":
        return f"{c['value']:.3f} ± {c['sd']:.3f} (sd, n={c['n']} seeds)"
    return f"{c['value']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"


def _listed(keys, names: dict) -> str:
    return ", ".join(names[k] for k in keys) or "none"


def bound_check(m: dict) -> list[str]:
    names, terms, verdicts, trained = m["model_labels"], m["bound_terms"], m["verdicts"], m["trained"]
    order = [k for k in m["parameters"]["methods"] if k in terms]
    ok = [k for k in order if trained[k]]
    out = [_scale_words(m, "the bound"),
           "The bound is our formalisation of the paper's informal argument (Ben-David et al. "
           "2010, Thm 2), not one the paper states; the divergence is estimated from below and "
           "lambda* from above by fitted heads (MLP).", BOUND_RULE]
    lost = [k for k in order if not trained[k]]
    out.append(("Not trained at this scale (" + not_trained_rule_text() + "): " + "; ".join(
        f"{names[k]} (err_N {_est(terms[k]['err_nat'])})" for k in lost) + ". Left out of every "
        "comparison below.") if lost else
        f"Every model learned by this run's rule (none has {not_trained_rule_text()}).")
    for k in ok:
        t, v = terms[k], verdicts[k]
        out.append(f"Bound on {names[k]}: err_N {_est(t['err_nat'])}, err_A {_est(t['err_adv'])}, "
                   f"gap {_est(t['gap'])}; divergence/2 + lambda* {_est(t['gap_bound'])} (lambda* "
                   f"{_est(t['lambda_star'])}); the bound {_est(t['bound'])} "
                   f"{_BOUND_WORDS.get(v['bound'], v['bound'])}; "
                   f"{_LAMBDA_WORDS.get(v['lambda_alone'], v['lambda_alone'])}.")
    if ok:
        by = {w: [k for k in ok if verdicts[k]["bound"] == w] for w in _BOUND_WORDS}
        out.append(f"The estimated bound over the {len(ok)} trained models: holds for "
                   f"{len(by['holds'])} ({_listed(by['holds'], names)}), undecided for "
                   f"{len(by['undecided'])}, vacuous for {len(by['vacuous'])}, fails for "
                   f"{len(by['fails'])}" + (f" ({_listed(by['fails'], names)})." if by["fails"] else "."))
        covers = [k for k in ok if verdicts[k]["lambda_alone"] == "covers"]
        out.append(f"lambda* alone covers the gap beyond noise for {len(covers)} of {len(ok)} "
                   f"trained models ({_listed(covers, names)})" + (
                       ": for those the bound holds whatever the divergence term, so it cannot "
                       "tell whether aligning the representations (the term DRRDN acts on) "
                       "matters. Expected wherever err_N is small: lambda* is a fresh head's "
                       "error on both domains, and a head about as good as the model has "
                       "err_N + err_A >= err_A - err_N; it can come out the other way when a head "
                       "fitted on both domains beats the model's own classifier." if covers else "."))
        out += _lambda_settling(m["lambda_by_n"], ok, names, m["parameters"]["seeds"][0])
        paired = m.get("paired") or []
        out += _smallest(terms, ok, names, "gap", "Smallest robustness gap err_A - err_N", paired)
        out += _smallest(terms, ok, names, "divergence", "Smallest divergence of natural and "
                         "adversarial representations", paired)
    unkept = m.get("runs_without_kept_weights", [])
    if unkept:
        out.append(f"Left out of the terms over training: {', '.join(unkept)} (no per-epoch weights: "
                   "zoo models keep their best epoch only; runs cached before keep_every existed "
                   "retrain when deleted from results/runs).")
    return out + _over_training(m.get("over_epochs", []), m.get("gap_divergence_spearman"), names)


def _lambda_settling(rows: list[dict], ok: list[str], names: dict, seed: int) -> list[str]:
    """lambda* at the smallest and the two largest head sizes, and whether the last step
    moved it beyond noise (one seed)."""
    mine = [r for r in rows if r["seed"] == seed and r["method"] in ok]
    sizes = sorted({r["pairs"] for r in mine})
    if len(sizes) < 2:
        return []
    at = {(r["method"], r["pairs"]): r for r in mine}
    moving = [k for k in ok if not _overlap(at[(k, sizes[-2])], at[(k, sizes[-1])])]
    return [f"lambda* against the pairs its head is fitted on (seed {seed}, {sizes[0]} -> "
            f"{sizes[-2]} -> {sizes[-1]} pairs): " + "; ".join(
                f"{names[k]} {at[(k, sizes[0])]['value']:.3f} -> {at[(k, sizes[-2])]['value']:.3f} -> "
                f"{at[(k, sizes[-1])]['value']:.3f}" for k in ok)
            + (f". Still moving at the last step (intervals apart) for {_listed(moving, names)}: "
               "lambda* is overstated at this n." if moving else
               ". The last two sizes' intervals overlap for every trained model (not a sign "
               "that it settled: the intervals are wide and not a paired test).")]


def _smallest(terms: dict, ok: list[str], names: dict, key: str, what: str,
              paired: list | None = None) -> list[str]:
    """The trained model with the smallest ``key`` against the others: by the paired rows of
    ``bounds.smallest_versus_others`` on the same digits when the metrics hold them (one
    seed), else by whether the intervals overlap (labelled so)."""
    top = min(ok, key=lambda k: terms[k][key]["value"])
    head = f"{what} among the trained models: {names[top]} ({_est(terms[top][key])})"
    rows = [r for r in paired or [] if r["term"] == key and r["a"] == top and r["b"] in ok]
    if rows:
        larger = [r for r in rows if r["p_holm"] < ALPHA and r["difference"] < 0]
        same = [r for r in rows if r not in larger]
        test = ("paired mean difference of the per-digit gap terms" if key == "gap" else
                "exact McNemar on the domain classifiers' held-out rows")

        def detail(r):
            interval = f" [{r['lo']:+.3f}, {r['hi']:+.3f}]" if "lo" in r else ""
            counts = f", {r['a_only']} / {r['b_only']} discordant" if "a_only" in r else ""
            return (f"{names[r['b']]} ({r['difference']:+.3f}{interval}, p = "
                    f"{format_p(r['p_holm'])}{counts})")
        return [head + f"; against it on the same {rows[0]['n']:,} {'digits' if key == 'gap' else 'rows'} "
                f"({test}, {names[top]} minus the other, Holm over {rows[0]['family_size']}): "
                + "; ".join(part for part in (
                    ("larger beyond example noise: " + ", ".join(map(detail, larger))) if larger else "",
                    ("not distinguishable: " + ", ".join(map(detail, same))) if same else "") if part)
                + "."]
    tied = [k for k in ok if k != top and _overlap(terms[k][key], terms[top][key])]
    return [head + (f"; intervals overlapping it (undecided, estimates from held-out heads, not a "
                    f"paired test): {_listed(tied, names)}." if tied else
                    "; every other trained model's interval lies above it.")]


def _over_training(rows: list[dict], spearman: float | None, names: dict | None = None) -> list[str]:
    """How the bound's terms moved between the first and the last kept epoch (seed means)."""
    if not rows:
        return ["No run kept per-epoch weights (keep_every), so the terms over training are not shown."]
    names = names or {}
    distinct = list({(r["checkpoint"], r["seed"]): r for r in rows}.values())
    count = {w: sum(r["verdict"] == w for r in distinct) for w in _BOUND_WORDS}
    out = [f"Over training (MLP heads, {len(distinct)} distinct checkpoints): the estimated bound "
           f"holds at {count['holds']}, is undecided at {count['undecided']}, vacuous at "
           f"{count['vacuous']} and fails at {count['fails']}."]
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        first, last = min(r["epoch"] for r in mine), max(r["epoch"] for r in mine)

        def mean(key, epoch):
            values = [r[key] for r in mine if r["epoch"] == epoch]
            return sum(values) / len(values)
        out.append(f"{names.get(method, method)}, epoch {first} -> {last}: err_N "
                   f"{mean('err_nat', first):.3f} -> {mean('err_nat', last):.3f}, gap "
                   f"{mean('gap', first):.3f} -> {mean('gap', last):.3f}, divergence "
                   f"{mean('divergence', first):.3f} -> {mean('divergence', last):.3f}.")
    if spearman is not None:
        link = ("a larger divergence goes with a larger gap, as the bound suggests" if spearman > 0.3 else
                "a larger divergence goes with a smaller gap: the bound caps the gap by divergence/2 + "
                "lambda*, it does not make the gap follow the divergence" if spearman < -0.3 else
                "the two are not clearly related")
        out.append(f"Across the learned checkpoints, the rank correlation of the gap with the "
                   f"divergence is {spearman:+.2f}: {link}.")
    return out


def representations(m: dict) -> list[str]:
    """05: the models, DRRDN's parts, the estimator's controls, Proposition 1's JS by method,
    c_i, and the JS over training."""
    labels, trained, steps = m["labels"], m["trained"], m["attack_steps"]
    out = [_scale_words(m, "Proposition 1 or DRRDN's representations")]
    for key, a in m["accuracy"].items():
        out.append(f"{labels[key]}: natural {_acc(a['clean'])}, PGD-{steps} {_acc(a[f'pgd{steps}'])}"
                   + ("." if trained[key] else f"; not trained at this scale "
                      f"({not_trained_rule_text()}), left out of every comparison."))
    if trained.get("drrdn") and m["summary"]:
        out += _parts_sentences(m["summary"], m.get("paired"))
    sentences, trusted = _control_sentences(m)
    out += sentences
    if not trusted:
        return out + ["The estimator found a divergence between two random halves of one sample, so "
                      "no JS bound of this run is read."]
    return (out + _js_sentences(m) + _proposition_sentence(m) + _c_i_sentences(m)
            + _over_training_sentences(m))


def _cell_of(value: float, lo: float, hi: float) -> dict:
    return {"value": value, "lo": lo, "hi": hi, "kind": "wilson"}


def _wilson(value: float, n: int) -> dict:
    return accuracy_cell(round(value * n), n)


def _parts_sentences(summary: list[dict], paired: list[dict] | None) -> list[str]:
    """Domain and class information in z_s and z_i, compared on the same held-out examples
    (``paired``: :func:`representation_probes.disentanglement_paired` rows; None in older
    metrics, which are then not compared)."""
    parts = {r["part"]: r for r in summary}
    zs, zi = parts["z_s"], parts["z_i"]
    dom = {k: _cell_of(p["domain_acc_mlp"], p["domain_acc_mlp_lo"], p["domain_acc_mlp_hi"])
           for k, p in (("z_s", zs), ("z_i", zi))}
    lab = {k: _wilson(p["label_acc_adv"], p["n_label"]) for k, p in (("z_s", zs), ("z_i", zi))}
    rows = {"domain": _paired({"paired": paired or []}, "z_i | domain", "z_s | domain"),
            "label": _paired({"paired": paired or []}, "z_s | label", "z_i | label")}
    rel = _paired_direction(rows["domain"])
    out = [f"A fresh domain classifier (MLP) tells natural from adversarial at {_acc(dom['z_s'])} on "
           f"z_s and {_acc(dom['z_i'])} on z_i (50% = indistinguishable; z_i against z_s on the same "
           f"rows: {_paired_text(rows['domain'])}): "
           + {"higher": "z_i carries more domain information, as DRRDN intends.",
              None: "z_i is not shown to carry more domain information than z_s.",
              "lower": "z_s carries more domain information than z_i, the opposite of DRRDN's "
                       "intent."}[rel]]
    rel = _paired_direction(rows["label"])
    out.append(f"A linear probe reads the class from adversarial inputs at {_acc(lab['z_s'])} on z_s "
               f"and {_acc(lab['z_i'])} on z_i (z_s against z_i on the same examples: "
               f"{_paired_text(rows['label'])}): "
               + {"higher": "label information sits mostly in z_s.",
                  None: "the class has not been shown to leave z_i.",
                  "lower": "z_i carries more label information than z_s."}[rel])
    z = parts["z"]
    out.append(f"The decoder reconstructs z with relative squared error {z['rec_error_nat']:.3f} "
               f"(natural) and {z['rec_error_adv']:.3f} (adversarial).")
    return out


def _nats(r: dict) -> str:
    return f"{r['nats']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] nats"


def _js_versus(a: dict, b: dict) -> str:
    """:func:`_versus` for two JS rows (``nats``, ``lo``, ``hi``)."""
    return _versus(*(_cell_of(r["nats"], r["lo"], r["hi"]) for r in (a, b)))


def _rep_name(labels: dict, method: str, rep: str) -> str:
    return labels[method] if rep == "penultimate" else f"{labels[method]} {rep}"


def _control_sentences(m: dict) -> tuple[list[str], bool]:
    """The two controls of the estimator; trusted unless one distribution shows a divergence."""
    rows = m["controls"]
    same = [r for r in rows if r["control"] == "same distribution"]
    shift = [r for r in rows if r["control"] != "same distribution"]
    p = m["parameters"]
    false_alarms = [r for r in same if r["lo"] > 0]
    detected = [r for r in shift if r["lo"] > 0]
    worst = max(same, key=lambda r: r["nats"])
    calibrated = (f"calibrated on {100 * p['js_calibration']:.0f}% of its training pairs"
                  if p["js_calibration"] else "uncalibrated")
    out = [f"Estimator controls ({_HEAD_WORDS.get(p['js_head'], p['js_head'])} discriminator, "
           f"{calibrated}, {p['eval_limit']} test "
           f"pairs): on two random halves of the natural digits the bound is above 0 beyond noise for "
           f"{len(false_alarms)} of {len(same)} representations (largest {_nats(worst)}); on natural "
           f"against natural + noise (sd {p['noise_sd']:g}) it detects the shift for {len(detected)} "
           f"of {len(shift)}."]
    if len(detected) < len(shift):
        out.append("Where the known shift is not detected, the estimator lacks power at this n, "
                   "so a bound near 0 there says little.")
    return out, not false_alarms


def _js_sentences(m: dict) -> list[str]:
    """Per trained representation: marginal and class-conditional bounds, read honestly."""
    labels, trained = m["labels"], m["trained"]
    cell = {(r["method"], r["representation"], r["alignment"]): r for r in m["js"]}
    out = []
    for (method, rep, kind), a in cell.items():
        if kind != "marginal" or not trained[method]:
            continue
        c = cell[(method, rep, "class-conditional")]
        acc = _cell_of(a["accuracy"], a["accuracy_lo"], a["accuracy_hi"])
        line = (f"JS of {_rep_name(labels, method, rep)}, {a['width']}-wide, natural vs "
                f"adversarial: >= {_nats(a)} marginally (a fresh discriminator tells them apart at "
                f"{_acc(acc)}), {_nats(c)} within classes")
        p = c.get("minus_marginal_p")
        if a["lo"] <= 0 and c["lo"] <= 0:
            line += ": no divergence detected with these pairs (not evidence of alignment)."
        elif p is not None and p == p:  # paired on the same held-out pairs (NaN: not measured)
            d = (f"within minus marginal {c['minus_marginal']:+.3f} [{c['minus_marginal_lo']:+.3f}, "
                 f"{c['minus_marginal_hi']:+.3f}] nats on the same held-out pairs, p = {format_p(p)}")
            line += (f": not distinguishable ({d})." if p >= ALPHA else
                     f": larger within classes beyond pair noise ({d}), a class-level divergence "
                     "that the marginal understates." if c["minus_marginal"] > 0 else
                     f": smaller within classes beyond pair noise ({d}), an estimation artefact "
                     "(the class-conditional JS is never below the marginal one).")
        elif _overlap(a, c):
            line += ": the intervals overlap (undecided)."
        elif c["nats"] > a["nats"]:
            line += ": larger within classes (intervals apart), a class-level divergence that the marginal understates."
        else:
            line += (": smaller within classes (intervals apart), an estimation artefact (the "
                     "class-conditional JS is never below the marginal one).")
        out.append(line)
    return out


def _proposition_sentence(m: dict) -> list[str]:
    """Is DRRDN's z_s (and its penultimate) more aligned than the trained baselines'?"""
    labels, trained = m["labels"], m["trained"]
    if not trained.get("drrdn"):
        return ["DRRDN has not learned at this scale, so nothing is concluded about Proposition 1."]
    cell = {(r["method"], r["representation"]): r for r in m["js"] if r["alignment"] == "marginal"}
    baselines = [k for k in cell if k[0] != "drrdn" and trained[k[0]]]
    if not baselines:
        return ["No baseline learned at this scale, so DRRDN's alignment is compared with nothing."]
    if m.get("js_paired"):
        return [_proposition_paired(m, baselines)]
    parts = []
    for rep in [r for (meth, r) in cell if meth == "drrdn"]:
        d = cell[("drrdn", rep)]
        groups = {"lower": [], "overlap": [], "higher": []}
        for key in baselines:
            groups[_js_versus(d, cell[key])].append(labels[key[0]])
        parts.append(f"DRRDN's {rep} is below {', '.join(groups['lower']) or 'no baseline'} "
                     f"(intervals apart), undecided against {', '.join(groups['overlap']) or 'none'} "
                     f"(intervals overlap), above {', '.join(groups['higher']) or 'none'}")
    tail = " (CI scale: not a finding)." if not m.get("protocol_scale") else "."
    return ["Proposition 1's reading, DRRDN's representation more aligned (smaller marginal JS) "
            "than the trained baselines' penultimate features (JS bounds from held-out "
            "discriminators, read by their intervals: not a paired test; one trained model each): " + "; ".join(parts) + tail]


def _proposition_paired(m: dict, baselines: list) -> str:
    """The reading from the paired differences of the marginal JS bounds on the same held-out
    pairs (``m["js_paired"]``: DRRDN minus each trained baseline, Holm over the family)."""
    labels, parts = m["labels"], []
    rows = [r for r in m["js_paired"] if (r["b_method"], r["b_representation"]) in baselines]
    for rep in dict.fromkeys(r["a_representation"] for r in rows):
        groups = {"below": [], "not distinguishable from": [], "above": []}
        for r in (r for r in rows if r["a_representation"] == rep):
            side = ("not distinguishable from" if r["p_holm"] >= ALPHA else
                    "below" if r["difference"] < 0 else "above")
            groups[side].append(f"{_rep_name(labels, r['b_method'], r['b_representation'])} "
                                f"({r['difference']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] nats, "
                                f"p = {format_p(r['p_holm'])})")
        parts.append(f"DRRDN's {rep} is " + "; ".join(
            f"{side} {', '.join(names)}" for side, names in groups.items() if names))
    family = rows[0]["family_size"] if rows else 0
    tail = " (CI scale: not a finding)." if not m.get("protocol_scale") else "."
    return ("Proposition 1's reading, DRRDN's representation more aligned (smaller marginal JS) "
            "than the trained baselines' penultimate features, by the paired difference of the "
            f"bounds on the same {rows[0]['n'] if rows else 0:,} held-out pairs (DRRDN minus "
            f"baseline, 95% interval, Holm over {family} comparisons; one trained model each: "
            "models, not methods): " + "; ".join(parts) + tail)


def _c_i_sentences(m: dict) -> list[str]:
    """DRRDN's own domain classifier, as training logged it and on held-out pairs, against a
    fresh discriminator on z_s (the last epoch DRRDN kept)."""
    if not m.get("c_i") or not m["trained"].get("drrdn"):
        return []
    last = max(m["c_i"], key=lambda r: r["from_start"])
    fresh = [r for r in m["over_epochs"] if r["method"] == "drrdn" and r["alignment"] == "marginal"
             and r["from_start"] == last["from_start"]][0]
    get = lambda r, k: _cell_of(r[k], r[f"{k}_lo"], r[f"{k}_hi"])  # noqa: E731
    held, new = get(last, "heldout_acc_z_s"), get(fresh, "accuracy")
    on_i = get(last, "train_acc_z_i")
    bound = {"nats": last["c_i_bound"], "lo": last["c_i_bound_lo"], "hi": last["c_i_bound_hi"]}
    if "vs_fresh_p" in last:  # the same held-out rows: exact McNemar
        row = {"n": last["vs_fresh_n"], "a_only": last["c_i_only"], "b_only": last["fresh_only"],
               "p_value": last["vs_fresh_p"]}
        direction, words = _paired_direction(row), paired_words(row, "p_value", order="c_i / fresh")
        verdict = {"lower": f"c_i is below the fresh discriminator on the same held-out pairs, so "
                            f"it is not the optimal one Proposition 1 assumes; the two {words}",
                   "higher": f"c_i does better than the fresh discriminator on the same held-out "
                             f"pairs; the two {words}",
                   None: f"c_i and the fresh discriminator are {words}"}[direction]
    else:
        verdict = {"lower": "c_i is below a fresh discriminator (intervals apart), so it is not the "
                            "optimal one Proposition 1 assumes",
                   "overlap": "c_i and a fresh discriminator have overlapping intervals (undecided, "
                              "not a paired test)",
                   "higher": "c_i does better than the fresh discriminator (intervals apart)"
                   }[_versus(held, new)]
    verdict += ("; z_s is not aligned (the fresh bound is above 0 beyond noise), whatever c_i "
                "says" if fresh["lo"] > 0 else "; neither finds a divergence with these pairs")
    chance_i = "within noise of 50%" if on_i["lo"] <= 0.5 <= on_i["hi"] else "not at 50%"
    return [f"DRRDN's domain classifier c_i (epoch {last['from_start']} from the start): as training "
            f"logged it, {_acc(get(last, 'train_acc_z_s'))} on z_s and {_acc(on_i)} on z_i "
            f"({chance_i} on the part L_BC makes domain-informative); on the held-out test pairs "
            f"it tells natural from adversarial z_s at {_acc(held)} (JS bound {_nats(bound)}), a "
            f"fresh calibrated discriminator at {_acc(new)} (bound {_nats(fresh)}): {verdict}."]


def _over_training_sentences(m: dict) -> list[str]:
    """Marginal JS at the weights each trained method's own training started from (the last
    pre-training epoch, else its first kept epoch) against its last kept epoch; methods with
    one start share one clause."""
    rows = [r for r in m.get("over_epochs", []) if r["alignment"] == "marginal"]
    if not rows:
        return ["No JS over training: no run kept per-epoch weights (or over_epochs was off)."]
    labels, groups = m["labels"], {}
    for method in labels:
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["from_start"])
        pre = [r for r in mine if r["stage"] == "pre-training"]
        own = [r for r in mine if r["stage"] == "own"]
        if not m["trained"][method] or not own or (not pre and len(own) < 2):
            continue
        first, last = (pre[-1] if pre else own[0]), own[-1]
        p = last.get("minus_start_p")
        if p is not None and p == p:  # paired on the same held-out pairs
            d = (f"{last['minus_start']:+.3f} [{last['minus_start_lo']:+.3f}, "
                 f"{last['minus_start_hi']:+.3f}] nats on the same pairs, p = {format_p(p)}")
            reading = (f"not distinguishable from the start ({d})" if p >= ALPHA else
                       f"{'above' if last['minus_start'] > 0 else 'below'} the start beyond pair noise ({d})")
        else:
            reading = {"overlap": "its interval overlaps the start's (undecided, not a paired test)",
                       "higher": "above the start (intervals apart)",
                       "lower": "below the start (intervals apart)"}[_js_versus(last, first)]
        groups.setdefault((first["run_dir"], first["epoch"]), (first, []))[1].append(
            f"{labels[method]} {_nats(last)} at epoch {last['from_start']} "
            f"({last['representation']}), {reading}")
    if not groups:
        return []
    clauses = [f"from {_nats(first)} at epoch {first['from_start']} ("
               + ("the Standard pre-training's penultimate features, where fine-tuning started"
                  if first["stage"] == "pre-training" else first["representation"])
               + "): " + "; ".join(ends) for first, ends in groups.values()]
    return ["JS over training (marginal, epochs since the random start), " + " | ".join(clauses) + "."]


def sensitivity(m: dict) -> list[str]:
    names, trained, acc = m["model_labels"], m["trained"], m["accuracy"]
    order = [k for k in m["parameters"]["methods"] if k in acc]
    ok = [k for k in order if trained[k]]
    lost = [k for k in order if not trained[k]]
    out = [_scale_words(m, "the paper's claim"),
           ("Not trained at this scale (" + not_trained_rule_text() + "): "
            + ", ".join(names[k] for k in lost) + "; drawn hollow and dashed, never compared.")
           if lost else f"Every model learned by this run's rule (none has {not_trained_rule_text()})."]
    curves = {k: sorted((float(c.removeprefix("pgd eps ")), cell) for c, cell in acc[k].items()) for k in ok}
    if "paired" not in m:
        out.append("PGD accuracy against eps: not compared by a paired test (these metrics hold "
                   "no per-digit record).")
    else:
        rising = [k for k in ok if any(
            _paired_direction(_paired(m, f"{k} eps {b:g}", f"{k} eps {a:g}", what="eps curve")) == "higher"
            for (a, _), (b, _) in zip(curves[k], curves[k][1:]))]
        out.append("PGD accuracy against eps, each model's neighbouring eps on the same digits "
                   "(McNemar, Holm): " + (
                       f"rises beyond example noise for {_listed(rising, names)}, a hint of "
                       "gradient masking." if rising else
                       "no trained model's accuracy rises beyond example noise as eps grows."))
    if ok:
        largest = max(e for e, _ in curves[ok[0]])
        chance = m.get("chance", 0.1)
        at = {k: dict(curves[k])[largest] for k in ok}
        above = [k for k in ok if at[k]["lo"] > chance]
        out.append(f"At eps {largest:g} ({largest / m['train_eps']:g}x the training eps), PGD accuracy: "
                   + "; ".join(f"{names[k]} {_acc(at[k])}" for k in ok) + ". " + (
                       f"Above chance ({_pct(chance)}) beyond noise for {_listed(above, names)}: a "
                       "strong attack at this radius should do better, a hint of gradient masking."
                       if above else f"None is above chance ({_pct(chance)}) beyond noise."))
    points = m["frontier_points"]
    for family in dict.fromkeys(p["family"] for p in points):
        mine = [p for p in points if p["family"] == family]
        out.append(f"{family}: " + "; ".join(
            (f"{p['value']:g}: " if p["value"] is not None else "")
            + f"natural {_acc(p['clean'])}, worst case {_acc(p['worst_case'])}"
            + ("" if p["trained"] else " (not trained)") for p in mine) + ".")
    return out + _frontier_comparison(points, m)


def _frontier_comparison(points: list[dict], m: dict) -> list[str]:
    """DRRDN's sweep against TRADES's: their most robust trained points, and how often one
    family's trained point is above and right of the other's beyond noise."""
    sweeps = {f: [p for p in points if p["family"] == f and p["value"] is not None and p["trained"]]
              for f in dict.fromkeys(p["family"] for p in points if p["value"] is not None)}
    if len(sweeps) != 2:
        return []
    (a, pa), (b, pb) = sweeps.items()
    if not pa or not pb:
        return [f"Most robust trained point of each sweep: none trained in "
                f"{a if not pa else b}, so the frontiers are not compared."]
    top = {f: max(ps, key=lambda p: p["worst_case"]["value"]) for f, ps in sweeps.items()}
    if "paired" not in m:
        return [f"Most robust trained point of each sweep (worst case): {top[a]['label']} "
                f"{_acc(top[a]['worst_case'])} vs {top[b]['label']} {_acc(top[b]['worst_case'])}: "
                "not compared by a paired test (these metrics hold no per-digit record)."]
    out = [f"Most robust trained point of each sweep (worst case, the same digits; one trained "
           f"model per point): {top[a]['label']} {_acc(top[a]['worst_case'])} vs {top[b]['label']} "
           f"{_acc(top[b]['worst_case'])}: "
           f"{_paired_text(_paired(m, top[a]['label'], top[b]['label'], what='worst_case'))}."]

    def beats(p, q):
        return all(_paired_direction(_paired(m, p["label"], q["label"], what=k)) == "higher"
                   for k in ("clean", "worst_case"))
    pairs = [(p, q) for p in pa for q in pb]
    out.append(f"Pairs of trained points where one sweep's point is higher in both natural and "
               f"worst-case accuracy beyond example noise (McNemar, Holm over all "
               f"{2 * len(pairs)} tests): {a} over {b} {sum(beats(p, q) for p, q in pairs)}, "
               f"{b} over {a} {sum(beats(q, p) for p, q in pairs)}, of {len(pairs)} pairs.")
    return out


# ------------------------------------------------------- 07: Table 3, hybrid representations
def _scale_words(m: dict, what: str) -> str:
    """The first sentence of notebooks 07 and 08: the scale, and whether the numbers are findings."""
    p = m["parameters"]
    if m.get("protocol_scale"):
        return (f"{p['dataset']} at the protocol's eps and attack, {p['epochs']} training epochs "
                f"(the paper trains 100), one seed: a measurement of {what} at this training "
                "budget, not the paper's full protocol.")
    return (f"CI scale ({m['scale'].removeprefix('CI scale: ')}): these numbers check the "
            f"pipeline and are not findings about {what}.")


def _learned_sentences(m: dict, names: dict) -> tuple[list[str], bool]:
    """Each model's natural accuracy, and (sentences, every model learned)."""
    models, trained = m["models"], m["trained"]
    out = []
    for key, label in names.items():
        a = models[key]
        line = f"{label}: natural {_acc(a['clean'])}"
        if "pgd" in a:
            line += f", on x' {_acc(a['pgd'])}"
        out.append(line + ("." if trained[key] else
                           f"; not trained at this scale ({not_trained_rule_text()})."))
    return out, all(trained[k] for k in names)


def table3_hybrids(m: dict) -> list[str]:
    h = m["hybrids"]
    x = m["x_adv"]
    out = [_scale_words(m, "the paper's Table 3"),
           f"x' is PGD-{x['steps']} (L-inf, eps {x['eps']:g}) against the DRRDN; the Standard "
           f"model's classifier is fine-tuned on the four hybrids of {m['n_train_images']:,} "
           f"training images and scored on those of {m['n_test']:,} test images."]
    learned, ok = _learned_sentences(m, {"standard": "Standard", "drrdn": "DRRDN"})
    out += learned
    for name, r in h.items():
        out.append(f"{name}: {_acc(r['after'])} after fine-tuning (before: {_acc(r['before'])}); "
                   f"the paper {r['paper']:.2f}%, ours - paper {r['difference']:+.1f} points, the "
                   f"paper's number {'inside' if r['paper_inside'] else 'outside'} our interval.")
    if m["parameters"].get("init_from_standard"):
        out.append("At this scale the Standard model and the DRRDN's encoder start from one "
                   "Standard run, so the accuracy before fine-tuning is not that of an unrelated "
                   "classifier.")
    if not ok:
        return out + ["A model has not learned at this scale, so nothing is concluded from "
                      "its hybrids."]
    base = "r(z_s, z_i)"
    rows = {k: _paired(m, k, base) for k in ("r(z'_s, z_i)", "r(z_s, z'_i)")}
    s_adv, i_adv = (_paired_direction(rows[k]) for k in rows)
    s_key, i_key = "r(z'_s, z_i)", "r(z_s, z'_i)"
    out.append(f"On the same {m['n_test']:,} test images, after fine-tuning: the adversarial z_s "
               f"alone ({s_key}, {_acc(h[s_key]['after'])}) against {base} "
               f"({_acc(h[base]['after'])}): {_paired_text(rows[s_key])}; the adversarial z_i "
               f"alone ({i_key}, {_acc(h[i_key]['after'])}): {_paired_text(rows[i_key])}.")
    if not all(rows.values()):
        verdict = ("the hybrids were not compared by a paired test (these metrics hold no "
                   "per-image record), so this run does not locate the domain information")
    elif i_adv == "lower" and s_adv != "lower":
        verdict = ("as the paper reads its Table 3: the adversarial z_i, not z_s, lowers "
                   "accuracy beyond example noise")
    elif i_adv == "lower" and s_adv == "lower":
        verdict = ("both adversarial parts lower accuracy beyond example noise: by the paper's "
                   "reading, the domain information is not confined to z_i")
    elif s_adv == "lower":
        verdict = ("the opposite of the paper's reading: the adversarial z_s, not z_i, lowers "
                   "accuracy beyond example noise")
    else:
        verdict = ("neither adversarial part lowers accuracy beyond example noise: this run does "
                   "not locate the domain information")
    return out + [f"In this run (one trained DRRDN: a statement about this model), {verdict}"
                  + (" (CI scale: not a finding)." if not m.get("protocol_scale") else ".")]


# ------------------------------------------------------------- 08: Figure 2, t-SNE and numbers
_HEAD_WORDS = {"mlp": "an MLP", "linear": "a linear"}


def figure2_tsne(m: dict) -> list[str]:
    reps, p = m["representations"], m["parameters"]
    chance = m.get("chance", 0.1)
    out = [_scale_words(m, "the paper's Figure 2"),
           "The t-SNE maps are qualitative; the k-NN and probe accuracies are the evidence."]
    learned, _ = _learned_sentences(m, {"standard": "Standard", "drrdn": "DRRDN"})
    out += learned
    for name, r in reps.items():
        out.append(f"{name} ({r['width']}-wide): k-NN class accuracy {_acc(r['knn_natural'])} on "
                   f"natural rows, {_acc(r['knn_adversarial'])} on adversarial rows (chance "
                   f"{_pct(chance)}); {_HEAD_WORDS.get(p['domain_head'], p['domain_head'])} probe tells natural "
                   f"from adversarial at "
                   f"{_acc(r['domain'])} (50%: indistinguishable).")
    trained = m["trained"]
    if not trained["drrdn"]:
        return out + ["DRRDN has not learned at this scale, so nothing is concluded about z_s "
                      "and z_i."]
    zs, zi = reps["DRRDN: z_s"], reps["DRRDN: z_i"]
    if "thresholds" not in m:
        return out + ["Figure 2's readings are not tested: these metrics predate the readings' "
                      "thresholds and paired records."]
    limits = m["thresholds"]
    tests = {}
    if trained["standard"]:
        row = _paired(m, "DRRDN: z_s | knn_adversarial", "Standard: features | knn_adversarial")
        tests["z_s keeps the class under attack better than the Standard features (k-NN on "
              f"adversarial rows, {_acc(zs['knn_adversarial'])} vs "
              f"{_acc(reps['Standard: features']['knn_adversarial'])}, "
              f"{_paired_text(row)})"] = _paired_direction(row) == "higher"
    tests[f"the domains overlap in z_s (probe {_acc(zs['domain'])}; holds if its upper end is at "
          f"most {_pct(limits['domain_overlap_max'])})"] = zs["domain"]["hi"] <= limits["domain_overlap_max"]
    row = _paired(m, "DRRDN: z_i | domain", "DRRDN: z_s | domain")
    tests[f"z_i separates the domains more than z_s (probe {_acc(zi['domain'])} vs "
          f"{_acc(zs['domain'])}, {_paired_text(row)})"] = _paired_direction(row) == "higher"
    tests[f"z_i carries no class (k-NN on natural rows {_acc(zi['knn_natural'])}; holds if its upper "
          f"end is at most {_pct(limits['class_free_max'])}, chance {_pct(chance)})"] = \
        zi["knn_natural"]["hi"] <= limits["class_free_max"]
    held = sum(tests.values())
    return out + ["Figure 2's readings as tests (thresholds fixed before the numbers; one trained "
                  "model each): " + "; ".join(f"{k}: {'holds' if v else 'does not hold'}"
                                              for k, v in tests.items())
                  + f". {held} of {len(tests)} hold"
                  + (" (CI scale: not a finding)." if not m.get("protocol_scale") else ".")]


DESCRIBERS = {"08_figure2_tsne": figure2_tsne, "07_table3_hybrids": table3_hybrids, "06_sensitivity": sensitivity, "05_representations": representations, "03_ablation": ablation, "04_bound_check": bound_check, "02_main_results": main_results, "00_quickstart": quickstart, "01_theory_toy_tradeoff": theory_toy}


def describe(name: str, metrics: dict) -> list[str]:
    """The conclusion sentences of notebook ``name`` for its ``metrics``."""
    if name not in DESCRIBERS:
        raise KeyError(f"no describer for notebook {name!r}; known: {sorted(DESCRIBERS)}.")
    return DESCRIBERS[name](metrics)
