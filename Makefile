# csasn - build, test, serve. `make help` lists the targets.
#
# Native:   make            -> build/csasn (CLI) and build/libcsasn.a
# Tests:    make test       -> everything (installs what it needs first)
# Browser:  make wasm / make serve
SHELL := /bin/bash
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Wno-unused-parameter -D_POSIX_C_SOURCE=200809L -Isrc -I/usr/include/stb -msse2 \
           -DCSASN_THREADS=1 -pthread
LDLIBS  += -lm -pthread
PY      := /usr/bin/python3
BUILD   := build

# The engine (the library): src/*.c and the kernels, src/kernels/*.c. The programs that use
# it live apart: the CLI in src/cli/, the wasm boundary in shell/.
KERNEL_SRC := $(wildcard src/kernels/*.c)
LIB_SRC := $(wildcard src/*.c) $(KERNEL_SRC)
LIB_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
HDRS    := $(wildcard src/*.h src/kernels/*.h src/cli/*.h)
CLI_SRC := src/cli/cli.c src/cli/adapt_cmd.c

.PHONY: all deps test wasm serve weights bench clean help fuzz fuzz-build test-asan asan-build
all: $(BUILD)/csasn $(BUILD)/libcsasn.a

$(BUILD)/obj/%.o: src/%.c $(HDRS) | $(BUILD)/obj/kernels
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libcsasn.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/csasn: $(CLI_SRC) $(BUILD)/libcsasn.a $(HDRS)
	$(CC) $(CFLAGS) $(CLI_SRC) $(BUILD)/libcsasn.a $(LDLIBS) -o $@

# C test programs: tests/c/test_*.c -> build/tests/test_* (run by tests/run.py)
C_TESTS := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))
$(BUILD)/tests/%: tests/c/%.c $(BUILD)/libcsasn.a $(HDRS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $< $(BUILD)/libcsasn.a $(LDLIBS) -o $@

$(BUILD)/tests:
	mkdir -p $@

# Everything a fresh Debian machine needs (idempotent; quick when present).
deps:
	@tools/install-deps.sh

test: deps all wasm $(C_TESTS) test-asan
	$(PY) tests/run.py

# Browser build (the page runs the engine itself): the engine + shell/exports.c -> build/wasm/csasn.{mjs,wasm}, with
# the JS API and worker copied next to them so build/wasm/ is the whole runtime the page loads.
# ENVIRONMENT omits `node` on purpose: emcc 3.1.6's node branch uses __dirname/require, which
# do not exist in an ES module; the web branch runs fine in node once the caller hands the glue
# the bytes (`wasmBinary`), which shell/csasn.js requires everywhere anyway.
EMCC       ?= emcc
WASM_DIR   := $(BUILD)/wasm
WASM_CFLAGS := -msimd128 -DNDEBUG -std=c11 -Wall -Wextra -Wno-unused-parameter \
               -D_POSIX_C_SOURCE=200809L -Isrc -I/usr/include/stb
# Size vs speed per file: the image decoders (stb), the file parser, the error formatter and
# the model (loading, debug views, and a forward pass that only sequences calls into the
# kernels) are built for size (-Os halves stb's code); the kernels keep -O3. Measured: all -O3
# 205 KB, kernels + model -O3 157 KB, this mix 144 KB at the same speed (the model at -Os: no
# change in the b0-ti latency; model_forward.c alone at -O3: +8 KB, thyroid-ddti latency the
# same within noise), all -Os 110 KB but ~1.6x slower.
WASM_OS    := image format error model_load model_forward model_debug report dicom rle measure
WASM_OPT   = $(if $(filter $(WASM_OS),$*),-Os,-O3)
WASM_LDFLAGS := -O3 -sMODULARIZE -sEXPORT_ES6 -sEXPORT_NAME=createCsasnModule \
                -sENVIRONMENT=web,worker -sALLOW_MEMORY_GROWTH -sFILESYSTEM=0 \
                -sMALLOC=emmalloc -sINCOMING_MODULE_JS_API=wasmBinary,instantiateWasm,print,printErr
WASM_OBJ   := $(LIB_SRC:src/%.c=$(BUILD)/obj-wasm/%.o) $(BUILD)/obj-wasm/exports.o
# The runtime's JavaScript (shell/*.js): the in-process API, the worker, its client, the
# protocol they share, the downloads and the manifest reader.
SHELL_JS   := csasn.js worker.js client.js protocol.js fetch.js manifest.js
wasm: $(WASM_DIR)/csasn.mjs $(WASM_DIR)/csasn.wasm $(SHELL_JS:%=$(WASM_DIR)/%) \
      $(WASM_DIR)/csasn-mt.mjs $(WASM_DIR)/csasn-relaxed.mjs $(WASM_DIR)/csasn-relaxed-mt.mjs

$(BUILD)/obj-wasm/%.o: src/%.c $(HDRS) | $(BUILD)/obj-wasm/kernels
	NODE_PATH=/usr/share/nodejs $(EMCC) $(WASM_OPT) $(WASM_CFLAGS) -c $< -o $@

$(BUILD)/obj-wasm/exports.o: shell/exports.c $(HDRS) | $(BUILD)/obj-wasm
	NODE_PATH=/usr/share/nodejs $(EMCC) -O3 $(WASM_CFLAGS) -c $< -o $@

$(WASM_DIR)/csasn.mjs $(WASM_DIR)/csasn.wasm &: $(WASM_OBJ) | $(WASM_DIR)
	NODE_PATH=/usr/share/nodejs $(EMCC) $(WASM_OBJ) $(WASM_LDFLAGS) -o $(WASM_DIR)/csasn.mjs

$(WASM_DIR)/%.js: shell/%.js | $(WASM_DIR)
	cp $< $@

# The threaded variant (two cores when the page is cross-origin isolated): the same sources with -pthread and 2 threads by default
# (-DCSASN_THREADS=2: src/kernels/ splits GEMM columns, depthwise rows and attention query
# blocks, bit-identical to one thread) -> build/wasm/csasn-mt.{mjs,wasm,worker.js}. worker.js
# loads it instead of csasn.* when the page is cross-origin isolated (SharedArrayBuffer
# available: `make serve` sends COOP/COEP). One pre-started pthread (the helper): a pthread
# started later would need the event loop to boot its Worker, which a busy engine never yields.
# PTHREAD_POOL_DELAY_LOAD: the engine is ready without waiting for that Worker to load (it
# took 150-350 ms of the page's cold start); the kernels run on one thread until the helper
# has checked in, so nothing ever waits for it.
# Memory growth with threads only slows JS access to the heap after a growth (views are
# re-made): csasn.js re-reads HEAPU8 after every allocation anyway, hence -Wno-pthreads-mem-growth.
# Linked with -Os (binaryen; the objects keep their -O3/-Os): 146 KB instead of 152 KB (the
# pthread runtime adds ~8 KB), the kernels' speed unchanged within noise.
WASM_MT_OBJ := $(LIB_SRC:src/%.c=$(BUILD)/obj-wasm-mt/%.o) $(BUILD)/obj-wasm-mt/exports.o
WASM_MT_CFLAGS := -pthread -DCSASN_THREADS=2

$(BUILD)/obj-wasm-mt/%.o: src/%.c $(HDRS) | $(BUILD)/obj-wasm-mt/kernels
	NODE_PATH=/usr/share/nodejs $(EMCC) $(WASM_OPT) $(WASM_CFLAGS) $(WASM_MT_CFLAGS) -c $< -o $@

$(BUILD)/obj-wasm-mt/exports.o: shell/exports.c $(HDRS) | $(BUILD)/obj-wasm-mt
	NODE_PATH=/usr/share/nodejs $(EMCC) -O3 $(WASM_CFLAGS) $(WASM_MT_CFLAGS) -c $< -o $@

$(WASM_DIR)/csasn-mt.mjs $(WASM_DIR)/csasn-mt.wasm $(WASM_DIR)/csasn-mt.worker.js &: $(WASM_MT_OBJ) | $(WASM_DIR)
	NODE_PATH=/usr/share/nodejs $(EMCC) $(WASM_MT_OBJ) $(WASM_LDFLAGS) -Os -pthread -sPTHREAD_POOL_SIZE=1 \
	  -sPTHREAD_POOL_DELAY_LOAD=1 -Wno-pthreads-mem-growth -o $(WASM_DIR)/csasn-mt.mjs

$(WASM_DIR):
	mkdir -p $@

# The relaxed-SIMD engine -> build/wasm/csasn-relaxed.{mjs,wasm}: the same sources, but the kernels
# (src/kernels/*.c, the only code with V4_MADD) compiled by Debian's clang-19 with -mrelaxed-simd,
# so their multiply-adds become f32x4.relaxed_madd (one FMA in V8 where the CPU has one; emcc
# 3.1.6's clang 14 cannot emit it). The rest are the simd128 build's own objects. emcc's wasm-ld
# links the clang-19 objects fine; its binaryen (version 108) rejects the opcodes, so this link
# stays at -O1 with WASM_BIGINT, where emcc runs no wasm-opt pass at all
# (ERROR_ON_WASM_CHANGES_AFTER_LINK fails the build if that ever changes). The clang-19 flags are
# the ones emcc passes its own clang (emcc -v), plus -mrelaxed-simd. shell/csasn.js picks this
# engine when WebAssembly.validate accepts a relaxed opcode and its known-answer self-test passes.
CLANG_RELAXED ?= clang-19
RELAXED_CFLAGS := -target wasm32-unknown-emscripten --sysroot=/usr/share/emscripten/cache/sysroot \
                  -Xclang -iwithsysroot/include/compat -DEMSCRIPTEN -D__EMSCRIPTEN_major__=3 \
                  -D__EMSCRIPTEN_minor__=1 -D__EMSCRIPTEN_tiny__=6 -Dunix -D__unix -D__unix__ \
                  -fignore-exceptions -fvisibility=default -mllvm -combiner-global-alias-analysis=false \
                  -mllvm -disable-lsr -O3 -mrelaxed-simd $(WASM_CFLAGS)
RELAXED_OBJ := $(filter-out $(BUILD)/obj-wasm/kernels/%,$(WASM_OBJ)) \
               $(KERNEL_SRC:src/%.c=$(BUILD)/obj-relaxed/%.o)

$(BUILD)/obj-relaxed/%.o: src/%.c $(HDRS) | $(BUILD)/obj-relaxed/kernels
	$(CLANG_RELAXED) $(RELAXED_CFLAGS) -c $< -o $@

$(WASM_DIR)/csasn-relaxed.mjs $(WASM_DIR)/csasn-relaxed.wasm &: $(RELAXED_OBJ) | $(WASM_DIR)
	NODE_PATH=/usr/share/nodejs $(EMCC) $(RELAXED_OBJ) $(filter-out -O3,$(WASM_LDFLAGS)) -O1 -sWASM_BIGINT \
	  -sERROR_ON_WASM_CHANGES_AFTER_LINK -o $(WASM_DIR)/csasn-relaxed.mjs

# Its two-thread variant, as csasn-mt is to csasn (the threaded build's objects, relaxed kernels).
RELAXED_MT_OBJ := $(filter-out $(BUILD)/obj-wasm-mt/kernels/%,$(WASM_MT_OBJ)) \
                  $(KERNEL_SRC:src/%.c=$(BUILD)/obj-relaxed-mt/%.o)

$(BUILD)/obj-relaxed-mt/%.o: src/%.c $(HDRS) | $(BUILD)/obj-relaxed-mt/kernels
	$(CLANG_RELAXED) $(RELAXED_CFLAGS) $(WASM_MT_CFLAGS) -c $< -o $@

$(WASM_DIR)/csasn-relaxed-mt.mjs $(WASM_DIR)/csasn-relaxed-mt.wasm $(WASM_DIR)/csasn-relaxed-mt.worker.js &: $(RELAXED_MT_OBJ) | $(WASM_DIR)
	NODE_PATH=/usr/share/nodejs $(EMCC) $(RELAXED_MT_OBJ) $(filter-out -O3,$(WASM_LDFLAGS)) -O1 -sWASM_BIGINT \
	  -sERROR_ON_WASM_CHANGES_AFTER_LINK -pthread -sPTHREAD_POOL_SIZE=1 -sPTHREAD_POOL_DELAY_LOAD=1 \
	  -Wno-pthreads-mem-growth -o $(WASM_DIR)/csasn-relaxed-mt.mjs

# `make serve [PORT=8000]`: build everything, then serve web/ on localhost (tools/serve.mjs).
PORT ?= 8000
serve: all wasm
	node tools/serve.mjs --port $(PORT)

# `make bench` (speed as ratios against a peer in the same run): this engine (wasm in node, native CLI) against onnxruntime-web and the
# PyTorch reference, single thread, on csasn-b0-ti and every shipped model, plus the page in
# headless Chromium, kernel GFLOP/s in wasm and the download size. Table on stdout, figures in
# build/bench.json. BENCH_ARGS passes options to tools/bench.cjs (e.g. --skip chromium).
bench: deps all wasm
	$(PY) tools/export_onnx.py
	@mkdir -p $(BUILD)/bench
	NODE_PATH=/usr/share/nodejs $(EMCC) -O3 $(WASM_CFLAGS) tools/kernel_bench.c $(KERNEL_SRC) \
	  -sENVIRONMENT=node -sSINGLE_FILE=1 -sALLOW_MEMORY_GROWTH -o $(BUILD)/bench/kernel_bench.cjs
	$(CC) $(CFLAGS) tools/kernel_bench.c $(KERNEL_SRC) $(LDLIBS) -o $(BUILD)/bench/kernel_bench
	node tools/bench.cjs $(BENCH_ARGS)

# Retrain both shipped models with the recipes of their model cards (tools/train.py: CUDA when
# present, else CPU - several hours on 2 cores; about 2.5 min each on one H100), export them to
# weights/, re-evaluate them through the C engine and rewrite weights/manifest.json. Checkpoints in
# cache/ckpt: an interrupted `make weights` resumes where it stopped.
weights: all
	$(PY) tools/train.py --dataset thyroid --epochs 60 --out weights/thyroid-ddti.csasn \
	    --ckpt cache/ckpt/thyroid-ddti.pt --resume --result cache/weights/thyroid-ddti
	$(PY) tools/train.py --dataset breast --epochs 90 --seg-weight 3 --seg-channels 128 \
	    --out weights/breast-busi.csasn --ckpt cache/ckpt/breast-busi.pt --resume \
	    --result cache/weights/breast-busi
	$(PY) tools/evaluate.py --model weights/thyroid-ddti.csasn --split weights/thyroid-ddti.split.json \
	    --out weights/thyroid-ddti
	$(PY) tools/evaluate.py --model weights/breast-busi.csasn --split weights/breast-busi.split.json \
	    --out weights/breast-busi
	$(PY) tools/evaluate.py --write-manifest weights

help:
	@echo "make [all] | test | wasm | serve | weights | bench | clean"

clean:
	rm -rf $(BUILD)

# ---------------------------------------------------------------- hostile input (fuzzing, sanitizers)
# `make fuzz [FUZZ_SECONDS=60]`: libFuzzer targets tests/fuzz/fuzz_*.c (clang, ASan + UBSan),
# each run FUZZ_SECONDS over its seeds tests/fuzz/corpus_*/; what a run learns goes to
# build/fuzz/corpus_*/ (kept between runs, never into tests/), crashes to build/fuzz/crash-*.
# The classify target embeds tests/hostile/valid/model_tiny_f16.csasn (xxd -> tiny_model.h).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -Isrc -I/usr/include/stb -msse2 $(FUZZ_SAN)
FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ     := $(LIB_SRC:src/%.c=$(FUZZ_DIR)/obj/%.o)

$(FUZZ_DIR)/obj/%.o: src/%.c $(HDRS) | $(FUZZ_DIR)/obj/kernels
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/tiny_model.h: tests/hostile/valid/model_tiny_f16.csasn | $(FUZZ_DIR)/obj
	cd tests/hostile/valid && xxd -i -n model_tiny_csasn model_tiny_f16.csasn > $(CURDIR)/$@.tmp
	mv $@.tmp $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ) $(FUZZ_DIR)/tiny_model.h $(HDRS) tests/fuzz/fuzz_common.h
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I$(FUZZ_DIR) -fsanitize=fuzzer $< $(FUZZ_OBJ) -lm -o $@

$(FUZZ_DIR)/obj:
	mkdir -p $@

# Keep the sanitizer objects (make deletes intermediates of chained pattern rules).
.SECONDARY: $(FUZZ_OBJ)

# MemorySanitizer builds of the same targets (uninitialised reads: stb_image does not zero its
# JPEG state, see tests/fuzz/regress/); used by tests/test_fuzz_smoke.py to replay regressions.
FUZZ_MSAN := $(patsubst tests/fuzz/%.c,$(FUZZ_DIR)/msan/%,$(wildcard tests/fuzz/fuzz_*.c))
$(FUZZ_DIR)/msan/fuzz_%: tests/fuzz/fuzz_%.c $(LIB_SRC) $(FUZZ_DIR)/tiny_model.h $(HDRS) tests/fuzz/fuzz_common.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -Isrc -I/usr/include/stb -msse2 -I$(FUZZ_DIR) \
	  -fsanitize=fuzzer,memory -fno-omit-frame-pointer $< $(LIB_SRC) -lm -o $@

fuzz-build: $(FUZZ_TARGETS) $(FUZZ_MSAN)

fuzz: $(FUZZ_TARGETS)
	@set -o pipefail; rc=0; for t in $(FUZZ_TARGETS); do n=$${t#$(FUZZ_DIR)/fuzz_}; \
	  maxlen=32768; [ $$n = model_load ] && maxlen=65536; \
	  mkdir -p $(FUZZ_DIR)/corpus_$$n; echo "== fuzz_$$n ($(FUZZ_SECONDS) s)"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -max_len=$$maxlen -timeout=20 \
	    -rss_limit_mb=2560 -artifact_prefix=$(FUZZ_DIR)/crash_$$n- \
	    $(FUZZ_DIR)/corpus_$$n tests/fuzz/corpus_$$n 2>&1 | tee $(FUZZ_DIR)/fuzz_$$n.log \
	    | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|runtime error|DONE' || rc=1; \
	done; exit $$rc

# `make test-asan`: the library, CLI and C tests built with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer (any report aborts the process with status 99) into build/asan/,
# then the native suites (C programs and tests/test_*.py; not node/browser) run against that
# CLI. `make test` runs it first (a prerequisite: a sanitizer failure stops the run).
# tests/run.py reads CSASN_BUILD; the Python suites read CSASN_CLI (tests/testlib.py);
# CSASN_SANITIZED=1 tells them to skip timing/RSS checks.
ASAN_CC     ?= clang
ASAN_DIR    := $(BUILD)/asan
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -std=c11 -Wall -Wextra -Wno-unused-parameter \
               -D_POSIX_C_SOURCE=200809L -Isrc -I/usr/include/stb -msse2 \
               -fsanitize=address,undefined -fno-sanitize-recover=all
ASAN_OBJ    := $(LIB_SRC:src/%.c=$(ASAN_DIR)/obj/%.o)
ASAN_TESTS  := $(patsubst tests/c/%.c,$(ASAN_DIR)/tests/%,$(wildcard tests/c/test_*.c))
ASAN_ENV    := ASAN_OPTIONS=exitcode=99:detect_leaks=1:allocator_may_return_null=1:strict_string_checks=1 \
               UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99 \
               CSASN_CLI=$(ASAN_DIR)/csasn CSASN_BUILD=$(ASAN_DIR) \
               CSASN_SANITIZED=1

$(ASAN_DIR)/obj/%.o: src/%.c $(HDRS) | $(ASAN_DIR)/obj/kernels
	$(ASAN_CC) $(ASAN_CFLAGS) -c $< -o $@

$(ASAN_DIR)/libcsasn.a: $(ASAN_OBJ)
	ar rcs $@ $^

$(ASAN_DIR)/csasn: $(CLI_SRC) $(ASAN_DIR)/libcsasn.a $(HDRS)
	$(ASAN_CC) $(ASAN_CFLAGS) $(CLI_SRC) $(ASAN_DIR)/libcsasn.a -lm -o $@

$(ASAN_DIR)/tests/%: tests/c/%.c $(ASAN_DIR)/libcsasn.a $(HDRS) | $(ASAN_DIR)/tests
	$(ASAN_CC) $(ASAN_CFLAGS) $< $(ASAN_DIR)/libcsasn.a -lm -o $@

$(ASAN_DIR)/tests:
	mkdir -p $@

# Object folders: the library's objects mirror src/ (src/kernels/*.c -> obj*/kernels/*.o).
$(BUILD)/obj/kernels $(BUILD)/obj-wasm/kernels $(BUILD)/obj-wasm-mt/kernels $(FUZZ_DIR)/obj/kernels \
$(ASAN_DIR)/obj/kernels $(BUILD)/obj-wasm $(BUILD)/obj-wasm-mt $(BUILD)/obj-relaxed/kernels \
$(BUILD)/obj-relaxed-mt/kernels:
	mkdir -p $@

asan-build: $(ASAN_DIR)/csasn $(ASAN_TESTS)

test-asan: asan-build
	$(ASAN_ENV) $(PY) tests/run.py --native
