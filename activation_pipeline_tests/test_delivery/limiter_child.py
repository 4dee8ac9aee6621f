"""Takes N tokens from a shared rate limiter and prints when each was granted (for the limiter tests).

Usage: python -m activation_pipeline_tests.test_delivery.limiter_child STATE BUCKET RPS N
"""

import json
import sys
import time

from activation_pipeline.delivery.rate_limit import SharedRateLimiter
from activation_pipeline.state.store import open_state


def main() -> None:
    state, bucket, rps, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    limiter = SharedRateLimiter(open_state(state), bucket, rps)
    print("ready", flush=True)
    sys.stdin.readline()  # start together
    granted = []
    for _ in range(count):
        limiter.acquire()
        granted.append(time.time())
    print(json.dumps(granted), flush=True)


if __name__ == "__main__":
    main()
