"""Inside a trainer, wherever it runs (the server's thread, a Ray worker, train.py): the step loop,
optimizers, what a run records, checkpoints, layer probes, time left, hardware, the picture
renderer. Never imports Flask."""
