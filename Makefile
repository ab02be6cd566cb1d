# mayfly: build, test and check.
#
#   make            libmayfly.a and the binaries into bin/
#   make test       every unit and integration test
#   make check      the same tests built with AddressSanitizer + UBSan
#   make fuzz       each libFuzzer harness for FUZZ_SECONDS (default 60)
#   make bench      the benchmarks (writes docs/benchmarks.md)
#   make demo       a CA, an agent and two workloads doing mTLS
#   make analyze    scan-build over the whole tree
#   make format     clang-format over every source file
#
# Sources are found by wildcard: a new api/mf_x.c joins libmayfly, a new
# ca/ca_x.c joins mayfly-ca, a new tests/unit/test_x.c becomes a test.

CC      ?= cc
PKGS    := wolfssl jansson libmicrohttpd sqlite3 gnutls libnghttp2 libprotobuf-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wcast-qual -Wwrite-strings -Wvla -Wnull-dereference \
        -Wimplicit-fallthrough
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection \
          -fcf-protection -fPIE
BASE := -std=c11 -D_GNU_SOURCE -I. $(PKG_CFLAGS)
LDHARDEN := -pie -Wl,-z,relro,-z,now,-z,noexecstack

ifeq ($(SAN),1)
  BUILD  ?= build/san
  BINDIR ?= build/san/bin
  OPT    := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
  # _FORTIFY_SOURCE needs optimisation and fights ASan's interceptors
  HARDEN := -fstack-protector-strong -fPIE
  LDSAN  := -fsanitize=address,undefined
else
  BUILD  ?= build/rel
  BINDIR ?= bin
  OPT    := -O2 -g
  LDSAN  :=
endif

CFLAGS  += $(BASE) $(OPT) $(WARN) $(HARDEN)
LDFLAGS += $(LDHARDEN) $(LDSAN)
LDLIBS  += $(PKG_LIBS) -lpthread -lm

API_SRC   := $(wildcard api/*.c)
CA_SRC    := $(wildcard ca/*.c)
AGENT_SRC := $(wildcard agent/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
TOOL_SRC  := $(wildcard tests/tools/*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)

# protobuf-c messages, generated at build time from api/proto/*.proto into
# $(BUILD)/gen and compiled into libmayfly (#include "workload.pb-c.h").
PROTO_SRC := $(wildcard api/proto/*.proto)
PROTO_C   := $(PROTO_SRC:api/proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_OBJ := $(PROTO_C:%.c=%.o)
CFLAGS    += -I$(BUILD)/gen

API_OBJ   := $(API_SRC:%.c=$(BUILD)/%.o) $(PROTO_OBJ)
CA_OBJ    := $(CA_SRC:%.c=$(BUILD)/%.o)
AGENT_OBJ := $(AGENT_SRC:%.c=$(BUILD)/%.o)
CA_LIB_OBJ    := $(filter-out $(BUILD)/ca/ca_main.o,$(CA_OBJ))
AGENT_LIB_OBJ := $(filter-out $(BUILD)/agent/agent_main.o,$(AGENT_OBJ))

LIB       := $(BUILD)/libmayfly.a
BINS      := $(if $(CA_SRC),$(BINDIR)/mayfly-ca) $(if $(AGENT_SRC),$(BINDIR)/mayfly-agent)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
EXAMPLE_BINS := $(EXAMPLE_SRC:examples/%.c=$(BINDIR)/%)

.PHONY: all lib test unit check fuzz fuzz-smoke bench analyze format clean valgrind deps demo
all: $(LIB) $(BINS) $(TOOL_BINS) $(EXAMPLE_BINS)
	@if [ "$(BUILD)" = build/rel ]; then cp $(LIB) libmayfly.a; fi

lib: $(LIB)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: api/proto/%.proto
	@mkdir -p $(dir $@)
	protoc-c --c_out=$(BUILD)/gen -Iapi/proto $<

# generated code is not held to our warning set
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(BASE) $(OPT) -I$(BUILD)/gen -c $< -o $@

# every object may include generated headers
$(API_SRC:%.c=$(BUILD)/%.o) $(CA_OBJ) $(AGENT_OBJ): | $(PROTO_C)

$(LIB): $(API_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BINDIR)/mayfly-ca: $(CA_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(CA_OBJ) $(LIB) $(LDLIBS)

$(BINDIR)/mayfly-agent: $(AGENT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(AGENT_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Example workloads built on libmayfly (the demo's mTLS client and server).
$(BINDIR)/%: $(BUILD)/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# A unit test links libmayfly, plus the daemon's modules when its name says
# which daemon it tests (test_ca_*.c, test_agent_*.c). A test may ask for
# -Wl,--wrap=SYMBOL mocks in a first-line comment: /* wrap: sym1 sym2 */
unit_extra = $(if $(filter test_ca_%,$(1)),$(CA_LIB_OBJ),$(if $(filter test_agent_%,$(1)),$(AGENT_LIB_OBJ)))
unit_wrap  = $(patsubst %,-Wl$(comma)--wrap=%,$(shell sed -n '1s|^/\* wrap: \(.*\) \*/$$|\1|p' tests/unit/$(1).c))
comma := ,

.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $$(call unit_extra,$$*) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(call unit_wrap,$*) -o $@ $< $(call unit_extra,$*) $(LIB) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

test: all $(UNIT_BINS)
	@scripts/check-banned.sh
	@BUILD=$(BUILD) BINDIR=$(BINDIR) scripts/run-tests.sh $(TESTS)

check:
	$(MAKE) SAN=1 test

valgrind: all $(UNIT_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) MAYFLY_VALGRIND=1 scripts/run-tests.sh $(TESTS)

# libFuzzer harnesses: clang, with the library compiled again for coverage.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := $(BASE) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
               -fno-omit-frame-pointer $(WARN)
FUZZ_SECONDS ?= 60
build/fuzz/api/%.o: api/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -c $< -o $@
FUZZ_PROTO_OBJ := $(PROTO_SRC:api/proto/%.proto=build/fuzz/gen/%.pb-c.o)
build/fuzz/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	@mkdir -p $(dir $@)
	clang $(BASE) -O1 -g -fsanitize=fuzzer-no-link,address,undefined -I$(BUILD)/gen -c $< -o $@
build/fuzz/api/%.o: | $(PROTO_C)
# fuzz_ca_*.c and fuzz_agent_*.c also link that daemon's modules
build/fuzz/ca/%.o build/fuzz/agent/%.o: | $(PROTO_C)
build/fuzz/ca/%.o: ca/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -c $< -o $@
build/fuzz/agent/%.o: agent/%.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -c $< -o $@
fuzz_extra = $(if $(filter fuzz_ca_%,$(1)),$(CA_LIB_OBJ:$(BUILD)/%=build/fuzz/%),$(if $(filter fuzz_agent_%,$(1)),$(AGENT_LIB_OBJ:$(BUILD)/%=build/fuzz/%)))
build/fuzz/%: tests/fuzz/%.c $(API_SRC:%.c=build/fuzz/%.o) $(FUZZ_PROTO_OBJ) $$(call fuzz_extra,$$*)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -fsanitize=fuzzer -o $@ $< $(call fuzz_extra,$*) $(API_SRC:%.c=build/fuzz/%.o) $(FUZZ_PROTO_OBJ) $(PKG_LIBS) -lpthread -lm

fuzz: $(FUZZ_BINS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz.sh $(FUZZ_BINS)

fuzz-smoke: $(FUZZ_BINS)
	@FUZZ_SECONDS=10 scripts/run-fuzz.sh $(FUZZ_BINS)

# scripts/bench.sh builds bench/*.c itself (one of them twice: against the
# distro wolfSSL and, with WOLFSSL_SP=1, against the SP build).
bench: all
	scripts/bench.sh

demo:
	scripts/demo.sh $(DEMO_ARGS)

analyze:
	scan-build --status-bugs $(MAKE) BUILD=build/analyze BINDIR=build/analyze/bin all

format:
	clang-format -i api/*.[ch] ca/*.[ch] agent/*.[ch] examples/*.c tests/unit/*.c tests/fuzz/*.c

deps:
	scripts/install-deps.sh

clean:
	rm -rf build bin libmayfly.a

-include $(shell find build -name '*.d' 2>/dev/null)
