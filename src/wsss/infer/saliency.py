"""Saliency inference of LDF (weijun88/LDF@d49ff02:train-fine/test.py:30-40): resize, predict, upsample, PNG.

Each image is normalised, resized to ``size``×``size`` (bilinear), and the logits are upsampled
inside the network straight to the original size; ``sigmoid × 255``, rounded, is written as an
8-bit grey PNG (with ``flip``, of the mean logits of the image and its mirror), each file atomically (callers make ``out_dir`` atomic). ``maps="decoupled"`` writes the second iteration's body and detail maps instead
(``body/``, ``detail/``): the coarse model's targets for the fine stage
(weijun88/LDF@d49ff02:train-coarse/test.py:30-46).
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from wsss.data.decouple import MAPS
from wsss.data.ldf import normalise
from wsss.io import atomic_path, read_rgb
from wsss.nets.backbones import model_statistics
from wsss.parallel import parallel_map
from wsss.runtime import Runtime


def to_png_values(logits: torch.Tensor) -> np.ndarray:
    """HxW uint8 of ``round(sigmoid(logits) · 255)``."""
    return torch.round(torch.sigmoid(logits.float()) * 255).to(torch.uint8).squeeze().cpu().numpy()


def _input(image: np.ndarray, size: int, runtime: Runtime, model: torch.nn.Module) -> torch.Tensor:
    resized = cv2.resize(normalise(image, *model_statistics(model)), (size, size), interpolation=cv2.INTER_LINEAR)
    return runtime.batch(torch.from_numpy(resized.transpose(2, 0, 1))[None])


@torch.inference_mode()
def predict_dir(model: torch.nn.Module, pairs: list[tuple[str, Path, Path]], out_dir: str | Path, size: int,
                runtime: Runtime, maps: str = "saliency", progress: bool = True, flip: bool = False) -> dict:
    """Write the maps of every (name, image, mask) into ``out_dir``, skipping those already there; return throughput.
    ``flip``: the logits are the mean of the image's and its mirror's (mirrored back)."""
    model = runtime.prepare_inference(model)
    start = time.perf_counter()
    folders = {kind: Path(out_dir) / kind for kind in MAPS} if maps == "decoupled" else {"saliency": Path(out_dir)}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)

    def predict(pair: tuple[str, Path, Path]) -> None:
        name, image_path, _ = pair
        image = read_rgb(image_path)
        with runtime.autocast():
            x = _input(image, size, runtime, model)
            if flip:
                x = torch.cat([x, x.flip(-1)])
            if maps == "decoupled":
                outputs = model.outputs(x, image.shape[:2])
                logits = {"body": outputs.body2, "detail": outputs.detail2}
            else:
                logits = {"saliency": model(x, image.shape[:2])}
        if flip:
            logits = {kind: (value[:1].float() + value[1:].float().flip(-1)) / 2 for kind, value in logits.items()}
        for kind, value in logits.items():
            with atomic_path(folders[kind] / f"{name}.png") as tmp:
                if not cv2.imwrite(str(tmp), to_png_values(value)):
                    raise OSError(f"{folders[kind] / name}.png: cannot write")

    todo = [pair for pair in pairs if not all((folder / f"{pair[0]}.png").is_file() for folder in folders.values())]
    parallel_map(predict, todo, desc=f"infer_ldf → {out_dir}", progress=progress)
    seconds = time.perf_counter() - start
    return {"images": len(pairs), "resumed": len(pairs) - len(todo), "seconds": round(seconds, 3),
            "images_per_s": round(len(todo) / seconds, 2), "precision": runtime.precision}
