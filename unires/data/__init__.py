"""Training data: HQ folders degraded on the fly, and the standard paired data sets."""
