"""Inference: multi-scale CAMs (``wsss.infer.cam``) and the dense CRF (``wsss.infer.crf``)."""

from pathlib import Path

import numpy as np
from PIL import Image


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB; errors name the file."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read image ({error})") from error
