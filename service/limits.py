"""How big a study spec may be: bounds that keep one request from exhausting the service."""

MAX_PARAMS = 64
MAX_CHOICES = 1000
MAX_ROUND_TRIALS = 100_000
MAX_TOTAL_TRIALS = 1_000_000
MAX_ROUNDS = 1000
MAX_GRID_POINTS = 1_000_000
MAX_SEED = 2**32 - 1
