# statepipe — the two commands that matter: `make run` and `make test`.
SHELL := bash
GO ?= go
CHDB_LIB := $(CURDIR)/.deps/chdb/libchdb.so
export CHDB_LIB_PATH ?= $(CHDB_LIB)
# cgo on: purego then dlopens libchdb.so through the system loader (C++ runtime, TLS) — the
# library is still loaded at run time, never linked.
export CGO_ENABLED ?= 1

.PHONY: all build deps run test test-unit test-clients test-kafka test-fuzz check-compose test-rules test-clickhouse test-clickhouse-cluster \
	bench bench-hierarchy vet fmt clean \
	dashboards dashboards-gen plugin-frontend plugin-backend test-dashboards test-dashboards-gen test-plugin-frontend test-plugin

all: build

build:
	$(GO) build -o bin/statepipe ./cmd/statepipe

$(CHDB_LIB):
	scripts/fetch-chdb.sh >/dev/null

## deps: fetch chDB's libchdb.so (pinned, checksum-verified) into .deps/
deps: $(CHDB_LIB)

## run: the whole pipeline, embedded (Kafka-protocol broker + ClickHouse engine in-process)
run: deps build
	./bin/statepipe run --data data

## test: unit + end-to-end on the embedded broker, then end-to-end on real Apache Kafka (needs Java)
test: deps vet test-unit test-clients test-fuzz test-dashboards test-kafka check-compose test-rules

vet:
	$(GO) vet ./...

## Explicit bounds: a stuck test fails its package in TEST_TIMEOUT with every goroutine's stack,
## instead of go test's 10-minute default. The end-to-end tests wait on sites more than they
## compute, so TEST_PARALLEL of them run at once (timing-sensitive ones stay serial).
TEST_TIMEOUT ?= 12m
TEST_PARALLEL ?= 4

test-unit:
	@if [ -z "$${CLICKHOUSE_ADDR:-}" ]; then echo "SKIPPED: the clickhouse-go adapter's contract suite (internal/clickhouse) needs a ClickHouse server: set CLICKHOUSE_ADDR=host:9000 to run it, or run make test-clickhouse (Docker)"; fi
	STATEPIPE_REQUIRE_CHDB=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -parallel $(TEST_PARALLEL) ./...

## test-clients: real ClickHouse clients against the embedded site's ClickHouse HTTP interface —
## Python's clickhouse-connect (with pandas), the npm package @clickhouse/client and ClickHouse's
## JDBC driver (Maven Central, with Java and Maven), at the versions pinned in scripts/clients/,
## installed into .deps/clients/ (once; again when a pin changes)
CLIENTS := $(CURDIR)/.deps/clients
$(CLIENTS)/py/.installed: scripts/clients/requirements.txt
	python3 -m venv $(CLIENTS)/py
	$(CLIENTS)/py/bin/pip install -q --disable-pip-version-check -r scripts/clients/requirements.txt
	touch $@

$(CLIENTS)/node/.installed: scripts/clients/package.json
	mkdir -p $(CLIENTS)/node
	cp scripts/clients/package.json $(CLIENTS)/node/package.json
	cd $(CLIENTS)/node && npm install --no-audit --no-fund --no-package-lock --loglevel=error
	touch $@

$(CLIENTS)/jdbc/.installed: scripts/clients/jdbc/pom.xml
	@if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then \
		rm -rf $(CLIENTS)/jdbc/libs && \
		mvn -q -B -f scripts/clients/jdbc/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CLIENTS)/jdbc/libs -DincludeScope=runtime && \
		touch $@; \
	else echo "SKIPPED: the JDBC driver's check needs java and mvn"; fi

test-clients: deps $(CLIENTS)/py/.installed $(CLIENTS)/node/.installed $(CLIENTS)/jdbc/.installed
	STATEPIPE_CLIENTS=$(CLIENTS) STATEPIPE_REQUIRE_CHDB=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '^TestClickHouseClients$$' -v ./cmd/statepipe/

## test-fuzz: each fuzz target briefly (FUZZTIME per target), from its seed corpus
FUZZTIME ?= 8s
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReport$$' -fuzztime $(FUZZTIME) ./schema/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReportJSON$$' -fuzztime $(FUZZTIME) ./schema/
	$(GO) test -run '^$$' -fuzz '^FuzzParseCredential$$' -fuzztime $(FUZZTIME) ./schema/
	$(GO) test -run '^$$' -fuzz '^FuzzHandler$$' -fuzztime $(FUZZTIME) ./ingest/
	$(GO) test -run '^$$' -fuzz '^FuzzTranslate$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./configmgr/

test-kafka:
	@if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then \
		echo "== end-to-end on real Apache Kafka (KRaft, from Maven Central)"; \
		scripts/kafka.sh run -- env STATEPIPE_REQUIRE_CHDB=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -parallel $(TEST_PARALLEL) -v ./cmd/statepipe/; \
	else \
		echo "SKIPPED: end-to-end tests against real Apache Kafka need java and mvn (install OpenJDK 17+ and Maven)"; \
	fi

## test-clickhouse: the clickhouse-go adapter's contract suite (internal/clickhouse) against the
## compose file's ClickHouse (needs Docker with Compose v2): starts it, waits until it is healthy,
## runs the suite. The server keeps running: `docker compose stop clickhouse`.
COMPOSE ?= docker compose
test-clickhouse:
	$(COMPOSE) up -d --wait clickhouse
	CLICKHOUSE_ADDR=localhost:9000 CLICKHOUSE_USER=statepipe CLICKHOUSE_PASSWORD=statepipe \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '^TestStoreContract$$' -v ./internal/clickhouse/

## test-clickhouse-cluster: the same suite on a one-node ClickHouse cluster (compose service
## clickhouse-cluster, profile cluster): the migrations as cluster DDL (--clickhouse.cluster),
## Replicated tables with Keeper, the client-keyed tables behind Distributed ones
test-clickhouse-cluster:
	$(COMPOSE) --profile cluster up -d --wait clickhouse-cluster
	CLICKHOUSE_ADDR=localhost:19000 CLICKHOUSE_USER=statepipe CLICKHOUSE_PASSWORD=statepipe CLICKHOUSE_CLUSTER=statepipe \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run '^TestStoreContract$$' -v ./internal/clickhouse/

## check-compose: docker-compose.yml and the Prometheus config stay valid (skips without docker-compose)
check-compose:
	scripts/check-compose.sh

## test-rules: the Prometheus rules in dashboards/rules are valid and pass their unit tests
## (promtool check/test rules; skips without promtool)
test-rules:
	scripts/check-rules.sh

## dashboards: the Grafana datasource plugin — its frontend (npm), then its backend
## (dashboards/plugin/dist/gpx_statepipe_linux_amd64, the SDK's mage targets) — and the provisioned
## dashboards generated from code (dashboards/gen → dashboards/grafana)
PLUGIN := dashboards/plugin
dashboards: plugin-frontend plugin-backend dashboards-gen

# npm ci again only when package.json or the lockfile changed (npm writes node_modules/.package-lock.json).
$(PLUGIN)/node_modules/.package-lock.json: $(PLUGIN)/package.json $(PLUGIN)/package-lock.json
	@command -v npm >/dev/null || { echo "the dashboards plugin's frontend needs Node.js 20+ and npm"; exit 1; }
	cd $(PLUGIN) && npm ci --no-audit --no-fund

# The frontend build empties dist/, so the backend is built after it.
plugin-frontend: $(PLUGIN)/node_modules/.package-lock.json
	cd $(PLUGIN) && npm run build

plugin-backend:
	cd $(PLUGIN) && CGO_ENABLED=0 $(GO) run github.com/magefile/mage@v1.17.2 -v build:linux

dashboards-gen:
	cd dashboards/gen && $(GO) run .

## test-dashboards: the plugin's frontend (type-check, Jest, build), its backend (golden frames in
## process, over gRPC and through the built binary over Grafana's plugin protocol; every
## provisioned dashboard's statepipe targets against a fixture site) and the generated
## dashboards (strict decode, Validate, datasources, variables, metrics, regeneration)
test-dashboards: test-plugin-frontend test-plugin test-dashboards-gen

# Type-check, Jest (fails when there are no tests), build: dist/module.js, dist/plugin.json.
test-plugin-frontend: $(PLUGIN)/node_modules/.package-lock.json
	cd $(PLUGIN) && npm run typecheck && npm run test:ci && npm run build

test-plugin: deps test-plugin-frontend plugin-backend
	cd $(PLUGIN) && $(GO) vet ./pkg/...
	cd $(PLUGIN) && STATEPIPE_REQUIRE_CHDB=1 STATEPIPE_CHECK_DIST=1 STATEPIPE_PLUGIN_BINARY=dist/gpx_statepipe_linux_amd64 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./pkg/...

test-dashboards-gen:
	cd dashboards/gen && $(GO) vet ./... && $(GO) test -count=1 ./...

## bench: Go benchmarks (codec, fold), then the small capacity scenario on the embedded site
## (a few minutes; oracle-checked; report, result.json and plots in bench/results/tmp/small)
bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./schema/ ./projector/...
	./bin/statepipe bench run --scenario bench/scenarios/small.yaml --out bench/results/tmp/small

## bench-hierarchy: CEN with three primaries in one site process at half the hierarchy's knee
## (bench/scenarios/hierarchy-knee.yaml, about 4 minutes): every site's reports against the
## oracle, the central visibility delay, the links' bytes (bench/results/tmp/hierarchy)
bench-hierarchy: deps build
	./bin/statepipe bench run --scenario bench/scenarios/hierarchy-knee.yaml --ceilings=false --out bench/results/tmp/hierarchy

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
