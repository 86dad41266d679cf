"""Prose and numbers cannot drift apart: each committed notebook's conclusion is exactly
what :func:`drrdn_lib.claims.describe` says about the metrics of the same run."""
import json
from pathlib import Path

import nbformat
import pytest

from drrdn_lib.claims import DESCRIBERS, describe

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _shown_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            parts.append(data.get("text/markdown", "") + data.get("text/plain", "") + output.get("text", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(DESCRIBERS))
def test_committed_notebook_states_what_its_metrics_say(name):
    metrics_file = NOTEBOOKS / "metrics" / f"{name}.json"
    assert metrics_file.exists(), f"run `python notebooks/build.py {name}` to produce {metrics_file}"
    metrics = json.loads(metrics_file.read_text())
    sentences = describe(name, metrics)
    assert sentences and sorted(sentences) == sorted(metrics["claims"])  # JSON may reorder keys
    shown = _shown_text(nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4))
    for sentence in sentences:
        assert sentence in shown, f"{name}.ipynb does not show: {sentence}"


def test_every_notebook_has_a_describer():
    stems = {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert stems <= set(DESCRIBERS), f"notebooks without claims: {sorted(stems - set(DESCRIBERS))}"


# ------------------------------------------------------------------ 04: the bound
def test_bound_check_says_which_runs_are_missing_from_the_terms_over_training():
    committed = json.loads((NOTEBOOKS / "metrics" / "04_bound_check.json").read_text())
    without = {**committed, "over_epochs": [], "runs_without_kept_weights": ["DRRDN/seed 0"],
               "gap_divergence_spearman": None}
    sentences = describe("04_bound_check", without)
    assert any(s.startswith("Left out of the terms over training: DRRDN/seed 0 (") for s in sentences)
    assert sentences[-1].startswith("No run kept per-epoch weights")
    assert not any("rank correlation" in s for s in sentences)


def test_bound_check_names_its_formalisation_rule_and_scale():
    sentences = describe("04_bound_check", _committed("04_bound_check"))
    assert sentences[0].startswith("CI scale (") and "not findings" in sentences[0]
    assert any("our formalisation" in s and "Ben-David et al. 2010" in s for s in sentences)
    assert any(s.startswith("Rule: the bound holds when the gap's upper 95% end") for s in sentences)


def test_bound_check_leaves_an_untrained_model_out_of_every_comparison():
    m = _committed("04_bound_check")
    m["trained"]["mart"] = False
    for key in ("gap", "divergence"):   # would be the smallest of all
        m["bound_terms"]["mart"][key].update(value=0.0, lo=0.0, hi=0.01)
    sentences = describe("04_bound_check", m)
    lost = next(s for s in sentences if s.startswith("Not trained at this scale"))
    assert "MART (err_N" in lost and "Left out of every comparison" in lost
    assert not any(s.startswith("Bound on MART") for s in sentences)
    for s in sentences:
        if s.startswith(("Smallest", "The estimated bound over", "lambda* alone", "lambda* against")):
            assert "MART" not in s, s


def test_bound_check_compares_the_smallest_gap_on_the_same_digits():
    """The smallest gap against each other trained model by its paired row (Holm): one
    larger beyond example noise, one not distinguishable; no interval-overlap words."""
    m = _committed("04_bound_check")
    ok = [k for k in m["parameters"]["methods"] if m["trained"][k]]
    top = min(ok, key=lambda k: m["bound_terms"][k]["gap"]["value"])
    others = [k for k in ok if k != top]
    m["paired"] = [{"term": "gap", "a": top, "b": k, "difference": d, "lo": d - 0.01, "hi": d + 0.01,
                    "n": 1000, "p_value": p, "p_holm": p, "family_size": len(others)}
                   for k, d, p in zip(others, [-0.2, -0.004] + [-0.1] * 5, [1e-12, 0.4] + [1e-3] * 5)]
    line = next(s for s in describe("04_bound_check", m) if s.startswith("Smallest robustness gap"))
    names = m["model_labels"]
    assert f"against it on the same 1,000 digits (paired mean difference" in line
    assert f"larger beyond example noise: {names[others[0]]} (-0.200 [-0.210, -0.190], p = 1.0e-12)" in line
    assert f"not distinguishable: {names[others[1]]} (-0.004" in line and "intervals" not in line
    divergence = next(s for s in describe("04_bound_check", m) if s.startswith("Smallest divergence"))
    assert "McNemar" not in divergence  # no paired rows for it: read by intervals, labelled so


@pytest.mark.parametrize("verdict, words", [("holds", "holds;"), ("undecided", "is undecided"),
                                            ("fails", "FAILS"), ("vacuous", "is vacuous (above 1")])
def test_bound_check_says_each_verdict(verdict, words):
    m = _committed("04_bound_check")
    m["verdicts"]["drrdn"] = {"bound": verdict, "lambda_alone": "covers"}
    sentences = describe("04_bound_check", m)
    line = next(s for s in sentences if s.startswith("Bound on DRRDN"))
    assert words in line and "lambda* alone covers the gap (the bound holds without its divergence term)" in line
    count = next(s for s in sentences if s.startswith("The estimated bound over"))
    others = sum(v["bound"] == verdict for k, v in m["verdicts"].items() if k != "drrdn")
    assert f"{verdict} for {others + 1}" in count


# ------------------------------------------------------------------ 06: sensitivity
def _frontier_point(m, label):
    return next(p for p in m["frontier_points"] if p["label"] == label)


def test_sensitivity_leaves_an_untrained_model_out_of_every_comparison():
    m = _committed("06_sensitivity")
    m["trained"]["pgd_at"] = False
    sentences = describe("06_sensitivity", m)
    assert any(s.startswith("Not trained at this scale") and "Madry (PGD-AT)" in s for s in sentences)
    at_eps = next(s for s in sentences if s.startswith("At eps "))
    assert "Madry" not in at_eps
    assert sentences[0].startswith("CI scale (") and "not findings" in sentences[0]


def test_sensitivity_flags_a_rise_with_eps_and_accuracy_above_chance():
    m = _committed("06_sensitivity")
    curve = m["accuracy"]["drrdn"]
    eps = sorted(float(c.removeprefix("pgd eps ")) for c in curve)
    largest = f"pgd eps {eps[-1]:g}"
    curve[largest] = {"value": 0.9, "lo": 0.85, "hi": 0.95, "n": 200, "kind": "wilson"}
    # the rise is decided on the same digits: 60 right only at the larger eps, 2 only at the smaller
    m["paired"] = [_paired_row(f"drrdn eps {eps[-1]:g}", f"drrdn eps {eps[-2]:g}", 60, 2, n=200,
                               what="eps curve")]
    sentences = describe("06_sensitivity", m)
    assert any(s.startswith("PGD accuracy against eps, each model's neighbouring eps on the same digits "
                            "(McNemar, Holm): rises beyond example noise for DRRDN") for s in sentences)
    m["paired"] = [_paired_row(f"drrdn eps {eps[-1]:g}", f"drrdn eps {eps[-2]:g}", 12, 10, n=200,
                               what="eps curve")]   # the same accuracies, but not a paired difference
    assert any(s.endswith("no trained model's accuracy rises beyond example noise as eps grows.")
               for s in describe("06_sensitivity", m))
    at_eps = next(s for s in sentences if s.startswith("At eps "))
    assert "Above chance (10.0%) beyond noise for DRRDN" in at_eps


def test_sensitivity_compares_frontiers_on_trained_points_only():
    m = _committed("06_sensitivity")
    for p in m["frontier_points"]:
        if p["family"].startswith("DRRDN"):
            p["trained"] = False
    sentences = describe("06_sensitivity", m)
    assert any(s.startswith("Most robust trained point of each sweep: none trained in DRRDN")
               for s in sentences)
    assert not any(s.startswith("Pairs of trained points") for s in sentences)
    assert any("(not trained)" in s for s in sentences if s.startswith("DRRDN lambda_adv sweep"))


# ------------------------------------------------------------------ 02: Tables 1 and 2
def _main_results():
    return json.loads((NOTEBOOKS / "metrics" / "02_main_results.json").read_text())


def _set(m, model, column, value, half=0.05):
    m["accuracy"][model][column].update(value=value, lo=value - half, hi=value + half)


def test_main_results_leaves_an_untrained_model_out_of_every_comparison():
    m = _main_results()
    _set(m, "mart", "clean", 0.40)  # below 50%: not trained at this scale
    _set(m, "mart", "worst_case", 0.99, half=0.005)  # would top any ranking
    sentences = describe("02_main_results", m)
    lost = [s for s in sentences if s.startswith("Not trained at this scale")]
    assert lost and "MART (natural 40.0%" in lost[0] and "clean accuracy below 50%" in lost[0]
    for s in sentences:
        if s.startswith(("Most robust", "The paper's claim", "Black box", "What the paper's attacks")):
            assert "MART" not in s, s
    # the relative part of the rule: 31 points below Standard's clean accuracy
    m = _main_results()
    _set(m, "drrdn", "clean", m["accuracy"]["standard"]["clean"]["value"] - 0.31)
    sentences = describe("02_main_results", m)
    assert any(s.startswith("Not trained") and "DRRDN" in s for s in sentences)
    assert "DRRDN did not train at this scale, so this run says nothing about the paper's claim." in sentences


def _paired_row(a, b, a_only, b_only, n=1000, **fields):
    """One ``m["paired"]`` row (``stats.paired_rows``) of two models on the same ``n``
    examples with these discordant counts (a family of one: p_holm is the raw p)."""
    import numpy as np
    from drrdn_lib.stats import paired_rows
    both = (n - a_only - b_only) // 2
    right_a = np.r_[np.ones(both + a_only), np.zeros(b_only), np.zeros(n - both - a_only - b_only)]
    right_b = np.r_[np.ones(both), np.zeros(a_only), np.ones(b_only), np.zeros(n - both - a_only - b_only)]
    row = paired_rows({a: right_a.astype(bool), b: right_b.astype(bool)}, [(a, b)])[0]
    return {**row, **fields}


def test_main_results_overstatement_is_taken_on_the_same_digits():
    """The cpu-scale report: the lowest paper attack (PGD-100) minus the worst case over every
    attack on the same 1,000 AutoAttack digits is 1.8 / 3.1 / 4.5 points (18 / 31 / 45 digits),
    not the 10,000-digit PGD-100 minus the 1,000-digit worst case (2.8 / 3.8 / 4.5)."""
    report = Path(__file__).resolve().parent.parent / "reports" / "02_main_results_cpu" / "metrics.json"
    m = json.loads(report.read_text())
    line = next(s for s in describe("02_main_results", m) if s.startswith("What the paper's attacks alone"))
    assert "on the same 1,000 digits" in line
    assert "Madry (PGD-AT) 1.8 (18), TRADES 3.1 (31), DRRDN 4.5 (45)" in line
    del m["evaluations"]
    assert not any(s.startswith("What the paper's attacks alone") for s in describe("02_main_results", m))


def test_main_results_decide_two_models_by_the_paired_test_not_by_interval_overlap():
    """Overlapping intervals with 30 / 2 discordant digits are a difference beyond example
    noise; 12 / 10 is not distinguishable; the words never fall back on interval overlap."""
    m = _main_results()
    for model in ("pgd_at", "trades", "mart"):
        _set(m, model, "worst_case", 0.30)
    _set(m, "drrdn", "worst_case", 0.32)  # every interval overlaps every other
    m["paired"] = [_paired_row("drrdn", "pgd_at", 30, 2, what="worst_case"),
                   _paired_row("drrdn", "trades", 12, 10, what="worst_case"),
                   _paired_row("mart", "drrdn", 2, 30, what="worst_case")]
    sentences = describe("02_main_results", m)
    claim = next(s for s in sentences if s.startswith("The paper's claim"))
    assert "within noise" not in claim and "overlap" not in claim
    # p-values: scipy.stats.binomtest(2, 32) and binomtest(10, 22), two-sided
    assert ("vs Madry (PGD-AT) (32.0% [27.0, 37.0] vs 30.0% [25.0, 35.0]), differ beyond example "
            "noise (McNemar p = 2.5e-07 (Holm), 30 / 2 discordant)") in claim
    assert ("vs TRADES (32.0% [27.0, 37.0] vs 30.0% [25.0, 35.0]), not distinguishable on these "
            "1,000 examples (McNemar p = 0.83 (Holm), 12 / 10 discordant)") in claim
    # a row stored b-then-a is read a-then-b
    assert ("vs MART (32.0% [27.0, 37.0] vs 30.0% [25.0, 35.0]), differ beyond example noise "
            "(McNemar p = 2.5e-07 (Holm), 30 / 2 discordant)") in claim
    # the per-model sentence says these are models, not methods
    assert ("One training run per method: every comparison above is between two trained models "
            "on the same examples, not between the methods.") in sentences


def test_main_results_without_paired_records_say_so_instead_of_deciding():
    m = _main_results()
    m.pop("paired")
    claim = next(s for s in describe("02_main_results", m) if s.startswith("The paper's claim"))
    assert "not compared by a paired test" in claim and "beyond" not in claim


def test_main_results_several_seeds_show_sd_and_n():
    m = _main_results()
    m["accuracy"]["drrdn"]["clean"].update(value=0.9, lo=0.88, hi=0.92, kind="sd", n=3, sd=0.02)
    line = next(s for s in describe("02_main_results", m) if s.startswith("DRRDN: natural"))
    assert "90.0% ± 2.0 (sd, n=3 seeds)" in line


def test_main_results_names_the_reduced_autoattack_and_the_scale():
    sentences = describe("02_main_results", _main_results())
    assert sentences[0].startswith("Not the paper's scale (") and "not findings" in sentences[0]
    assert "reduced AutoAttack (APGD-CE + APGD-T, 10 iterations)" in sentences[0]
    assert not any("gap" in s for s in sentences)  # never ranked by the clean-robust gap



def test_main_results_calls_the_papers_budget_on_a_short_schedule_indicative():
    m = _main_results()
    m["parameters"].update(dataset="mnist", train_limit=None, eps=None, attack_steps=None,
                           autoattack="standard", epochs=6, eps_ramp_epochs=1, init_from_standard=False)
    m.update(paper_scale=False, paper_budget=True, paper_epochs=100, n_test=10000, n_autoattack=1000)
    sentences = describe("02_main_results", m)
    assert sentences[0].startswith("The paper's budget on a shorter schedule (mnist, the protocol's eps "
                                   "and attacks on 10,000 test images, standard AutoAttack on 1,000, "
                                   "6 epochs against the paper's 100, the training eps ramped up")
    assert "indicative" in sentences[0] and "not findings" not in sentences[0]


def test_main_results_without_autoattack_or_checks_says_so_and_names_the_narrower_worst_case():
    """The first stage of a long evaluation (AutoAttack and the checks still to run) keeps the
    paper's budget but never passes its worst case off as the one over every attack."""
    from drrdn_lib.experiments import attack_label
    m = _main_results()
    m["parameters"].update(dataset="mnist", train_limit=None, eps=None, attack_steps=None,
                           autoattack=None, checks="none", epochs=6, init_from_standard=False)
    m.update(paper_scale=False, paper_budget=True, paper_epochs=100, n_test=10000, n_autoattack=10000,
             checks=[], labels={k: attack_label(k, None) for k in m["labels"] if k != "autoattack"})
    for model in m["accuracy"]:
        m["accuracy"][model].pop("autoattack", None)
    sentences = describe("02_main_results", m)
    assert "AutoAttack not run" in sentences[0] and "indicative" in sentences[0]
    assert not any("over every attack" in s for s in sentences)
    assert any(s.startswith("DRRDN: natural") and "worst case, paper's attacks + black box" in s for s in sentences)
    assert "AutoAttack was not run: the worst case covers the paper's attacks and the transfer examples only, so it can overstate robustness." in sentences
    assert "Gradient-masking checks: not run, so nothing here rules out masked gradients." in sentences

# ------------------------------------------------------------- 07: Table 3, 08: Figure 2
def _committed(name):
    return json.loads((NOTEBOOKS / "metrics" / f"{name}.json").read_text())


def _cell(value, half=0.03):
    return {"value": value, "lo": value - half, "hi": value + half, "n": 300, "kind": "wilson"}


def test_hybrids_conclude_nothing_when_the_drrdn_has_not_learned():
    m = _committed("07_table3_hybrids")
    m["models"]["drrdn"]["clean"] = _cell(0.40)
    m["trained"]["drrdn"] = False
    sentences = describe("07_table3_hybrids", m)
    assert sentences[-1] == "A model has not learned at this scale, so nothing is concluded from its hybrids."
    assert any("DRRDN: natural 40.0%" in s and "not trained at this scale" in s for s in sentences)
    assert not any(s.startswith(("In this run", "The adversarial z_s alone")) for s in sentences)


@pytest.mark.parametrize("s_only, i_only, verdict", [
    ((10, 12), (1, 40), "as the paper reads its Table 3"),   # only z'_i lower beyond example noise
    ((1, 40), (1, 40), "both adversarial parts lower accuracy"),
    ((1, 40), (10, 12), "the opposite of the paper's reading"),
    ((10, 12), (12, 10), "neither adversarial part lowers accuracy"),
])
def test_hybrids_verdict_follows_the_paired_tests(s_only, i_only, verdict):
    """(a_only, b_only): hybrid vs r(z_s, z_i) on the same 300 images; the intervals are the
    same in every case, so only the paired counts can decide."""
    m = _committed("07_table3_hybrids")
    m["trained"] = {"standard": True, "drrdn": True}
    for name in ("r(z_s, z_i)", "r(z'_s, z_i)", "r(z_s, z'_i)"):
        m["hybrids"][name]["after"] = _cell(0.95)
    m["paired"] = [_paired_row("r(z'_s, z_i)", "r(z_s, z_i)", *s_only, n=300),
                   _paired_row("r(z_s, z'_i)", "r(z_s, z_i)", *i_only, n=300)]
    sentences = describe("07_table3_hybrids", m)
    assert sentences[-1].startswith(f"In this run (one trained DRRDN: a statement about this model), {verdict}")
    assert any(s.startswith("On the same 300 test images, after fine-tuning: the adversarial z_s alone")
               for s in sentences)
    assert sentences[0].startswith("CI scale (") and "not findings" in sentences[0]
    assert sentences[-1].endswith("(CI scale: not a finding).")


def test_tsne_concludes_nothing_about_z_s_z_i_when_the_drrdn_has_not_learned():
    m = _committed("08_figure2_tsne")
    m["trained"]["drrdn"] = False
    sentences = describe("08_figure2_tsne", m)
    assert sentences[-1] == "DRRDN has not learned at this scale, so nothing is concluded about z_s and z_i."
    assert "The t-SNE maps are qualitative; the k-NN and probe accuracies are the evidence." in sentences


def test_tsne_readings_are_tests_with_their_thresholds():
    m = _committed("08_figure2_tsne")
    m["trained"] = {"standard": True, "drrdn": True}
    m["thresholds"] = {"domain_overlap_max": 0.6, "class_free_max": 0.2}
    reps = m["representations"]
    reps["Standard: features"].update(knn_adversarial=_cell(0.10))
    reps["DRRDN: z_s"].update(knn_natural=_cell(0.95), knn_adversarial=_cell(0.90), domain=_cell(0.51))
    reps["DRRDN: z_i"].update(knn_natural=_cell(0.11), domain=_cell(0.99, half=0.01))
    m["paired"] = [_paired_row("DRRDN: z_s | knn_adversarial", "Standard: features | knn_adversarial", 120, 2, n=150),
                   _paired_row("DRRDN: z_i | domain", "DRRDN: z_s | domain", 140, 3, n=300)]
    last = describe("08_figure2_tsne", m)[-1]
    assert last.startswith("Figure 2's readings as tests (thresholds fixed before the numbers")
    assert "4 of 4 hold" in last
    assert "holds if its upper end is at most 60.0%" in last and "at most 20.0%" in last
    # z_i's k-NN at 78% [75, 81] is far above chance and less than z_s's: 'no class' does not hold
    reps["DRRDN: z_i"].update(knn_natural=_cell(0.78))
    last = describe("08_figure2_tsne", m)[-1]
    assert "z_i carries no class (k-NN on natural rows 78.0% [75.0, 81.0]; holds if its upper end " \
           "is at most 20.0%, chance 10.0%): does not hold" in last and "3 of 4 hold" in last
    # the probes differ by little on the same rows: not distinguishable, so reading 3 fails
    m["paired"][1] = _paired_row("DRRDN: z_i | domain", "DRRDN: z_s | domain", 12, 10, n=300)
    last = describe("08_figure2_tsne", m)[-1]
    assert "not distinguishable on these 300 examples" in last and "2 of 4 hold" in last
    m["trained"]["standard"] = False                # no comparison with an untrained Standard
    last = describe("08_figure2_tsne", m)[-1]
    assert "Standard features" not in last and "1 of 3 hold" in last


# ------------------------------------------------------------------ 00: the zoo against Table 1
def _quickstart(models: dict, n: int = 200) -> dict:
    """Quickstart metrics for zoo models {name: (method, {column: n_correct})}."""
    from drrdn_lib.experiments import MODEL_LABELS, paper_column
    from drrdn_lib.official_eval import accuracy_cell
    from drrdn_lib.paper_numbers import METHOD_OF_MODEL, TABLES
    row = {m: p for p, m in METHOD_OF_MODEL.items()}
    m = {"parameters": {"seed": 0}, "zoo": list(models), "n_test": n, "models": {}, "accuracy": {},
         "comparison": [], "autoattack": {},
         "live": {"method": "standard", "model": "smallcnn", "dataset": "mnist5k", "epochs": 1,
                  "train_examples": 3500, "test_clean": accuracy_cell(870, 1000)}}
    for name, (method, counts) in models.items():
        acc = {c: accuracy_cell(k, n) for c, k in counts.items()}
        m["accuracy"][name] = acc
        m["models"][name] = {"method": method, "method_label": MODEL_LABELS[method],
                             "label": f"{MODEL_LABELS[method]} ({name})", "paper_row": row.get(method),
                             "card_n": 1000, "card": {k: acc[k]["accuracy"] for k in ("clean", "pgd40")}}
        for c, cell in acc.items():
            if row.get(method) and paper_column(c) in TABLES["table1"][row[method]]:
                paper = TABLES["table1"][row[method]][paper_column(c)]
                m["comparison"].append({"model": name, "column": c, "paper": paper,
                                        "ours": 100 * cell["accuracy"], "paper_inside":
                                        100 * cell["lo"] <= paper <= 100 * cell["hi"]})
    return m


def test_quickstart_says_when_no_zoo_model_is_installed():
    sentences = describe("00_quickstart", _quickstart({}))
    assert sentences[0].startswith("No zoo models are installed")
    assert sentences[-1].startswith("Live training shows the API, not a result")
    assert "reaches 87.0% [" in sentences[-1] and len(sentences) == 2


def test_quickstart_compares_each_zoo_model_with_its_paper_row_and_its_card():
    counts = {"clean": 199, "fgsm": 198, "pgd40": 195, "pgd100": 193, "cw40": 195, "cw100": 150,
              "worst_case": 150}
    m = _quickstart({"drrdn": ("drrdn", counts), "madry": ("pgd_at", {**counts, "pgd40": 160})})
    m["models"]["madry"]["card"]["pgd40"] = 0.97  # a card its re-evaluation contradicts
    sentences = describe("00_quickstart", m)
    assert sentences[0].startswith("2 zoo models, each on 200 official MNIST test digits")
    drrdn = next(s for s in sentences if s.startswith("DRRDN (drrdn)"))
    assert "inside our interval for 5 of 6 columns (outside: CW-100 paper 96.93%, ours 75.0%)" in drrdn
    assert "consistent with this run on natural and PGD-40" in drrdn
    madry = next(s for s in sentences if s.startswith("Madry (PGD-AT) (madry)"))
    assert "NOT consistent with this run on PGD-40" in madry
    claim = next(s for s in sentences if s.startswith("The paper's claim"))
    assert "97.55%" in claim and "higher (intervals apart) than Madry (PGD-AT)'s" in claim


def test_quickstart_tests_the_papers_claim_on_the_same_digits():
    """Intervals that overlap (195 vs 188 of 200) with 9 / 2 discordant digits: not
    distinguishable; 30 / 2 of 1,000: beyond example noise; never decided by overlap."""
    counts = {"clean": 199, "fgsm": 198, "pgd40": 195, "pgd100": 193, "cw40": 195, "cw100": 190,
              "worst_case": 188}
    m = _quickstart({"drrdn": ("drrdn", counts), "madry": ("pgd_at", {**counts, "pgd40": 188}),
                     "trades": ("trades", {**counts, "pgd40": 194})})
    m["paired"] = [_paired_row("drrdn", "madry", 9, 2, n=200, what="pgd40"),
                   _paired_row("drrdn", "trades", 2, 30, n=1000, what="pgd40")]
    claim = next(s for s in describe("00_quickstart", m) if s.startswith("The paper's claim"))
    assert "one run each: models, not methods" in claim
    assert ("not distinguishable from Madry (PGD-AT)'s 94.0% [" in claim
            and "not distinguishable on these 200 examples (McNemar p = 0.065" in claim)
    assert "lower than TRADES's 97.0% [" in claim and "differ beyond example noise (McNemar p = " in claim
    assert "intervals" not in claim


def test_difference_from_paper_plots_ours_minus_the_paper_with_our_interval():
    import matplotlib
    matplotlib.use("Agg")
    from drrdn_lib.plots import plot_difference_from_paper
    rows = [{"model": "a", "column": "clean", "paper": 99.5, "ours": 98.0, "lo": 96.0, "hi": 99.0},
            {"model": "a", "column": "pgd40", "paper": 97.55, "ours": 97.55, "lo": 95.0, "hi": 99.0},
            {"model": "b", "column": "clean", "paper": 99.45, "ours": 99.45, "lo": 98.0, "hi": 99.9}]
    figure = plot_difference_from_paper(rows, ["clean", "pgd40"], {"clean": "natural", "pgd40": "PGD-40"},
                                        {"a": "DRRDN (a)", "b": "Madry (b)"}, "title (200 digits)")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["natural", "PGD-40"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["DRRDN (a)", "Madry (b)"]
    ys = ax.lines[0].get_ydata()  # model a's points: ours - paper
    assert list(ys) == pytest.approx([-1.5, 0.0])


# ------------------------------------------------------- 05: representations, Proposition 1
def _js_rows(m, method, **change):
    for r in m["js"]:
        if r["method"] == method:
            r.update(change)


def test_representations_compare_c_i_with_a_fresh_discriminator_on_the_same_pairs():
    """c_i against the fresh discriminator: exact McNemar on the fresh one's held-out pairs
    (25 / 60 discordant: below it; 20 / 24: not distinguishable), never interval overlap."""
    m = _committed("05_representations")
    if not m.get("c_i") or not m["trained"].get("drrdn"):
        pytest.skip("the committed CI run kept no c_i rows")
    last = max(m["c_i"], key=lambda r: r["from_start"])
    from drrdn_lib.stats import mcnemar_p
    last.update(vs_fresh_n=500, c_i_only=25, fresh_only=60, vs_fresh_p=mcnemar_p(25, 60))
    sentence = next(s for s in describe("05_representations", m) if s.startswith("DRRDN's domain classifier c_i"))
    assert "c_i is below the fresh discriminator on the same held-out pairs" in sentence
    assert "25 / 60 discordant, c_i / fresh" in sentence and "intervals" not in sentence
    last.update(c_i_only=20, fresh_only=24, vs_fresh_p=mcnemar_p(20, 24))
    sentence = next(s for s in describe("05_representations", m) if s.startswith("DRRDN's domain classifier c_i"))
    assert "not distinguishable on these 500 examples" in sentence


def test_representations_read_proposition_1_by_paired_differences_of_the_bounds():
    """DRRDN vs each trained baseline by the paired difference on the same held-out pairs
    (Holm p): below Standard, not distinguishable from PGD-AT, above TRADES; an untrained
    baseline is left out; never interval overlap."""
    m = _committed("05_representations")
    def row(b, d, p):
        return {"a_method": "drrdn", "a_representation": "z_s", "b_method": b,
                "b_representation": "penultimate", "difference": d, "lo": d - 0.02, "hi": d + 0.02,
                "n": 1000, "p_value": p, "p_holm": p, "family_size": 4}
    m["js_paired"] = [row("standard", -0.3, 1e-9), row("pgd_at", 0.004, 0.6),
                      row("trades", 0.05, 1e-4), row("mart", -0.2, 1e-6)]
    m["trained"]["mart"] = False
    sentence = next(s for s in describe("05_representations", m) if s.startswith("Proposition 1's reading"))
    assert "same 1,000 held-out pairs" in sentence and "Holm over 4 comparisons" in sentence
    assert "DRRDN's z_s is below Standard (-0.300 [-0.320, -0.280] nats, p = 1.0e-09)" in sentence
    assert "not distinguishable from Madry (PGD-AT) (+0.004" in sentence
    assert "above TRADES (+0.050" in sentence and "MART" not in sentence
    assert "intervals" not in sentence


def test_representations_leave_an_untrained_model_out_of_the_js_comparisons():
    m = _committed("05_representations")
    m["trained"]["mart"] = False
    sentences = describe("05_representations", m)
    assert any(s.startswith("MART: natural") and "not trained at this scale" in s for s in sentences)
    assert not any(s.startswith("JS of MART") for s in sentences)
    reading = next(s for s in sentences if s.startswith("Proposition 1's reading"))
    assert "MART" not in reading and reading.endswith("(CI scale: not a finding).")
    m["trained"]["drrdn"] = False
    sentences = describe("05_representations", m)
    assert "DRRDN has not learned at this scale, so nothing is concluded about Proposition 1." in sentences
    assert not any(s.startswith(("A fresh domain classifier", "DRRDN's domain classifier")) for s in sentences)


def test_representations_a_bound_at_zero_is_no_divergence_detected_not_alignment():
    m = _committed("05_representations")
    _js_rows(m, "trades", nats=0.01, lo=-0.02, hi=0.04)
    line = next(s for s in describe("05_representations", m) if s.startswith("JS of TRADES"))
    assert line.endswith("no divergence detected with these pairs (not evidence of alignment).")
    assert "aligned" not in line.replace("alignment", "")


def test_representations_read_nothing_when_a_control_raises_a_false_alarm():
    m = _committed("05_representations")
    same = next(r for r in m["controls"] if r["control"] == "same distribution")
    same.update(nats=0.2, lo=0.1, hi=0.3)
    sentences = describe("05_representations", m)
    assert sentences[-1].startswith("The estimator found a divergence between two random halves of one sample")
    assert not any(s.startswith(("JS of ", "Proposition 1's reading")) for s in sentences)


def test_representations_read_marginal_against_within_class_by_the_paired_difference():
    m = _committed("05_representations")
    m["trained"]["standard"] = True
    for r in m["js"]:
        if r["method"] == "standard":
            r.update(nats=0.30, lo=0.25, hi=0.35) if r["alignment"] == "marginal" else r.update(
                nats=0.34, lo=0.29, hi=0.39, minus_marginal=0.04, minus_marginal_lo=0.02,
                minus_marginal_hi=0.06, minus_marginal_p=1e-4)
    line = next(s for s in describe("05_representations", m) if s.startswith("JS of Standard"))
    assert "larger within classes beyond pair noise (within minus marginal +0.040 [+0.020, +0.060]" in line
    assert "overlap" not in line
    for r in m["js"]:
        if r["method"] == "standard" and r["alignment"] != "marginal":
            r.update(minus_marginal_p=0.3)
    line = next(s for s in describe("05_representations", m) if s.startswith("JS of Standard"))
    assert ": not distinguishable (within minus marginal" in line


def test_representations_read_js_over_training_by_the_paired_difference_from_the_start():
    m = _committed("05_representations")
    rows = [r for r in m["over_epochs"] if r["method"] == "drrdn" and r["alignment"] == "marginal"
            and r["stage"] == "own"]
    if not rows or not m["trained"].get("drrdn"):
        pytest.skip("the committed CI run kept no DRRDN epochs")
    last = max(rows, key=lambda r: r["from_start"])
    last.update(minus_start=-0.05, minus_start_lo=-0.08, minus_start_hi=-0.02, minus_start_p=0.001)
    line = next(s for s in describe("05_representations", m) if s.startswith("JS over training"))
    assert "below the start beyond pair noise (-0.050 [-0.080, -0.020] nats on the same pairs, p = 0.001)" in line
    last.update(minus_start_p=0.4)
    line = next(s for s in describe("05_representations", m) if s.startswith("JS over training"))
    assert "not distinguishable from the start (-0.050" in line


def test_representations_without_paired_rows_read_labelled_intervals():
    """Older metrics (no js_paired): the intervals, labelled as not a paired test."""
    m = _committed("05_representations")
    m.pop("js_paired", None)
    m["trained"] = {k: True for k in m["trained"]}
    for method in ("standard", "pgd_at", "trades", "mart"):
        _js_rows(m, method, nats=0.30, lo=0.25, hi=0.35)
    _js_rows(m, "drrdn", nats=0.05, lo=0.01, hi=0.09)
    reading = next(s for s in describe("05_representations", m) if s.startswith("Proposition 1's reading"))
    assert "DRRDN's z_s is below Standard, Madry (PGD-AT), TRADES, MART (intervals apart)" in reading
    assert "not a paired test; one trained model each" in reading
    _js_rows(m, "mart", nats=0.08, lo=0.04, hi=0.12)   # overlaps DRRDN's: undecided, never "within noise"
    reading = next(s for s in describe("05_representations", m) if s.startswith("Proposition 1's reading"))
    assert "undecided against MART (intervals overlap)" in reading and "within noise" not in reading


def test_representations_compare_z_s_and_z_i_by_the_paired_test():
    m = _committed("05_representations")
    m["trained"]["drrdn"] = True
    m["paired"] = [_paired_row("z_i | domain", "z_s | domain", 3, 60, n=400),
                   _paired_row("z_s | label", "z_i | label", 12, 10, n=200)]
    sentences = describe("05_representations", m)
    domain = next(s for s in sentences if s.startswith("A fresh domain classifier (MLP)"))
    assert "differ beyond example noise" in domain and domain.endswith(
        "z_s carries more domain information than z_i, the opposite of DRRDN's intent.")
    label = next(s for s in sentences if s.startswith("A linear probe reads the class"))
    assert "not distinguishable on these 200 examples" in label
    assert label.endswith("the class has not been shown to leave z_i.")


# ------------------------------------------------------------------ 03: Table 4
def _ablation(full_pgd, variant_pgd, *, cpu=False):
    """The committed 03 metrics with the full DRRDN and 'without MI' learned (clean 95%),
    every other variant left out; PGD-20 and worst case as given."""
    m = _committed("03_ablation")
    keep = ("full DRRDN", "without MI")
    rows = []
    for model, pgd in zip(keep, (full_pgd, variant_pgd)):
        for column, value in (("clean", 0.95), ("pgd10", pgd), ("pgd20", pgd), ("worst_case", pgd)):
            rows.append({"model": model, "column": column, **_cell(value), "sd": None})
    m["summary"] = rows
    m["paper_comparison"] = [{"variant": v, "paper_row": v, "learned": True, "inside_pgd40": i,
                              "inside_pgd100": False} for v, i in zip(keep, (True, False))]
    if cpu:
        m["parameters"] = {**m["parameters"], "dataset": "mnist", "train_limit": None, "eps": None,
                           "attack_steps": None, "epochs": 6}
        m["pgd_columns"] = ["pgd40", "pgd100"]
        for r in rows:
            r["column"] = {"pgd10": "pgd40", "pgd20": "pgd100"}.get(r["column"], r["column"])
    return m


@pytest.mark.parametrize("discordant, words", [
    ((40, 8), "differ beyond example noise (McNemar p = 3.3e-06 (Holm), 40 / 8 discordant)"),
    ((11, 9), "not distinguishable on these 1,000 examples (McNemar p = 0.82 (Holm), 11 / 9 discordant)")])
def test_ablation_compares_each_learned_variant_with_the_full_drrdn_by_the_paired_test(discordant, words):
    m = _ablation(0.90, 0.92)  # the intervals overlap in both cases
    m["paired"] = [_paired_row("without MI", "full DRRDN", *discordant, seed=0, column=c)
                   for c in ("pgd20", "worst_case")]
    sentences = describe("03_ablation", m)
    mine = [s for s in sentences if s.startswith("without MI against full DRRDN (seed 0, the same "
                                                 "test images): PGD-20 ")]
    assert len(mine) == 1 and mine[0].count(words) == 2 and "within noise" not in mine[0]
    assert ("One training run per variant: these compare trained models, not the losses they "
            "leave out (a claim about a loss needs several seeds).") in sentences
    assert sentences[-1].startswith("The paper's Table 4 (PGD-40 and PGD-100 at eps 0.3): its number "
                                    "lies inside our PGD-10 interval for 1 and inside our PGD-20 "
                                    "interval for 0 of 2 trained rows; at this scale")


def test_ablation_at_the_cpu_scale_names_table_4s_attacks_and_the_schedule():
    sentences = describe("03_ablation", _ablation(0.90, 0.92, cpu=True))
    assert sentences[0].startswith("cpu scale (mnist, the full training split, eps of the protocol, 6 epochs")
    assert any(s.startswith("without MI against full DRRDN (seed 0, the same test images): PGD-100 ")
               for s in sentences)
    assert "inside our PGD-40 interval for 1 and inside our PGD-100 interval for 0 of 2 trained rows; " \
           "on a shorter schedule (epochs, seeds)" in sentences[-1]


def _curve(model, pgd, lrs, natural=None):
    """Learning-curve records (``experiments.learning_curves``) of one seed: PGD and natural
    (natural 0.95 at every epoch unless given)."""
    natural = natural or [0.95] * len(pgd)
    return [{"method": model, "seed": 0, "epoch": e, "split": split, "stage": "own", "value": v,
             "lo": v - 0.02, "hi": v + 0.02, "n": 1000, "lr": lr}
            for e, (p, c, lr) in enumerate(zip(pgd, natural, lrs), 1)
            for split, v in (("PGD", p), ("natural", c))]


def test_ablation_says_where_each_variants_validation_pgd_peaked_and_ended():
    m = _ablation(0.90, 0.92)
    lrs = [0.01, 0.01, 0.01, 0.001]
    m["learning_curves"] = _curve("full DRRDN", [0.70, 0.89, 0.92, 0.80], lrs) + \
        _curve("without MI", [0.72, 0.85, 0.92, 0.91], lrs)
    sentence = next(s for s in describe("03_ablation", m) if s.startswith("Validation PGD per epoch"))
    assert "1,000 held-out images; epoch 4 is the first at a lower lr" in sentence
    assert "full DRRDN peaks at epoch 3 (92.0% [90.0, 94.0]) and ends at epoch 4 with 80.0% " \
           "[78.0, 82.0], below the peak's interval" in sentence
    # one model's epochs on the same validation digits, without per-digit records: no test decides
    assert "without MI peaks at epoch 3 (92.0% [90.0, 94.0]) and ends at epoch 4 with 91.0% " \
           "[89.0, 93.0], its interval overlaps the peak's (no per-digit validation record: " \
           "not a paired test, undecided)" in sentence
    m["learning_curves"] = _curve("full DRRDN", [0.70, 0.89, 0.89, 0.88], lrs, natural=[0.9, 0.9, 0.97, 0.96])
    sentence = next(s for s in describe("03_ablation", m) if s.startswith("Validation PGD per epoch"))
    assert "full DRRDN peaks at epoch 3 (89.0% [87.0, 91.0])" in sentence  # a PGD tie: training's rule
    m["learning_curves"] = _curve("full DRRDN", [0.70, 0.89], [0.01, 0.01])
    sentence = next(s for s in describe("03_ablation", m) if s.startswith("Validation PGD per epoch"))
    assert "full DRRDN peaks at its last epoch (2, 89.0% [87.0, 91.0])" in sentence and "lower lr" not in sentence


def test_ablation_says_nothing_of_learning_curves_it_does_not_have():
    m = _ablation(0.90, 0.92)
    m.pop("learning_curves", None)
    assert not any(s.startswith("Validation PGD") for s in describe("03_ablation", m))


def test_ablation_leaves_an_untrained_variant_out_of_every_comparison():
    m = _ablation(0.90, 0.05)
    for r in m["summary"]:
        if r["model"] == "without MI" and r["column"] == "clean":
            r.update(_cell(0.30))
    sentences = describe("03_ablation", m)
    assert any(s.startswith("without MI: not trained at this scale") for s in sentences)
    assert "for 1 and inside our PGD-20 interval for 0 of 1 trained rows" in sentences[-1]


def test_ablation_names_each_variants_failed_gradient_masking_checks():
    m = _ablation(0.90, 0.92)
    m["checks"] = [{"model": "full DRRDN", "check": "stronger_pgd", "passed": False, "message": "", "seed": 0},
                   {"model": "full DRRDN", "check": "black_box", "passed": True, "message": "", "seed": 0},
                   {"model": "without MI", "check": "stronger_pgd", "passed": True, "message": "", "seed": 0},
                   {"model": "without MI", "check": "black_box", "passed": False, "message": "", "seed": 0}]
    sentence = next(s for s in describe("03_ablation", m) if s.startswith("Gradient-masking checks"))
    assert sentence == ("Gradient-masking checks (stronger_pgd, black_box): 2 of 4 failed: full DRRDN "
                        "stronger_pgd; without MI black_box. The robust accuracy of those models may be "
                        "overestimated.")
    m["checks"] = []
    assert "Gradient-masking checks: not run" in " ".join(describe("03_ablation", m))
    m.pop("checks")  # metrics written before the notebook reported its checks
    assert not any(s.startswith("Gradient-masking") for s in describe("03_ablation", m))
