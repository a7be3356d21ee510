"""Maintainer tools, for whoever keeps the kit (not imported by a notebook): notebook sync, the repository URL, sweeps.

notebook_tools.py  `python -m helpers.maintainer.notebook_tools build notebooks/NN.py`: .py and .ipynb in step
kit_repo.py        `python -m helpers.maintainer.kit_repo set URL`: the kit's repository URL and its copies
sweep.py           `python -m helpers.maintainer.sweep sweeps/x.yaml`: a grid of notebook runs
"""
