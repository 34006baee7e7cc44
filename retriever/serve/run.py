"""Start the service with uvicorn (``retriever serve``).

With ``workers > 1`` uvicorn starts that many processes, each opening the engine once;
the settings reach them through an environment variable of this process only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Sequence

from fastapi import FastAPI

from retriever.serve.app import create_app
from retriever.core.errors import SpecError
from retriever.serve.config import LOOPBACK, Limits, ServeConfig
from retriever.api import Engine
from retriever.serve.live import LiveEngine, Opener

_ENV = "RETRIEVER_SERVE_SETTINGS"
KEEP_ALIVE_S = 75  # idle keep-alive connections stay open this long (as nginx's default)


def serve(engine_dir: str | Path, config: ServeConfig, workers: int = 1, log_level: str = "info",
          opener: Opener = Engine.open) -> None:
    """Open ``engine_dir`` with ``opener`` and serve it until interrupted.

    A sharded engine on Ray passes a :class:`~retriever.distributed.search.DistributedEngine`
    opener: this process is then the one ingress and Ray's searcher actors do the work, so
    ``workers`` must stay 1.
    """
    import uvicorn

    options = {"host": config.host, "port": config.port, "log_level": log_level, "server_header": False,
               "timeout_graceful_shutdown": 5, "timeout_keep_alive": KEEP_ALIVE_S}
    if workers > 1 and opener != Engine.open:
        raise SpecError("a Ray-sharded engine is served by one ingress process (its searches fan out to Ray "
                        "actors): drop --workers")
    if workers > 1:
        os.environ[_ENV] = json.dumps({"engine": str(engine_dir), "config": asdict(config)})
        uvicorn.run("retriever.serve.run:app_from_environment", factory=True, workers=workers, **options)
    else:
        uvicorn.run(create_app(LiveEngine.open(engine_dir, config.refresh_s, opener), config), **options)


def app_from_environment() -> FastAPI:
    """The app of one worker process, from the settings :func:`serve` left in the environment."""
    settings = json.loads(os.environ[_ENV])
    raw = settings["config"]
    config = ServeConfig(**{**raw, "limits": Limits(**raw["limits"]), "cors_origins": tuple(raw["cors_origins"]),
                            "rerankers": tuple(raw["rerankers"])})
    return create_app(LiveEngine.open(settings["engine"], config.refresh_s), config)


def settings(host: str = LOOPBACK, port: int = 8000, token: str | None = None, insecure: bool = False,
             allow_writes: bool = False, cors_origins: Sequence[str] = (), llm: str | None = None,
             limits: Sequence[str] = ()) -> ServeConfig:
    """A :class:`ServeConfig` from command-line values; ``limits`` are ``name=value`` strings."""
    known = {f.name: f.type for f in fields(Limits)}
    values: dict[str, float | int] = {}
    for item in limits:
        name, _, value = item.partition("=")
        if name not in known or not value:
            raise SpecError(f"--limit {item!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
        try:
            values[name] = float(value) if known[name] in (float, "float") else int(value)
        except ValueError:
            raise SpecError(f"--limit {item!r}: {value!r} is not a number") from None
    return ServeConfig(host=host, port=port, token=token or None, insecure=insecure, allow_writes=allow_writes,
                       cors_origins=tuple(cors_origins), llm=llm, limits=Limits(**values))
