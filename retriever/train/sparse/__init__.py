"""Training the inference-free sparse document encoder (distillation, FLOPS / l0)."""
