#!/usr/bin/env bash
# Runs the whole workspace's tests, RocksDB included, on a fresh machine.
#
#   bash scripts/test.sh                  # install what is missing, then run the tests
#   bash scripts/test.sh -- --nocapture   # arguments after `--` go to the test binaries
#   bash scripts/test.sh --deps-only      # install what is missing, run nothing
#
# RocksDB's Rust bindings are generated at build time by bindgen, which loads libclang,
# and RocksDB itself is C++: so the tests need libclang and a C++ compiler besides the
# Rust toolchain. When either is missing, this installs them with apt-get (Debian or
# Ubuntu, as root); anywhere else it prints the command to run and stops. Then it runs
#
#   cargo test --workspace --release --all-features
#
# (`--all-features` turns on the `rocks` features of the examples and benches, so the
# RocksDB cluster tests run too.) Build artifacts go where CARGO_TARGET_DIR says.
set -euo pipefail
cd "$(dirname "$0")/.."

deps_only=false
test_args=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --deps-only) deps_only=true ;;
    --) shift; test_args=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# Where bindgen (through clang-sys) looks for libclang: LIBCLANG_PATH, llvm-config, the
# usual library directories and the linker cache.
have_libclang() {
  local dirs=() d
  [ -n "${LIBCLANG_PATH:-}" ] && dirs+=("$LIBCLANG_PATH")
  if command -v llvm-config >/dev/null 2>&1; then dirs+=("$(llvm-config --libdir)"); fi
  dirs+=(/usr/lib/llvm-*/lib /usr/lib /usr/lib64 /usr/local/lib /usr/lib/*-linux-gnu /usr/local/opt/llvm/lib)
  for d in "${dirs[@]}"; do
    if compgen -G "$d/libclang.so*" >/dev/null || compgen -G "$d/libclang-[0-9]*.so*" >/dev/null \
      || compgen -G "$d/libclang.dylib" >/dev/null; then
      return 0
    fi
  done
  command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'
}

have_cxx() {
  command -v "${CXX:-c++}" >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
    || command -v clang++ >/dev/null 2>&1
}

missing=()
have_libclang || missing+=(libclang)
have_cxx || missing+=("a C++ compiler")
if [ "${#missing[@]}" -gt 0 ]; then
  # Debian's names: libclang-dev brings libclang and clang's own headers; clang and g++
  # are the compilers the C and C++ parts of RocksDB build with.
  packages=(clang libclang-dev g++)
  echo "test.sh: RocksDB's bindings need libclang and a C++ compiler; missing: ${missing[*]}"
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "test.sh: installing ${packages[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    if ! have_libclang || ! have_cxx; then
      echo "test.sh: still missing libclang or a C++ compiler after installing ${packages[*]}" >&2
      exit 1
    fi
  else
    if command -v apt-get >/dev/null 2>&1; then
      echo "test.sh: run this (as root), then run this script again:" >&2
      echo "    sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
    else
      echo "test.sh: install libclang and a C++ compiler with your system's packages, then run this script again:" >&2
      echo "    Fedora: sudo dnf install clang-devel gcc-c++" >&2
      echo "    Arch:   sudo pacman -S clang gcc" >&2
      echo "    macOS:  xcode-select --install" >&2
      echo "  (or point LIBCLANG_PATH at the directory holding libclang)" >&2
    fi
    exit 1
  fi
fi

# The power-loss tests mount a FUSE file system: fusermount3 comes with Debian's fuse3.
# They skip, saying so, without it; install it when this script can.
if ! command -v fusermount3 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
  && [ "$(id -u)" -eq 0 ]; then
  echo "test.sh: installing fuse3 with apt-get (for the power-loss tests)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null; } \
    || echo "test.sh: could not install fuse3; the power-loss tests will skip"
fi

if "$deps_only"; then
  exit 0
fi

cmd=(cargo test --workspace --release --all-features)
if [ "${#test_args[@]}" -gt 0 ]; then
  cmd+=(-- "${test_args[@]}")
fi
echo "test.sh: ${cmd[*]}"
exec "${cmd[@]}"
