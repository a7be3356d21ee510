"""For whoever re-fits the offline judge (fitting, evaluation, reference download); never imported by the notebooks."""
