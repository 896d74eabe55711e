"""ixb: an intelligence-exchange broker for border-security cooperation.

Layers (see DESIGN.md): ``domain`` (typed values, no I/O), ``codec`` (Avro with
limits), ``trust`` (keys and signatures), ``policy`` (the decision point),
``pipeline`` (the enforcer's stages and runner), ``transport`` (the only module
that imports aiokafka), ``client`` (what recipients use) and ``cli``.
"""

__version__ = "0.1.0"
