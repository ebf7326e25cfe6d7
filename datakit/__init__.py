"""datakit: rejection-sampled SFT corpora from a teacher model, and students distilled from them."""

__version__ = "0.1.0"
