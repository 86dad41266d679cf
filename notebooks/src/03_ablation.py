# %% [markdown]
# # 03 · Ablation: which of DRRDN's loss terms matter?
#
# **Question.** DRRDN's objective (Eq. 11; docs/method.md) adds five losses to the
# classification of natural and adversarial `z_s`: the domain classifier's loss L_BC
# (`lambda_bc`), the alignment of `z_s` against it L_ADV (`lambda_adv`), the entropy loss
# that empties `z_i` of class information L_ENT (`lambda_ent`), mutual information
# (`lambda_mi`) and reconstruction (`lambda_rec`). The paper's Table 4 removes MI and
# reconstruction; switching each loss off in turn, and all the disentanglement losses at
# once (the control: what is left is PGD-AT plus a natural-example term through the same
# heads), on the same network, data and budget, how do natural and robust accuracy move? CI-scale defaults as in notebook 02; see its
# parameter files.

# %% tags=["parameters"]
dataset = "mnist5k"
seeds = [0]
epochs = 4
train_limit = 1000
eps = 0.2
train_steps = 5
eval_steps = 10
lr = 0.05
batch_size = 32
eval_limit = 200
autoattack = "fast"
device = "cpu"
data_dir = None
out_dir = None

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from drrdn_lib import claims, experiments, results

NAME = "03_ablation"
out = results.run_dir(NAME, out_dir)
train_kw = experiments.training_kw(epochs=epochs, train_limit=train_limit, batch_size=batch_size,
                                  eps=eps, train_steps=train_steps, lr=lr, device=device, data_dir=data_dir)
eval_kw = dict(limit=eval_limit, pgd_steps=eval_steps, eps=eps, autoattack=autoattack,
               data_dir=data_dir, checks="cheap")
variants = experiments.ABLATIONS  # the paper's Table 4, each loss off, and the control

# %%
rows = []
for variant, hyper in variants.items():
    for seed in seeds:
        run = experiments.shared_run("drrdn", dataset, seed=seed, hyper=hyper, **train_kw)
        record = experiments.evaluate_model(run.best_model, dataset, seed=seed, **eval_kw)
        rows.append({"variant": variant, "seed": seed, "best epoch": run.best["epoch"],
                     **record.summary()})
frame = pd.DataFrame(rows)
experiments.mean_sd_table(frame, ["clean", "pgd", "autoattack", "worst_case"], by=("variant",))

# %%
sns.set_theme(style="whitegrid")
long = frame.melt(id_vars=["variant", "seed"], value_vars=["clean", "worst_case"],
                  var_name="accuracy", value_name="value")
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.barplot(data=long, y="variant", x="value", hue="accuracy", ax=ax)
ax.set(xlabel="accuracy", ylabel="", xlim=(0, 1), title=f"DRRDN ablation, {dataset}, eps={eps}")
results.save_figure(fig, out, "ablation");

# %% [markdown]
# ## What this run shows

# %%
means = frame.groupby("variant", sort=False)[["clean", "worst_case"]].mean()
metrics = {"parameters": dict(dataset=dataset, seeds=seeds, epochs=epochs, train_limit=train_limit,
                              eps=eps, train_steps=train_steps, eval_steps=eval_steps,
                              eval_limit=eval_limit, autoattack=autoattack, variants=variants),
           "rows": rows, "accuracy": means.to_dict("index")}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
