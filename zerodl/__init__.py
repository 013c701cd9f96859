"""zerodl: the learning algorithm of "Deep Learning from Scratch" (chapters 4-6) in NumPy."""
from .net import TwoLayerNet
from .errors import ZerodlError, ParamsError, DataError, ModelError, DivergenceError

__version__ = "0.1.0"
__all__ = ["TwoLayerNet", "ZerodlError", "ParamsError", "DataError", "ModelError", "DivergenceError"]
