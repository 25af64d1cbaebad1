"""Datasets: finding the layout, reading images and masks safely, class lists, built-in and downloadable data,
uploads, the decoded splits, evaluation splits (eval_splits.py) and reports of what a dataset holds."""
