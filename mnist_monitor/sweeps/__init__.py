"""Sweeps: the spec (a grid or an Optuna search), the sweep's folder and study, the trainer's
reporter, and the driver that feeds trials to the scheduler."""
