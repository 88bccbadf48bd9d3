# httptrace — every build, test, bench and install target.
#
#   make            build/libhttptrace.so and build/httptrace
#   make demo       trace curl against loopback HTTP/HTTPS servers, print timeline + reuse report
#   make test       unit + integration tests (installs missing Debian packages first)
#   make bench      micro-benchmarks and the side-by-side overhead comparison
#   make install    PREFIX=/usr/local DESTDIR=
#   make fuzz       FUZZ_S=60: every libFuzzer target (tests/fuzz/fuzz_*.cpp) for FUZZ_S seconds
#   make asan       the unit tests linked with AddressSanitizer + UBSan builds of the code (build-asan/)
#
# Source conventions the rules below rely on:
#   interpose/hooks/*.cpp  the interposed (exported) wrappers: only in libhttptrace.so
#   interpose/*/*.cpp      everything else inside the traced process (record/, tls/): also linked
#                          into tests/bench
#   analyzer/main.cpp      the CLI entry point; analyzer/*.cpp and analyzer/<stage>/*.cpp (read,
#                          model, report, export) form build/libanalyzer.a
#   tests/unit/interpose_*.cpp -> build/unit_interpose    (GoogleTest, links the interpose core)
#   tests/unit/analyzer_*.cpp  -> build/unit_analyzer     (GoogleTest, links libanalyzer.a)
#   tests/integration/*.cpp-> build/integration_tests     (GoogleTest, runs real programs)
#   tests/clients/*.cpp    -> build/tests/<name>          (our own traced test clients)
#   tests/libs/*.cpp       -> build/tests/libs/*.so       (modules the clients dlopen(), below)
#   bench/*_bench.cpp      -> build/bench/<name>          (Google Benchmark)

CXX      ?= g++
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    := build
# The build dominates make test/demo on a fresh machine: use every core for the inner make.
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

WARN     := -Wall -Wextra -Wno-missing-field-initializers
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++20 $(WARN) -I. -MMD -MP
# Code that runs inside someone else's process: no exceptions or RTTI to drag in, hidden symbols,
# initial-exec TLS so a thread-local access can never call malloc (see interpose/README.md).
INTERPOSE_FLAGS := -fPIC -fvisibility=hidden -fno-exceptions -fno-rtti -ftls-model=initial-exec \
                   -fno-stack-protector

INTERPOSE_SRC  := $(wildcard interpose/*/*.cpp)
INTERPOSE_HOOK := $(wildcard interpose/hooks/*.cpp)
INTERPOSE_CORE := $(filter-out $(INTERPOSE_HOOK),$(INTERPOSE_SRC))
ANALYZER_SRC   := $(filter-out analyzer/main.cpp,$(wildcard analyzer/*.cpp analyzer/*/*.cpp))
UNIT_I_SRC     := $(wildcard tests/unit/interpose_*.cpp)
UNIT_A_SRC     := $(wildcard tests/unit/analyzer_*.cpp)
INTEG_SRC      := $(wildcard tests/integration/*.cpp)
CLIENT_SRC     := $(wildcard tests/clients/*.cpp)
BENCH_SRC      := $(wildcard bench/*_bench.cpp)
BENCH_TOOL_SRC := $(filter-out $(BENCH_SRC),$(wildcard bench/*.cpp))

# The analyzer's libraries: fmt for output, elfutils (libdw, libelf) for analyzer/symbols/.
ANALYZER_LIBS := -lfmt -ldw -lelf

obj = $(patsubst %.cpp,$(BUILD)/obj/%.o,$(1))
pic = $(patsubst %.cpp,$(BUILD)/pic/%.o,$(1))

# GoogleTest and nlohmann::json make the test sources three quarters of the whole build at -O2;
# at -O0 they compile 3.5x faster and the suite runs no slower: the code under test (the
# analyzer, the recorder) keeps CXXFLAGS. gcc obeys the last -O given.
TEST_OPT ?= -O0
TEST_OBJ := $(UNIT_I_SRC) $(UNIT_A_SRC) $(INTEG_SRC)
$(call obj,$(TEST_OBJ)): CXXFLAGS += $(TEST_OPT)

LIB       := $(BUILD)/libhttptrace.so
CLI       := $(BUILD)/httptrace
ANALYZER_A:= $(BUILD)/libanalyzer.a
CORE_A    := $(BUILD)/libinterpose_core.a
CLIENTS   := $(patsubst tests/clients/%.cpp,$(BUILD)/tests/%,$(CLIENT_SRC))
BENCHES   := $(patsubst bench/%.cpp,$(BUILD)/bench/%,$(BENCH_SRC))
BENCH_TOOLS := $(patsubst bench/%.cpp,$(BUILD)/bench/%,$(BENCH_TOOL_SRC))

.PHONY: all deps demo test unit integration bench install clean fuzz fuzz-build asan
.DEFAULT_GOAL := all

all: $(LIB) $(CLI)

# Fails early with the exact apt-get line (or installs, when root) instead of a wall of errors.
# Every compile waits for it (order-only): a parallel build on a new machine never starts
# compiling before the packages' headers are there.
.PHONY: deps-check
deps-check:
	@scripts/install-deps.sh --build

deps:
	@scripts/install-deps.sh --all

$(BUILD)/pic/%.o: %.cpp | deps-check
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) $(INTERPOSE_FLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cpp | deps-check
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

# The preload library links neither libssl nor gnutls: TLS functions are found at run time in
# whatever the program loaded. libstdc++ is linked statically-free: we use no allocating std APIs.
# Nor libunwind: interpose/record/stacks.cpp dlopen()s it only when HTTPTRACE_STACKS=1.
# The version script decides what the library exports: a change to it must relink.
# libnghttp2 (its HPACK inflater, interpose/record/hpack.h) is linked in statically with its
# symbols hidden: a program that loads its own libnghttp2 keeps its own copy, and no traced
# process gets a new DT_NEEDED.
NGHTTP2_STATIC := -l:libnghttp2.a -Wl,--exclude-libs,libnghttp2.a
$(LIB): $(call pic,$(INTERPOSE_SRC)) interpose/hooks/exports.map
	$(CXX) -shared -o $@ $(filter %.o,$^) -Wl,--version-script=interpose/hooks/exports.map -Wl,-z,now \
	    $(NGHTTP2_STATIC) -ldl -lpthread
	@if readelf -d $@ | grep -q 'NEEDED.*libstdc++'; then \
	    echo "$@ must not need libstdc++ (every C program would load it): a std call that throws?" >&2; \
	    nm -D --undefined-only $@ | grep -E 'GLIBCXX|CXXABI' >&2; rm -f $@; exit 1; fi

$(CORE_A): $(call pic,$(INTERPOSE_CORE))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(ANALYZER_A): $(call obj,$(ANALYZER_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CLI): $(BUILD)/obj/analyzer/main.o $(ANALYZER_A)
	$(CXX) -o $@ $^ $(ANALYZER_LIBS)

$(BUILD)/tests/%: tests/clients/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -o $@ $< -lpthread

# Shared objects the test clients dlopen(): a plain-HTTP one, and an HTTPS one linked against
# the system libssl and against two renamed copies of it (soname changed too), the way manylinux
# wheels bundle theirs. patchelf comes with the test packages (scripts/install-deps.sh).
TESTLIB_DIR := $(BUILD)/tests/libs
SYS_LIBSSL  := $(shell $(CXX) -print-file-name=libssl.so.3)
TESTLIBS    := $(addprefix $(TESTLIB_DIR)/,libhttp_get.so libown_dup.so libdlopen_bare.so \
                 libhttps_sys.so libhttps_ht1.so libhttps_ht2.so libssl-ht2.so.3 \
                 libhttps_serve.so libgnutls_serve.so)
.PRECIOUS: $(TESTLIB_DIR)/libssl-ht%.so.3

$(TESTLIB_DIR)/libssl-ht%.so.3: $(SYS_LIBSSL)
	@mkdir -p $(dir $@)
	cp $< $@.tmp && patchelf --set-soname libssl-ht$*.so.3 $@.tmp && mv $@.tmp $@

$(TESTLIB_DIR)/lib%.so: tests/libs/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fPIC -shared -o $@ $< -Wl,-rpath,'$$ORIGIN'

$(TESTLIB_DIR)/libhttps_serve.so: tests/libs/https_serve.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fPIC -shared -o $@ $< -lssl -lcrypto

$(TESTLIB_DIR)/libgnutls_serve.so: tests/libs/gnutls_serve.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fPIC -shared -o $@ $< -lgnutls

$(TESTLIB_DIR)/libhttps_sys.so: tests/libs/https_get.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -fPIC -shared -o $@ $< -lssl -lcrypto

$(TESTLIB_DIR)/libhttps_ht%.so: tests/libs/https_get.cpp $(TESTLIB_DIR)/libssl-ht%.so.3
	$(CXX) $(CXXFLAGS) -fPIC -shared -o $@ $< -L$(TESTLIB_DIR) -l:libssl-ht$*.so.3 -lcrypto \
	    -Wl,-rpath,'$$ORIGIN'

$(BUILD)/unit_interpose: $(call obj,$(UNIT_I_SRC)) $(CORE_A)
	$(CXX) -o $@ $^ -lgtest -lgtest_main -lpthread -ldl -lunwind -l:libnghttp2.a

$(BUILD)/unit_analyzer: $(call obj,$(UNIT_A_SRC)) $(ANALYZER_A)
	$(CXX) -o $@ $^ -lgtest -lgtest_main $(ANALYZER_LIBS) -lpthread

$(BUILD)/integration_tests: $(call obj,$(INTEG_SRC))
	$(CXX) -o $@ $^ -lgtest -lgtest_main -lpthread

$(BUILD)/bench/%: bench/%.cpp $(CORE_A) $(ANALYZER_A)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -o $@ $< $(CORE_A) $(ANALYZER_A) -lbenchmark $(ANALYZER_LIBS) -lpthread -ldl -lunwind -l:libnghttp2.a

# Fuzzing and sanitizers, each in its own build directory so their flags never mix with the
# normal build's objects. The analyzer is built once more, with clang, ASan + UBSan (float casts
# included: gcc leaves them out of "undefined") and libFuzzer's coverage instrumentation: the fuzz
# targets and the sanitized unit tests both link that copy (outside a fuzzer the coverage hooks
# are the sanitizer runtime's no-ops). The recorder's sanitized copy is gcc's: it is what the
# preload library is built with. -g1 (line tables) is enough for symbolized reports and keeps
# these extra builds cheap.
FUZZ_BUILD := build-fuzz
ASAN_BUILD := build-asan
FUZZ_CXX   ?= clang++
FUZZ_S     ?= 60
SAN        := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_FLAGS  := -std=c++20 $(WARN) -I. -MMD -MP -O1 -g1 $(SAN)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.cpp)
FUZZ_BINS  := $(patsubst tests/fuzz/%.cpp,$(FUZZ_BUILD)/%,$(FUZZ_SRC))
fuzzobj = $(patsubst %.cpp,$(FUZZ_BUILD)/obj/%.o,$(1))

$(FUZZ_BUILD)/obj/%.o: %.cpp | deps-check
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(SAN_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(call fuzzobj,$(ANALYZER_SRC))
	$(FUZZ_CXX) $(SAN) -fsanitize=fuzzer -o $@ $^ $(ANALYZER_LIBS) -lpthread

$(FUZZ_BUILD)/make_seeds: tests/fuzz/make_seeds.cpp
	@mkdir -p $(dir $@)
	$(CXX) -std=c++20 -O1 -I. -o $@ $<

$(ASAN_BUILD)/pic/%.o: %.cpp | deps-check
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_FLAGS) $(INTERPOSE_FLAGS) -c $< -o $@

# The sanitized unit tests are the normal build's test objects linked against sanitized code
# under test: what ASan must watch is the analyzer and the recorder, and compiling the test
# sources a second time cost a quarter of the whole build.
$(ASAN_BUILD)/unit_analyzer: $(call obj,$(UNIT_A_SRC)) $(call fuzzobj,$(ANALYZER_SRC))
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(SAN) -o $@ $^ -lgtest -lgtest_main $(ANALYZER_LIBS) -lpthread

$(ASAN_BUILD)/unit_interpose: $(call obj,$(UNIT_I_SRC)) $(patsubst %.cpp,$(ASAN_BUILD)/pic/%.o,$(INTERPOSE_CORE))
	@mkdir -p $(dir $@)
	$(CXX) $(SAN) -o $@ $^ -lgtest -lgtest_main -lpthread -ldl -lunwind -l:libnghttp2.a

FUZZ_DEPS := $(FUZZ_BINS) $(FUZZ_BUILD)/make_seeds $(BUILD)/bench/gen_trace
ASAN_DEPS := $(ASAN_BUILD)/unit_analyzer $(ASAN_BUILD)/unit_interpose
# Pattern-rule prerequisites are intermediate files to make: keep them for the next build.
.PRECIOUS: $(FUZZ_BUILD)/obj/%.o $(ASAN_BUILD)/pic/%.o
fuzz-build: $(FUZZ_DEPS)
fuzz:
	@scripts/install-deps.sh --fuzz
	@$(MAKE) -j$(JOBS) --no-print-directory $(FUZZ_DEPS)
	@scripts/fuzz.sh $(FUZZ_S)
asan:
	@scripts/install-deps.sh --fuzz
	@$(MAKE) -j$(JOBS) --no-print-directory $(ASAN_DEPS)

unit: all $(BUILD)/unit_interpose $(BUILD)/unit_analyzer
integration: all $(BUILD)/integration_tests $(CLIENTS) $(TESTLIBS)

test:
	@scripts/install-deps.sh --test
	@$(MAKE) -j$(JOBS) --no-print-directory all $(BUILD)/unit_interpose $(BUILD)/unit_analyzer $(BUILD)/integration_tests $(CLIENTS) $(TESTLIBS) $(BENCHES) $(BENCH_TOOLS) $(FUZZ_DEPS) $(ASAN_DEPS)
	@scripts/run-tests.sh

demo:
	@scripts/install-deps.sh --demo
	@$(MAKE) -j$(JOBS) --no-print-directory all
	@scripts/demo.sh

bench:
	@scripts/install-deps.sh --bench
	@$(MAKE) -j$(JOBS) --no-print-directory all $(BENCHES) $(BENCH_TOOLS) $(CLIENTS)
	@scripts/bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/httptrace
	install -m 0644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libhttptrace.so
	install -m 0644 docs/httptrace.1 $(DESTDIR)$(PREFIX)/share/man/man1/httptrace.1

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)

-include $(shell find $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD) -name '*.d' 2>/dev/null)
