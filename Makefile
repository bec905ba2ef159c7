# Entry points for people and CI. Everything real lives in meson.build and scripts/.
BUILD  ?= build
ASAN   ?= build-asan
FUZZ   ?= build-fuzz
# Seconds each libFuzzer target runs: `make fuzz` (long), `make test` (FUZZ_QUICK_SECONDS).
FUZZ_SECONDS       ?= 300
FUZZ_QUICK_SECONDS ?= 6
PYTEST ?= /usr/bin/python3 -m pytest
# Integration tests side by side (pytest-xdist): they mostly wait on real daemons' timers, so
# four at once on two cores take about 40% of the serial time. Each test has its own ports
# and state dirs; PYTEST_JOBS=0 runs them one by one.
PYTEST_JOBS ?= 4

DEB    ?= build-deb
DEBOUT ?= $(DEB)/debs

.PHONY: all deps test-deps bench-deps build asan fuzz-build fuzz fuzz-quick test unit integration packaging demo demo-scale bench deb format clean

all: build

# Three sets (scripts/deps.sh): a build needs only the first; tests and benchmarks add theirs.
deps:
	@sh scripts/deps.sh build

test-deps:
	@sh scripts/deps.sh build test

bench-deps:
	@sh scripts/deps.sh build bench

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

$(ASAN)/build.ninja:
	meson setup $(ASAN) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

# The fuzz targets (tests/fuzz) in a tree of their own: clang, libFuzzer, ASan + UBSan.
$(FUZZ)/build.ninja:
	CC=clang CXX=clang++ meson setup $(FUZZ) --buildtype=debugoptimized -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: deps $(ASAN)/build.ninja
	ninja -C $(ASAN)

unit: test-deps build asan
	meson test -C $(BUILD) --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN) --print-errorlogs

# The real binaries, as built normally and under ASan/UBSan (a sanitizer report makes the
# daemon exit non-zero, which the fixtures check at every stop).
integration: test-deps build asan
	OUTPOST_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -n $(PYTEST_JOBS) \
		tests/integration tests/attack tests/fault
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
		OUTPOST_BUILD=$(abspath $(ASAN)) $(PYTEST) -q -n $(PYTEST_JOBS) \
		tests/integration tests/attack tests/fault

# The Debian packages, built with a bounded time, their contents, lintian, the units, the
# sample configs (tests/packaging).
packaging: test-deps
	$(PYTEST) -q tests/packaging

fuzz-build: test-deps $(FUZZ)/build.ninja
	ninja -C $(FUZZ) fuzz

# Every target for FUZZ_SECONDS; fails on a crash, leak or UB (docs/security.md#fuzzing).
fuzz: fuzz-build
	sh scripts/fuzz.sh $(FUZZ) $(FUZZ_SECONDS)

# The same, bounded: about a minute in all, part of `make test`.
fuzz-quick: fuzz-build
	sh scripts/fuzz.sh $(FUZZ) $(FUZZ_QUICK_SECONDS)

test: unit integration packaging fuzz-quick

demo: build
	@sh scripts/demo.sh $(abspath $(BUILD))

# Scale mode: ZooKeeper, PostgreSQL, two hubs, 3 agents; runs the demo's commands, then stops.
demo-scale: build
	@sh scripts/demo-scale.sh $(abspath $(BUILD))

bench: bench-deps build
	@sh bench/run-all.sh $(abspath $(BUILD))

# outpost-agent, outpost-hub and outpost .debs in $(DEBOUT) (packaging/mkdeb.sh).
deb: deps
	@sh packaging/mkdeb.sh $(DEB) $(DEBOUT)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN) $(DEB) $(FUZZ)
