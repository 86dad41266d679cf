# %% [markdown]
# # 03 · Ablation: which of DRRDN's loss terms matter?
#
# **Question.** DRRDN's objective (reconstructed; README) adds four terms to adversarial
# classification of the robust representation `z_s`: alignment of natural and adversarial
# `z_s` (`w_align`), domain information routed to `z_i` (`w_domain`), label information
# removed from `z_i` (`w_class_irr`) and reconstruction of `z` (`w_rec`). Switching each
# off in turn, on the same network, data and budget, how do natural and robust accuracy
# move? (`w_mi`, the optional MI penalty, is off in the full model, so it is switched *on*
# as the fifth variant.) CI-scale defaults as in notebook 02; see its parameter files.

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
variants = {"full DRRDN": {}, "no alignment": {"w_align": 0.0}, "no domain term": {"w_domain": 0.0},
            "no class removal": {"w_class_irr": 0.0}, "no reconstruction": {"w_rec": 0.0},
            "with MI penalty": {"w_mi": 0.1}}

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
