# Build: docker build -t commerce .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked -p commerce --features demo -p opterius-sim

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/commerce /src/target/release/opterius-sim /usr/local/bin/
COPY --from=build /src/static /app/static
WORKDIR /app
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080
# `serve` applies migrations at start, then serves the UI, the API and workers.
CMD ["commerce", "serve"]
