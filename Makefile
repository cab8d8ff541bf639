# The project's commands. Each target is a line or two; the logic lives in scripts/.
.DEFAULT_GOAL := help
.PHONY: help build run test lint bench fmt tools

help: ## Show the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

build: ## Build every binary and link it into ./bin/
	@scripts/build.sh

run: ## Start the whole system locally (Ctrl-C stops it; data kept in ./data)
	@scripts/run.sh

test: ## Run every test (installs pinned nats-server, PostgreSQL and nextest first)
	@scripts/test.sh

lint: ## cargo fmt --check, clippy -D warnings, buf lint, cargo deny
	@scripts/lint.sh

bench: ## Run the benchmarks in release mode (BENCH=name runs one)
	@scripts/bench.sh

fmt: ## Format the code
	@cargo fmt --all

tools: ## Install the pinned tools into the cache and link them under .tools/
	@scripts/tools.sh
