# Preon: one Makefile, pkg-config for every library, implicit rules, -MMD -MP.
# Targets: all (build/preon), check/test (unit + integration), unit, asan, tsan, fuzz, fuzz-ci, bench, clean,
# install/uninstall (PREFIX, DESTDIR).

PKGS      := fuse3 libuv libcurl libmicrohttpd jansson sqlite3 libcrypto
CC        ?= cc
BUILD     ?= build
CFLAGS    ?= -O2 -g
CFLAGS    += -std=c11 -Wall -Wextra -Werror -Wmissing-prototypes -Wshadow \
             -Wstrict-prototypes -Wno-unused-parameter -fno-strict-aliasing
CPPFLAGS  += -D_GNU_SOURCE -DFUSE_USE_VERSION=35 -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS    += $(shell pkg-config --libs $(PKGS)) -lpthread -lm

CORE_SRC  := $(wildcard core/*.c)
SWARM_SRC := $(wildcard swarm/*.c)
EXEC_SRC  := $(wildcard exec/*.c)
TRACK_SRC := $(wildcard tracker/*.c)
POOL_SRC  := $(wildcard pool/*.c)
FS_SRC    := $(wildcard fs/*.c)
LIB_SRC   := $(CORE_SRC) $(SWARM_SRC) $(EXEC_SRC) $(TRACK_SRC) $(POOL_SRC) $(FS_SRC)
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all check test unit integration soak asan tsan fuzz fuzz-ci bench clean format install uninstall
all: $(BUILD)/preon $(BUILD)/preon-limit

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# The status page (pool/status.html) as the lines of one C string literal, which pool/web.c
# includes: the page is one file to edit and view, and one static asset in the binary. '?' is
# escaped too: -std=c11 reads trigraphs, so JavaScript's `a ??= b` would become `a #= b`.
# (Made again when this rule changes: the Makefile is a prerequisite.)
$(BUILD)/gen/status_html.inc: pool/status.html Makefile
	@mkdir -p $(dir $@)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/' $< >$@
$(BUILD)/pool/web.o: $(BUILD)/gen/status_html.inc
$(BUILD)/pool/web.o: CPPFLAGS += -I$(BUILD)/gen

$(BUILD)/libpreon.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/preon: $(BUILD)/preon.o $(BUILD)/libpreon.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The sandbox wrapper on its own: libc only, so each task's start skips loading preon's libraries.
$(BUILD)/preon-limit: $(BUILD)/preon-limit.o $(BUILD)/exec/limit.o $(BUILD)/exec/keeper.o $(BUILD)/exec/msg.o
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(BUILD)/libpreon.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(BUILD)/preon $(BUILD)/preon-limit
	PREON=$(abspath $(BUILD)/preon) tests/integration/run-all.sh

check test: unit integration

# Random kills (tests/integration/test_soak.sh): make soak ROUNDS=N [SEED=S]. The suite runs its
# short variant (3 rounds); this runs as many as asked, each bounded (about 20-40 s a round).
ROUNDS ?= 10
soak: $(BUILD)/preon $(BUILD)/preon-limit
	SOAK_ROUNDS=$(ROUNDS) $(if $(SEED),SOAK_SEED=$(SEED)) PREON_TEST_FILE_TIMEOUT=$$(( $(ROUNDS) * 240 + 120 )) \
		PREON=$(abspath $(BUILD)/preon) tests/integration/run-all.sh tests/integration/test_soak.sh

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" check

# The thread checks: preon and every unit binary built with clang -fsanitize=thread in build-tsan/,
# then every unit binary and every integration file run against them; each ThreadSanitizer report
# is a failure (tests/tsan.supp: only races inside uninstrumented libraries not ours). The steps are
# scripts/test.sh's (CI runs them with a short list of integration files); docs/testing.md.
PREON_TSAN_UNIT   ?= all
PREON_TSAN_ITESTS ?= all
tsan:
	SKIP_DEPS=1 PREON_TSAN_UNIT="$(PREON_TSAN_UNIT)" PREON_TSAN_ITESTS="$(PREON_TSAN_ITESTS)" scripts/test.sh tsan

# libFuzzer targets (tests/fuzz/, docs/testing.md): objects built once in build-fuzz/obj/, each
# target linked with core/ plus what it names below. `make fuzz` runs each for FUZZ_SECONDS, or to
# FUZZ_RUNS executions if set; FUZZ_TARGETS picks some (make fuzz FUZZ_TARGETS="fuzz_wire"
# FUZZ_RUNS=10000000); `make fuzz-ci` runs each for FUZZ_CI_SECONDS, as scripts/test.sh does.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/%)
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS ?= 20
FUZZ_CI_SECONDS ?= 2
FUZZ_RUNS ?=
FUZZ_TARGETS ?= $(FUZZ_BIN:build-fuzz/%=%)
FUZZ_CORE := $(CORE_SRC:%.c=build-fuzz/obj/%.o)
# (kept: make would delete them as intermediate files after each link, and build them all again)
.PRECIOUS: build-fuzz/obj/%.o
build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(CPPFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) -MMD -MP -c $< -o $@
build-fuzz/fuzz_%: build-fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_CORE)
	clang -g -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(LDLIBS)
# Targets that need more than core/ name it here (the pattern rule's $^ picks these up).
build-fuzz/fuzz_announce_reply: $(addprefix build-fuzz/obj/swarm/,announce.o fetch.o http.o peers.o buf.o store.o)
build-fuzz/fuzz_bundle: build-fuzz/obj/pool/bundle.o
build-fuzz/fuzz_wire: build-fuzz/obj/pool/wire.o build-fuzz/obj/pool/decline.o
build-fuzz/fuzz_wire_id: build-fuzz/obj/pool/wire.o build-fuzz/obj/pool/decline.o
build-fuzz/fuzz_peers: build-fuzz/obj/pool/wire.o build-fuzz/obj/pool/decline.o
build-fuzz/fuzz_wire_jobs: build-fuzz/obj/pool/wire.o build-fuzz/obj/pool/decline.o
build-fuzz/fuzz_wire_results: build-fuzz/obj/pool/wire.o build-fuzz/obj/pool/decline.o
build-fuzz/fuzz_auth: build-fuzz/obj/pool/auth.o
build-fuzz/fuzz_msg: build-fuzz/obj/exec/msg.o
# (fuzz_query needs core/ only)
build-fuzz/fuzz_result: build-fuzz/obj/pool/work.o
build-fuzz/fuzz_copyerr: build-fuzz/obj/fs/copyerr.o
build-fuzz/fuzz_progress: build-fuzz/obj/fs/progress.o
build-fuzz/fuzz_status: build-fuzz/obj/pool/status.o build-fuzz/obj/pool/coord.o
fuzz: $(FUZZ_TARGETS:%=build-fuzz/%)
	tests/fuzz/run.sh $(if $(FUZZ_RUNS),--runs $(FUZZ_RUNS),--seconds $(FUZZ_SECONDS)) $^
fuzz-ci: $(FUZZ_BIN)
	tests/fuzz/run.sh --seconds $(FUZZ_CI_SECONDS) $^

$(BUILD)/bench_db: $(BUILD)/tests/bench/bench_db.o $(BUILD)/libpreon.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench_adaptive: $(BUILD)/tests/bench/bench_adaptive.o $(BUILD)/libpreon.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench: $(BUILD)/preon $(BUILD)/bench_db $(BUILD)/bench_adaptive
	PREON=$(abspath $(BUILD)/preon) tests/bench/run-all.sh

# make install PREFIX=/usr/local DESTDIR=: preon and preon-limit side by side (preon starts the
# preon-limit next to its own binary), the man page, the mount helper (mount.fuse.preon, a link to
# preon: mount -t fuse.preon and /etc/fstab; mount(8) looks for it in /sbin, so with another
# PREFIX it takes libfuse's mount.fuse3, which runs `preon` from the PATH), and the systemd unit.
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
UNITDIR   ?= $(PREFIX)/lib/systemd/system
INSTALLED := $(BINDIR)/preon $(BINDIR)/preon-limit $(MANDIR)/man1/preon.1 $(SBINDIR)/mount.fuse.preon \
             $(UNITDIR)/preon@.service
install: $(BUILD)/preon $(BUILD)/preon-limit
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BUILD)/preon $(BUILD)/preon-limit $(DESTDIR)$(BINDIR)/
	install -m 0644 docs/preon.1 $(DESTDIR)$(MANDIR)/man1/preon.1
	ln -sfn $$(realpath -m -s --relative-to=$(SBINDIR) $(BINDIR)/preon) $(DESTDIR)$(SBINDIR)/mount.fuse.preon
	sed 's|@BINDIR@|$(BINDIR)|g' dist/preon@.service.in >$(DESTDIR)$(UNITDIR)/preon@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/preon@.service

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

format:
	clang-format -i $(LIB_SRC) preon.c $(wildcard */*.h) $(UNIT_SRC)

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(BUILD)/preon.d $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.d)
-include $(wildcard build-fuzz/obj/*/*.d build-fuzz/obj/tests/fuzz/*.d)
