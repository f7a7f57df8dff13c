"""Operations: log set-up and the metrics every process adds to in Redis."""
