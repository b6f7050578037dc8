"""The EMA of the trained weights (unires/train/ema.py)."""

import torch

from unires.train.ema import EMA


def test_update_moves_the_shadow_by_the_ramped_decay():
    w = torch.nn.Parameter(torch.zeros(3))
    ema = EMA([w], decay=0.999)
    with torch.no_grad():
        w.fill_(1.0)
    ema.update()  # first decay: min(0.999, 1 / 10)
    assert torch.allclose(ema.shadow[0], torch.full((3,), 0.9))
    assert ema.current_decay() == 2 / 11


def test_shadow_follows_parameters_moved_after_it_was_built():
    # accelerate's prepare() moves the model to the GPU after the trainer built the EMA
    # from the CPU model (the first GPU run failed here). The meta device stands in for
    # the GPU; Module.to("meta") makes new parameter objects, so the EMA is pointed at them.
    layer = torch.nn.Linear(2, 2)
    ema = EMA(layer.parameters())
    ema.params = list(layer.to("meta").parameters())
    ema.update()
    assert all(s.device.type == "meta" for s in ema.shadow)
