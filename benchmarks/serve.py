"""The loopback API server in a process of its own, so its Python threads do not compete
with the clients being measured for the GIL. Prints its base URL, then serves until
killed.

    python benchmarks/serve.py --latency 0.2 --bandwidth 100e6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from files import demo_month  # noqa: E402

from tests.server import FakeApi  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--bandwidth", type=float, default=100e6)
    args = p.parse_args()
    api = FakeApi(demo_month, latency=args.latency, bandwidth=args.bandwidth).start()
    print(api.base_url, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
