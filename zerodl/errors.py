"""The project's own errors: each carries one line a user can act on."""


class ZerodlError(Exception):
    """Base class: stages and the CLI print `str(e)` and exit non-zero, no traceback."""

    exit_code = 1


class ParamsError(ZerodlError):
    """A bad params.yaml: a typo'd key, a wrong type, a value out of range."""

    exit_code = 2


class DataError(ZerodlError):
    """Data that cannot be trusted: bad IDX bytes, wrong checksum, missing files."""


class ModelError(ZerodlError):
    """A model file that is not a zerodl model, or is damaged."""


class DivergenceError(ZerodlError):
    """Training produced a NaN or infinite loss."""


class HelperError(ZerodlError):
    """The training helper process (zerodl.worker) died or failed."""
