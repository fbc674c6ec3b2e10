#!/usr/bin/env bash
# Builds one fully static x86_64 Linux executable: dist/bunker-x86_64-linux.
#
# glibc linked statically (`-C target-feature=+crt-static`) with the toolchain this machine
# already has: nothing to install on the host that runs it, not even libc. The explicit
# --target keeps build scripts and proc-macros dynamic (they run here, at build time).
# Name resolution needs no NSS modules at run time (static glibc reads /etc/hosts and
# /etc/resolv.conf itself; tests/static_binary.rs runs it in a FROM scratch container), and
# without system CA certificates the registry client uses its bundled root store.
#
# Usage: scripts/release.sh         (profile `dist`; BUNKER_RELEASE_PROFILE=release keeps
#                                    debug info; CARGO_TARGET_DIR is honoured)
# Prints the executable's path on stdout; exits 1 if the result is not static.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

target=x86_64-unknown-linux-gnu
profile="${BUNKER_RELEASE_PROFILE:-dist}"
target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
output="$REPO_ROOT/dist/bunker-$(cut -d- -f1 <<<"$target")-linux"

fail() {
    echo "release.sh: $*" >&2
    exit 1
}

[[ "$(uname -m)" == x86_64 ]] || fail "this builds x86_64 executables on x86_64 Linux only (here: $(uname -m))"
command -v cargo >/dev/null || fail "cargo not found: install a stable Rust toolchain (https://rustup.rs)"
command -v readelf >/dev/null || fail "readelf not found: install binutils"
# crt-static links libc.a, libm.a, libpthread.a ... from glibc's development package.
libc_a="$(${CC:-cc} -print-file-name=libc.a 2>/dev/null || true)"
[[ "$libc_a" == /* && -f "$libc_a" ]] ||
    fail "glibc's static libraries (libc.a) are missing: install libc6-dev (Debian/Ubuntu) or glibc-static (Fedora)"

started=$SECONDS
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --bin bunker --profile "$profile" --target "$target" >&2
case "$profile" in
    dev) profile_dir=debug ;;
    *) profile_dir="$profile" ;;
esac
built="$target_dir/$target/$profile_dir/bunker"
[[ -x "$built" ]] || fail "cargo finished but $built is missing"

# Static: no program interpreter and no shared library needed (readelf comes with the
# binutils that link it; `file` and `ldd` would say "static-pie linked"/"statically linked").
headers="$(readelf -lW "$built")"
! grep -q INTERP <<<"$headers" ||
    fail "$built asks for a program interpreter, it is not static: $(grep -A1 INTERP <<<"$headers")"
needed="$(readelf -dW "$built" | { grep '(NEEDED)' || true; })"
[[ -z "$needed" ]] || fail "$built needs shared libraries, it is not static: $needed"

mkdir -p "$(dirname "$output")"
cp "$built" "$output.tmp"
mv -f "$output.tmp" "$output"
version="$("$output" --version)"
echo "release.sh: $version, $(du -h "$output" | cut -f1), built in $((SECONDS - started))s, static" >&2
echo "$output"
