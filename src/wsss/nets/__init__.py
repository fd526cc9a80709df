"""Networks: backbones (:mod:`.backbones`, :mod:`.resnet38d`), the CAM classifier (:mod:`.cam`) and
DeepLab (:mod:`.deeplab`). Import the submodules; this package imports nothing heavy."""
