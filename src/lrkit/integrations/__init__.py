"""lrkit inside the frameworks people train with, one module per framework.

- :mod:`lrkit.integrations.lightning`: ``find_lr(module, datamodule=...)`` on a
  LightningModule and the ``LRFinder`` callback (the replacement for ``Tuner.lr_find``).
- :mod:`lrkit.integrations.hf`: ``find_lr(trainer)`` on a Hugging Face ``Trainer``, an lrkit
  schedule inside a Trainer (``use_schedule``), and the per-layer split of transformers
  models that :func:`lrkit.param_groups` uses.
- :mod:`lrkit.integrations.keras`: ``to_keras(schedule)``, any lrkit schedule as a Keras 3
  ``LearningRateSchedule``.
- accelerate needs no module: ``lrkit.find_lr(..., accelerator=acc)``.

Importing this package imports no framework; each module imports its framework lazily.
"""
