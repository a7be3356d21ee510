"""Emergent-misalignment course kit: the helpers the notebooks import."""

from helpers.bnb_guard import hide_bitsandbytes_without_cuda

__version__ = "0.1.0"

hide_bitsandbytes_without_cuda()
