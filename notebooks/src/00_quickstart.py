# %% [markdown]
# # 00 · Quickstart: trained models on the official MNIST test digits, beside the paper's Table 1
#
# **Question.** Do this project's trained models (the model zoo: Standard, Madry/PGD-AT,
# TRADES and DRRDN, each a SmallCNN trained on MNIST) reach the accuracies of the paper's
# Table 1 under its white-box attacks (FGSM, PGD-40, PGD-100, CW-40, CW-100 at eps 0.3)?
#
# What runs, in a few minutes on two CPU cores (no training beyond a few seconds, nothing
# downloaded):
#
# 1. every model in `zoo/` (weights plus a card saying how it was trained and what it scored,
#    `drrdn_lib.zoo`) is evaluated on `eval_limit` official MNIST test digits (shipped in
#    the repository as `data/mnist_test.npz`, drawn class-stratified with `seed`) with the
#    paper's attacks, in float32; every accuracy comes with its 95% Wilson interval and
#    sits beside the paper's number;
# 2. AutoAttack on `autoattack_limit` of the same digits: the standard version when
#    `autoattack = "standard"`, else a reduced one, named as such everywhere;
# 3. a small model is trained live on `mnist5k` for a few seconds, to show the training API.
#
# The `mnist5k` digits are official MNIST *training* digits: they train the live model and
# never serve as test data. The zoo's cards hold each model's numbers on more digits;
# `tests/test_zoo.py` re-checks them.

# %% tags=["parameters"]
eval_limit = 150        # official test digits per zoo model (the paper's five attacks; None: 10,000)
autoattack = "fast"     # "standard" (to report), "fast" (reduced AutoAttack) or "none"
autoattack_limit = 150  # digits for AutoAttack (a stratified part of the same digits)
train_limit = None      # live training: mnist5k digits (None: all 3,500)
epochs = 1              # live training epochs
seed = 0
device = "cpu"
zoo_dir = None          # None: zoo/ in the repository (or $DRRDN_ZOO)
out_dir = None          # None: results/00_quickstart

# %%
import time

import pandas as pd
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, official_eval, plots, results, stats, zoo
from drrdn_lib.autoattack_adapter import AutoAttackAdapter
from drrdn_lib.data import stratified_split
from drrdn_lib.evaluate import evaluate
from drrdn_lib.paper_numbers import METHOD_OF_MODEL
from drrdn_lib.train import TrainConfig, evaluate_accuracy, train

NAME = "00_quickstart"
out = results.run_dir(NAME, out_dir)
started = time.perf_counter()

# %% [markdown]
# ## 1. The zoo
# Each card records the run's full configuration, the command and commit that trained it,
# its learning curve (selected on validation digits, never on the test set) and its own
# evaluation on the official test set.

# %%
order = {m: i for i, m in enumerate(experiments.METHOD_ORDER)}  # the paper's row order
names = sorted(zoo.available(zoo_dir), key=lambda n: (order.get(zoo.card(n, zoo_dir)["method"], 99), n))
cards = {name: zoo.card(name, zoo_dir) for name in names}
if not names:
    display(Markdown(f"**No zoo models are installed** ({zoo.zoo_folder(zoo_dir)}/ holds no cards), so "
                     "there is nothing to compare with the paper's Table 1 yet. Add finished runs with "
                     "`python scripts/add_to_zoo.py RUN_DIR NAME --command ...` (see zoo/README.md); "
                     "part 3 below still trains a model live."))
label = {n: f"{c['method_label']} ({n})" for n, c in cards.items()}
cards_table = pd.DataFrame({label[n]: zoo.summary(c) for n, c in cards.items()}).T
if names:
    display(cards_table)

# %% [markdown]
# ## 2. The paper's attacks on the official test digits
# FGSM, PGD-40/100 (cross-entropy) and CW-40/100 (margin loss) at eps 0.3, step 0.01 as the
# paper, each run on every clean-correct digit; `worst case` is the per-digit worst case over
# them (and AutoAttack's below is not part of it). Percent, 95% Wilson interval.

# %%
evaluations = {n: official_eval.evaluate_official(zoo.load_pretrained(n, device, zoo_dir),
                                                  limit=eval_limit, seed=seed, per_example=True)
               for n in names}
# the paper's claim (DRRDN above the baselines under PGD-40), tested on the same digits:
# exact McNemar on the digits only one model of a pair gets right (Holm over the pairs)
first_of = {}
for n in names:
    first_of.setdefault(cards[n]["method"], n)
pairs = [(first_of["drrdn"], first_of[k]) for k in ("pgd_at", "trades")
         if "drrdn" in first_of and k in first_of]
paired = stats.paired_rows({n: e["per_example"]["pgd40"] for n, e in evaluations.items()},
                           pairs, what="pgd40")
n_test = next(iter(evaluations.values()))["subset"]["n"] if evaluations else 0
columns = ["clean", "fgsm", "pgd40", "pgd100", "cw40", "cw100", "worst_case"]
column_labels = {c: experiments.attack_label(c) for c in columns} | {"worst_case": "worst case (paper's attacks)"}
summary = pd.DataFrame([{"model": n, "column": c, "value": r[c]["accuracy"], "lo": r[c]["lo"],
                         "hi": r[c]["hi"], "kind": "wilson", "n": r[c]["n"], "sd": None}
                        for n, e in evaluations.items() for c in columns for r in [e["results"]]],
                       columns=["model", "column", "value", "lo", "hi", "kind", "n", "sd"])
paper_row = {m: p for p, m in METHOD_OF_MODEL.items()}
comparison = pd.concat([experiments.compare_with_paper(
    summary[summary.model == n].assign(model=cards[n]["method"]), "mnist").assign(model=n)
    for n in names], ignore_index=True) if names else pd.DataFrame(
    columns=["model", "column", "paper", "ours", "lo", "hi", "difference", "paper_inside"])
table = pd.DataFrame([{"model": label[r.model], "attack": column_labels[r.column],
                       "ours (%)": f"{r.ours:.1f} [{r.lo:.1f}, {r.hi:.1f}]", "paper (%)": r.paper,
                       "ours - paper (points)": round(r.difference, 1),
                       "paper inside our interval": r.paper_inside} for r in comparison.itertuples()])
if names:
    display(Markdown(f"{n_test} official test digits per model (stratified, seed {seed})."), table)
else:
    display(Markdown("No zoo models: nothing to evaluate."))

# %%
if names:
    scale = f"{n_test} official MNIST test digits, eps 0.3, float32, one seed"
    fig = plots.plot_accuracy_intervals(summary, columns, column_labels, label,
                                        f"Zoo models, test accuracy with 95% Wilson intervals ({scale})")
    results.save_figure(fig, out, "accuracy")
    fig = plots.plot_difference_from_paper(comparison, columns[:-1], column_labels, label,
                                           f"Ours minus the paper's Table 1, 95% Wilson intervals ({scale})")
    results.save_figure(fig, out, "difference_from_paper")

# %% [markdown]
# ## AutoAttack
# Croce & Hein's parameter-free ensemble, a check that the attacks above are not weak. Its
# standard version (APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 target classes, 5,000
# queries) makes about 2,800 forward-backward and 5,000 forward passes per digit a model
# resists, about a minute of one CPU core per 10 such digits of a SmallCNN: it does not fit
# in a few minutes beside the paper's attacks, so the default here is a reduced version
# (APGD-CE and APGD-T, 10 iterations, 1 target class), labelled so everywhere.

# %%
aa_label = {"standard": "AutoAttack (standard)", "fast": experiments.REDUCED_AUTOATTACK_LABEL}.get(autoattack)
autoattack_results = {}
if names and aa_label:
    x, y, _ = official_eval.official_test_subset(eval_limit, seed)
    if autoattack_limit is not None and autoattack_limit < len(y):
        _, pick = stratified_split(y.numpy(), autoattack_limit, seed)
        x, y = x[pick], y[pick]
    adapter = (AutoAttackAdapter(0.3, version="standard", seed=seed) if autoattack == "standard" else
               AutoAttackAdapter(0.3, version="custom", seed=seed, **experiments.FAST_AUTOATTACK))
    for n in names:
        record = evaluate(zoo.load_pretrained(n, device, zoo_dir), x.to(device), y.to(device),
                          {"autoattack": adapter}, checks="none", progress=False)
        autoattack_results[n] = {**official_eval.accuracy_cell(record.attacks["autoattack"].n_correct, record.n),
                                 "label": aa_label, "standard": autoattack == "standard",
                                 "config": record.attacks["autoattack"].config}
if autoattack_results:
    display(pd.DataFrame({label[n]: {aa_label: experiments.format_accuracy(r["accuracy"], r["lo"], r["hi"],
                                                                           "wilson", r["n"]),
                                     "digits": r["n"]} for n, r in autoattack_results.items()}).T)

# %% [markdown]
# ## 3. Training a model live
# The training API in two calls: a `TrainConfig` (every setting of a run, validated) and
# `train`. A Standard SmallCNN trains for `epochs` epoch(s) on `mnist5k` (selected on 100
# validation digits); its clean accuracy is then measured on official test digits, which it
# has never seen.

# %%
config = TrainConfig(method="standard", dataset="mnist5k", model="smallcnn", epochs=epochs,
                     train_limit=train_limit, batch_size=32, lr=0.05, val_limit=100, val_steps=2,
                     val_step_size=0.15, seed=seed, device=device, progress=False)
t0 = time.perf_counter()
run = train(config)
train_seconds = time.perf_counter() - t0
x_live, y_live, _ = official_eval.official_test_subset(1000, seed)
live_clean, _ = evaluate_accuracy(run.best_model, x_live.to(device), y_live.to(device))
live = {"method": config.method, "model": config.model, "dataset": config.dataset,
        "train_examples": 3500 if train_limit is None else train_limit, "epochs": epochs,
        "seconds": round(train_seconds, 1), "val_clean_acc": run.best["val_clean_acc"],
        "test_clean": official_eval.accuracy_cell(round(live_clean * len(y_live)), len(y_live))}
pd.Series({**{k: v for k, v in live.items() if k != "test_clean"},
           "official test digits, clean": experiments.format_accuracy(
               live["test_clean"]["accuracy"], live["test_clean"]["lo"], live["test_clean"]["hi"],
               "wilson", live["test_clean"]["n"])})

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": dict(eval_limit=eval_limit, autoattack=autoattack,
                              autoattack_limit=autoattack_limit, train_limit=train_limit,
                              epochs=epochs, seed=seed),
           "zoo": names, "n_test": n_test,
           "models": {n: {"method": c["method"], "method_label": c["method_label"], "label": label[n],
                          "paper_row": paper_row.get(c["method"]),
                          "card_n": c["evaluation"]["subset"]["n"],
                          "card": {k: c["evaluation"]["results"][k]["accuracy"] for k in ("clean", "pgd40")}}
                      for n, c in cards.items()},
           "accuracy": {n: {c: {k: e["results"][c][k] for k in ("accuracy", "lo", "hi", "n")} for c in columns}
                        for n, e in evaluations.items()},
           "comparison": comparison.to_dict("records"), "paired": paired,
           "autoattack": autoattack_results, "live": live,
           "seconds": round(time.perf_counter() - started, 1)}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
