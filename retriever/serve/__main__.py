"""``python -m retriever.serve ENGINE [--port P]``: serve on loopback (used by the load benchmark)."""

import argparse

from retriever.serve.config import ServeConfig
from retriever.serve.run import serve

parser = argparse.ArgumentParser(prog="python -m retriever.serve")
parser.add_argument("engine")
parser.add_argument("--port", type=int, default=8000)
parser.add_argument("--workers", type=int, default=1)
parser.add_argument("--log-level", default="warning")
args = parser.parse_args()
serve(args.engine, ServeConfig(port=args.port), workers=args.workers, log_level=args.log_level)
