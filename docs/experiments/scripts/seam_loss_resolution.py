"""The SEAM losses and the cost of one training step at the official input resolution against the stride-8 shortcut.

    python docs/experiments/scripts/seam_loss_resolution.py

ResNet-38d with random weights, a 448 crop, batch 2, one thread, fp32; each setting twice, alternating.
"""

import time, torch
from wsss.config import SEAMConfig
from wsss.losses import seam_loss
from wsss.nets.backbones import build_backbone
from wsss.nets.seam import SEAMNet
torch.manual_seed(0); torch.set_num_threads(1)
net = SEAMNet(build_backbone("resnet38d", "", output_stride=8)).train()
cfg = SEAMConfig(rescale=0.3, flip=False, cls_weight=1.0, er_weight=1.0, er_source="cam", ecr_weight=1.0,
                 ohem_ratio=0.2, official_detach=True, pcm_classes="all", min_pool_loss=True, min_pool_weight=1.0, min_pool_ratio=0.25)
images = torch.randn(2, 3, 448, 448); labels = torch.zeros(2, 20); labels[:, 3] = 1; labels[0, 7] = 1
for res in ("input", "stride", "input", "stride"):
    c = cfg.model_copy(update=dict(loss_resolution=res))
    net.zero_grad(); t = time.perf_counter()
    losses = seam_loss(net, (images, labels), c); losses["loss"].backward()
    print(res, f"{time.perf_counter()-t:.2f} s", {k: round(v.item(), 4) for k, v in losses.items()})
