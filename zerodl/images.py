"""A picture of a digit -> the 784 numbers the network reads, made the way MNIST was made.

MNIST's recipe (LeCun et al.): the ink is white (1.0) on black (0.0); each digit
was cropped to its ink, scaled with antialiasing so that its longer side is
20 pixels (keeping the aspect ratio), and pasted into a 28x28 field so that
its centre of mass sits at the centre. A network trained on MNIST only knows
digits that look like that, so a user's picture is put through the same steps:

    grey -> polarity (ink bright) -> background to 0 -> crop -> 20 px -> centre in 28x28
"""
from __future__ import annotations

import contextlib
import math
import os
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DataError
from .io import path_kind

SIDE = 28          # MNIST's field
BOX = 20           # the longer side of the digit inside it
CENTRE = 14        # row and column of the centre of mass (0-based), as in MNIST
NOISE_FLOOR = 0.1  # after stretching, anything fainter than this is paper or JPEG ripple, not ink
MIN_CONTRAST = 0.05  # ink must differ from the background by at least this (of full scale)
MAX_SIDE = 2048    # larger pictures are shrunk first: their float arrays would cost 8 bytes a pixel
# Refused before decoding: Pillow holds a colour picture at 4 bytes a pixel and 8 more a row
# (a 50-megapixel photo: ~200 MB; its own limit, 89.5 million, ~360 MB; a 1 x 89 million PNG, 880 MB).
MAX_PIXELS = 50_000_000
MAX_LONG_SIDE = 32_768


def open_image(path) -> Image.Image:
    """Open and decode an image file; DataError naming the file if it is not one.

    A picture larger than MAX_SIDE is shrunk as it is decoded (JPEG) or right
    after (box filter): the digit ends up 20 pixels tall, and the float arrays
    of the recipe would otherwise cost 8 bytes a pixel (3 GB near Pillow's limit).
    """
    where = os.fspath(path)
    kind = path_kind(path)  # never open a named pipe: it would wait for a writer
    if kind != "a file":
        what = {"nothing": "no such file", "a folder": "is a folder"}.get(kind, f"is {kind}")
        raise DataError(f"{where}: {what} (expected a PNG or JPEG picture of a digit)")
    size = None
    try:
        with _quiet():
            with Image.open(path) as img:
                size = img.size
                _check_size(where, size)
                factor = _factor(img.size)
                if factor > 1 and img.format == "JPEG":
                    img.draft(img.mode, (img.width // factor, img.height // factor))  # 1/2, 1/4 or 1/8 scale
                img.load()  # decode now: a truncated file fails here, not later
                img = shrink(img)
                img = ImageOps.exif_transpose(img)  # phone photos: honour the rotation tag
    except UnidentifiedImageError:
        raise DataError(f"{where}: not an image (expected a PNG or JPEG picture of a digit)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{where}: image is too large to decode safely (expected a picture of one digit)") from None
    except MemoryError:
        raise DataError(f"{where}: out of memory decoding its {size[0]}x{size[1]} pixels; "
                        "a picture of one digit needs no more than 2048 on its longer side") from None
    except (OSError, SyntaxError, ValueError) as e:
        # Pillow reports damaged files as OSError ("image file is truncated") or SyntaxError.
        raise DataError(f"{where}: damaged or unreadable image ({e})") from None
    return img


def _check_size(where: str, size) -> None:
    w, h = size
    if w * h > MAX_PIXELS or max(w, h) > MAX_LONG_SIDE:
        raise DataError(f"{where}: {w}x{h} pixels is more than zerodl decodes ({MAX_PIXELS // 10**6} million "
                        f"pixels, {MAX_LONG_SIDE} on a side); a picture of one digit needs far fewer: shrink it first")


@contextlib.contextmanager
def _quiet():
    """Pillow's warnings about odd files (corrupt EXIF, palette transparency) are not printed:
    the picture is judged by what it holds. Only a decompression bomb is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _factor(size) -> int:
    return max(1, math.ceil(max(size) / MAX_SIDE))


def shrink(img: Image.Image) -> Image.Image:
    """The picture with its longer side at most MAX_SIDE: each block of factor x factor pixels averaged.

    In strips, so that no second copy of a big picture is made (Pillow averages
    RGBA premultiplied, in a copy, and converts palette and 16-bit pixels first).
    """
    factor = _factor(img.size)
    if factor == 1:
        return img
    mode = img.mode
    if mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        # palette indices, 1-bit and 16-bit pixels are not averaged as they are: first what to_grey reads
        has_alpha = "A" in img.getbands() or "transparency" in img.info
        mode = "I" if mode.startswith("I;") else "RGBA" if has_alpha else "L"
    w, h = img.size
    out = Image.new(mode, (math.ceil(w / factor), math.ceil(h / factor)))
    step = factor * 64  # rows of the picture per strip: a whole number of blocks
    for top in range(0, h, step):
        strip = img.crop((0, top, w, min(h, top + step)))
        out.paste((strip if strip.mode == mode else strip.convert(mode)).reduce(factor), (0, top // factor))
    return out


def to_grey(img: Image.Image, where: str = "image") -> np.ndarray:
    """Brightness in [0, 1] as float64 (H, W), whatever the mode (grey, RGB, RGBA, palette, 16-bit).

    A transparent background is filled with the colour that contrasts with the
    ink, so black strokes on transparency and white strokes on transparency
    both stay visible. Float pixels that are NaN or infinite raise DataError.
    """
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        # 16-bit or float pixels: no fixed full scale, so stretch min..max to 0..1.
        grey = np.asarray(img, dtype=np.float64)
        if not np.isfinite(grey).all():
            raise DataError(f"{where}: has pixels that are NaN or infinite (expected a picture of a digit)")
        lo, hi = float(grey.min()), float(grey.max())
        return (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    if not has_alpha:
        return np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    la = np.asarray(img.convert("RGBA").convert("LA"), dtype=np.float64) / 255.0
    grey, alpha = la[..., 0], la[..., 1]
    if alpha.min() == 1.0:
        return grey
    if alpha.sum() == 0:
        return np.zeros_like(grey)  # fully transparent: nothing drawn
    ink_is_dark = (grey * alpha).sum() / alpha.sum() < 0.5
    background = 1.0 if ink_is_dark else 0.0
    return grey * alpha + background * (1.0 - alpha)


def mnist_like(grey: np.ndarray, where: str = "image") -> np.ndarray:
    """The MNIST recipe on a grey picture: a (28, 28) float32 array, ink 1.0 on 0.0.

    Raises DataError (naming `where`) if there is no digit to find.
    """
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or grey.size == 0:
        raise DataError(f"{where}: expected a 2-D picture, got shape {grey.shape}")

    # Polarity: the border is background. Light paper (dark ink) is inverted so ink is bright.
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:
        grey, border = 1.0 - grey, 1.0 - border

    # Background to 0 and the strongest ink to 1 (MNIST's stroke cores are 255).
    ink = grey - np.median(border)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise DataError(f"{where}: no digit found (the picture is one flat colour); "
                        "expected a digit darker or lighter than its background")
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < NOISE_FLOOR] = 0.0

    # Crop to the ink's bounding box.
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]

    # Longer side to 20 px, aspect kept; Lanczos on a float image antialiases when shrinking.
    h, w = ink.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL sizes are (width, height)
    small = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS))
    small = np.clip(small, 0.0, 1.0)
    if small.max() > 0:
        small = small / small.max()  # thin strokes shrink to faint grey; MNIST ink is full strength

    # Paste so the centre of mass lands on pixel (14, 14), where MNIST's digits have theirs
    # (measured: 13.5-14.5, the whole-pixel shift MNIST used), never pushing ink off the edge.
    sh, sw = small.shape
    total = small.sum()
    cy = (small.sum(axis=1) @ np.arange(sh)) / total
    cx = (small.sum(axis=0) @ np.arange(sw)) / total
    top = int(np.clip(round(CENTRE - cy), 0, SIDE - sh))
    left = int(np.clip(round(CENTRE - cx), 0, SIDE - sw))
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    field[top:top + sh, left:left + sw] = small
    return field


def load_digit(path) -> np.ndarray:
    """An image file -> one row of 784 float32 values in [0, 1], as in data/prepared."""
    where = os.fspath(path)
    img = open_image(path)
    try:
        with _quiet():  # to_grey's conversions warn too (palette transparency given as bytes)
            return mnist_like(to_grey(img, where), where).reshape(-1)
    except MemoryError:
        raise DataError(f"{where}: out of memory reading its {img.width}x{img.height} pixels") from None
