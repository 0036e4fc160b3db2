"""Per-network learning-rate factors ("dlr", spec B.2 step 6)."""
import math
from typing import List


def dlr_factors(num_nets: int) -> List[float]:
    """lr_k / lr = (1 + cos(pi * (N - k) / N)) / 2 for k = 1..N (N = 2: 0.5, 1; N = 3: 0.25, 0.75, 1)."""
    if num_nets < 1:
        raise ValueError(f'dlr_factors: num_nets must be >= 1, got {num_nets}')
    return [(1 + math.cos(math.pi * (num_nets - k) / num_nets)) / 2 for k in range(1, num_nets + 1)]
