"""Backbones and baselines: registry (`create_model`, `list_models`), the AGW-style visible-infrared CNN, ICRE and the
multi-modal ViT, and their building blocks. Importing this package registers every model."""

from .icre import ICRENet
from .layers import BNNeck, GeM, NonLocal, gem_pool
from .mm_vit import MultiModalViT, block_forward_with_attention
from .output import ReIDOutput
from .pretrained import LoadReport, PretrainedWeightsError, load_pretrained
from .registry import create_model, is_model, list_models, register_model
from .vi_cnn import VIReIDNet

__all__ = [
    "BNNeck",
    "GeM",
    "ICRENet",
    "LoadReport",
    "MultiModalViT",
    "NonLocal",
    "PretrainedWeightsError",
    "ReIDOutput",
    "VIReIDNet",
    "block_forward_with_attention",
    "create_model",
    "gem_pool",
    "is_model",
    "list_models",
    "load_pretrained",
    "register_model",
]
