"""The suggestion-quality benchmark: what each LR rule costs in the trained model."""
