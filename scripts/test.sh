#!/usr/bin/env bash
# The single test command for bunker (CI runs it through .ci/run).
#
# 1. installs what is missing and starts the sandbox with both engines (ENGINE2=1
#    scripts/sandbox.sh up: Docker 20.10 and Docker 26 with the containerd image store),
#    unless the sandbox in ${BUNKER_SANDBOX_DIR:-<repo>/.sandbox} already runs;
# 2. builds everything once, then runs cargo fmt --check, cargo clippy -D warnings,
#    builds the static release executable once (scripts/release.sh, exported as
#    BUNKER_STATIC_BINARY for tests/static_binary.rs) and cargo test (all tests, with the
#    sandbox environment exported), then the engine-facing test binaries (ENGINE2_TESTS)
#    a second time against engine 2 (BUNKER_TEST_ENGINE=2);
# 3. stops the sandbox again if this script started it.
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export BUNKER_SANDBOX_DIR="${BUNKER_SANDBOX_DIR:-$REPO_ROOT/.sandbox}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"

say() { printf '\n=== %s\n' "$*" >&2; }

command -v cargo >/dev/null ||
    {
        echo "test.sh: cargo not found: install a stable Rust toolchain (https://rustup.rs)" >&2
        exit 1
    }
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        if ! { command -v rustup >/dev/null && rustup component add "$component" >&2; }; then
            echo "test.sh: cargo $component is missing: rustup component add $component" >&2
            exit 1
        fi
    fi
done

started_sandbox=false
stop_sandbox() {
    if [[ "$started_sandbox" == true ]]; then
        say "stopping the sandbox this run started"
        bash scripts/sandbox.sh down || true
    fi
}
trap stop_sandbox EXIT

# Anything of the sandbox already running means somebody else owns it: reuse, never stop.
sandbox_status="$(bash scripts/sandbox.sh status 2>/dev/null || true)"
if grep -q ' running ' <<<"$sandbox_status"; then
    say "using the running sandbox in $BUNKER_SANDBOX_DIR"
    # idempotent: restarts missing parts, refreshes seeds and env.sh
    ENGINE2=1 bash scripts/sandbox.sh up
else
    say "starting the sandbox in $BUNKER_SANDBOX_DIR"
    started_sandbox=true
    ENGINE2=1 bash scripts/sandbox.sh up
fi
# shellcheck disable=SC1091
source "$BUNKER_SANDBOX_DIR/env.sh"

declare -a failed=()
step() { # NAME COMMAND...
    local name="$1" started=$SECONDS
    shift
    say "$name: $*"
    if "$@"; then
        echo "--- $name: ok ($((SECONDS - started))s)" >&2
    else
        echo "--- $name: FAILED ($((SECONDS - started))s)" >&2
        failed+=("$name")
    fi
}

step build cargo build --locked --all-targets
step fmt cargo fmt --all -- --check
step clippy cargo clippy --locked --all-targets -- -D warnings
# Once per run, not per test; unset if it fails, and tests/static_binary.rs then says so.
# The `static-check` profile links exactly as the shipped `dist` one in half the CPU time
# (no optimisation); `scripts/release.sh` alone builds `dist`.
release() {
    local binary
    binary="$(BUNKER_RELEASE_PROFILE=static-check bash scripts/release.sh)" &&
        export BUNKER_STATIC_BINARY="$binary"
}
step release release
step test cargo test --locked --no-fail-fast
# The engine matrix: what talks to the engine runs again on Docker 26 (containerd image
# store). Same build, so this only costs the test time.
ENGINE2_TESTS=(image_build image_archive install disaster_drill)
step "test on engine 2" env BUNKER_TEST_ENGINE=2 cargo test --locked --no-fail-fast \
    "${ENGINE2_TESTS[@]/#/--test=}"

if ((${#failed[@]} > 0)); then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "all checks passed"
