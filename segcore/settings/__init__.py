"""What a run is asked to do, declared once: TrainConfig and its presets (config.py), the strategy catalogue
(strategies.py). Torch-free."""
