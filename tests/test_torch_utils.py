"""torch_utils: modes restored per submodule, the model's device, batched prediction."""
import pytest
import torch
from torch import nn

from drrdn_lib.torch_utils import eval_mode, model_device, predict_labels, predict_logits, train_mode


def mixed_net() -> nn.Sequential:
    """Train mode at the top, one dropout already in eval mode: a mixed state."""
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    net[2].eval()
    return net


@pytest.mark.parametrize("context, inside", [(eval_mode, False), (train_mode, True)])
def test_modes_restore_every_submodule_own_flag(context, inside):
    net = mixed_net()
    before = [m.training for m in net.modules()]
    with context(net):
        assert all(m.training is inside for m in net.modules())
    assert [m.training for m in net.modules()] == before
    with pytest.raises(RuntimeError), context(net):
        raise RuntimeError
    assert [m.training for m in net.modules()] == before


def test_model_device_with_and_without_parameters():
    assert model_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert model_device(nn.ReLU(), fallback="meta") == torch.device("meta")
    buffers_only = nn.BatchNorm1d(3, affine=False)
    assert model_device(buffers_only.to("meta")) == torch.device("meta")


def test_predict_logits_batches_like_one_forward_in_eval_mode():
    torch.manual_seed(0)
    net = mixed_net()
    x = torch.randn(10, 4)
    with torch.no_grad():
        net.eval()
        expected = net(x)
        net.train()
        net[2].eval()
    for batch_size in (1, 3, 10, 64):
        assert torch.allclose(predict_logits(net, x, batch_size), expected, atol=1e-6)
    assert net.training and not net[2].training                 # mode restored
    labels = predict_labels(net, x, 4)
    assert labels.dtype == torch.int64 and torch.equal(labels, expected.argmax(1))
    assert predict_labels(net, x[:0]).shape == (0,)
    assert not predict_logits(net, x).requires_grad


def test_predict_refuses_nan_logits_and_bad_batch_sizes():
    class NanNet(nn.Module):
        def forward(self, x):
            out = x[:, :3].clone()
            out[1] = float("nan")
            return out
    with pytest.raises(ValueError, match=r"NaN/inf logits for 1 of 5 examples \(first: 1\)"):
        predict_labels(NanNet(), torch.rand(5, 4))
    with pytest.raises(ValueError, match=r"batch_size=0 must be an integer >= 1"):
        predict_logits(nn.Linear(4, 3), torch.rand(5, 4), batch_size=0)


def test_channels_last_layout_converts_kernels_and_gives_back_the_originals():
    from drrdn_lib.torch_utils import as_channels_last, channels_last_layout

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    net(torch.rand(1, 3, 6, 6))
    kernel = net[0].weight
    originals = [(p.data_ptr(), p.stride()) for p in net.parameters()]
    values = [p.detach().clone() for p in net.parameters()]
    with channels_last_layout(net) as inside:
        assert inside is net
        assert kernel.is_contiguous(memory_format=torch.channels_last) and not kernel.is_contiguous()
        assert (net[2].weight.data_ptr(), net[2].weight.stride()) == originals[2]  # 2-D: untouched
        assert all(torch.equal(p, v) for p, v in zip(net.parameters(), values))  # same values
    assert [(p.data_ptr(), p.stride()) for p in net.parameters()] == originals
    with pytest.raises(RuntimeError), channels_last_layout(net):
        raise RuntimeError
    assert [(p.data_ptr(), p.stride()) for p in net.parameters()] == originals
    with channels_last_layout(net, enabled=False):
        assert (kernel.data_ptr(), kernel.stride()) == originals[0]
    x = torch.rand(2, 3, 5, 5)
    assert as_channels_last(x).is_contiguous(memory_format=torch.channels_last)
    assert as_channels_last(x, enabled=False) is x
    flat = torch.rand(2, 3)
    assert as_channels_last(flat) is flat


def test_no_tf32_turns_tensorfloat32_off_on_cuda_only():
    from drrdn_lib.torch_utils import no_tf32

    saved = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for convolutions
        no_tf32("cpu")
        assert torch.backends.cudnn.allow_tf32
        no_tf32(torch.device("cuda", 0))  # flags only: no GPU is needed to set them
        assert not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def test_channels_last_pays_on_avx512_cpus_only(monkeypatch):
    from drrdn_lib.torch_utils import channels_last_pays

    for capability, pays in (("AVX512", True), ("AVX512_BF16", True), ("AVX2", False), ("DEFAULT", False)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert channels_last_pays("cpu") is pays
    assert channels_last_pays("cuda") is False  # never measured on a GPU
