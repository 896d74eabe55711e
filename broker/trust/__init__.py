"""Keys, signatures and the partner registry: what lets sovereign partners check each other."""
