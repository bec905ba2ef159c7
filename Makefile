# Entry points for people and CI. Everything real lives in meson.build and scripts/.
BUILD  ?= build
ASAN   ?= build-asan
PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all deps build asan test unit integration demo bench format clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

$(ASAN)/build.ninja:
	meson setup $(ASAN) --buildtype=debug -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

asan: deps $(ASAN)/build.ninja
	ninja -C $(ASAN)

unit: build asan
	meson test -C $(BUILD) --print-errorlogs
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN) --print-errorlogs

# The real binaries, as built normally and under ASan/UBSan (a sanitizer report makes the
# daemon exit non-zero, which the fixtures check at every stop).
integration: build asan
	OUTPOST_BUILD=$(abspath $(BUILD)) $(PYTEST) -q tests/integration tests/attack tests/fault
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 \
		OUTPOST_BUILD=$(abspath $(ASAN)) $(PYTEST) -q tests/integration tests/attack tests/fault

test: unit integration

demo: build
	@sh scripts/demo.sh $(abspath $(BUILD))

bench: build
	@sh bench/run-all.sh $(abspath $(BUILD))

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN)
