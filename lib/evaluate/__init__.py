"""The evaluate stage (notebooks/04_evaluate.ipynb): every run and every baseline on the
same test films (``compare``), the baselines (``baselines``), the paper's threshold
report and the figures.
"""
