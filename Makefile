# Sergas Core — the verbs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BIN := $(CURDIR)/.bin
export PATH := $(BIN):$(PATH)
export GOFLAGS := -buildvcs=false

# Pinned code-generation tools, built from the Go module proxy into .bin/ (git-ignored) once.
BUF_VERSION                 := v1.75.0
PROTOC_GEN_GO_VERSION       := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION  := v1.6.0
GRPC_GATEWAY_VERSION        := v2.33.0
KUSTOMIZE_VERSION           := v5.8.1

TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2
# Tools the tests run (make test builds them; the code generation above does not need them).
TEST_TOOLS := $(BIN)/kustomize
BINARIES := sergas sergas-token sergas-audit sergas-webhook sergas-gateway sergasctl

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: run
run: $(BIN)/sergas ## run all three services and the gateway on embedded SQLite under ./data (development mode)
	@echo 'Operator commands (after make build): SERGAS_ENV=development .bin/sergasctl health | validate | migrate status  (.bin/sergasctl --help)'
	SERGAS_ENV=development $(BIN)/sergas

.PHONY: test
test: $(TEST_TOOLS) ## run every test against SQLite and a real PostgreSQL (throwaway server unless TEST_DATABASE_URL is set); installs the Debian packages the tests run (scripts/packages) when missing
	scripts/packages
	REQUIRE_POSTGRES=1 REQUIRE_TOOLS=1 scripts/with-postgres go test -race -count=1 ./... ./client/...

.PHONY: bench
bench: ## benchmarks (not part of make test, ~25 min; the first run also seeds 10 million audit events, kept in ./data/bench): Go micro-benchmarks, the bare databases' audit insert ceiling, GetAccessToken, then audit RecordEvent/RecordEvents, each against an authenticated no-op over gRPC, ListEvents p99 on 10 million events, signed webhook ingests through the gateway beside /healthz, and end-to-end delivery (signed ingest through the gateway to Ack by streaming consumers, and to a push endpoint on loopback; fixed rates and saturation); server and load generator in separate processes, SQLite and PostgreSQL; sergasctl bench (the original guide's table on both backends), sergasctl copy of one million audit events beside a bare COPY, and sergasctl backup of a 1 GiB SQLite file while the service writes; prints the README tables
	go test -run=NONE -bench=. -benchmem -count=3 ./internal/keyring ./services/token/store/sqlite
	scripts/with-postgres sh -c 'go test -run=NONE -bench=CeilingInsert -benchtime=3s -count=3 -timeout=30m ./services/audit/store'
	scripts/with-postgres sh -c 'go run ./tools/bench -d 4s -n 3 -c 1,4,16,64 && go run ./tools/bench -suite audit -d 3s -n 3 && go run ./tools/bench -suite webhook -d 3s -n 3 && go run ./tools/bench -suite delivery -delivery-sink pull,push -d 10s -n 3'
	mkdir -p data && scripts/with-postgres sh -c 'SERGAS_ENV=development DATA_DIR=./data DATABASE_URL="$$TEST_DATABASE_URL" go run ./services/sergasctl/cmd/sergasctl bench --backend both -n 2000 --runs 3'
	scripts/with-postgres sh -c 'go test -run=NONE -bench=CopyAudit -benchtime=1x -count=3 -timeout=60m ./services/sergasctl'
	go test -run=NONE -bench=BackupOneGigabyte -benchtime=1x -count=3 -timeout=30m ./services/sergasctl

.PHONY: fuzz
fuzz: ## fuzz credential parsing and the webhook ingress and verifiers (30 s per target; outside make test, whose runs cover the seed corpus)
	for t in FuzzBearer FuzzParseAPIKeys FuzzParseJWKS; do go test -run=NONE -fuzz=^$$t$$ -fuzztime=30s ./internal/auth || exit 1; done
	for t in FuzzIngest FuzzHMACVerifier FuzzStripeVerifier FuzzStandardWebhooksVerifier FuzzZohoVerifier FuzzSourcesFile; do \
	  go test -run=NONE -fuzz=^$$t$$ -fuzztime=30s ./services/webhook || exit 1; done

.PHONY: build
build: ## build every binary into .bin/
	go build -o $(BIN)/sergas ./services/stack/cmd/sergas
	go build -o $(BIN)/sergas-token ./services/token/cmd/sergas-token
	go build -o $(BIN)/sergas-audit ./services/audit/cmd/sergas-audit
	go build -o $(BIN)/sergas-webhook ./services/webhook/cmd/sergas-webhook
	go build -o $(BIN)/sergas-gateway ./services/gateway/cmd/sergas-gateway
	go build -o $(BIN)/sergasctl ./services/sergasctl/cmd/sergasctl

.PHONY: python
python: ## build the Python client into python/build/sergas_client from proto/ with Debian's protoc and grpc-tools (scripts/packages installs them)
	scripts/packages
	/usr/bin/python3 python/generate.py

.PHONY: $(BIN)/sergas
$(BIN)/sergas:
	go build -o $@ ./services/stack/cmd/sergas

.PHONY: tools
tools: $(TOOLS) ## build the pinned code-generation tools into .bin/ (skips what is there)

$(BIN)/buf:
	GOBIN=$(BIN) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/protoc-gen-grpc-gateway:
	GOBIN=$(BIN) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(BIN)/protoc-gen-openapiv2:
	GOBIN=$(BIN) go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)
$(BIN)/kustomize:
	GOBIN=$(BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

.PHONY: grpcurl
grpcurl: $(BIN)/grpcurl ## build grpcurl into .bin/ for the README's gRPC examples
$(BIN)/grpcurl:
	GOBIN=$(BIN) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4

.PHONY: generate
generate: $(TOOLS) ## regenerate gen/ (Go, gRPC, gateway, OpenAPI) from proto/
	rm -rf gen/go gen/openapi
	buf generate
	go run ./tools/openapimerge

.PHONY: check-generated
check-generated: generate ## fail when gen/ differs from what `make generate` produces
	@git add -N gen >/dev/null 2>&1 || true
	@if ! git diff --quiet -- gen; then \
	  echo "gen/ is out of date: run 'make generate' and commit the result"; git diff --stat -- gen; exit 1; fi

.PHONY: lint
lint: $(BIN)/buf ## buf lint, buf breaking (against main), gofmt and go vet
	buf lint
	@if git rev-parse --verify -q main >/dev/null; then buf breaking --against '.git#branch=main'; fi
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	cd gen && go vet ./...
	cd client && go vet ./...

.PHONY: clean
clean: ## remove built binaries (keeps the cached tools) and nothing under ./data
	rm -f $(addprefix $(BIN)/,$(BINARIES))
