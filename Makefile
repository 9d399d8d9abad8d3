# A thin layer over scripts/ and go test, for the commands a Go engineer
# reaches for. `make test` is the README's test command, what CI runs.

BENCH ?= .
PKG ?= ./...

.PHONY: help test unit e2e fuzz dist bench

help:
	@echo "make test    everything CI runs: gofmt, vet, race tests, e2e, dist checks, fuzz (scripts/test.sh)"
	@echo "make unit    the unit tests alone (go test -short ./...: no daemon, clients, browsers or Redis)"
	@echo "make e2e     the tests that run the daemon: end-to-end with real clients, browsers and Redis"
	@echo "make fuzz    a short bounded run of every fuzz target (scripts/test.sh fuzz; FUZZ_BUDGET=seconds)"
	@echo "make dist    the deployment checks: image, Helm chart, systemd unit (scripts/check-dist.sh)"
	@echo "make bench   Go benchmarks with -benchmem (BENCH=regexp, PKG=packages)"

test:
	./scripts/test.sh

unit:
	go test -short ./...

e2e:
	go test -race -count=1 -timeout 12m ./e2e/... ./cmd/chihaya

fuzz:
	./scripts/test.sh fuzz

dist:
	./scripts/check-dist.sh

bench:
	go test -run '^$$' -bench '$(BENCH)' -benchmem $(PKG)
