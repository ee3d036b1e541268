"""Applications behind the ``crnn`` command (floor 4).

Each module builds on crnn's layers, models, losses and optimizers and
exposes ``register(subparsers)``, which adds its subcommand(s) to the
command-line parser (`crnn.cli`):

- `crnn.apps.text`: ``crnn demo``, ``crnn train-text``, ``crnn sample``
  (character-level language models);
- `crnn.apps.forecast`: ``crnn forecast`` (time series);
- `crnn.apps.classify`: ``crnn classify`` (sequence classification);
- `crnn.apps.bench`: ``crnn bench`` (timing report).

`crnn.apps.common` holds what they share: `CLIError` (a user error: the
command prints it and exits with status 2), the progress bar, a timer and
text-file loading.

Nothing is imported here, so ``import crnn.apps.text`` stays light.
"""
