#!/usr/bin/env bash
# The main job on the embedded default, end to end: the sandbox plays the remote server,
# projects/ is the infrastructure. It runs, through bunker only:
#
#   catalog → build → archive → (the server dies: engine wiped, registry gone)
#           → restore → install with BUILD=false → every project running again
#
# Usage: sudo scripts/demo.sh       (state in ${BUNKER_SANDBOX_DIR:-<repo>/.sandbox})
#
# It needs root, as scripts/sandbox.sh does (private dockerd; `engine-reset` deletes its
# data directory), and it WIPES that sandbox's engine: never point it at a sandbox other
# people use. projects/ pulls from ${BUNKER_REGISTRY:-localhost:5999}; the demo sets it to
# the sandbox registry, whatever its port. BUNKER_BIN=/absolute/path uses that binary
# instead of `cargo build`.
#
# The engine is reached over real SSH (russh, ~/.ssh/config-style alias `sandbox`) from a
# demo HOME inside the sandbox state, so your own ~/.ssh is never read or changed. The
# archive goes to _archive/images (git-ignored). At the end the registries are started
# again (`scripts/sandbox.sh up`); `scripts/sandbox.sh down` stops everything.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export BUNKER_SANDBOX_DIR="${BUNKER_SANDBOX_DIR:-$REPO_ROOT/.sandbox}"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[[ "$(id -u)" == 0 ]] || die "needs root like scripts/sandbox.sh (private dockerd): run it with sudo"
# Settings from the caller's shell would change what bunker does (BUILD=false would stop
# step 3, DOCKER_CONTEXT/DOCKER_CONFIG would pick another root .env_<context>).
unset BUILD IMAGE_ARCHIVE_DIR DOCKER_HOST DOCKER_CONTEXT DOCKER_CONFIG BUNKER_PROJECTS_DIR

step "sandbox: private engine, sshd and registries on 127.0.0.1"
bash scripts/sandbox.sh up
# shellcheck disable=SC1091
source "$BUNKER_SANDBOX_DIR/env.sh"
# projects/ names its registry ${BUNKER_REGISTRY:-localhost:5999}: the sandbox's, on any port.
export BUNKER_REGISTRY="localhost:$SANDBOX_REGISTRY_PORT"

if [[ -n "${BUNKER_BIN:-}" ]]; then
    bunker_bin="$BUNKER_BIN"
else
    step "building bunker"
    cargo build --quiet --bin bunker
    bunker_bin="$REPO_ROOT/target/debug/bunker"
fi

# A HOME whose ~/.ssh knows the sandbox server, as a user's would.
demo_home="$BUNKER_SANDBOX_DIR/demo-home"
mkdir -p "$demo_home/.ssh"
chmod 700 "$demo_home/.ssh"
install -m 600 "$SANDBOX_SSH_KEY" "$demo_home/.ssh/id_ed25519"
cp "$SANDBOX_KNOWN_HOSTS" "$demo_home/.ssh/known_hosts"
cat >"$demo_home/.ssh/config" <<EOF
Host sandbox
    HostName $SANDBOX_SSH_HOST
    Port $SANDBOX_SSH_PORT
    User $SANDBOX_SSH_USER
    IdentityFile ~/.ssh/id_ed25519
EOF
bunker() { # commands on the server's engine, over SSH to the alias
    HOME="$demo_home" \
        BUNKER_REMOTE_SOCKET="$SANDBOX_REMOTE_SOCKET" \
        "$bunker_bin" --projects-dir "$REPO_ROOT/projects" "$@" --host ssh://sandbox
}
bunker_offline() { # commands without an engine
    HOME="$demo_home" "$bunker_bin" --projects-dir "$REPO_ROOT/projects" "$@"
}
archive_dir="$REPO_ROOT/_archive/images"

step "1. image-catalog: every image projects/ needs"
bunker_offline image-catalog

step "2. engine info over SSH"
bunker engine info

step "3. image-build: pull and build everything on the server"
bunker image-build

step "4. image-archive: stream every image off the server into $archive_dir"
bunker image-archive --output-dir "$archive_dir"

step "5. archive verify: every file against its manifest"
bunker_offline archive verify --archive-dir "$archive_dir"

step "6. disaster: the registries disappear, the server's engine loses all its data"
bash scripts/sandbox.sh registry-stop
bash scripts/sandbox.sh engine-reset
bunker engine info # a fresh engine: Images: 0

step "7. image-restore: verify and load every archive onto the new engine"
bunker image-restore --archive-dir "$archive_dir"

step "8. install --all with BUILD=false: projects up from restored images only"
BUILD=false bunker install --all

step "running containers on the restored server"
DOCKER_HOST="$SANDBOX_DOCKER_HOST" docker ps --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}'

step "registries back (the engine keeps the restored images): scripts/sandbox.sh up"
bash scripts/sandbox.sh up >/dev/null
echo "done: every project is running again from $archive_dir" >&2
