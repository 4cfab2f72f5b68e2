"""Training: one step per stage (:mod:`~harness.train.step`, shared by the loops and ``harness bench``),
the epoch loops with exact resume (:mod:`~harness.train.loop`), the EMA (:mod:`~harness.train.ema`),
checkpoints (:mod:`~harness.train.checkpoint`) and the flip augmentation (:mod:`~harness.train.augment`)."""
