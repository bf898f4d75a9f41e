"""The `recsys` command line: the composition root above `recsys`, `training` and `serving`."""
