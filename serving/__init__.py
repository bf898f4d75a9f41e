"""HTTP serving layer: BentoML service, request/response schemas, event store, auth.

Imports point down only: serving uses recsys, recsys never imports serving (nor bentoml/mlflow).
"""
