# Corral's one task runner. `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help
CORRAL_CACHE ?= $(HOME)/.cache/corral
export PATH := $(CORRAL_CACHE)/tools/bin:$(PATH)
CARGO ?= cargo

.PHONY: help tools build test gateway-it fuzz fuzz-short cli-it cli-captures viewer-test dashboard-shot bench bench-noisy lint fmt generate generate-check chart-lint demo conformance e2e check

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-16s %s\n",$$1,$$2}'

tools: ## Install what building and testing need (redis-server, helm), idempotently
	hack/tools.sh

build: ## Build every binary
	$(CARGO) build --workspace --bins

test: tools ## Unit and integration tests (starts its own Redis on loopback)
	$(CARGO) test --workspace --no-fail-fast

gateway-it: tools ## The gateway's tests on a real kube-apiserver (light mode) and Redis
	hack/gateway-it.sh

fuzz: tools ## API fuzzing, the full run: schemathesis for 10 min and the hostile cases against a real gateway (docs/fuzzing.md)
	hack/fuzz.sh

fuzz-short: tools ## The time-boxed form of make fuzz that make check runs (schemathesis for 60 s; about 2.5 min)
	FUZZ_SHORT=1 hack/fuzz.sh

cli-it: tools ## The corral CLI against a real gateway, kube-apiserver (light mode), Redis and S3 (SeaweedFS), in pipes and a pseudo-terminal
	hack/cli-it.sh

cli-captures: tools ## The CLI's list commands captured in a real pseudo-terminal (saves docs/cli-terminal.md; not in check)
	hack/cli-captures.sh

viewer-test: tools ## The session trace viewer in headless Chromium against a real gateway and harness (saves docs/viewer.png)
	hack/viewer-test.sh

dashboard-shot: tools ## The dashboard with live figures from a demo run on the local cluster (saves docs/dashboard.png; not in check)
	hack/dashboard-shot.sh

fmt: ## Format the code
	$(CARGO) fmt --all

generate: ## Regenerate the CRD YAML (crds/ and charts/corral-crds/templates/) from api/
	$(CARGO) run -q --bin crdgen -- .

generate-check: generate ## Fail when the committed generated files differ from what the types generate
	@git diff --exit-code -- crds charts/corral-crds/templates || { echo "generated CRDs are stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- crds charts/corral-crds/templates)" || { echo "untracked generated files: run make generate and commit" >&2; git status --porcelain -- crds charts/corral-crds/templates; exit 1; }

chart-lint: tools ## helm lint both charts and render them with default and bundled-off values
	hack/chart-lint.sh

lint: tools ## fmt check, clippy -D warnings, shellcheck, cargo-deny (licences, bans, sources), CRD drift, chart lint
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	git ls-files -z '*.sh' | xargs -0 shellcheck
	cargo-deny check licenses bans sources
	$(MAKE) generate-check
	$(MAKE) chart-lint

bench: tools ## The benchmark suite: runs every benchmark once and writes docs/benchmarks.md (with the local cluster; BENCH_CLUSTER=0 leaves the cluster figures out)
	bench/run.sh

bench-noisy: tools ## Noisy neighbour: one tenant's p99 alone and while another abuses the gateway (release; BENCH_NOISY_SHORT=1 for the short form)
	bench/noisy.sh

demo: ## Install Corral (local cluster unless KUBECONFIG is set) and stream a session through the gateway
	@hack/demo.sh

conformance: ## The official anthropic Python SDK against the installed gateway (e2e/conformance/)
	@e2e/conformance/run.sh

e2e: ## End-to-end tests on the local cluster (see e2e/)
	hack/e2e.sh

check: ## Everything CI runs: tests, lint, then e2e on the local cluster (README's test command)
	hack/check.sh

-include mk/*.mk
