"""The pooled features SC-CAM clusters (Juliachang/SC-CAM@191ec48:extract_feature.py:73-97).

One view per image, as the official code uses only the first of its multi-scale views: the image at scale 1,
not flipped, normalised as the backbone expects; the feature is the global average of the backbone's last
map, the classifier's input (``CAMNet.forward``'s ``"gap"`` without dropout, which eval mode turns off).
"""

from __future__ import annotations

import numpy as np
import torch

from wsss.data.voc import image_path
from wsss.infer.cam import scaled_views
from wsss.io import read_rgb
from wsss.nets.backbones import model_statistics
from wsss.parallel import parallel_map
from wsss.runtime import Runtime


@torch.no_grad()
def pooled_feature(model: torch.nn.Module, image: np.ndarray, runtime: Runtime) -> np.ndarray:
    """The D-dim float32 GAP feature of one HxWx3 uint8 image; ``model`` in eval mode on the runtime's device."""
    [views] = scaled_views(image, (1.0,), *model_statistics(model)).values()
    with runtime.autocast():
        out = model.backbone(runtime.batch(torch.stack(views)))["out"]
    return out.float().mean((2, 3))[0].cpu().numpy()


def extract_features(model: torch.nn.Module, voc_root, ids: list[str], runtime: Runtime,
                     progress: bool = True) -> np.ndarray:
    """The N×D features of ``ids`` in their order."""
    model = runtime.prepare(model.eval())
    features = parallel_map(lambda image_id: pooled_feature(model, read_rgb(image_path(voc_root, image_id)), runtime),
                            ids, desc="extract_features", progress=progress)
    return np.stack(features).astype(np.float32)
