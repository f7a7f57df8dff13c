"""Retrieval evaluation: the relevance rule, the metrics, and an evaluation job's result."""
