# %% [markdown]
# # 05 · What DRRDN's representations look like
#
# **Question.** DRRDN is meant to put what distinguishes natural from adversarial inputs
# into the non-robust part `z_i`, keep label information in the robust part `z_s`, and
# align natural and adversarial `z_s`. On the DRRDN model of notebook 02 (same cached run):
# can a fresh classifier tell natural from adversarial inputs on `z_s` versus `z_i`? how
# much label information does each part carry? does `r([z_s, z_i])` reconstruct `z`? And
# what do the parts look like projected to 2-D (PCA)?

# %% tags=["parameters"]
dataset = "mnist5k"
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
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, representation_probes, results
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
# ## What this run shows

# %%
metrics = {"parameters": dict(dataset=dataset, seed=seed, epochs=epochs, train_limit=train_limit,
                              eps=eps, eval_steps=eval_steps, eval_limit=eval_limit),
           "summary": summary.reset_index().to_dict("records")}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
