# aigw: `make run` sets everything up and starts the gateway; `make test`
# runs the unit and integration tests.  See README.md.

PYTHON  ?= /usr/bin/python3
MODULE   = build/ngx_http_ai_gateway_module.so
CC      ?= gcc
CFLAGS_UNIT = -std=c11 -O1 -g -Wall -Wextra -Werror -Imodule

# the test models (never committed): beside the checkout, or the shared
# folder of this workplace; tests that need them say so when they skip
MODELS_FOUND := $(firstword $(wildcard $(abspath ../shared/models/stories260K.gguf) \
                 /work/shared/models/stories260K.gguf))
ifneq ($(MODELS_FOUND),)
AIGW_MODELS_DIR ?= $(patsubst %/,%,$(dir $(MODELS_FOUND)))
endif
export AIGW_MODELS_DIR

MODULE_SRCS = $(wildcard module/*.c module/*.h module/engine/*.c \
              module/engine/*.h module/engine/cpu/*.c) config

.PHONY: all deps module engine plugins keys run test unit integration bench \
        bench-engine bench-load load-tools test-growth fuzz fuzz-smoke test-asan \
        valgrind clean

all: module engine plugins keys

plugins:
	@$(MAKE) -s -C lua-free-plugins all

keys:
	@$(MAKE) -s -f tools/Makefile.keys

deps:
	@tools/install-deps.sh

module: $(MODULE)

# the engine library is linked into the module
$(MODULE): $(MODULE_SRCS) tools/build-module.sh engine
	@tools/build-module.sh

engine:
	@if [ -f module/engine/Makefile ]; then $(MAKE) -s -C module/engine all; fi

run: deps all
	@tools/run.sh

test: deps all unit integration fuzz-smoke

# C unit tests: every tests/unit/test_*.c links the pure module/ai_*.c
PURE_SRCS  = $(wildcard module/ai_*.c)
PURE_HDRS  = $(wildcard module/ai_*.h)
UNIT_TESTS = $(patsubst tests/unit/%.c,build/unit/%,\
             $(filter-out tests/unit/test_plugins.c,$(wildcard tests/unit/test_*.c)))

unit: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do $$t || exit 1; done
	@if [ -f module/engine/Makefile ]; then $(MAKE) -s -C module/engine test; fi
	@if [ -f lua-free-plugins/Makefile ]; then $(MAKE) -s -C lua-free-plugins test; fi
	@$(MAKE) -s -f tools/Makefile.keys test-keys

build/unit/%: tests/unit/%.c $(PURE_SRCS) $(PURE_HDRS)
	@mkdir -p build/unit
	$(CC) $(CFLAGS_UNIT) -o $@ $< $(PURE_SRCS) -ljansson -lcrypto

integration: module load-tools
	$(PYTHON) -m pytest -q -x tests/integration tests/mocks tests/redis

bench: deps all
	@bench/run.sh

bench-engine: engine
	@bench/engine/run.sh

# the load proof (issue 11): 20,000 streams at 1 chunk/s and 5,000 at
# 1 chunk/100 ms through aigw and bare nginx (knobs: bench/load/load.py)
bench-load: deps module
	@bench/load/run.sh

# the load tools: the epoll mock provider and the libcurl stream client
LOAD_TOOLS = build/load/stream_mock build/load/stream_client
load-tools: $(LOAD_TOOLS)

build/load/stream_mock: bench/load/stream_mock.c
	@mkdir -p build/load
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $<

build/load/stream_client: bench/load/stream_client.c
	@mkdir -p build/load
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $< -lcurl

# worker RSS and descriptors across 10,000 repetitions of every fault kind
test-growth: module build/load/stream_mock
	$(PYTHON) bench/load/growth.py

FUZZ_SECONDS ?= 60

# libFuzzer targets (tests/fuzz/), each for FUZZ_SECONDS; fails on a crash
fuzz:
	@tools/fuzz.sh $(FUZZ_SECONDS)

# the short run of every target that make test includes (about 45 s)
fuzz-smoke:
	@tools/fuzz.sh 2

# the integration suite against the module built with ASan and UBSan
test-asan: deps engine plugins
	@tools/asan-test.sh

# valgrind: no definite leaks in the module's frames, across a reload
valgrind: module engine plugins
	AIGW_VALGRIND=1 $(PYTHON) -m pytest -q tests/fuzz/test_valgrind.py

clean:
	rm -rf build
	@if [ -f module/engine/Makefile ]; then $(MAKE) -s -C module/engine clean; fi
