# custodyfs build.  `make` builds build/custodyfs and build/custodyctl;
# `make asan` builds the same under AddressSanitizer and UBSan into build-asan/.
# `make check` installs what is missing, builds, and runs every test.
# `make demo` installs what is missing, builds, and shows a vault in use.

PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
PKGS     := fuse3 libsodium sqlite3 libacl
VERSION  := 0.1.0

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT      ?= -O2 -g
CFLAGS   += -std=c17 -Wall -Wextra -Werror $(OPT) -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
            -DCUSTODY_VERSION='"$(VERSION)"' -I. $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread

CRYPTO_SRC := crypto/secmem.c crypto/content.c crypto/vaultcfg.c
AUDIT_SRC  := audit/record.c audit/log.c audit/verify.c audit/spool.c
COMMON_SRC := fs/vault.c fs/keysrc.c fs/backing.c fs/access.c fs/grant.c fs/identity.c
FS_SRC     := fs/fslog.c fs/trail.c fs/node.c fs/contentio.c fs/reaper.c fs/wire.c fs/ops.c fs/main.c
CTL_SRC    := tools/custodyctl.c

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
CRYPTO_OBJ := $(call obj,$(CRYPTO_SRC))
AUDIT_OBJ  := $(call obj,$(AUDIT_SRC))
COMMON_OBJ := $(call obj,$(COMMON_SRC))
FS_OBJ     := $(call obj,$(FS_SRC))
CTL_OBJ    := $(call obj,$(CTL_SRC))

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all deps install asan check unit integration difftest demo clean fuzz fuzz-check bench bench-builds

all: $(BUILD)/custodyfs $(BUILD)/custodyctl $(BUILD)/difftest

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/custodyfs: $(FS_OBJ) $(COMMON_OBJ) $(AUDIT_OBJ) $(CRYPTO_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/custodyctl: $(CTL_OBJ) $(COMMON_OBJ) $(AUDIT_OBJ) $(CRYPTO_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/difftest: tests/difftest/difftest.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(CRYPTO_OBJ) $(AUDIT_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

deps:
	@scripts/deps

install: $(BUILD)/custodyfs $(BUILD)/custodyctl
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/custodyfs $(BUILD)/custodyctl $(DESTDIR)$(PREFIX)/bin/

asan:
	$(MAKE) BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined' \
	        LDFLAGS='-fsanitize=address,undefined' all $(patsubst $(BUILD)/%,build-asan/%,$(UNIT_TESTS))

unit: $(UNIT_TESTS)
	@scripts/run-unit $(UNIT_TESTS)

integration: all
	@tests/integration/run.sh

difftest: all
	@tests/run-difftest

# The benchmark also needs a daemon with auditing compiled out (to measure what the audit
# costs); it is built into build-noaudit/ and never installed.
# The audit microbenchmark (bench/audit_bench.c) links the audit, crypto and vault code.
bench-builds: all $(COMMON_OBJ) $(AUDIT_OBJ) $(CRYPTO_OBJ)
	$(MAKE) --no-print-directory BUILD=build-noaudit OPT='$(OPT) -DCUSTODY_BENCH_NOAUDIT' build-noaudit/custodyfs
	@mkdir -p build-bench
	$(CC) $(CFLAGS) -o build-bench/audit_bench bench/audit_bench.c $(COMMON_OBJ) $(AUDIT_OBJ) \
	    $(CRYPTO_OBJ) $(LDLIBS)

# make bench [QUICK=1]: raw disk, passthrough_ll, gocryptfs and custodyfs side by side.
bench: deps
	@$(MAKE) --no-print-directory bench-builds
	@scripts/bench $(if $(QUICK),--quick,)

check: deps
	@$(MAKE) --no-print-directory all $(UNIT_TESTS)
	@scripts/check

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo

# Fuzzing (tests/fuzz/): libFuzzer targets built with clang into build-fuzz/.
# `make fuzz SECONDS=600` runs each target that long; make check runs each for 10 s.
SECONDS ?= 60
fuzz:
	@tests/fuzz/run.sh $(SECONDS)

fuzz-check:
	@FUZZ_JOBS=2 tests/fuzz/run.sh 10

clean:
	rm -rf build build-asan build-fuzz build-noaudit build-bench tests/fuzz/corpus

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null)
