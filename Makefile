# The README's commands. CMake does the building; this file only wraps it.
#   make demo    install what is missing, build, run the examples with notes
#   make test    install what is missing, build, run the whole test suite
#   make stress  build, run the stress suites (kill -9 at random points) in
#                their long form (MPROC_STRESS_LONG=1: 200 kills and more)
#   make bench   build and run the benchmarks (ONLY=<group> QUICK=1)
#   make fuzz    build and run the fuzz targets for FUZZ_SECONDS each

FUZZ_SECONDS ?= 60
ONLY ?=
QUICK ?=

.PHONY: all setup build demo test stress bench fuzz install clean

all: build

setup:
	@sh scripts/setup-debian.sh

build: setup
	cmake --preset default
	cmake --build --preset default

demo: build
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

install: build
	cmake --install build/default

clean:
	rm -rf build
