# %% [markdown]
# # 05 · What DRRDN's representations look like
#
# **Question.** DRRDN is meant to put what distinguishes natural from adversarial inputs
# into the non-robust part `z_i`, keep label information in the robust part `z_s`, and
# align natural and adversarial `z_s`. On the DRRDN model of notebook 02 (same cached run):
# can a fresh classifier tell natural from adversarial inputs on `z_s` versus `z_i`? how
# much label information does each part carry? does `r([z_s, z_i])` reconstruct `z`? And
# what do the parts look like projected to 2-D (PCA)? And Proposition 1's quantity: how far
# apart are the natural and adversarial distributions of the representation each method
# classifies (DRRDN: `z_s`; the baselines: their penultimate features), marginally and
# within each class?

# %% tags=["parameters"]
dataset = "mnist5k"
methods = ["standard", "pgd_at", "trades", "mart", "drrdn"]
seed = 0
epochs = 4
train_limit = 1000
eps = 0.2
train_steps = 5
eval_steps = 10
lr = 0.05
batch_size = 32
eval_limit = 400
device = "cpu"
data_dir = None
out_dir = None

# %%
import matplotlib.pyplot as plt
import torch
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from drrdn_lib import alignment, claims, experiments, representation_probes, results
from drrdn_lib.torch_utils import eval_mode, predict_labels
from drrdn_lib.attacks import PGD
from drrdn_lib.data import load_dataset

NAME = "05_representations"
out = results.run_dir(NAME, out_dir)
train_kw = experiments.training_kw(epochs=epochs, train_limit=train_limit, batch_size=batch_size,
                                  eps=eps, train_steps=train_steps, lr=lr, device=device, data_dir=data_dir)
model = experiments.shared_run("drrdn", dataset, seed=seed, **train_kw).best_model
x, y = load_dataset(dataset, "test", data_dir=data_dir, limit=eval_limit, seed=seed)
budget = experiments.eval_budget(dataset, eval_steps, eps)
sets = representation_probes.representation_sets(model, x.to(device), y.to(device),
                                                 PGD(budget.eps, budget.step_size, budget.steps, seed=seed))

# %% [markdown]
# ## Domain and label information in each part
# `domain_acc`: held-out accuracy of a natural-vs-adversarial classifier (0.5 = cannot
# tell). `label_acc`: held-out accuracy of a linear probe for the class. `rec_error`:
# relative squared error of the reconstruction of `z`.

# %%
summary = pd.DataFrame(representation_probes.disentanglement_summary(sets, y.to(device), seed=seed)).set_index("part")
summary.round(3)

# %%
sns.set_theme(style="white")
fig, axes = plt.subplots(1, 2, figsize=(9, 4))
for ax, part in zip(axes, ("z_s", "z_i")):
    nat, adv = representation_probes.pca_2d(sets["nat"][part], sets["adv"][part])
    ax.scatter(*nat.T.cpu(), c=y.cpu(), cmap="tab10", s=8, marker="o", label="natural")
    ax.scatter(*adv.T.cpu(), c=y.cpu(), cmap="tab10", s=8, marker="x", label="adversarial")
    ax.set(title=f"{part}: PCA (colour = class)", xticks=[], yticks=[])
    ax.legend(fontsize=8)
results.save_figure(fig, out, "pca_z_s_z_i");

# %% [markdown]
# ## Proposition 1's quantity, marginal and class-conditional
# For each method, a fresh linear discriminator is fitted on half of the test examples'
# (natural, adversarial) representation pairs and evaluated on the other half:
# JS >= log 2 - its balanced cross-entropy, in nats (0: indistinguishable, log 2 = 0.693:
# disjoint), with a 95% normal interval (`alignment.js_lower_bound`). The class-conditional
# value does the same within each class and weights the classes by their share: marginal
# alignment (what Proposition 1 promises for `z_s`) says nothing about whether each class
# stays where it was (notebook 01), which is what robustness needs. A value below 0 is not
# a negative divergence: the discriminator fitted on the first half does not generalise to
# the second (too few pairs for the representation's width), and the bound says nothing.

# %%
attack = PGD(budget.eps, budget.step_size, budget.steps, seed=seed)
x_dev, y_dev = x.to(device), y.to(device)
rows = []
for method in methods:
    net = experiments.shared_run(method, dataset, seed=seed, **train_kw).best_model
    adv = attack(net, x_dev, y_dev)
    with eval_mode(net), torch.no_grad():
        z_nat, z_adv = net.representation(x_dev), net.representation(adv)
    table = alignment.alignment_table(z_nat, z_adv, y_dev, paired=True, seed=seed)
    clean = (predict_labels(net, x_dev) == y_dev).float().mean().item()
    for kind, r in table.iterrows():
        rows.append({"method": method, "alignment": kind, "nats": r.nats, "lo": r.lo, "hi": r.hi,
                     "clean": clean, "pairs": len(y), "width": z_nat.shape[1]})
js = pd.DataFrame(rows)
js.pivot(index="method", columns="alignment", values="nats").loc[methods].round(3)

# %%
fig, ax = plt.subplots(figsize=(8, 3.8))
for offset, (kind, part) in zip((-0.15, 0.15), js.groupby("alignment", sort=False)):
    xs = [methods.index(m) + offset for m in part.method]
    ax.errorbar(xs, part.nats, yerr=[part.nats - part.lo, part.hi - part.nats], fmt="o",
                capsize=3, label=kind)
ax.axhline(0.693, color="grey", lw=0.8, ls="--", label="log 2: disjoint")
ax.axhline(0.0, color="black", lw=0.8, label="0: below it, uninformative")
ax.set_xticks(range(len(methods)), [experiments.MODEL_LABELS.get(m, m) for m in methods])
ax.set(ylabel="JS lower bound (nats)", ylim=(min(-0.05, float(js.lo.min()) - 0.05), 0.8),
       title=f"Natural vs adversarial representation, CI scale ({dataset}, eps {eps}, {len(y)} test pairs)")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
results.save_figure(fig, out, "js_by_method");

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": dict(dataset=dataset, seed=seed, epochs=epochs, train_limit=train_limit,
                              eps=eps, eval_steps=eval_steps, eval_limit=eval_limit),
           "summary": summary.reset_index().to_dict("records"), "js": js.to_dict("records")}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
