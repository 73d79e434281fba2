"""Teaching material of one's own: files read into passages and figures (LlamaIndex), kept per material in
Chroma, and used as the context and picture of generated items.

``coe.ingest.pipeline.ingest`` reads files into a material; ``coe.ingest.retrieve.material_input`` finds the
passage and figure that teach an answer; ``coe.ingest.suggest.suggest_targets`` proposes answers to ask about.
"""
