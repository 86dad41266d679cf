"""t-SNE embedding and Figure 2's rows: determinism, shapes, separated clusters stay
separated, the right representations per model."""
import numpy as np
import pytest
import torch
from torch import nn

from drrdn_lib.drrdn import DRRDN
from drrdn_lib.embedding import PANELS, embed_tsne, figure2_embeddings, representation_rows
from drrdn_lib.models import build_model
from tiny import N_CLASSES, SIDE, synthetic


def _clusters(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    z = torch.randn(n, 10, generator=g) + 8.0 * y.float()[:, None]
    return z, y


def _nn_agreement(xy: np.ndarray, y: np.ndarray) -> float:
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((y[d.argmin(1)] == y).mean())


def test_embedding_is_deterministic_and_separates_clusters():
    z, y = _clusters()
    a, b = embed_tsne(z, seed=1, perplexity=10), embed_tsne(z.numpy(), seed=1, perplexity=10)
    assert a.shape == (60, 2) and np.array_equal(a, b)
    assert _nn_agreement(a, y.numpy()) > 0.95


def test_embedding_errors():
    z, _ = _clusters(n=20)
    with pytest.raises(ValueError, match="perplexity 30 must be below the number of rows"):
        embed_tsne(z)
    with pytest.raises(ValueError, match="2-D"):
        embed_tsne(z[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        embed_tsne(torch.full((20, 3), float("nan")), perplexity=5)


def _images(n=30):
    g = torch.Generator().manual_seed(0)
    x, y = synthetic(n, g)
    return x, (x + 0.05).clamp(0, 1), y


def test_drrdn_rows_are_z_s_and_z_i():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 6), nn.ReLU())
    model = DRRDN(encoder, 6, nn.Linear(6, N_CLASSES), N_CLASSES, mine_hidden=8, rec_hidden=8)
    x, x_adv, y = _images()
    rows = representation_rows(model, x, y, x_adv, batch_size=7)
    assert set(rows) == {"z_s", "z_i"}
    with torch.no_grad():
        z_s_adv = model.d_s(model.g(x_adv))
    torch.testing.assert_close(rows["z_s"].features[30:], z_s_adv)
    assert rows["z_i"].features.shape == (60, 6)
    assert torch.equal(rows["z_i"].classes, torch.cat([y, y]))
    assert rows["z_s"].panel("natural").sum() == 30 and rows["z_s"].panel("natural+adversarial").all()
    assert not rows["z_s"].panel("adversarial")[:30].any()


def test_standard_rows_and_the_figure_frame():
    torch.manual_seed(0)
    model = build_model("smallcnn", in_channels=1, image_size=16).train()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (30,), generator=g)
    rows = representation_rows(model, x, y, (x + 0.05).clamp(0, 1))
    assert model.training                                     # mode restored
    assert set(rows) == {"features"} and rows["features"].features.shape == (60, 200)
    frame = figure2_embeddings(rows, seed=0, perplexity=5)
    assert list(frame.columns) == ["representation", "panel", "x", "y", "class", "adversarial"]
    counts = frame.groupby("panel").size().to_dict()
    assert counts == {"natural": 30, "natural+adversarial": 60, "adversarial": 30}
    joint = frame[frame.panel == "natural+adversarial"][["x", "y"]].to_numpy()
    assert np.array_equal(frame[frame.panel == "natural"][["x", "y"]].to_numpy(), joint[:30])
    separate = figure2_embeddings(rows, seed=0, perplexity=5, joint=False)
    assert len(separate) == 120 and set(separate.panel) == set(PANELS)
    with pytest.raises(ValueError, match="must match"):
        representation_rows(model, x, y, x[:-1])
    with pytest.raises(ValueError, match="neither"):
        representation_rows(nn.Flatten(), x, y, x)
