"""TrainConfig's speed options (channels_last, compile): same math, and configurations
that leave them off keep their run identity (config dict, so hash and resume)."""
import pytest
import torch

from drrdn_lib.train import ConfigError, TrainConfig, train

TINY = dict(method="drrdn", epochs=1, batch_size=32, lr=0.05, train_eps=0.2,
            train_step_size=0.1, train_steps=1, val_eps=0.2, val_step_size=0.1, val_steps=1,
            train_limit=64, val_limit=32, progress=False)


def test_options_off_are_left_out_of_the_config_dict():
    plain = TrainConfig(**TINY).to_dict()
    assert "channels_last" not in plain and "compile" not in plain
    assert TrainConfig(**TINY, channels_last=True).to_dict()["channels_last"] is True
    assert TrainConfig(**TINY).differences(TrainConfig(**TINY, channels_last=True).to_dict()) \
        == ["channels_last"]


def test_non_bool_option_rejected():
    with pytest.raises(ConfigError, match="channels_last=1 must be True or False"):
        TrainConfig(**TINY, channels_last=1)


def test_channels_last_trains_the_same_model_up_to_rounding():
    plain, nhwc = train(TrainConfig(**TINY)), train(TrainConfig(**TINY, channels_last=True))
    assert nhwc.model.backbone[1].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(plain.model.state_dict().values(), nhwc.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
    assert abs(plain.last["train_loss"] - nhwc.last["train_loss"]) < 1e-3
