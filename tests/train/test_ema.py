"""harness.train.ema: the EMA and its warm-up, pinned."""

from __future__ import annotations

import pytest


def test_ema_warmup_decay_pinned():
    """diffusers' warm-up: decay min(rate, (1+n)/(10+n)) at update n; constant rate without it."""
    import torch

    from harness.train.ema import EMA

    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.zero_()
    ema, const = EMA(m, 0.999), EMA(m, 0.999, warmup=False)
    assert ema.decay() == pytest.approx(0.1)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m)
    const.update(m)
    assert ema.shadow["weight"].item() == pytest.approx(0.9, abs=1e-7)         # 0 + (1 - 1/10) * 1
    assert const.shadow["weight"].item() == pytest.approx(0.001, abs=1e-7)
    ema.update(m)
    assert ema.shadow["weight"].item() == pytest.approx(10.8 / 11, abs=1e-7)   # 0.9 + (1 - 2/11) * 0.1
    ema.num_updates = 100
    assert ema.decay() == pytest.approx(101 / 110)
    ema.num_updates = 8989
    assert ema.decay() == pytest.approx(8990 / 8999)
    ema.num_updates = 8990
    assert ema.decay() == 0.999
