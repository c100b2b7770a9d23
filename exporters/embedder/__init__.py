"""Host side of embedder bundles: a sentence-transformers encoder (BERT family) -> ONNX -> an edge bundle
of kind "embedder", validated against sentence-transformers itself.

architecture.py  the encoder's dimensions and weight names (one dataclass, as decoders have)
st_config.py     what the sentence-transformers pipeline does after the encoder: pooling, normalisation, length
graph.py         the ONNX encoder graph
export.py        the pipeline: source -> graph -> recipe -> bundle -> validation
validate.py      the bundle run by our runtime versus sentence-transformers
"""
from __future__ import annotations

from .architecture import ENCODERS, EncoderArgs

__all__ = ["ENCODERS", "EncoderArgs"]
