# Sluice developer workflow. `make test` and `make run` provision what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := build

CONFIG ?= config/sluice.example.yaml
-include .deps/env.mk

# A local librdkafka (when the system's is older than 2.8) is found through
# pkg-config and linked with an rpath, so the binaries run without extra environment.
SWIFT_ENV = $(if $(RDKAFKA_PREFIX),PKG_CONFIG_PATH=$(RDKAFKA_PREFIX)/lib/pkgconfig)
SWIFT_LINK = $(if $(RDKAFKA_PREFIX),-Xlinker -rpath -Xlinker $(RDKAFKA_PREFIX)/lib)

.PHONY: provision provision-test provision-bench build-info build debug install run test fault retention-volume quality bench scale fuzz clean

provision:
	@scripts/provision.sh build

provision-test:
	@scripts/provision.sh test

provision-bench:
	@scripts/provision.sh bench

## build-info: the commit `sluice version --verbose` prints (`-dirty` with uncommitted changes),
## written to a generated header only when it changed, so a new commit recompiles one C file
## rather than the package (a -Xcc define would change every compile command).
BUILD_COMMIT = $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
build-info:
	@h=Sources/CHyperscan/build_commit.h; line='#define SLUICE_BUILD_COMMIT "$(BUILD_COMMIT)"'; \
	  [ "$$(cat $$h 2>/dev/null)" = "$$line" ] || { echo "$$line" > $$h; touch Sources/CHyperscan/build_info.c; }

## build: release binary (prints its path)
build: provision
	@$(MAKE) --no-print-directory _build
_build: build-info
	$(SWIFT_ENV) swift build -c release --product sluice $(SWIFT_LINK)
	@echo "built: $$(swift build -c release --show-bin-path)/sluice"

## install: the release binary, its man pages and bash/zsh/fish completions under
## $(DESTDIR)$(PREFIX) (default /usr/local), all generated from the binary (scripts/install.sh)
PREFIX ?= /usr/local
install: build
	@$(MAKE) --no-print-directory _install
_install:
	$(SWIFT_ENV) swift build -c release --product generate-manual
	scripts/install.sh "$$(swift build -c release --show-bin-path)/sluice" "$(DESTDIR)$(PREFIX)"

debug: provision
	@$(MAKE) --no-print-directory _debug
_debug: build-info
	$(SWIFT_ENV) swift build --product sluice $(SWIFT_LINK)

## run: the whole gateway in one process on the embedded bus, with the example config
run: provision
	@$(MAKE) --no-print-directory _debug
	@scripts/dev-env.sh $$(swift build --show-bin-path)/sluice run --config $(CONFIG)

## test: provisions librdkafka and the Tansu broker, starts the broker, runs every test.
## Tests run one at a time: the end-to-end suites start real processes and brokers, and
## CPU-bound detection suites running beside them on 2 cores starve their async work.
test: provision-test
	@$(MAKE) --no-print-directory _test
_test: build-info
	$(SWIFT_ENV) swift build --build-tests $(SWIFT_LINK)
	$(SWIFT_ENV) swift build --product generate-manual
	$(SWIFT_ENV) scripts/run-tests.sh scripts/with-broker.sh swift test --skip-build --no-parallel $(SWIFT_LINK)

## fault: the fault suite alone (Tests/IntegrationTests/FaultTests.swift), longer than in `make test`:
## FAULT_SECONDS (default 60) of steady load per phase while stages are killed (-9), restarted,
## added, removed and stopped (SIGTERM), embedded and on the Tansu broker; prints the counts
## (outcomes per accepted request, upstream deliveries, duplicates, resets, shutdown times).
FAULT_SECONDS ?= 60
fault: provision-test
	@$(MAKE) --no-print-directory _fault
_fault: build-info
	$(SWIFT_ENV) swift build --build-tests $(SWIFT_LINK)
	SLUICE_FAULT_SECONDS=$(FAULT_SECONDS) $(SWIFT_ENV) scripts/with-broker.sh swift test --skip-build --no-parallel --filter Faults $(SWIFT_LINK)

## retention-volume: the embedded bus's disk-use test with 100,000 requests (make test runs 30,000):
## publishes ~560 MB through a one-minute retention and checks that disk use stays under 50 MB.
retention-volume: provision-test
	$(SWIFT_ENV) swift build --build-tests $(SWIFT_LINK)
	SLUICE_RETENTION_VOLUME_REQUESTS=100000 $(SWIFT_ENV) swift test --skip-build --filter EmbeddedBusRetentionVolume $(SWIFT_LINK)

## quality: recall and precision of the credential rules on the independent labelled corpus
## (Tests/DetectionQualityTests), per format, carrier and rule; fails below the goals of issue 15
## (recall 0.90, precision 0.97). QUALITY_REPORT=FILE writes every miss and false positive.
quality: provision
	$(SWIFT_ENV) swift build --build-tests $(SWIFT_LINK)
	SLUICE_QUALITY_GOAL=1 SLUICE_QUALITY_REPORT=$(QUALITY_REPORT) $(SWIFT_ENV) swift test --skip-build --filter DetectionQuality $(SWIFT_LINK)

## bench: bus, detection and gateway figures (release build), then the proxy table: wrk against
## the upstream directly, nginx proxy_pass, sluice run and Kafka mode (scripts/bench-proxy.sh;
## BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_SOAK_SECONDS). docs/performance.md has the figures.
bench: provision-bench
	@$(MAKE) --no-print-directory _bench
_bench:
	$(SWIFT_ENV) swift build -c release $(SWIFT_LINK)
	@bin=$$(swift build -c release --show-bin-path); \
	  scripts/with-broker.sh scripts/bench.sh "$$bin"

## scale: every stage N-wide on Kafka (release build; not in `make test`): 3 Ingress, 3 Inspector,
## 2 Forwarder, 2 Recorder processes on the Tansu broker (or SLUICE_KAFKA_BROKERS), SCALE_SECONDS
## (default 30) of load through all Ingresses (one wrk each); prints replies read vs answered per
## Ingress, throughput, latency, CPU per stage per call and bytes per topic per call, and fails
## unless every accepted request has exactly one outcome and every audit event is in the Recorders'
## file sink once (scripts/scale.sh; docs/scaling.md).
SCALE_SECONDS ?= 30
scale: provision-bench
	@$(MAKE) --no-print-directory _scale
_scale:
	$(SWIFT_ENV) swift build -c release --product sluice $(SWIFT_LINK)
	$(SWIFT_ENV) swift build -c release --product HopTrace $(SWIFT_LINK)
	@bin=$$(swift build -c release --show-bin-path); \
	  SCALE_SECONDS=$(SCALE_SECONDS) scripts/with-broker.sh scripts/scale.sh "$$bin"

## fuzz: builds the libFuzzer targets in Tests/Fuzz (decoders, path canonicaliser) with
## swiftc -sanitize=fuzzer,address and runs each for FUZZ_SECONDS (default 60); fails on any crash.
## swift-crypto's Crypto (imported by Detection) comes from SwiftPM's debug build, not instrumented.
## Not part of `make test`; the SwiftPM package never compiles Tests/Fuzz.
FUZZ_SECONDS ?= 60
fuzz: provision
	@$(MAKE) --no-print-directory _fuzz
_fuzz:
	$(SWIFT_ENV) swift build --target Crypto $(SWIFT_LINK)
	FUZZ_SECONDS=$(FUZZ_SECONDS) Tests/Fuzz/run.sh

clean:
	rm -rf .build data
