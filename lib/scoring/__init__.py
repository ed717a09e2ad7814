"""Label-only scorers and the metrics every number of the study is computed with: the
trivial baselines (no genre, the training prior, random), AP and its relatives with
bootstrap intervals, and the data-sufficiency flags. Depends on ``core`` only.
"""
