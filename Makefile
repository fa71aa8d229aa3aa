# SPDX-License-Identifier: ISC
# taskexec — build, test and packaging entry points.  See README.md.
SHELL := /bin/bash
PREFIX     ?= /usr
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib/taskexec
SYSCONFDIR ?= /etc/taskexec
STATEDIR   ?= /var/lib/taskexec
MANDIR     ?= $(PREFIX)/share/man
COMPLETIONSDIR ?= $(PREFIX)/share/bash-completion/completions
DATADIR    ?= $(PREFIX)/share/taskexec
PYTHON     ?= /usr/bin/python3
# The Python client (client/taskexec): Debian's path for public modules.
PYTHON_SITEDIR ?= $(PREFIX)/lib/python3/dist-packages
VERSION    := $(shell cat VERSION)

CC      ?= cc
PKGS    := hiredis libpq jansson libseccomp libcap inih libsodium libmicrohttpd libsystemd
# Every pkg-config answer is read when a recipe runs ("=", never ":="): on a
# fresh machine the -dev packages arrive only when scripts/bootstrap has run,
# after make has read this file.
pkg = $(shell pkg-config $(1) $(2))
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter \
           -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE \
           -DTASKEXEC_VERSION='"$(VERSION)"' -DTASKEXEC_LIBDIR='"$(LIBDIR)"' \
           -DTASKEXEC_SYSCONFDIR='"$(SYSCONFDIR)"' -DTASKEXEC_STATEDIR='"$(STATEDIR)"' \
           $(call pkg,--cflags,$(PKGS))
LDFLAGS += -pie -Wl,-z,relro,-z,now
LDLIBS  += $(call pkg,--libs,$(PKGS))
ifdef SANITIZE
# GCC 12's bounds warnings misfire on sanitizer-instrumented code.
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -U_FORTIFY_SOURCE \
           -Wno-array-bounds -Wno-format-overflow -Wno-stringop-overflow
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# A sanitizer build gets its own directory, so objects never mix.
ifdef SANITIZE
B ?= build-san
endif
B ?= build
# Point every suite at the binaries of this build.
TEST_ENV := SANDBOX_SUITE_TASKEXEC=$(CURDIR)/$(B)/taskexec ITEST_TASKEXECD=$(CURDIR)/$(B)/taskexecd \
            ITEST_TASKEXEC=$(CURDIR)/$(B)/taskexec CHAOS_TASKEXECD=$(CURDIR)/$(B)/taskexecd
COMMON := util log outbuf config job policy domain sandbox seccomp_policy landlock scratch spawn warm attempt loop
DAEMON := queue store supervise daemon http metrics sign check
COMMON_OBJ := $(COMMON:%=$(B)/%.o)
DAEMON_OBJ := $(DAEMON:%=$(B)/%.o)
CLI_OBJ := $(B)/cli.o $(B)/cli_run.o $(B)/cli_common.o
OPS_OBJ := $(B)/cli_ops_main.o $(B)/cli_ops.o $(B)/cli_run.o $(B)/cli_common.o $(B)/queue.o $(B)/store.o $(B)/sign.o
# taskexec (run, policy) links only what the sandbox needs; see exec_ops in cli.c.
RUN_LIBS = $(call pkg,--libs,jansson libseccomp libcap inih)

all: $(B)/taskexecd $(B)/taskexec $(B)/taskexec-ops pyc build/state/f5exports

# Made once per build directory: a missing -dev package is named here, not
# found later as an undefined reference.
$(B):
	@pkg-config --print-errors --exists $(PKGS) || \
	    { echo "make: libraries missing; run scripts/bootstrap (make demo and make check do)" >&2; exit 1; }
	mkdir -p $(B)

$(B)/%.o: executor/%.c executor/*.h | $(B)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c -o $@ $<

# The seccomp programs are compiled once, at build time: gen_filter links a
# copy of seccomp_policy.c (and util.c, nothing else of the executor) that
# builds them with libseccomp and prints them as C.
$(B)/seccomp_policy_gen.o: executor/seccomp_policy.c executor/*.h | $(B)
	@echo "  CC      $< (filter generator)"
	@$(CC) $(CFLAGS) -c -o $@ $<

$(B)/gen_filter: $(B)/gen_filter.o $(B)/seccomp_policy_gen.o $(B)/util.o
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/filter_bpf.h: $(B)/gen_filter
	@echo "  GEN     $@"
	@$< > $@.tmp && mv $@.tmp $@

$(B)/seccomp_policy.o: executor/seccomp_policy.c executor/*.h $(B)/filter_bpf.h | $(B)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -DTASKEXEC_PREBUILT_FILTER -I$(B) -c -o $@ $<

$(B)/taskexecd: $(B)/main_daemon.o $(DAEMON_OBJ) $(COMMON_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/taskexec: $(CLI_OBJ) $(COMMON_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(RUN_LIBS)

$(B)/taskexec-ops: $(OPS_OBJ) $(COMMON_OBJ)
	@echo "  LINK    $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Byte-compile the shim and tasks once: the sandbox cannot write __pycache__,
# and compiling on every run would cost each job several milliseconds.
pyc:
	@$(PYTHON) -m compileall -q runner-shim tasks

# A source tree's state directory is build/state (config.c): the etl
# policy's exports there are the samples, so that "build/taskexec run" of
# the seed task works from a checkout.  A packaged host's are the
# operator's, in /var/lib/taskexec/f5exports.
build/state/f5exports: $(wildcard tasks/f5portalupdate/sample_exports/*/*.json)
	@rm -rf $@ && mkdir -p build/state && cp -r tasks/f5portalupdate/sample_exports $@

UNIT_TESTS := $(patsubst tests/unit/%.c,$(B)/unit/%,$(wildcard tests/unit/test_*.c))
$(B)/unit/%: tests/unit/%.c $(COMMON_OBJ) $(DAEMON_OBJ)
	@mkdir -p $(B)/unit
	$(CC) $(CFLAGS) -Iexecutor -DTASKEXEC_SRCDIR='"$(CURDIR)"' $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

# The entry points a new user types first.  Each installs what is missing,
# then builds in a new make, so that make reads pkg-config's answers after the
# install (and "make -j" cannot build before it).  TESTS narrows make check to
# some suites or files (default: all of tests/).
TESTS ?= tests
check: bootstrap
	@$(MAKE) --no-print-directory all unit
	mandoc -Tlint -W warning man/*.[0-9]
	$(TEST_ENV) $(PYTHON) -m pytest -q -p no:cacheprovider $(TESTS)

bootstrap:
	scripts/bootstrap

demo: bootstrap
	@$(MAKE) --no-print-directory all
	scripts/demo

bench: bootstrap
	@$(MAKE) --no-print-directory all
	$(PYTHON) tests/bench/bench.py

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/policy.d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8
	install -m 0755 $(B)/taskexecd $(DESTDIR)$(SBINDIR)/taskexecd
	install -m 0755 $(B)/taskexec $(DESTDIR)$(BINDIR)/taskexec
	install -m 0755 $(B)/taskexec-ops $(DESTDIR)$(LIBDIR)/taskexec-ops
	install -m 0644 runner-shim/taskexec_shim.py runner-shim/taskexec_task.py runner-shim/taskexec_warm.py $(DESTDIR)$(LIBDIR)/
	cp -r --no-preserve=ownership tasks $(DESTDIR)$(LIBDIR)/
	find $(DESTDIR)$(LIBDIR) -name __pycache__ -prune -exec rm -rf {} +
	$(PYTHON) -m compileall -q -d $(LIBDIR) $(DESTDIR)$(LIBDIR)
	install -m 0644 policy/*.policy $(DESTDIR)$(SYSCONFDIR)/policy.d/
	for m in man/*.[1578]; do s=$${m##*.}; install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -D -m 0644 packaging/taskexec.bash-completion $(DESTDIR)$(COMPLETIONSDIR)/taskexec
	install -D -m 0644 -t $(DESTDIR)$(DATADIR)/observability \
	    packaging/observability/taskexec-dashboard.json packaging/observability/taskexec-alerts.yml

# The Python client, package python3-taskexec: modules only, byte-code is the
# installing system's business (dh_python3, or python3 -m compileall).
install-client:
	install -d $(DESTDIR)$(PYTHON_SITEDIR)/taskexec
	install -m 0644 client/taskexec/*.py $(DESTDIR)$(PYTHON_SITEDIR)/taskexec/

# Unit tests and a short daemon run under memcheck (tests/valgrind/run).
valgrind: all $(UNIT_TESTS)
	tests/valgrind/run

# The sanitizer build and the suites that exercise it (CI runs this too).
# (make check SANITIZE=address,undefined runs every suite against such a build.)
check-sanitize: bootstrap
	$(MAKE) B=build-asan SANITIZE=address,undefined all unit
	$(MAKE) -s B=build-asan SANITIZE=address,undefined test-env-run SUITES="tests/sandbox tests/integration"

test-env-run:
	$(TEST_ENV) $(PYTHON) -m pytest -q -p no:cacheprovider $(SUITES)

# Static analysis with the checked-in .clang-tidy; both tools fail on any finding.
LINT_DEFS := -D_GNU_SOURCE -DTASKEXEC_VERSION='"lint"' -DTASKEXEC_LIBDIR='"/x"' \
             -DTASKEXEC_SYSCONFDIR='"/x"' -DTASKEXEC_STATEDIR='"/x"'
lint:
	@echo "  TIDY    executor/*.c"
	@clang-tidy -quiet executor/*.c -- -std=gnu11 $(LINT_DEFS) $(call pkg,--cflags,$(PKGS)) 2>&1 \
	    | grep -v "warnings generated" ; test $${PIPESTATUS[0]} -eq 0
	@echo "  CPPCHECK executor/*.c"
	@cppcheck -q --std=c11 --enable=warning,performance,portability --error-exitcode=1 --inline-suppr \
	    --suppress=missingIncludeSystem $(LINT_DEFS) -Iexecutor executor/*.c

clean:
	rm -rf $(B)
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: all pyc unit check bootstrap demo bench install install-client clean lint valgrind check-sanitize test-env-run

# Packages (packaging/): build/taskexec_<version>_<arch>.deb and
# build/taskexec-<version>-1.<arch>.rpm from a staged copy of this tree,
# offline; "make deb" also runs lintian (LINTIAN=0 skips it).
deb: bootstrap
	packaging/build-deb

rpm: bootstrap
	packaging/build-rpm

.PHONY: deb rpm

# Fuzzing (tests/fuzz/): libFuzzer harnesses for the job payload, the policy
# files and taskexec.conf, built with clang from the executor sources under
# ASan+UBSan.  "make fuzz" replays tests/fuzz/regressions/, then fuzzes each
# harness for FUZZ_SECONDS (CI: FUZZ_SECONDS=10); new crash inputs are written
# to tests/fuzz/regressions/<harness>/ and make fails.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_B       := $(B)/fuzz
FUZZ_NAMES   := job policy config
FUZZ_SRC     := $(patsubst %,executor/%.c,util log outbuf loop config job policy)
FUZZ_CFLAGS  = -std=gnu11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
                -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-unused-parameter -Iexecutor \
                -DTASKEXEC_VERSION='"$(VERSION)"' -DTASKEXEC_LIBDIR='"$(LIBDIR)"' \
                -DTASKEXEC_SYSCONFDIR='"$(SYSCONFDIR)"' -DTASKEXEC_STATEDIR='"$(STATEDIR)"' \
                -DTASKEXEC_SRCDIR='"$(CURDIR)"' $(call pkg,--cflags,jansson inih)
FUZZ_LIBS    = $(call pkg,--libs,jansson inih)

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_SRC) executor/*.h
	@mkdir -p $(FUZZ_B)
	@echo "  FUZZCC  $@"
	@$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_SRC) $(FUZZ_LIBS)

fuzz: $(FUZZ_NAMES:%=$(FUZZ_B)/fuzz_%)
	@tests/fuzz/run $(FUZZ_B) $(FUZZ_SECONDS) $(FUZZ_NAMES)

.PHONY: fuzz

# Evidence (tests/chaos/): "make chaos" runs the full chaos test (5,000 jobs,
# daemons SIGKILLed and restarted, Redis and PostgreSQL restarted once; a short
# version runs inside "make check"), "make scale" 100 daemons against one Redis
# and one PostgreSQL.  Each writes its tables to $(B)/<name>/report.md too;
# CHAOS_ARGS / SCALE_ARGS pass options (e.g. SCALE_ARGS="--daemons 50 --jobs 2000").
CHAOS_ARGS ?=
SCALE_ARGS ?=
chaos: bootstrap
	@$(MAKE) --no-print-directory all
	$(PYTHON) tests/chaos/chaos.py --report $(B)/chaos/report.md $(CHAOS_ARGS)

scale: bootstrap
	@$(MAKE) --no-print-directory all
	$(PYTHON) tests/chaos/scale.py --report $(B)/scale/report.md $(SCALE_ARGS)

.PHONY: chaos scale

# "make failover" (tests/failover/): 3 daemons and a stream of jobs while the
# Redis master is killed (Sentinel promotes its replica) and the PostgreSQL
# primary is stopped and its standby promoted, both orders, twice; a short
# version runs inside "make check".  The report goes to
# tests/failover/results/<date>/failover-report.md; FAILOVER_ARGS passes options.
FAILOVER_ARGS ?=
failover: bootstrap
	@$(MAKE) --no-print-directory all
	$(TEST_ENV) $(PYTHON) tests/failover/failover.py --rounds 4 --settle 8 \
	    --report tests/failover/results/$$(date -u +%F)/failover-report.md $(FAILOVER_ARGS)

.PHONY: failover
