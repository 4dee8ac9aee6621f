"""Fake servers: the base every destination's fake builds on (`base`), and running a workspace against them."""
