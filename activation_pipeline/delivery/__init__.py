"""The delivery engine: stage changes in the outbox, send them in rate-limited batches, acknowledge them."""
