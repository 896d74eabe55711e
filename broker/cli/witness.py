"""``ixb witness --nation BE``: a partner's witness, serving c2sp.org/tlog-witness over HTTP.

The broker (``IXB_WITNESSES``), or any tlog-witness client, pushes each new
checkpoint with ``POST /add-checkpoint``; the witness cosigns it only if it
extends what it cosigned before (broker/parties/witness.py), and serves its
latest cosigned checkpoint of each log at ``GET /<sha256(origin)>/checkpoint``
for auditors to keep (``ixb audit verify --trusted-checkpoint``). Its state
is under ``<IXB_HOME>/witness/<NATION>``; its key is the nation's witness key
(``ixb keys generate --witness --nation BE``).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.console import Console

from broker.app.settings import Settings, split_host_port
from broker.app.witnessing import build_witness, witness_key, witness_vkey
from broker.errors import IxbError
from broker.parties.witness_http import WitnessServer

out = Console(soft_wrap=True)
err = Console(stderr=True)


def witness(
    *,
    nation: Annotated[str, typer.Option(help="the nation whose witness this is, e.g. BE")],
    listen: Annotated[
        str | None, typer.Option(help="host:port to serve on (default IXB_WITNESS_LISTEN)")
    ] = None,
    print_vkey: Annotated[
        bool, typer.Option("--vkey", help="print the witness's C2SP verifier key and exit")
    ] = False,
) -> None:
    """Run this nation's witness: cosign checkpoints that extend the last one cosigned."""
    settings = Settings()
    try:
        if print_vkey:
            out.print(witness_vkey(witness_key(settings, nation)), markup=False, highlight=False)
            return
        host, port = split_host_port(listen or settings.witness_listen)
        asyncio.run(_serve(settings, nation, host, port))
    except IxbError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot listen on {host}:{port} ({exc.strerror})")
        raise typer.Exit(code=2) from exc


async def _serve(settings: Settings, nation: str, host: str, port: int) -> None:
    witnessing = build_witness(settings, nation)
    server = WitnessServer(witnessing, host, port)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bound = server.address
    out.print(
        f"witness {witnessing.name} for {nation} listening on http://{bound[0]}:{bound[1]} "
        f"(state in {settings.witness_dir(nation)})",
        markup=False,
        highlight=False,
    )
    try:
        await stop.wait()
    finally:
        await server.close()
