# The project's commands. Each target is a line or two; the logic lives in scripts/.
.DEFAULT_GOAL := help
.PHONY: help build run test lint bench fmt tools image fresh-check

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

build: ## Build every binary and link it into ./bin/
	@scripts/build.sh

run: ## Start the whole system locally (Ctrl-C stops it; data kept in ./data)
	@scripts/run.sh

test: ## Run every test and check deploy/ (installs the pinned tools it needs first)
	@scripts/test.sh

lint: ## cargo fmt --check, clippy -D warnings, buf lint, cargo deny
	@scripts/lint.sh

bench: ## Run the benchmarks in release mode (BENCH=name runs one)
	@scripts/bench.sh

image: ## Build one container image per service (needs a Docker engine)
	@scripts/image.sh

fmt: ## Format the code
	@cargo fmt --all

tools: ## Install the pinned tools into the cache and link them under .tools/
	@scripts/tools.sh

fresh-check: ## The two commands in a clean Debian 12 chroot from a clone of HEAD (root; slow)
	@scripts/fresh-check.sh
