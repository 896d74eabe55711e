"""The demo's last act: Kafka itself keeps a partner out of another nation's feed.

Sealing keeps values unreadable; the cluster's authorizer keeps the records
out of reach in the first place. On the demo's secured cluster (TLS, mTLS
principals, the authorizer: broker/kafka/embedded/secure.py) this applies
the ACL plan derived from the registry, issues BE's analyst its own
credentials, and runs ``ixb subscribe`` as that analyst twice, as a partner
would from its own machine: once for BE's feed (read), once for NL's
(refused by Kafka, with its error). Each is a separate ``ixb`` process, as
an identity is bound per process (broker/kafka/security.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from rich.console import Console

import broker
from broker.app.settings import Settings

__all__ = ["show_kafka_refusal"]

COMMAND_TIMEOUT_S = 60.0
# The ixb CLI in this interpreter, from the copy of ixb running now (a venv, a wheel's target).
_IXB = (sys.executable, "-c", "from broker.cli.main import main; main()")
_HERE = str(Path(broker.__file__).resolve().parents[1])


async def show_kafka_refusal(
    settings: Settings,
    bootstrap: str,
    console: Console,
    *,
    operator_config: Path | None,
    nation: str,
    other: str,
    expected: int,
) -> bool:
    """Whether ``nation``'s analyst read its ``expected`` deliveries and Kafka refused ``other``'s.

    ``operator_config`` is the operator's client configuration on a secured
    cluster; None (Tansu, or a cluster of the user's own) shows nothing.
    """
    console.rule(f"[bold]Kafka's own refusal: {nation}'s analyst asks for {other}'s feed")
    if operator_config is None:
        console.print("[dim]skipped: this cluster is not the demo's secured one[/dim]")
        return True
    env = {**settings.environment(os.environ), "IXB_KAFKA_BOOTSTRAP": bootstrap}
    env["PYTHONPATH"] = os.pathsep.join([_HERE, *filter(None, [env.get("PYTHONPATH")])])
    operator = {**env, "IXB_CLIENT_CONFIG": str(operator_config)}
    credentials = settings.home / f"{nation.lower()}-analyst.properties"
    issue = ("credentials", "issue", "--role", "analyst", "--nation", nation)
    for args in (("acl", "apply"), (*issue, "--out", str(credentials))):
        code, _, err = await _ixb(args, operator)
        if code != 0:
            console.print(f"[red]ixb {' '.join(args[:2])} failed:[/red] {err.strip()[-500:]}")
            return False
    console.print(
        f"ACLs applied from the registry; {nation}'s analyst has its own certificate "
        f"({credentials.name}, mode 0600)"
    )
    analyst = {**env, "IXB_CLIENT_CONFIG": str(credentials)}
    subscribe = ("subscribe", "--json", "--idle-timeout", "1", "--nation")
    code, out, err = await _ixb((*subscribe, nation), analyst)
    read = len(out.splitlines()) if code == 0 else 0
    console.print(f"  ixb subscribe --nation {nation}: exit {code}, {read} verified deliveries")
    code_other, _, err_other = await _ixb((*subscribe, other), analyst)
    refusal = next(
        (line.strip() for line in err_other.splitlines() if "refused access" in line), ""
    )
    console.print(f"  ixb subscribe --nation {other}: exit {code_other}, {refusal or 'no refusal'}")
    ok = code == 0 and read == expected and code_other != 0 and "AuthorizationFailed" in refusal
    if not ok:
        console.print(f"[red]expected {expected} deliveries and Kafka's refusal[/red] {err[-300:]}")
    return ok


async def _ixb(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *_IXB,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -1, "", f"ixb {' '.join(args)} did not finish in {COMMAND_TIMEOUT_S:.0f}s"
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
