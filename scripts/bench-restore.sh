#!/usr/bin/env bash
# Restore benchmark (issue 5): `bunker image-restore` of a ~1 GB image against the pipeline it
# replaces, `gunzip -c FILE | ssh HOST docker load`, in the same run, on the same engine.
# Never part of the test suite: it takes minutes and its figures depend on the machine.
#
#   scripts/bench-restore.sh [--runs N] [--bunker PATH] [--image REF] [--results FILE | --no-results]
#
# It starts a private sandbox (its own dockerd and sshd; the shared one is never touched, so
# nobody else's images are removed), pulls REF into it (default: the ~1 GB image of real files
# that `scripts/bench.sh --prepare` pushes to the shared sandbox registry), archives it the way
# archives of this kind are made (`docker save | gzip`, standard gzip, plus a manifest.json with
# size, SHA-256 and image ID), then for each round removes the image and restores it with
#   (d) gunzip -c FILE | ssh HOST docker load
#   (e) bunker image-restore --archive-dir DIR      (peak RSS with /usr/bin/time)
# alternating which goes first. Each restore is checked to give back the same image ID.
# Targets: median (e) / median (d) <= 1.0, peak RSS of (e) < 100 MB.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
RUNS=3
BUNKER_BIN=""
IMAGE=""
RESULTS_FILE="bench-results/restore-$(date -u +%F).txt"
SHARED_SANDBOX="${BUNKER_SHARED_SANDBOX_DIR:-/work/sandbox}"

die() {
    echo "bench-restore.sh: $*" >&2
    exit 1
}
note() { printf '%s\n' "$*" >&2; }

while (($#)); do
    case "$1" in
    --runs)
        [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive whole number, got '${2:-}'"
        RUNS="$2"
        shift 2
        ;;
    --bunker)
        [[ -x "${2:-}" ]] || die "--bunker needs an executable file, got '${2:-}'"
        BUNKER_BIN="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
        shift 2
        ;;
    --image)
        [[ -n "${2:-}" ]] || die "--image needs an image reference"
        IMAGE="$2"
        shift 2
        ;;
    --results)
        [[ -n "${2:-}" ]] || die "--results needs a file name"
        RESULTS_FILE="$2"
        shift 2
        ;;
    --no-results)
        RESULTS_FILE=""
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

for tool in docker ssh gzip gunzip python3 /usr/bin/time sha256sum curl; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

if [[ -z "$IMAGE" ]]; then
    [[ -f "$SHARED_SANDBOX/env.sh" ]] ||
        die "no --image and no shared sandbox at $SHARED_SANDBOX: run scripts/sandbox.sh up and scripts/bench.sh --prepare"
    registry="$(sed -n 's/^export SANDBOX_REGISTRY=//p' "$SHARED_SANDBOX/env.sh")"
    # The largest bench image in the shared registry (bench.sh's recipes differ in size).
    tag="$(python3 - "$registry" <<'PY' || true
import json, sys, urllib.request
registry = sys.argv[1]
base = f"http://{registry}/v2/bunker-bench/realfiles"
accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
tags = json.load(urllib.request.urlopen(f"{base}/tags/list")).get("tags") or []
def size(tag):
    request = urllib.request.Request(f"{base}/manifests/{tag}", headers=accept)
    return sum(layer["size"] for layer in json.load(urllib.request.urlopen(request))["layers"])
print(max(tags, key=size) if tags else "")
PY
)"
    [[ -n "$tag" ]] || die "no bench image in $registry: run scripts/bench.sh --prepare first (or pass --image)"
    IMAGE="$registry/bunker-bench/realfiles:$tag"
fi

if [[ -z "$BUNKER_BIN" ]]; then
    note "building bunker (cargo build --release; a no-op when up to date)"
    cargo build --release --quiet --bin bunker >&2 || die "cargo build --release failed"
    BUNKER_BIN="$REPO_ROOT/target/release/bunker"
fi

WORK="$(mktemp -d /tmp/bunker-bench-restore.XXXXXX)"
export BUNKER_SANDBOX_DIR="$WORK/sandbox"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    scripts/sandbox.sh down --purge >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
note "starting a private sandbox in $BUNKER_SANDBOX_DIR"
SANDBOX_SSH_PORT="$(free_port)" SANDBOX_REGISTRY_PORT="$(free_port)" SANDBOX_AUTH_REGISTRY_PORT="$(free_port)" \
    scripts/sandbox.sh up >"$WORK/sandbox-up.log" 2>&1 || die "private sandbox did not start: $(tail -5 "$WORK/sandbox-up.log")"
# shellcheck disable=SC1091
source "$BUNKER_SANDBOX_DIR/env.sh"
export DOCKER_HOST="$SANDBOX_DOCKER_HOST"

note "pulling $IMAGE into the private engine"
docker pull -q "$IMAGE" >/dev/null || die "cannot pull $IMAGE"
IMAGE_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
IMAGE_BYTES="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
LAYERS="$(docker image inspect --format '{{len .RootFS.Layers}}' "$IMAGE")"

ARCH="$(docker info --format '{{.Architecture}}')"
ARCH_DIR="$WORK/archive/$ARCH"
FILE_NAME="$(printf '%s' "$IMAGE" | sed 's/[^A-Za-z0-9_.-]/_/g').tar.gz"
mkdir -p "$ARCH_DIR/bench"
ARCHIVE="$ARCH_DIR/bench/$FILE_NAME"
note "archiving it: docker save | gzip -6 > $ARCHIVE"
docker save "$IMAGE" | gzip -6 >"$ARCHIVE"
python3 - "$ARCH_DIR/manifest.json" "$IMAGE" "bench/$FILE_NAME" "$ARCHIVE" "$IMAGE_ID" "$ARCH" <<'PY'
import hashlib, json, os, sys
manifest, image, relative, path, image_id, arch = sys.argv[1:]
digest = hashlib.sha256()
with open(path, "rb") as f:
    while chunk := f.read(1 << 20):
        digest.update(chunk)
json.dump({"schema_version": 1, "arch": arch, "images": [{
    "project": "bench", "image": image, "file": relative, "size": os.path.getsize(path),
    "sha256": digest.hexdigest(), "docker_id": image_id, "compression": "gzip"}]},
    open(manifest, "w"), indent=2)
PY

SSH_CONFIG="$WORK/ssh_config"
cat >"$SSH_CONFIG" <<EOF
Host bench
  HostName $SANDBOX_SSH_HOST
  Port $SANDBOX_SSH_PORT
  User $SANDBOX_SSH_USER
  IdentityFile $SANDBOX_SSH_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $SANDBOX_KNOWN_HOSTS
  StrictHostKeyChecking yes
  BatchMode yes
EOF
BUNKER_HOME="$WORK/home"
mkdir -p "$BUNKER_HOME/.ssh" "$BUNKER_HOME/.docker"
install -m 600 "$SANDBOX_SSH_KEY" "$BUNKER_HOME/.ssh/id_ed25519"
cp "$SANDBOX_KNOWN_HOSTS" "$BUNKER_HOME/.ssh/known_hosts"

now() { printf '%s' "${EPOCHREALTIME/[.,]/}"; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }
removed() { docker rmi -f "$IMAGE" >/dev/null && ! docker image inspect "$IMAGE_ID" >/dev/null 2>&1; }
check_restored() {
    local got
    got="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
    [[ "$got" == "$IMAGE_ID" ]] || die "($1) left '${got:-nothing}' under $IMAGE, expected $IMAGE_ID"
}
PIPELINE_TIMES=""
BUNKER_TIMES=""
BUNKER_RSS=""
run_pipeline() {
    removed || die "cannot remove $IMAGE before (d)"
    local start
    start="$(now)"
    gunzip -c "$ARCHIVE" | ssh -F "$SSH_CONFIG" bench docker load >/dev/null
    PIPELINE_TIMES+="$(seconds_since "$start") "
    check_restored d
}
run_bunker() {
    removed || die "cannot remove $IMAGE before (e)"
    local start
    start="$(now)"
    HOME="$BUNKER_HOME" DOCKER_HOST="" /usr/bin/time -f '%M' -o "$WORK/e.rss" \
        "$BUNKER_BIN" image-restore --host "ssh://$SANDBOX_SSH_USER@$SANDBOX_SSH_HOST:$SANDBOX_SSH_PORT" \
        --remote-socket "$SANDBOX_REMOTE_SOCKET" --archive-dir "$ARCH_DIR" >"$WORK/e.log" 2>&1 ||
        die "(e) bunker image-restore failed: $(tail -5 "$WORK/e.log")"
    BUNKER_TIMES+="$(seconds_since "$start") "
    BUNKER_RSS+="$(tail -1 "$WORK/e.rss") "
    check_restored e
    grep -q "1 loaded" "$WORK/e.log" || die "(e) did not load the image: $(cat "$WORK/e.log")"
}

for ((round = 1; round <= RUNS; round++)); do
    note "round $round/$RUNS"
    if ((round % 2)); then
        run_pipeline
        run_bunker
    else
        run_bunker
        run_pipeline
    fi
done

stats() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END {
    median = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "%8.2f %8.2f", v[1], median }'; }
median() { stats "$1" | awk '{ print $2 }'; }
peak_rss_mb() { tr ' ' '\n' <<<"$BUNKER_RSS" | sed '/^$/d' | sort -g | tail -1 | awk '{ printf "%.1f", $1 / 1024 }'; }
REPORT="$WORK/report.txt"
RATIO="$(awk -v e="$(median "$BUNKER_TIMES")" -v d="$(median "$PIPELINE_TIMES")" 'BEGIN { printf "%.2f", e / d }')"
RSS_MB="$(peak_rss_mb)"
{
    echo "bunker restore benchmark, $(date -u '+%F %T') UTC, $RUNS rounds"
    echo "bunker: $("$BUNKER_BIN" --version), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (dirty)')"
    echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1e6 }' /proc/meminfo) RAM; load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "engine: Docker $(docker version --format '{{.Server.Version}}') ($(docker info --format '{{.Driver}}')), private sandbox, over ssh on 127.0.0.1"
    echo "image: $IMAGE, $(awk -v b="$IMAGE_BYTES" 'BEGIN { printf "%.0f MB", b / 1e6 }'), $LAYERS layers; archive $(awk -v b="$(stat -c %s "$ARCHIVE")" 'BEGIN { printf "%.0f MB", b / 1e6 }') (gzip -6)"
    echo ""
    printf '%-46s %8s %8s %12s\n' "restore, image removed before each" "min s" "median s" "peak RSS"
    printf '%-46s %s %12s\n' "(d) gunzip -c FILE | ssh HOST docker load" "$(stats "$PIPELINE_TIMES")" "-"
    printf '%-46s %s %9s MB\n' "(e) bunker image-restore" "$(stats "$BUNKER_TIMES")" "$RSS_MB"
    echo ""
    echo "ratio (e)/(d), medians: $RATIO (target <= 1.0: $(awk -v r="$RATIO" 'BEGIN { print (r <= 1.0) ? "PASS" : "FAIL" }'))"
    echo "peak RSS of (e): $RSS_MB MB (target < 100 MB: $(awk -v r="$RSS_MB" 'BEGIN { print (r < 100) ? "PASS" : "FAIL" }'))"
    echo "all times (s): (d) $PIPELINE_TIMES; (e) $BUNKER_TIMES"
} >"$REPORT"
cat "$REPORT"
if [[ -n "$RESULTS_FILE" ]]; then
    mkdir -p "$(dirname "$RESULTS_FILE")"
    cp "$REPORT" "$RESULTS_FILE"
    note "results written to $RESULTS_FILE"
fi
