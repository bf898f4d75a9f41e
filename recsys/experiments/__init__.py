"""Online experiments: configuration, sticky assignment and the statistics that decide them.

Pure library code (numpy/scipy/pydantic): serving logs exposures, training logs reports to MLflow,
the lab simulates experiments with a known truth; none of them is imported here.
"""
