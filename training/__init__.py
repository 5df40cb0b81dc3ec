"""Training the temporally stable (cosine-attention) AdaAttN and measuring temporal stability."""
