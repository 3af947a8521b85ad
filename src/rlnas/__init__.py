"""rlnas: neural architecture search with random labels (Zhang et al., CVPR 2021)."""
__version__ = "0.1.0"
