# Container image of MemCache: the `mmc` binary and the memcache_rs Python
# wheel, built in a Rust stage and copied into a small Python runtime image.
# See docs/packaging.md. Build: docker build -t memcache .

# ---- build -----------------------------------------------------------------
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip python3-venv protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --no-cache-dir "maturin>=1.9.4,<2"
WORKDIR /src
COPY . .
RUN cargo install --locked --path crates/mmc-cli --root /out \
    && /opt/maturin/bin/maturin build --release --manifest-path crates/mmc-python/Cargo.toml \
        --out /out/wheels --compatibility off

# ---- runtime ---------------------------------------------------------------
# The wheel is built for the build stage's python3 (Debian bookworm: 3.11), so
# the runtime runs that version too.
FROM python:3.11-slim-bookworm
COPY --from=build /out/bin/mmc /usr/local/bin/mmc
COPY --from=build /out/wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
# Control port, HTTP. A real deployment passes a config (mmc up --config)
# with a cluster token; without one the services listen on loopback only.
EXPOSE 5000 8000
ENTRYPOINT ["mmc"]
CMD ["up", "--help"]
