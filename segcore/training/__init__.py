"""Turning a TrainConfig into a trained network: strategy preparation, the loop, the run's lifecycle, the
feature-transfer cache, several processes (torchrun), evaluation, prediction and export."""
