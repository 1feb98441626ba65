"""Layer 2: datasets, splits, the model zoo, training jobs, the run registry, evaluation, comparison, model cards."""
