"""zerodl: the learning algorithm of "Deep Learning from Scratch" (chapters 4-6) in NumPy."""
from .errors import ZerodlError, ParamsError, DataError, ModelError, DivergenceError

__version__ = "0.1.0"
__all__ = ["TwoLayerNet", "ZerodlError", "ParamsError", "DataError", "ModelError", "DivergenceError"]


def __getattr__(name):
    # TwoLayerNet is imported on first use, so `import zerodl.entry` (the first
    # line of every stage) is quick and does not pull in NumPy.
    if name == "TwoLayerNet":
        from .net import TwoLayerNet

        return TwoLayerNet
    raise AttributeError(f"module 'zerodl' has no attribute {name!r}")
