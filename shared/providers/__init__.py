"""Embedding models and answerers, chosen by settings (zhipu, or the offline local + extractive pair)."""
