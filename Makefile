# The README's commands. CMake does the building; this file only wraps it.
#   make demo    install what is missing, build the library and the examples,
#                run the examples with notes
#   make test    install what is missing, build, run the whole test suite
#   make stress  build, run the stress suites (kill -9 at random points) in
#                their long form (MPROC_STRESS_LONG=1: 200 kills and more)
#   make bench   build and run the benchmarks (ONLY=<group> QUICK=1)
#   make fuzz    build and run the fuzz targets for FUZZ_SECONDS each
#   make install build, then install under PREFIX (default /usr/local), staged
#                under DESTDIR when it is set: make install PREFIX=/opt/mproc

FUZZ_SECONDS ?= 60
ONLY ?=
QUICK ?=
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all setup build demo test stress bench fuzz install clean

all: build

setup:
	@sh scripts/setup-debian.sh

build: setup
	cmake --preset default
	cmake --build --preset default

# The demo builds only the library and the examples (build preset
# "examples"), and shows the build's output only when it fails.
demo: setup
	@echo "== building the library and the examples in build/default"
	@sh scripts/quiet.sh cmake --preset default
	@sh scripts/quiet.sh cmake --build --preset examples
	@sh scripts/demo.sh build/default/examples

test: build
	cd build/default && ctest -j2 --output-on-failure --no-tests=error

stress: build
	cd build/default && MPROC_STRESS_LONG=1 ctest -j2 --output-on-failure \
	  --no-tests=error -R '_stress\.'

bench: setup
	cmake --preset default -DMPROC_BUILD_BENCH=ON
	cmake --build --preset default
	@sh bench/run.sh build/default/bench "$(ONLY)" "$(QUICK)"

fuzz: setup
	cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DMPROC_BUILD_FUZZ=ON \
	  -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug
	cmake --build build/fuzz -j2
	@sh tests/fuzz/run.sh build/fuzz/tests/fuzz $(FUZZ_SECONDS)

# The installed files name no prefix (mproc.pc and the CMake package find it
# from where they lie), so the prefix is chosen here, at install time.
install: build
	DESTDIR="$(DESTDIR)" cmake --install build/default --prefix "$(PREFIX)"

clean:
	rm -rf build
