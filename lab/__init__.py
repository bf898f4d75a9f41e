"""The lab: simulations with known truth and the evaluations that need it, outside the library.

The synthetic world (`synthetic`, its catalog), the oracle and off-policy evaluation (`evaluation`),
the Bayes reference that knows how the data were made (`posterior`), closed-loop campaigns
(`campaigns`) and the Complete Journey redemption check (`redemption`). Benchmarks, tests and
`recsys data prepare --source synthetic` use it; `recsys` never imports it.
"""
