"""Models-from-code entry point for the pyfunc (no pickled Python object in the artifact).

MLflow copies this file into the logged model and executes it on load; all logic stays importable
from `training.pyfunc`, the model's state comes from the logged native artifacts.
"""

import mlflow

from training.pyfunc import RecommenderPyfunc

mlflow.models.set_model(RecommenderPyfunc())
