"""The transformers plugins' entry points (``coe.llm`` names ``transformers``, ``transformers-vl`` and
``qwen-vl-chat``).

The plugin is split by concern: ``transformers_processing`` (images, chat template, processor),
``transformers_loading`` (weights, dtypes, LoRA adapters), ``transformers_generation``
(``TransformersVLLM``: batched generation), ``reply`` (stop strings, JSON repair and
validation), ``transformers_scoring`` (option scoring) and ``transformers_qwen_vl_chat`` (the legacy
Qwen-VL-Chat, ``QwenVLChatLLM``). Import helpers from those modules; this one names the plugins only.
"""

from .transformers_generation import TransformersVLLM
from .transformers_qwen_vl_chat import QwenVLChatLLM

__all__ = ["QwenVLChatLLM", "TransformersVLLM"]
