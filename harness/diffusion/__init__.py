"""Diffusion: the DDPM/DDIM scheduler in paper notation (:mod:`~harness.diffusion.scheduler`) and the
inference sampler with test-time flip and hypotheses (:mod:`~harness.diffusion.sampler`)."""

from harness.diffusion.scheduler import *  # noqa: F401,F403
from harness.diffusion.scheduler import __all__ as _scheduler_all
from harness.diffusion.scheduler import _randn_like  # noqa: F401  (tests pin it)

__all__ = list(_scheduler_all)
