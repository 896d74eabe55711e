"""The enforcer: intake (verify, decode, validate), fan-out (decide, transform, sign), runner."""
