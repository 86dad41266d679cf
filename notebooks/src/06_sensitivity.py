# %% [markdown]
# # 06 · Sensitivity: accuracy against eps, and the accuracy-robustness frontier
#
# **Question.** (a) How does each method's accuracy fall as the attack radius grows
# beyond the training eps (a curve that should fall monotonically to about chance; a
# plateau would hint at gradient masking)? (b) Sweeping DRRDN's alignment weight
# `lambda_adv` and TRADES's `beta` traces two accuracy-robustness frontiers on the same
# axes: does DRRDN's lie above and to the right? Runs are shared with notebooks 02 and 03
# where the configuration is the same. PGD only (no AutoAttack) for the eps sweep.

# %% tags=["parameters"]
dataset = "mnist5k"
methods = ["standard", "pgd_at", "trades", "mart", "drrdn"]
seed = 0
epochs = 4
train_limit = 1000
eps = 0.2               # training eps
eps_grid = [0.0, 0.1, 0.2, 0.3, 0.4]
lambda_adv_grid = [0.0, 1.0, 3.0]
beta_grid = [1.0, 6.0]
train_steps = 5
eval_steps = 10
lr = 0.05
batch_size = 32
eval_limit = 200
device = "cpu"
data_dir = None
out_dir = None

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, results

NAME = "06_sensitivity"
out = results.run_dir(NAME, out_dir)
train_kw = experiments.training_kw(epochs=epochs, train_limit=train_limit, batch_size=batch_size,
                                  eps=eps, train_steps=train_steps, lr=lr, device=device, data_dir=data_dir)
eval_kw = dict(limit=eval_limit, pgd_steps=eval_steps, autoattack=None, checks="none",
               data_dir=data_dir, seed=seed)

# %% [markdown]
# ## (a) Accuracy against eps (PGD)

# %%
runs = experiments.train_grid(methods, dataset, [seed], **train_kw)
curve = []
for (method, _), run in runs.items():
    for e in eps_grid:
        if e == 0:
            acc = experiments.evaluate_model(run.best_model, dataset, eps=eps, **{**eval_kw, "pgd_steps": 1}).clean_accuracy
        else:
            acc = experiments.evaluate_model(run.best_model, dataset, eps=e, **eval_kw).accuracy("pgd")
        curve.append({"method": method, "eps": e, "accuracy": acc})
curve = pd.DataFrame(curve)
curve.pivot(index="eps", columns="method", values="accuracy").round(3)

# %% [markdown]
# ## (b) Frontiers: DRRDN's `lambda_adv` and TRADES's `beta`

# %%
frontier = []
for name, method, key, grid in (("DRRDN lambda_adv", "drrdn", "lambda_adv", lambda_adv_grid),
                                ("TRADES beta", "trades", "beta", beta_grid)):
    for value in grid:
        run = experiments.shared_run(method, dataset, seed=seed, hyper={key: value}, **train_kw)
        record = experiments.evaluate_model(run.best_model, dataset, eps=eps,
                                            **{**eval_kw, "autoattack": "fast", "checks": "cheap"})
        frontier.append({"family": name, "value": value, "clean": record.clean_accuracy,
                         "robust": record.worst_case_accuracy})
frontier = pd.DataFrame(frontier)
frontier.round(3)

# %%
sns.set_theme(style="whitegrid")
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
sns.lineplot(data=curve, x="eps", y="accuracy", hue="method", marker="o", ax=axes[0])
axes[0].axvline(eps if eps is not None else experiments.protocol(dataset)["train"].eps, color="grey", ls=":", lw=1)
axes[0].set(title="PGD accuracy against eps (dotted: training eps)", ylim=(0, 1))
for family, group in frontier.groupby("family"):
    axes[1].plot(group.clean, group.robust, marker="o", label=family)
    for _, row in group.iterrows():
        axes[1].annotate(f"{row.value:g}", (row.clean, row.robust), fontsize=8,
                         xytext=(3, 3), textcoords="offset points")
axes[1].set(xlabel="natural accuracy", ylabel="robust accuracy (worst case)",
            title="accuracy-robustness frontiers")
axes[1].legend()
results.save_figure(fig, out, "sensitivity");

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": dict(dataset=dataset, methods=methods, seed=seed, epochs=epochs, eps=eps,
                              eps_grid=eps_grid, lambda_adv_grid=lambda_adv_grid, beta_grid=beta_grid,
                              eval_steps=eval_steps, eval_limit=eval_limit),
           "eps_curve": curve.to_dict("records"), "frontier": frontier.to_dict("records")}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
