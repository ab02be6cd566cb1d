# mayfly: build, test, check and install.
#
#   make            libmayfly (static and shared) and the binaries into bin/
#   make test       every unit and integration test (parallel; ends with a
#                   "tests: N passed, N failed, N skipped" line)
#   make check      the same tests built with AddressSanitizer + UBSan
#   make install    PREFIX (/usr/local) and DESTDIR: binaries, libmayfly.so
#                   and .a, public headers, mayfly.pc, systemd units,
#                   example configs, man pages, and the daemons' private
#                   libwolfssl in PREFIX/lib/mayfly
#   make lint       layers, banned functions, shellcheck, clang-format
#   make fuzz       each libFuzzer harness for FUZZ_SECONDS (default 60)
#   make bench      the benchmarks (writes docs/benchmarks.md)
#   make demo       a CA, an agent and two workloads doing mTLS
#   make analyze    scan-build over the whole tree
#   make format     clang-format over every source file
#   V=1             show every command
#   WOLFSSL=system  build against Debian's libwolfssl instead of the SP build
#   MHD=system      link mayfly-agent with Debian's shared libmicrohttpd
#                   (and so GnuTLS) instead of the HTTPS-less static build
#
# libmayfly is built in layers (docs/architecture.md): api/core < api/pki <
# api/net < api/workload make libmayfly, the library a workload links;
# api/internal holds helpers only the daemons link (libmayfly-internal.a).
# Sources are found by wildcard: a new api/pki/mf_x.c joins libmayfly, a new
# ca/ca_x.c joins mayfly-ca, a new tests/unit/test_x.c becomes a test.

CC      ?= cc
PREFIX  ?= /usr/local
VERSION := 0.2.0
SOVER   := 0

ifeq ($(V),1)
  Q :=
  say :=
else
  Q := @
  say = @printf '  %-7s %s\n' $(1) $(2);
endif

# wolfSSL. By default (WOLFSSL=sp) mayfly builds and links against the SP
# build of wolfSSL: Debian's own source package and configure flags plus
# --enable-sp --enable-sp-asm (P-256 in x86_64 assembly, about 9x faster
# than Debian's generic big-number code), same soname, made once per Debian
# version by scripts/build-wolfssl-sp.sh (scripts/install-deps.sh runs it)
# into ~/.cache/mayfly. Its pkg-config file comes first and the binaries
# carry its directory in their RUNPATH, so they need no LD_LIBRARY_PATH; the
# installed daemons find the copy `make install` puts beside them in
# PREFIX/lib/mayfly instead. WOLFSSL=system builds against Debian's
# libwolfssl, as before. libmayfly.so itself carries no RUNPATH: a workload
# that links it uses the system's libwolfssl (the same ABI).
WOLFSSL ?= sp
NOPKG_GOALS := clean deps lint format
ifeq ($(WOLFSSL),sp)
  WOLFSSL_SP_PREFIX ?= $(shell scripts/build-wolfssl-sp.sh --prefix 2>/dev/null)
  WOLFSSL_LIBDIR := $(WOLFSSL_SP_PREFIX)/lib
  PKG_CONFIG := PKG_CONFIG_PATH=$(WOLFSSL_LIBDIR)/pkgconfig$(if $(PKG_CONFIG_PATH),:$(PKG_CONFIG_PATH)) pkg-config
  WOLFSSL_RPATH := -Wl,-rpath,$(WOLFSSL_LIBDIR)
  INST_RPATH := -Wl,-rpath,'$$ORIGIN/../lib/mayfly'
  # The agent links the same build's static archive, whose objects are
  # compiled one function and one object to a section, and the linker drops
  # what the agent never calls (--gc-sections): about 0.9 MiB less of
  # wolfSSL resident in every agent than the whole shared library's pages.
  WOLFSSL_AGENT_LIB := $(WOLFSSL_LIBDIR)/libwolfssl.a
  WOLFSSL_AGENT_LD  := -Wl,--gc-sections
  ifneq ($(filter-out $(NOPKG_GOALS),$(or $(MAKECMDGOALS),all)),)
    ifneq ($(words $(wildcard $(WOLFSSL_LIBDIR)/libwolfssl.so.35 $(WOLFSSL_AGENT_LIB) $(WOLFSSL_SP_PREFIX)/.mayfly-built)),3)
      $(error no SP build of wolfSSL in '$(WOLFSSL_SP_PREFIX)' (run scripts/install-deps.sh, or build against Debian's with make WOLFSSL=system))
    endif
  endif
else ifeq ($(WOLFSSL),system)
  PKG_CONFIG := pkg-config
  WOLFSSL_RPATH :=
  INST_RPATH :=
  WOLFSSL_AGENT_LIB :=
  WOLFSSL_AGENT_LD  :=
else
  $(error WOLFSSL must be sp (the default) or system, not '$(WOLFSSL)')
endif

# libmicrohttpd of the agent. mayfly-agent serves plain HTTP only (its
# Unix socket, its metrics port), but Debian's libmicrohttpd.so.12 is built
# with HTTPS and loads GnuTLS and eight more libraries into every process
# that links it (about 2.3 MiB resident). By default (MHD=lite) the agent
# links a static libmicrohttpd of the same Debian version built without
# HTTPS, made once per Debian version by scripts/build-mhd-lite.sh
# (scripts/install-deps.sh runs it) into ~/.cache/mayfly. Everything else
# (mayfly-ca, which serves HTTPS, the tests, tools and fuzzers) links
# Debian's shared library, and every object compiles against Debian's
# microhttpd.h, which the build script checks is the one it built.
# MHD=system links the agent with Debian's library too, as before.
MHD ?= lite
ifeq ($(MHD),lite)
  MHD_LITE_PREFIX := $(or $(MHD_LITE_PREFIX),$(shell scripts/build-mhd-lite.sh --prefix 2>/dev/null))
  MHD_AGENT_LIB := $(MHD_LITE_PREFIX)/lib/libmicrohttpd.a
  ifneq ($(filter-out $(NOPKG_GOALS),$(or $(MAKECMDGOALS),all)),)
    ifneq ($(words $(wildcard $(MHD_AGENT_LIB) $(MHD_LITE_PREFIX)/.mayfly-built)),2)
      $(error no HTTPS-less libmicrohttpd for the agent in '$(MHD_LITE_PREFIX)' (run scripts/install-deps.sh, or link Debian's with make MHD=system))
    endif
  endif
else ifeq ($(MHD),system)
  MHD_AGENT_LIB :=
else
  $(error MHD must be lite (the default) or system, not '$(MHD)')
endif

# What each part links. pkg-config's own errors are shown when a package is
# missing (scripts/install-deps.sh installs them all).
LIB_PKGS   := wolfssl jansson
INT_PKGS   := libmicrohttpd
CA_PKGS    := $(LIB_PKGS) $(INT_PKGS) gnutls sqlite3 libpq
AGENT_PKGS := $(LIB_PKGS) $(INT_PKGS) libnghttp2 libprotobuf-c
# with MHD=lite the agent takes libmicrohttpd from $(MHD_AGENT_LIB) instead,
# and with WOLFSSL=sp wolfSSL from $(WOLFSSL_AGENT_LIB)
AGENT_LINK_PKGS := $(filter-out $(if $(MHD_AGENT_LIB),libmicrohttpd) \
                     $(if $(WOLFSSL_AGENT_LIB),wolfssl),$(AGENT_PKGS))
ALL_PKGS   := $(sort $(CA_PKGS) $(AGENT_PKGS))
ifneq ($(filter-out $(NOPKG_GOALS),$(or $(MAKECMDGOALS),all)),)
  ifneq ($(shell $(PKG_CONFIG) --exists $(ALL_PKGS) && echo ok),ok)
    $(error $(shell $(PKG_CONFIG) --print-errors --exists $(ALL_PKGS) 2>&1 | head -3) (run scripts/install-deps.sh))
  endif
endif
pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pkg_libs   = $(shell $(PKG_CONFIG) --libs $(1))

WARN := -Wall -Wextra -Wpedantic -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
        -Wmissing-prototypes -Wcast-qual -Wwrite-strings -Wvla -Wnull-dereference \
        -Wimplicit-fallthrough
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection \
          -fcf-protection -fPIC
BASE := -std=c11 -D_GNU_SOURCE -I. $(call pkg_cflags,$(ALL_PKGS))
LDHARDEN := -pie -Wl,-z,relro,-z,now,-z,noexecstack

ifeq ($(SAN),1)
  BUILD  ?= build/san
  BINDIR ?= build/san/bin
  OPT    := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
  # _FORTIFY_SOURCE needs optimisation and fights ASan's interceptors
  HARDEN := -fstack-protector-strong -fPIC
  LDSAN  := -fsanitize=address,undefined
else
  BUILD  ?= build/rel
  BINDIR ?= bin
  OPT    := -O2 -g
  LDSAN  :=
endif

CFLAGS  += $(BASE) $(OPT) $(WARN) $(HARDEN)
LDFLAGS += $(LDHARDEN) $(LDSAN)

# Every object is compiled again when the wolfSSL selection changes, and
# the agent is linked again when the libmicrohttpd selection does: each
# stamp is rewritten (at parse time) only when it differs.
WOLFSSL_STAMP := $(BUILD)/wolfssl.sel
MHD_STAMP     := $(BUILD)/mhd.sel
ifneq ($(filter-out $(NOPKG_GOALS),$(or $(MAKECMDGOALS),all)),)
  $(shell mkdir -p $(BUILD) && { [ "$$(cat $(WOLFSSL_STAMP) 2>/dev/null)" = "$(WOLFSSL) $(WOLFSSL_LIBDIR)" ] || echo "$(WOLFSSL) $(WOLFSSL_LIBDIR)" >$(WOLFSSL_STAMP); })
  $(shell mkdir -p $(BUILD) && { [ "$$(cat $(MHD_STAMP) 2>/dev/null)" = "$(MHD) $(MHD_AGENT_LIB)" ] || echo "$(MHD) $(MHD_AGENT_LIB)" >$(MHD_STAMP); })
endif

LAYERS    := core pki net workload
LIB_SRC   := $(foreach l,$(LAYERS),$(wildcard api/$(l)/*.c))
INT_SRC   := $(wildcard api/internal/*.c)
CA_SRC    := $(wildcard ca/*.c)
AGENT_SRC := $(wildcard agent/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
TOOL_SRC  := $(wildcard tests/tools/*.c)
EXAMPLE_SRC := $(wildcard examples/*.c)
PUBLIC_H  := $(shell grep -l '^ \* Public:' $(foreach l,$(LAYERS),api/$(l)/*.h))

# protobuf-c messages of the gRPC Workload API, generated at build time from
# api/proto/*.proto into $(BUILD)/gen; only the agent links them.
PROTO_SRC := $(wildcard api/proto/*.proto)
PROTO_C   := $(PROTO_SRC:api/proto/%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_OBJ := $(PROTO_C:%.c=%.o)
CFLAGS    += -I$(BUILD)/gen

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
INT_OBJ   := $(INT_SRC:%.c=$(BUILD)/%.o)
CA_OBJ    := $(CA_SRC:%.c=$(BUILD)/%.o)
AGENT_OBJ := $(AGENT_SRC:%.c=$(BUILD)/%.o) $(PROTO_OBJ)
CA_LIB_OBJ    := $(filter-out $(BUILD)/ca/ca_main.o,$(CA_OBJ))
AGENT_LIB_OBJ := $(filter-out $(BUILD)/agent/agent_main.o,$(AGENT_OBJ))

LIB       := $(BUILD)/libmayfly.a
SOLIB     := $(BUILD)/libmayfly.so.$(VERSION)
INT_LIB   := $(BUILD)/libmayfly-internal.a
SYMS      := $(BUILD)/libmayfly.map
BINS      := $(BINDIR)/mayfly-ca $(BINDIR)/mayfly-agent
# the same daemons linked for installation: RUNPATH PREFIX/lib/mayfly
# (relative to the binary) instead of the build's wolfSSL directory
INST_BINS := $(BUILD)/inst/mayfly-ca $(BUILD)/inst/mayfly-agent
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
EXAMPLE_BINS := $(EXAMPLE_SRC:examples/%.c=$(BINDIR)/%)
MANS      := $(BUILD)/man/mayfly-ca.8 $(BUILD)/man/mayfly-agent.8

LIB_LIBS   := $(call pkg_libs,$(LIB_PKGS)) -lpthread -lm
CA_LIBS    := $(INT_LIB) $(LIB) $(call pkg_libs,$(CA_PKGS)) -lpthread -lm
AGENT_LIBS := $(INT_LIB) $(LIB) $(MHD_AGENT_LIB) $(WOLFSSL_AGENT_LIB) \
              $(call pkg_libs,$(AGENT_LINK_PKGS)) -lpthread -lm
# test programs may use anything the daemons use
TEST_LIBS  := $(INT_LIB) $(LIB) $(call pkg_libs,$(ALL_PKGS)) -lpthread -lm

.PHONY: all lib test unit check fuzz fuzz-smoke bench analyze format clean valgrind deps \
        demo install install-files lint man
all: $(LIB) $(SOLIB) $(INT_LIB) $(BINS) $(INST_BINS) $(TOOL_BINS) $(EXAMPLE_BINS) $(MANS)

lib: $(LIB) $(SOLIB)

$(BUILD)/%.o: %.c $(WOLFSSL_STAMP)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: api/proto/%.proto
	@mkdir -p $(dir $@)
	$(call say,PROTOC,$<)protoc-c --c_out=$(BUILD)/gen -Iapi/proto $<

# generated code is not held to our warning set
$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(call say,CC,$<)$(CC) $(BASE) $(OPT) -fPIC -I$(BUILD)/gen -MMD -MP -c $< -o $@

# the agent's objects may include generated headers; so may the generated
# code itself (one proto imports another)
$(AGENT_SRC:%.c=$(BUILD)/%.o) $(UNIT_SRC:%.c=$(BUILD)/%.o) $(PROTO_OBJ): | $(PROTO_C)

$(LIB): $(LIB_OBJ)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(INT_LIB): $(INT_OBJ)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

# The shared library exports only what the public headers declare.
$(SYMS): $(PUBLIC_H) scripts/gen-symbols.sh
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)scripts/gen-symbols.sh $(PUBLIC_H) >$@

$(SOLIB): $(LIB_OBJ) $(SYMS)
	$(call say,LD,$@)$(CC) -shared -Wl,-soname,libmayfly.so.$(SOVER) \
	    -Wl,--version-script=$(SYMS) -Wl,-z,relro,-z,now,-z,noexecstack $(LDSAN) \
	    -o $@ $(LIB_OBJ) $(LIB_LIBS)

$(BINDIR)/mayfly-ca: $(CA_OBJ) $(INT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(WOLFSSL_RPATH) -o $@ $(CA_OBJ) $(CA_LIBS)

$(BINDIR)/mayfly-agent: $(AGENT_OBJ) $(INT_LIB) $(LIB) $(MHD_AGENT_LIB) $(WOLFSSL_AGENT_LIB) \
                    $(MHD_STAMP)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(WOLFSSL_AGENT_LD) -o $@ $(AGENT_OBJ) $(AGENT_LIBS)

$(BUILD)/inst/mayfly-ca: $(CA_OBJ) $(INT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(INST_RPATH) -o $@ $(CA_OBJ) $(CA_LIBS)

$(BUILD)/inst/mayfly-agent: $(AGENT_OBJ) $(INT_LIB) $(LIB) $(MHD_AGENT_LIB) $(WOLFSSL_AGENT_LIB) \
                    $(MHD_STAMP)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(WOLFSSL_AGENT_LD) -o $@ $(AGENT_OBJ) $(AGENT_LIBS)

$(BUILD)/tools/%: $(BUILD)/tests/tools/%.o $(INT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(WOLFSSL_RPATH) -o $@ $< $(TEST_LIBS)

# Example workloads built on libmayfly alone (the demo's mTLS client and server).
$(BINDIR)/%: $(BUILD)/examples/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(WOLFSSL_RPATH) -o $@ $< $(LIB) $(LIB_LIBS)

# Man pages from the binaries' own --help text.
$(BUILD)/man/%.8: $(BINDIR)/% scripts/gen-man.sh
	@mkdir -p $(dir $@)
	$(call say,MAN,$@)scripts/gen-man.sh $< $(VERSION) >$@
man: $(MANS)

# A unit test links libmayfly, plus the daemon's modules when its name says
# which daemon it tests (test_ca_*.c, test_agent_*.c). A test may ask for
# -Wl,--wrap=SYMBOL mocks in a first-line comment: /* wrap: sym1 sym2 */
unit_extra = $(if $(filter test_ca_%,$(1)),$(CA_LIB_OBJ),$(if $(filter test_agent_%,$(1)),$(AGENT_LIB_OBJ)))
unit_wrap  = $(patsubst %,-Wl$(comma)--wrap=%,$(shell sed -n '1s|^/\* wrap: \(.*\) \*/$$|\1|p' tests/unit/$(1).c))
comma := ,

.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $$(call unit_extra,$$*) $(INT_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)$(CC) $(LDFLAGS) $(WOLFSSL_RPATH) $(call unit_wrap,$*) -o $@ $< $(call unit_extra,$*) \
	    $(TEST_LIBS) -lcmocka

unit: $(UNIT_BINS)

test: all $(UNIT_BINS)
	@scripts/check-banned.sh
	@python3 scripts/check-layers.py
	@BUILD=$(BUILD) BINDIR=$(BINDIR) scripts/run-tests.sh $(TESTS)

check:
	$(MAKE) SAN=1 test

valgrind: all $(UNIT_BINS)
	@BUILD=$(BUILD) BINDIR=$(BINDIR) MAYFLY_VALGRIND=1 scripts/run-tests.sh $(TESTS)

# ---- install ------------------------------------------------------------------

BINDIR_I  := $(DESTDIR)$(PREFIX)/bin
LIBDIR_I  := $(DESTDIR)$(PREFIX)/lib
INCDIR_I  := $(DESTDIR)$(PREFIX)/include/mayfly
PCDIR_I   := $(LIBDIR_I)/pkgconfig
MANDIR_I  := $(DESTDIR)$(PREFIX)/share/man/man8
UNITDIR_I := $(DESTDIR)$(PREFIX)/lib/systemd/system
SYSUSERS_I := $(DESTDIR)$(PREFIX)/lib/sysusers.d
ETCDIR_I  := $(DESTDIR)$(PREFIX)/share/mayfly/examples

install: all
	$(MAKE) install-files

# The copying alone, building nothing (tests/integration/install.sh uses it
# while other tests run the same binaries).
install-files:
	install -d $(BINDIR_I) $(LIBDIR_I) $(PCDIR_I) $(MANDIR_I) $(UNITDIR_I) $(SYSUSERS_I) \
	    $(ETCDIR_I) $(addprefix $(INCDIR_I)/api/,$(LAYERS))
	install -m 0755 $(INST_BINS) $(BINDIR_I)/
	$(if $(INST_RPATH),install -d $(LIBDIR_I)/mayfly && \
	    install -m 0644 $(WOLFSSL_LIBDIR)/libwolfssl.so.35 $(LIBDIR_I)/mayfly/libwolfssl.so.35)
	install -m 0644 $(LIB) $(LIBDIR_I)/
	install -m 0755 $(SOLIB) $(LIBDIR_I)/
	ln -sf libmayfly.so.$(VERSION) $(LIBDIR_I)/libmayfly.so.$(SOVER)
	ln -sf libmayfly.so.$(SOVER) $(LIBDIR_I)/libmayfly.so
	for h in $(PUBLIC_H); do install -m 0644 $$h $(INCDIR_I)/$$h; done
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@REQUIRES@|$(LIB_PKGS)|g' packaging/mayfly.pc.in >$(PCDIR_I)/mayfly.pc
	install -m 0644 $(MANS) $(MANDIR_I)/
	for u in packaging/systemd/*.service; do \
	    sed 's|/usr/local/bin|$(PREFIX)/bin|g' $$u >$(UNITDIR_I)/$$(basename $$u); done
	install -m 0644 packaging/systemd/mayfly.sysusers $(SYSUSERS_I)/mayfly.conf
	install -m 0644 packaging/*.conf $(ETCDIR_I)/

# ---- lint ---------------------------------------------------------------------

SH_FILES := $(wildcard scripts/*.sh scripts/lib/*.sh tests/integration/*.sh .ci/run)
C_FILES  := $(wildcard api/*/*.[ch] ca/*.[ch] agent/*.[ch] examples/*.c tests/unit/*.c \
                       tests/fuzz/*.c tests/tools/*.c)
lint:
	@scripts/check-banned.sh
	@python3 scripts/check-layers.py
	shellcheck -S warning -x $(SH_FILES)
	clang-format --dry-run -Werror $(C_FILES)

format:
	clang-format -i $(C_FILES)

# ---- fuzzing ------------------------------------------------------------------

# libFuzzer harnesses: clang, with the library compiled again for coverage.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := $(BASE) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
               -fno-omit-frame-pointer $(WARN)
FUZZ_SECONDS ?= 60
FUZZ_API_OBJ := $(LIB_SRC:%.c=build/fuzz/%.o) $(INT_SRC:%.c=build/fuzz/%.o)
build/fuzz/api/%.o: api/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -c $< -o $@
FUZZ_PROTO_OBJ := $(PROTO_SRC:api/proto/%.proto=build/fuzz/gen/%.pb-c.o)
build/fuzz/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)clang $(BASE) -O1 -g -fsanitize=fuzzer-no-link,address,undefined \
	    -I$(BUILD)/gen -c $< -o $@
# fuzz_ca_*.c and fuzz_agent_*.c also link that daemon's modules
build/fuzz/ca/%.o build/fuzz/agent/%.o: | $(PROTO_C)
$(FUZZ_PROTO_OBJ): | $(PROTO_C)
build/fuzz/ca/%.o: ca/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -c $< -o $@
build/fuzz/agent/%.o: agent/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -c $< -o $@
fuzz_extra = $(if $(filter fuzz_ca_%,$(1)),$(CA_LIB_OBJ:$(BUILD)/%=build/fuzz/%),$(if $(filter fuzz_agent_%,$(1)),$(AGENT_LIB_OBJ:$(BUILD)/%=build/fuzz/%)))
build/fuzz/%: tests/fuzz/%.c $(FUZZ_API_OBJ) $$(call fuzz_extra,$$*)
	@mkdir -p $(dir $@)
	$(call say,LD,$@)clang $(FUZZ_CFLAGS) -I$(BUILD)/gen -fsanitize=fuzzer -o $@ $< \
	    $(call fuzz_extra,$*) $(FUZZ_API_OBJ) $(call pkg_libs,$(ALL_PKGS)) $(WOLFSSL_RPATH) \
	    -lpthread -lm

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

deps:
	scripts/install-deps.sh

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
