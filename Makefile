# The two commands of the README, and the developer targets around them.
#   make test   install dependencies, build (Debug + ASan/UBSan), run every test
#   make demo   install dependencies, build (Release), run the demonstration
SHELL := /bin/bash
JOBS ?= $(shell nproc)
DEBUG_DIR := build/debug
RELEASE_DIR := build/release
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps debug release package test demo bench fuzz format format-check tidy clean

all: debug

deps:
	@packaging/install-deps.sh

$(DEBUG_DIR)/build.ninja: CMakeLists.txt
	@cmake -S . -B $(DEBUG_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLAB_SANITIZE=ON >/dev/null

$(RELEASE_DIR)/build.ninja: CMakeLists.txt
	@cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null

debug: deps $(DEBUG_DIR)/build.ninja
	@cmake --build $(DEBUG_DIR) -j $(JOBS)

release: deps $(RELEASE_DIR)/build.ninja
	@cmake --build $(RELEASE_DIR) -j $(JOBS)

# The Debian packages lab and labd (build/packages/*.deb) from a Release build of the two
# programs, checked by lintian.
package: deps $(RELEASE_DIR)/build.ninja
	@cmake --build $(RELEASE_DIR) -j $(JOBS) --target lab labd
	@packaging/package.sh $(RELEASE_DIR) build/packages

# Tests run under AddressSanitizer + UndefinedBehaviorSanitizer; any report fails the test.
test: debug package
	@cd $(DEBUG_DIR) && \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

# Builds only the two programs the demonstration runs, not every test binary.
demo: deps $(RELEASE_DIR)/build.ninja
	@cmake --build $(RELEASE_DIR) -j $(JOBS) --target lab labd
	@packaging/demo.sh $(RELEASE_DIR)

# Benchmarks from the Release build; figures go to the README's performance section.
bench: release
	@tests/bench/run.sh $(RELEASE_DIR)

# Coverage-guided fuzzing with clang + libFuzzer, FUZZ_SECONDS per target.
fuzz: deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DLAB_SANITIZE=ON -DLAB_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)
	@for f in $(FUZZ_DIR)/tests/fuzz/fuzz_*; do \
	  [[ $$f == *fuzz_replay_* ]] && continue; \
	  name=$${f##*/fuzz_}; echo "== $$name"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) tests/fuzz/$$name/corpus || exit 1; \
	done

format:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

format-check:
	@git ls-files '*.cpp' '*.hpp' | xargs clang-format --dry-run -Werror

tidy: $(DEBUG_DIR)/build.ninja
	@git ls-files '*.cpp' | grep -v '^tests/fuzz/.*/corpus' | \
	  xargs -P $(JOBS) -n 4 clang-tidy -p $(DEBUG_DIR) --quiet --extra-arg=-Wno-unknown-warning-option

clean:
	@rm -rf build
