# %% [markdown]
# # 04 · Does the bound hold, and which method narrows the trade-off?
#
# **Question.** For every method of notebook 02, on its representation (DRRDN: the robust
# part `z_s`; the baselines: the backbone's features), estimate the terms of
# `err_A <= err_N + d/2 + lambda*` on held-out test data (A: the evaluation PGD): does the
# bound hold, which method has the smallest robustness gap `err_A - err_N`, and is that
# method's divergence the smallest, as the paper argues? We also follow the terms over
# training epochs: does the
# divergence shrink as adversarial training goes on, and does the gap follow it? Runs are
# shared with notebook 02 (same configuration, same cached run, which keeps the weights of
# evenly spaced epochs). The divergence is a proxy A-distance of trained heads
# (a lower estimate of the true divergence), so the estimated bound is an estimate, not a
# guarantee (notebook 01 shows how loose or tight it can be).

# %% tags=["parameters"]
dataset = "mnist5k"
methods = ["standard", "pgd_at", "trades", "mart", "drrdn"]
seeds = [0]
epochs = 4
train_limit = 1000
eps = 0.2
train_steps = 5
eval_steps = 10
lr = 0.05
batch_size = 32
eval_limit = 200
device = "cpu"
data_dir = None
out_dir = None

# %%
import pandas as pd
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, plots, results, train

NAME = "04_bound_check"
out = results.run_dir(NAME, out_dir)
train_kw = experiments.training_kw(epochs=epochs, train_limit=train_limit, batch_size=batch_size,
                                  eps=eps, train_steps=train_steps, lr=lr, device=device, data_dir=data_dir)
runs = experiments.train_grid(methods, dataset, seeds, **train_kw)

# %%
bound_kw = dict(limit=eval_limit, pgd_steps=eval_steps, eps=eps, data_dir=data_dir)
rows = []
for (method, seed), run in runs.items():
    report = experiments.bound_report(run.best_model, dataset, seed=seed, **bound_kw)
    for head in report.checks:
        rows.append({"method": method, "seed": seed, **report.to_record(head),
                     "gap": report.err_adv.value - report.err_nat.value})
frame = pd.DataFrame(rows)
frame[["method", "seed", "head", "err_nat", "err_adv", "gap", "divergence", "lambda_star",
       "bound", "holds", "r_nat", "r_bdy", "r_rob"]].round(3)

# %%
fig = plots.plot_bound_terms(frame[frame["head"] == "mlp"], x="method")
results.save_figure(fig, out, "bound_terms_by_method");

# %% [markdown]
# ## The terms over training
# The same estimate (MLP head) on the weights each run kept after every few epochs
# (`keep_every`; the best checkpoint above is one of them).

# %%
epoch_rows = []
for (method, seed), run in runs.items():
    for epoch in train.epoch_checkpoints(run.out_dir):
        model = train.load_model(run.out_dir, epoch, device=device)
        report = experiments.bound_report(model, dataset, seed=seed, heads=("mlp",), **bound_kw)
        epoch_rows.append({"method": method, "seed": seed, "epoch": epoch, **report.to_record("mlp"),
                           "gap": report.err_adv.value - report.err_nat.value})
unkept = [f"{m}/seed {s}" for (m, s), run in runs.items() if not train.epoch_checkpoints(run.out_dir)]
print("runs that kept no per-epoch weights (cached before keep_every existed):", unkept or "none")
over_epochs = pd.DataFrame(epoch_rows, columns=["method", "seed", "epoch", "err_nat", "err_adv", "gap",
                                                "divergence", "lambda_star", "bound", "holds"])
over_epochs.pivot_table(index="epoch", columns="method", values=["gap", "divergence"], sort=False).round(3)

# %%
if len(over_epochs):
    fig = plots.plot_bound_over_training(over_epochs)
    results.save_figure(fig, out, "bound_terms_over_epochs")

# %% [markdown]
# ## What this run shows

# %%
mlp = frame[frame["head"] == "mlp"].groupby("method", sort=False)
metrics = {"parameters": dict(dataset=dataset, methods=methods, seeds=seeds, epochs=epochs,
                              train_limit=train_limit, eps=eps, eval_steps=eval_steps, eval_limit=eval_limit),
           "rows": rows,
           "by_method": mlp[["err_nat", "err_adv", "gap", "divergence", "lambda_star", "bound"]].mean().to_dict("index"),
           "holds": {m: bool(all(g["holds"])) for m, g in frame.groupby("method", sort=False)},
           "over_epochs": over_epochs.to_dict("records"), "runs_without_kept_weights": unkept,
           "gap_divergence_spearman": (float(over_epochs["gap"].corr(over_epochs["divergence"], method="spearman"))
                                       if len(over_epochs) > 2 else None)}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
