# statepipe — one binary, roles chosen by subcommand (ingest, projector, replicator; report, sql, client …
# are its client side). This image runs the server roles against a real Kafka and ClickHouse
# (see docker-compose.yml); it ships no libchdb.so, so embedded mode (`statepipe run` without
# --clickhouse.dsn) is not for it.
#
#   docker build -t statepipe .
#
# The build stage is the Debian-bookworm flavour of golang:1.26 so that the cgo-linked binary
# needs no newer glibc than the bookworm runtime has.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/statepipe ./cmd/statepipe

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /var/lib/statepipe statepipe
COPY --from=build /out/statepipe /usr/local/bin/statepipe
USER statepipe
WORKDIR /var/lib/statepipe
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/statepipe"]
