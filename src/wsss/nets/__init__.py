"""Networks: backbones (their base :mod:`.base`; :mod:`.resnet38d`, :mod:`.efficientnet`; the factory
:mod:`.backbones`), the CAM classifier (:mod:`.cam`) and DeepLab (:mod:`.deeplab`). Import the submodules;
this package imports nothing heavy."""
