"""Inference: multi-scale CAMs (``wsss.infer.cam``) and the dense CRF (``wsss.infer.crf``)."""
