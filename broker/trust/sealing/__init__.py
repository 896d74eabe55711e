"""Sealing: what only its intended readers can open (HPKE, RFC 9180, optionally PQ hybrid).

``keys`` holds the algorithms and the private keys; ``envelope`` seals a
payload to one or more registered keys, bound to the topic it travels on,
and opens it again; ``parties`` names who a sealing key belongs to and picks
the keys a sender seals to. Signatures stay inside (sign, then seal): a
sealed payload is opened first, then everything in it is verified as before.
"""
