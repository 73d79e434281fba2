"""Fine-tuning: exemplar-augmented training records (``prepare``) and LoRA / Q-LoRA training (``train``)."""
