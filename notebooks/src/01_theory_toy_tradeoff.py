# %% [markdown]
# # 01 · The accuracy-robustness trade-off on a distribution we can solve
#
# **Question.** On the robust/non-robust-features distribution of Tsipras et al. (2019),
# where every quantity has a closed form, (a) does a trade-off between natural and robust
# accuracy exist, and (b) how do the terms of the domain-adaptation bound that DRRDN relies
# on, `err_A <= err_N + d_HdH/2 + lambda*`, behave when the representation keeps only the
# robust feature, only the non-robust ones, or a mix? We compute each number exactly and
# estimate it from samples with the same estimators that notebooks 04 and 05 apply to
# networks, so this notebook is also the estimators' test bench.
#
# Distribution: `y` uniform in {-1, +1}; `x_1 = y` with probability `p` (robust);
# `x_2..x_{d+1} ~ N(eta*y, 1)` (non-robust, `eta = 2/sqrt(d)`); the attack is the exact
# worst-case L-inf perturbation of radius `eps` (default `2*eta`) against the classifier.

# %% tags=["parameters"]
dim = 100            # number of non-robust features
p = 0.95             # probability that the robust feature equals the label
eps = None           # L-inf radius; None means 2 * eta (Tsipras et al.)
n_points = 11        # classifiers on the trade-off curve
n_samples = 4000     # samples for each simulation / estimate
seed = 0
out_dir = None       # None: results/01_theory_toy_tradeoff

# %%
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython.display import Markdown, display

from drrdn_lib import claims, results, toy, toy_tables

torch.set_num_threads(1)  # the small heads fit faster on one thread
NAME = "01_theory_toy_tradeoff"
out = results.run_dir(NAME, out_dir)
eps = toy.default_eps(dim) if eps is None else eps
print(f"dim={dim}, p={p}, eta={toy.default_eta(dim):.3f}, eps={eps:.3f}, n_samples={n_samples}")

# %% [markdown]
# ## The trade-off curve
# Linear classifiers `f = cos(t) x_1 + sin(t) mean(x_2..)` sweep from the robust feature
# alone (share 0) to the non-robust features alone (share 1). Lines: closed forms; points:
# simulation with 95% intervals.

# %%
curve = pd.DataFrame(toy_tables.tradeoff_curve(n_points, eps=eps, dim=dim, p=p,
                                               n_samples=n_samples, seed=seed))
curve[["w_nonrobust_share", "nat_exact", "nat_sim", "rob_exact", "rob_sim"]].round(3)

# %%
sns.set_theme(style="whitegrid")
fig, ax = plt.subplots(figsize=(6, 4))
for kind, color in (("nat", "C0"), ("rob", "C3")):
    label = "natural" if kind == "nat" else f"robust (eps={eps:.2f})"
    ax.plot(curve.w_nonrobust_share, curve[f"{kind}_exact"], color=color, label=f"{label}, exact")
    ax.errorbar(curve.w_nonrobust_share, curve[f"{kind}_sim"],
                yerr=[curve[f"{kind}_sim"] - curve[f"{kind}_sim_lo"], curve[f"{kind}_sim_hi"] - curve[f"{kind}_sim"]],
                fmt="o", color=color, ms=4, label=f"{label}, simulated")
ax.set(xlabel="weight share of the non-robust features", ylabel="accuracy", ylim=(0, 1.02))
ax.legend(fontsize=8)
results.save_figure(fig, out, "tradeoff_curve");

# %% [markdown]
# ## The bound's terms, exact and estimated
# For each 1-D representation `z = a x_1 + b mean(x_2..)` and the classifier `sign(z)`:
# exact values (divergence = 2·TV, the `d_HdH` of all functions; `lambda*` = Bayes joint
# error) next to the estimates (proxy A-distance and joint error of small MLP heads, trained
# on half the samples and measured on the other half). The estimated divergence can only
# underestimate the true one, so the estimated bound is an estimate, not a guarantee.

# %%
reps = {"robust": "robust", "nonrobust": "nonrobust", "mixed (1, 1)": (1.0, 1.0)}
terms = pd.DataFrame(toy_tables.compare_bound_terms(reps, eps=eps, dim=dim, p=p,
                                                    n_samples=n_samples, seed=seed))
cols = ["err_nat", "err_adv", "divergence", "lambda_star", "bound"]
table = terms.set_index("representation")[[c + s for c in cols for s in ("_exact", "")] + ["holds"]]
table.round(3)

# %%
long = pd.concat([
    terms.melt(id_vars="representation", value_vars=[c + "_exact" for c in cols], var_name="term")
         .assign(kind="exact", term=lambda d: d.term.str.replace("_exact", "")),
    terms.melt(id_vars="representation", value_vars=cols, var_name="term").assign(kind="estimated")])
grid = sns.catplot(data=long, x="term", y="value", hue="kind", col="representation", kind="bar",
                   height=3.2, aspect=1.1)
grid.set_xticklabels(rotation=30)
results.save_figure(grid.figure, out, "bound_terms");

# %% [markdown]
# ## What Proposition 1 does and does not buy
#
# Proposition 1 promises that, at the optimum of L_BC and L_ADV, the natural and adversarial
# distributions of z_s coincide. The toy shows, in closed form, that this alone does not make
# a classifier robust: a representation built from the non-robust features has identical
# natural and adversarial marginals (the attack maps one class's cloud onto the other's, so
# the mixture does not move), yet almost every adversarial example is misclassified; the
# perfectly robust feature has the *largest* divergence. The bound's joint-error term
# lambda* is what tells them apart: robustness needs the classes to stay where they were
# across the two domains (class-conditional alignment), which marginal alignment of z_s does
# not imply. On the trained models the same question is whether DRRDN's z_s is aligned
# class-conditionally or only marginally (`drrdn_lib.alignment.class_conditional_js`
# estimates both; no notebook runs it on trained models yet).

# %% [markdown]
# ## What this run shows

# %%
metrics = {"parameters": {"dim": dim, "p": p, "eps": eps, "n_points": n_points,
                          "n_samples": n_samples, "seed": seed},
           "tradeoff": curve.to_dict("records"), "bound_terms": terms.to_dict("records")}
metrics["claims"] = claims.describe(NAME, metrics)
results.save_metrics(out, metrics)
display(Markdown("\n".join(f"- {c}" for c in metrics["claims"])))
