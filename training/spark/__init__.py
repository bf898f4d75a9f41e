"""The Spark engine (`engine: spark`): Complete Journey preparation, batch selection and MLlib ALS.

Only this package imports pyspark (the optional `spark` extra); recsys/ stays free of it. Every job
writes or reads the same artefacts as the local engine (a prepared data directory, a model directory,
a recommendations file), so either engine's output feeds the other's next step.
"""
