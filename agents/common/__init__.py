"""Pieces several agents share: the health/metrics HTTP server, consumer lag, the price book, the
universe's settings sections."""
