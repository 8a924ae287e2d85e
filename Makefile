# kfleet: the two commands a newcomer needs are `make run` and `make check`.
# Everything else here is a convenience around CMake (see CMakeLists.txt).
#
#   make            build build/bin/{kfleetd,kfleet,kfleet-agent}
#   make run        install what is missing (Kubernetes included), build the
#                   three programs, start a local fleet
#   make check      install what is missing, build and run every test:
#                   release build, ASan+UBSan build, fuzz smoke runs, format check,
#                   source lint
#   make lint       scripts/lint-source: function length, cleanup labels, kf_ prefix
#   make bench-X    run the benchmark bench/X (results: docs/BENCHMARKS.md)
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS each (default 60)
#   make format     clang-format every C file in place

JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 8
CTEST_ARGS  ?=

C_FILES = $(shell git ls-files --cached --others --exclude-standard '*.c' '*.h' 2>/dev/null || find src include tests bench -name '*.[ch]')

.PHONY: all deps bins build asan check check-release check-asan check-fuzz format format-check lint \
        run fuzz clean bench bench-api bench-store bench-placement bench-heartbeat bench-provision \
        bench-broadcast bench-federation bench-failover bench-hbshare bench-memory bench-ui bench-scale bench-regional bench-upgrade bench-release

all: build

# Installs Debian packages that are missing; quick when everything is present.
deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKF_SANITIZE=ON

asan: $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKF_FUZZ=ON

check: deps format-check lint check-release check-asan check-fuzz
	@echo "make check: all passed"

check-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

check-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# A short libFuzzer run of every parser on top of the corpus replay that
# check-release and check-asan already did.
check-fuzz: $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@scripts/fuzz-run $(FUZZ_BUILD)/fuzz $(FUZZ_SMOKE_SECONDS)

fuzz: $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@scripts/fuzz-run $(FUZZ_BUILD)/fuzz $(FUZZ_SECONDS)

format:
	clang-format -i $(C_FILES)

# STYLE's limits a compiler does not check (docs/style-lint.md): functions of
# at most 100 lines, cleanup labels that say what they undo, kf_ on every
# exported name; scripts/lint-source.allow lists what is not fixed yet.
lint:
	@scripts/lint-source && echo "lint: clean"

format-check:
	@out=$$(for f in $(C_FILES); do clang-format --dry-run "$$f" 2>&1 | grep -q warning && echo "$$f"; done); \
	if [ -n "$$out" ]; then echo "clang-format would change:"; echo "$$out"; \
	    echo "run 'make format'"; exit 1; fi; echo "format-check: clean"

# The fleet's three programs only, quietly (the compiler's output goes to
# $(BUILD)/build.log and is shown only when the build fails).
bins: $(BUILD)/CMakeCache.txt
	@echo "make: building kfleetd, kfleet and kfleet-agent (log: $(BUILD)/build.log)"
	@cmake --build $(BUILD) -j $(JOBS) --target kfleetd kfleet kfleet-agent \
	    >$(BUILD)/build.log 2>&1 || { tail -40 $(BUILD)/build.log; exit 1; }

run: deps bins
	@scripts/run-local

bench: bench-api bench-store bench-placement bench-heartbeat bench-provision bench-broadcast bench-federation

# A static pattern rule: make skips implicit-rule search for .PHONY targets,
# so a plain `bench-%:` rule never ran for the benchmarks listed above.
BENCHES = bench-api bench-store bench-placement bench-heartbeat bench-provision bench-broadcast \
          bench-federation bench-failover bench-hbshare bench-capacity bench-memory bench-ui bench-scale bench-regional \
          bench-upgrade bench-release
$(BENCHES): bench-%: deps build
	@scripts/bench $*

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
