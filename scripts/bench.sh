#!/usr/bin/env bash
# Side-by-side benchmark of `bunker image-archive` / `bunker image-restore` against the
# shell pipelines they replace, on the sandbox engine reached over SSH (issues 4, 5 and 15),
# at several link speeds in one run. Never part of the test suite: it takes minutes, loads
# the machine and its figures depend on the hardware.
#
#   scripts/bench.sh [--runs N] [--size-mb MB] [--link LIST] [--bunker PATH]
#                    [--results FILE | --no-results] [--no-second-run]
#                    [--prepare]   (only build/pull and push the bench image, then stop)
#                    [--note TEXT] (one line for the results header, e.g. where --bunker came from)
#
# --link LIST: comma-separated link speeds in Mbit/s, or `loopback` [default: 100,1000,loopback].
#   For a speed, a throttling TCP proxy (a python3 asyncio pacer written below, one rate per
#   direction shared by all connections, no added latency) sits between sshd and everything
#   that reaches it: bunker and the ssh of the pipelines alike.
#
# 1. Ensures a ~1 GB multi-layer FROM-scratch image made of real files (copied from
#    /usr/bin, /usr/lib, /usr/share) exists on the sandbox engine and in the sandbox
#    registry; it is built once and found again by its recipe hash.
# 2. Per link, N rounds of archive, the tools alternating within each round:
#      (a) ssh HOST 'docker save IMG | gzip' > file   (the pipeline bunker replaces)
#      (b) ssh HOST 'docker save IMG' > file          (loopback only: the export limit, and the
#                                                     engine's time to first byte)
#      (c) bunker image-archive                       (--wire-compression auto; peak RSS and CPU)
#      (n) bunker image-archive --wire-compression none (the raw API stream, as before issue 15)
#      (z) bunker image-archive --compression zstd    (loopback only, information: another format)
# 3. Per link, N rounds of restore, the image removed from the engine before each load:
#      (d) cat file.tar.gz | ssh HOST docker load
#      (e) bunker image-restore
#    (this replaces the former scripts/bench-restore.sh)
# 4. A second `bunker image-archive` of all of projects/ with nothing changed: wall time and
#    the bytes that crossed the SSH connection (counted by a local TCP relay).
# Prints a table per link (min / median, ratios against the targets of issue 15, the
# archive's floor = engine's first byte + bytes on the wire / link rate) and writes it,
# with the machine facts, to bench-results/<UTC date>.txt.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export BUNKER_SANDBOX_DIR="${BUNKER_SANDBOX_DIR:-$REPO_ROOT/.sandbox}"

RUNS=3
SIZE_MB=1024
LAYERS=7
BUNKER_BIN=""
RESULTS_FILE="bench-results/$(date -u +%F).txt"
RECIPE_VERSION=3
PREPARE_ONLY=false
NOTE=""
COMMAND_LINE="scripts/bench.sh $*"
LINKS="100,1000,loopback"
SECOND_RUN=true
BENCH_REPOSITORY="bunker-bench/realfiles"

die() {
    echo "bench.sh: $*" >&2
    exit 1
}
note() { printf '%s\n' "$*" >&2; }
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while (($#)); do
    case "$1" in
    --runs)
        [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive whole number, got '${2:-}'"
        RUNS="$2"
        shift 2
        ;;
    --size-mb)
        [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--size-mb needs a positive whole number, got '${2:-}'"
        SIZE_MB="$2"
        shift 2
        ;;
    --bunker)
        [[ -x "${2:-}" ]] || die "--bunker needs an executable file, got '${2:-}'"
        BUNKER_BIN="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
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
    --prepare)
        PREPARE_ONLY=true
        shift
        ;;
    --link)
        [[ "${2:-}" =~ ^(loopback|[1-9][0-9]*)(,(loopback|[1-9][0-9]*))*$ ]] ||
            die "--link needs comma-separated Mbit/s or 'loopback', got '${2:-}'"
        LINKS="$2"
        shift 2
        ;;
    --no-second-run)
        SECOND_RUN=false
        shift
        ;;
    --note)
        [[ -n "${2:-}" ]] || die "--note needs a text"
        NOTE="$2"
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown argument '$1' (see scripts/bench.sh --help)" ;;
    esac
done

for tool in docker ssh gzip python3 /usr/bin/time tar find sort awk; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install time openssh-client gzip python3 docker.io)"
done
[[ -f "$BUNKER_SANDBOX_DIR/env.sh" ]] ||
    die "sandbox not running: run scripts/sandbox.sh up (or set BUNKER_SANDBOX_DIR)"
# shellcheck disable=SC1091
source "$BUNKER_SANDBOX_DIR/env.sh"
export DOCKER_HOST="$SANDBOX_DOCKER_HOST"
docker version >/dev/null 2>&1 || die "sandbox engine at $SANDBOX_DOCKER_HOST does not answer: run scripts/sandbox.sh up"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/bunker-bench.XXXXXX")"
RELAY_PID=""
PROXY_PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    [[ -z "$RELAY_PID" ]] || kill "$RELAY_PID" 2>/dev/null || true
    local pid
    for pid in "${PROXY_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

REPORT="$WORK/report.txt"
out() { printf '%s\n' "$*" | tee -a "$REPORT"; }

# --- ssh for the pipelines, HOME for bunker, one port per link ------------------------------
KNOWN_HOSTS="$WORK/known_hosts"
cp "$SANDBOX_KNOWN_HOSTS" "$KNOWN_HOSTS"
SSH_CONFIG="$WORK/ssh_config"
: >"$SSH_CONFIG"
declare -A LINK_PORT
BUNKER_HOME="$WORK/home"
mkdir -p "$BUNKER_HOME/.ssh" "$BUNKER_HOME/.docker"
install -m 600 "$SANDBOX_SSH_KEY" "$BUNKER_HOME/.ssh/id_ed25519"
cp "$SANDBOX_KNOWN_HOSTS" "$BUNKER_HOME/.ssh/known_hosts"

# add_link NAME PORT: ssh alias bench-NAME, and 127.0.0.1:PORT in both known_hosts files.
add_link() {
    LINK_PORT[$1]="$2"
    cat >>"$SSH_CONFIG" <<EOF
Host bench-$1
  HostName $SANDBOX_SSH_HOST
  Port $2
  User $SANDBOX_SSH_USER
  IdentityFile $SANDBOX_SSH_KEY
  IdentitiesOnly yes
  UserKnownHostsFile $KNOWN_HOSTS
  StrictHostKeyChecking yes
  BatchMode yes
EOF
    if [[ "$2" != "$SANDBOX_SSH_PORT" ]]; then
        local host_key
        host_key="$(cut -d' ' -f1-2 "$SANDBOX_SSH_HOST_KEY_PUB")"
        echo "[$SANDBOX_SSH_HOST]:$2 $host_key" >>"$KNOWN_HOSTS"
        echo "[$SANDBOX_SSH_HOST]:$2 $host_key" >>"$BUNKER_HOME/.ssh/known_hosts"
    fi
}
LINK="loopback"
remote() { ssh -F "$SSH_CONFIG" "bench-$LINK" "$@"; }
ssh_url() { printf 'ssh://%s@%s:%s' "$SANDBOX_SSH_USER" "$SANDBOX_SSH_HOST" "${LINK_PORT[$LINK]}"; }
add_link loopback "$SANDBOX_SSH_PORT"
remote true || die "cannot ssh to the sandbox ($SANDBOX_SSH_USER@$SANDBOX_SSH_HOST:$SANDBOX_SSH_PORT): run scripts/sandbox.sh up"

# start_throttle MBIT: a pacing TCP proxy to sshd at MBIT Mbit/s each way, as link MBIT.
start_throttle() {
    cat >"$WORK/throttle.py" <<'EOF'
"""Throttling TCP proxy for the bench: each direction is paced to RATE Mbit/s, shared by all
connections (a link's capacity is shared), without added latency."""
import asyncio, os, sys, time

target_port, rate_mbit, port_file = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
rate = rate_mbit * 1e6 / 8  # bytes per second

class Pacer:
    def __init__(self):
        self.next = time.monotonic()

    async def take(self, n):
        now = time.monotonic()
        self.next = max(self.next, now) + n / rate
        if self.next - now > 0.001:
            await asyncio.sleep(self.next - now)

up, down = Pacer(), Pacer()

async def pump(reader, writer, pacer):
    try:
        while data := await reader.read(65536):
            await pacer.take(len(data))
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def handle(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    await asyncio.gather(pump(client_reader, server_writer, up),
                         pump(server_reader, client_writer, down),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    os.replace(port_file + ".tmp", port_file)
    await server.serve_forever()

asyncio.run(main())
EOF
    local port_file="$WORK/throttle-$1.port" tries=0
    python3 "$WORK/throttle.py" "$SANDBOX_SSH_PORT" "$1" "$port_file" &
    PROXY_PIDS+=("$!")
    until [[ -s "$port_file" ]]; do
        ((tries++ < 600)) || die "the throttling proxy (python3) did not start within 30 s"
        sleep 0.05
    done
    add_link "$1" "$(<"$port_file")"
}

# --- timing helpers -------------------------------------------------------------------------
now() { printf '%s' "${EPOCHREALTIME/[.,]/}"; } # microseconds
seconds_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }
file_bytes() { stat -c %s "$1"; }
tree_bytes() { find "$1" -type f -name '*.tar*' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }'; }
min_of() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | head -1; }
max_of() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | tail -1; }
kb_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median_of() {
    tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) print "";
        else if (NR % 2) print v[(NR + 1) / 2];
        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
verdict() { # VALUE OP LIMIT
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
        ok = (op == "<=") ? v <= l : (op == "<") ? v < l : (op == ">=") ? v >= l : 0;
        print ok ? "PASS" : "FAIL" }'
}

# --- bunker binary --------------------------------------------------------------------------
if [[ -z "$BUNKER_BIN" ]]; then
    note "building bunker (cargo build --release; a no-op when up to date)"
    cargo build --release --quiet --bin bunker >&2 || die "cargo build --release failed"
    BUNKER_BIN="$REPO_ROOT/target/release/bunker"
fi
bunker() { HOME="$BUNKER_HOME" DOCKER_HOST="" "$BUNKER_BIN" "$@"; }
has_flag() { bunker "$1" --help 2>/dev/null | grep -q -- "$2"; }
BUNKER_ARCHIVE=false
BUNKER_RESTORE=false
has_flag image-archive --output-dir && BUNKER_ARCHIVE=true
has_flag image-restore --archive-dir && BUNKER_RESTORE=true
# Re-archive / re-load even when bunker thinks the work is done (each round must do it all).
ARCHIVE_FORCE=()
RESTORE_FORCE=()
has_flag image-archive --force && ARCHIVE_FORCE=(--force)
has_flag image-restore --force && RESTORE_FORCE=(--force)
WIRE=false
has_flag image-archive --wire-compression && WIRE=true

# --- the bench image ------------------------------------------------------------------------
SOURCES=(/usr/bin /usr/lib /usr/share)
RECIPE="v$RECIPE_VERSION size=${SIZE_MB}MB layers=$LAYERS sources=${SOURCES[*]}"
RECIPE_HASH="$(printf '%s' "$RECIPE" | sha256sum | cut -c1-12)"
IMAGE="$SANDBOX_REGISTRY/$BENCH_REPOSITORY:$RECIPE_HASH"

# Writes NUL-separated "size<TAB>path" records of the files to copy, ~SIZE_MB split over SOURCES.
select_files() {
    local budget=$((SIZE_MB * 1000 * 1000 / ${#SOURCES[@]})) source
    for source in "${SOURCES[@]}"; do
        find "$source" -xdev -type f -readable -printf '%s\t%p\0' >"$WORK/found" 2>/dev/null || true
        sort -z -t $'\t' -k2 "$WORK/found" >"$WORK/sorted"
        awk -v RS='\0' -v ORS='\0' -v budget="$budget" '{
            split($0, f, "\t"); if (total >= budget) exit; total += f[1]; print }' "$WORK/sorted" \
            >"$WORK/selected"
        local selected
        selected="$(awk -v RS='\0' '{ split($0, f, "\t"); total += f[1] } END { print total + 0 }' "$WORK/selected")"
        ((selected >= budget * 9 / 10)) ||
            die "$source holds only $selected bytes of readable files, $budget wanted: lower --size-mb"
        cat "$WORK/selected"
    done
}

build_bench_image() {
    local context="$WORK/context" layer total=0 filled=0 layer_budget size path
    local -a sizes=() paths=()
    note "building $IMAGE: copying ~${SIZE_MB} MB of real files into $LAYERS layers"
    select_files >"$WORK/files"
    while IFS=$'\t' read -r -d '' size path; do
        sizes+=("$size")
        paths+=("${path#/}")
        total=$((total + size))
    done <"$WORK/files"
    ((${#paths[@]} >= LAYERS)) || die "found only ${#paths[@]} readable files in ${SOURCES[*]}"
    layer_budget=$((total / LAYERS + 1))
    for ((layer = 1; layer <= LAYERS; layer++)); do : >"$WORK/layer-$layer.list"; done
    layer=1
    for ((i = 0; i < ${#paths[@]}; i++)); do
        if ((filled >= layer_budget && layer < LAYERS)); then
            layer=$((layer + 1))
            filled=0
        fi
        printf '%s\0' "${paths[i]}" >>"$WORK/layer-$layer.list"
        filled=$((filled + sizes[i]))
    done
    mkdir -p "$context"
    {
        echo "FROM scratch"
        echo "LABEL org.opencontainers.image.title=\"bunker benchmark image\" bunker.bench.recipe=\"$RECIPE\""
        for ((layer = 1; layer <= LAYERS; layer++)); do
            mkdir -p "$context/layer-$layer"
            tar -C / --null -T "$WORK/layer-$layer.list" -cf - | tar -C "$context/layer-$layer" -xf -
            echo "COPY layer-$layer/ /"
        done
    } >"$context/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$context" >"$WORK/build.log" 2>&1 ||
        die "building $IMAGE failed: $(tail -5 "$WORK/build.log")"
    local built
    built="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
    if ((built < total * 9 / 10)); then
        docker rmi "$IMAGE" >/dev/null 2>&1 || true
        die "built $IMAGE holds $built bytes, $total copied into its context: check the engine's disk space"
    fi
    rm -rf "$context"
}

registry_has_image() {
    curl -fsS -o /dev/null \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$SANDBOX_REGISTRY/v2/$BENCH_REPOSITORY/manifests/$RECIPE_HASH" 2>/dev/null
}

ensure_bench_image() {
    if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
        if registry_has_image; then
            note "pulling $IMAGE from the sandbox registry"
            docker pull -q "$IMAGE" >/dev/null
        else
            build_bench_image
        fi
    fi
    if ! registry_has_image; then
        note "pushing $IMAGE to the sandbox registry (once)"
        docker push -q "$IMAGE" >/dev/null
    fi
}

# --- machine facts --------------------------------------------------------------------------
print_header() {
    out "bunker benchmark, $(date -u '+%F %T') UTC"
    out "command: $COMMAND_LINE (runs $RUNS, image size ${SIZE_MB} MB, links $LINKS)"
    if [[ "$BUNKER_BIN" == "$REPO_ROOT/target/release/bunker" ]]; then
        out "bunker: $("$BUNKER_BIN" --version 2>/dev/null || echo unknown), release build of commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
    else
        out "bunker: $("$BUNKER_BIN" --version 2>/dev/null || echo unknown), binary $BUNKER_BIN"
    fi
    [[ -z "$NOTE" ]] || out "note: $NOTE"
    out "machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1e6 }' /proc/meminfo) RAM, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    out "kernel: $(uname -r); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    out "engine: Docker $(docker version --format '{{.Server.Version}}'), storage driver $(docker info --format '{{.Driver}}'), reached over ssh on $SANDBOX_SSH_HOST:$SANDBOX_SSH_PORT (same machine)"
    out "tools: $(ssh -V 2>&1), $(gzip --version | head -1)"
    local bytes layers
    bytes="$(docker image inspect --format '{{.Size}}' "$IMAGE")"
    layers="$(docker image inspect --format '{{len .RootFS.Layers}}' "$IMAGE")"
    out "image: $IMAGE, $(mb "$bytes") uncompressed, $layers layers of files from ${SOURCES[*]}"
    out ""
}

# --- archive --------------------------------------------------------------------------------
declare -A TIMES SIZES PEAK_RSS CPU WIRE_BYTES WIRE_MODE
FIRST_BYTE=""

# record LABEL SECONDS BYTES (per link)
record() {
    TIMES[$1@$LINK]+="$2 "
    SIZES[$1@$LINK]="$3"
}

bench_project_dir() {
    local dir="$WORK/projects"
    mkdir -p "$dir/bench"
    cat >"$dir/bench/docker-compose.yaml" <<EOF
services:
  bench:
    image: $IMAGE
EOF
    printf '%s' "$dir"
}

# bunker_archive LABEL OUTPUT [ARGS...]: one timed image-archive (JSON report kept).
bunker_archive() {
    local label="$1" output="$2" start end rss_file="$WORK/$1.rss"
    shift 2
    rm -rf "$output"
    start="$(now)"
    HOME="$BUNKER_HOME" DOCKER_HOST="" /usr/bin/time -f '%U %S %M' -o "$rss_file" \
        "$BUNKER_BIN" --projects-dir "$PROJECTS" image-archive --host "$(ssh_url)" \
        --remote-socket "$SANDBOX_REMOTE_SOCKET" --output-dir "$output" --project bench \
        "${ARCHIVE_FORCE[@]}" --json "$@" >"$WORK/$label.json" 2>"$WORK/$label.log" ||
        die "($label) bunker image-archive $* failed at link $LINK: $(tail -5 "$WORK/$label.log")"
    end="$(now)"
    record "$label" "$(seconds_between "$start" "$end")" "$(tree_bytes "$output")"
    PEAK_RSS[$label@$LINK]+="$(tail -1 "$rss_file" | awk '{ print $3 }') "
    CPU[$label@$LINK]+="$(tail -1 "$rss_file" | awk '{ printf "%.1f", $1 + $2 }') "
    if [[ "$WIRE" == true ]]; then
        read -r WIRE_BYTES["$label@$LINK"] WIRE_MODE["$label@$LINK"] < <(python3 -c '
import json, sys
report = json.load(open(sys.argv[1]))
wire = report["report"].get("wire") or {}
print(report["totals"].get("bytes_received", 0), wire.get("compressor") or wire.get("mode", "?"))
' "$WORK/$label.json")
    fi
}

archive_round() {
    local round="$1" start end file
    file="$WORK/a-$LINK.tar.gz"
    start="$(now)"
    remote "docker save '$IMAGE' | gzip" >"$file"
    end="$(now)"
    record a "$(seconds_between "$start" "$end")" "$(file_bytes "$file")"
    (($(file_bytes "$file") > 1000000)) || die "(a) wrote only $(file_bytes "$file") bytes: is $IMAGE on the engine?"

    if [[ "$LINK" == loopback ]]; then
        file="$WORK/b.tar"
        start="$(now)"
        # The first block is read apart to time the engine's first byte: dockerd 20.10 writes the
        # whole image into a temporary directory before it sends anything.
        remote "docker save '$IMAGE'" | {
            dd bs=512 count=1 iflag=fullblock status=none
            now >"$WORK/b.first"
            cat
        } >"$file"
        end="$(now)"
        record b "$(seconds_between "$start" "$end")" "$(file_bytes "$file")"
        FIRST_BYTE+="$(seconds_between "$start" "$(<"$WORK/b.first")") "
        rm -f "$file"
    fi

    if [[ "$BUNKER_ARCHIVE" == true ]]; then
        bunker_archive c "$WORK/c-out-$LINK"
        if [[ "$WIRE" == true ]]; then
            bunker_archive n "$WORK/n-out" --wire-compression none
            rm -rf "$WORK/n-out"
        fi
        if [[ "$LINK" == loopback ]]; then
            # (z) the same with zstd: another format, shown for what the export alone allows.
            bunker_archive z "$WORK/z-out" --compression zstd
            rm -rf "$WORK/z-out"
        fi
    fi
    : "$round"
}

# --- restore --------------------------------------------------------------------------------
IMAGE_ID=""
remove_bench_image() { docker rmi -f "$IMAGE" >/dev/null; }
check_restored() { # LABEL
    local restored
    restored="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
    [[ "$restored" == "$IMAGE_ID" ]] || die "($1) restore at link $LINK left '${restored:-nothing}' under $IMAGE, expected $IMAGE_ID"
}

restore_round() {
    local round="$1" start end rss_file
    remove_bench_image
    start="$(now)"
    remote docker load <"$WORK/a-$LINK.tar.gz" >/dev/null
    end="$(now)"
    record d "$(seconds_between "$start" "$end")" "$(file_bytes "$WORK/a-$LINK.tar.gz")"
    check_restored d

    if [[ "$BUNKER_RESTORE" == true && -d "$WORK/c-out-$LINK" ]]; then
        # image-restore takes the architecture directory, the one holding manifest.json.
        local arch_dir
        arch_dir="$(find "$WORK/c-out-$LINK" -name manifest.json -printf '%h\n' | head -1)"
        [[ -n "$arch_dir" ]] || die "(c) left no manifest.json in its output directory"
        remove_bench_image
        rss_file="$WORK/e.rss"
        start="$(now)"
        HOME="$BUNKER_HOME" DOCKER_HOST="" /usr/bin/time -f '%M' -o "$rss_file" \
            "$BUNKER_BIN" --projects-dir "$PROJECTS" image-restore --host "$(ssh_url)" \
            --remote-socket "$SANDBOX_REMOTE_SOCKET" --archive-dir "$arch_dir" \
            "${RESTORE_FORCE[@]}" >"$WORK/e.log" 2>&1 ||
            die "(e) bunker image-restore failed in round $round at link $LINK: $(tail -5 "$WORK/e.log")"
        end="$(now)"
        record e "$(seconds_between "$start" "$end")" "$(tree_bytes "$WORK/c-out-$LINK")"
        PEAK_RSS[e@$LINK]+="$(tail -1 "$rss_file") "
        check_restored e
    fi
}

# --- second archive run of projects/, bytes counted by a relay ------------------------------
start_relay() { # writes the port to $WORK/relay.port, byte counts to $WORK/relay.bytes
    cat >"$WORK/relay.py" <<'EOF'
"""TCP relay that counts the bytes in each direction (for the bench only)."""
import asyncio, sys

target_port, port_file, bytes_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
totals = {"to_remote": 0, "from_remote": 0}

def save():
    with open(bytes_file, "w") as f:
        f.write(f"{totals['to_remote']} {totals['from_remote']}\n")

async def pump(reader, writer, key):
    try:
        while data := await reader.read(65536):
            totals[key] += len(data)
            save()  # after every chunk: the counts must not depend on when the relay is stopped
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
        save()

async def handle(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    await asyncio.gather(pump(client_reader, server_writer, "to_remote"),
                         pump(server_reader, client_writer, "from_remote"),
                         return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    save()
    with open(port_file, "w") as f:
        f.write(str(server.sockets[0].getsockname()[1]))
    await server.serve_forever()

asyncio.run(main())
EOF
    python3 "$WORK/relay.py" "$SANDBOX_SSH_PORT" "$WORK/relay.port" "$WORK/relay.bytes" &
    RELAY_PID=$!
    local tries=0
    until [[ -s "$WORK/relay.port" ]]; do
        ((tries++ < 600)) || die "the byte-counting relay (python3) did not start within 30 s"
        sleep 0.05
    done
    local host_key
    host_key="$(cut -d' ' -f1-2 "$SANDBOX_SSH_HOST_KEY_PUB")"
    echo "[$SANDBOX_SSH_HOST]:$(<"$WORK/relay.port") $host_key" >>"$BUNKER_HOME/.ssh/known_hosts"
}

prepare_projects_images() {
    local project
    for project in projects/*/; do
        [[ -f "$project/Makefile" ]] && grep -q '^build-hook-pre:' "$project/Makefile" &&
            make -s -C "$project" build-hook-pre >/dev/null
        (cd "$project" && DOCKER_BUILDKIT=0 docker-compose --env-file .env-dist --profile '*' build -q >/dev/null 2>&1 &&
            docker-compose --env-file .env-dist --profile '*' pull -q --ignore-buildable >/dev/null 2>&1) ||
            die "cannot build or pull the images of $project on the sandbox engine"
    done
}

SECOND_RUN_SECONDS=""
SECOND_RUN_BYTES=""
SECOND_RUN_SUMMARY=""
SECOND_RUN_LOG=""
second_run_on_projects() {
    local output="$WORK/projects-out" start end
    note "second run: images of projects/ on the engine, first archive run"
    prepare_projects_images
    bunker --projects-dir "$REPO_ROOT/projects" image-archive --host "$(ssh_url)" \
        --remote-socket "$SANDBOX_REMOTE_SOCKET" --output-dir "$output" >"$WORK/p1.log" 2>&1 ||
        die "first image-archive of projects/ failed: $(tail -5 "$WORK/p1.log")"
    start_relay
    note "second run: image-archive of projects/ again, through the byte-counting relay"
    start="$(now)"
    bunker --projects-dir "$REPO_ROOT/projects" image-archive \
        --host "ssh://$SANDBOX_SSH_USER@$SANDBOX_SSH_HOST:$(<"$WORK/relay.port")" \
        --remote-socket "$SANDBOX_REMOTE_SOCKET" --output-dir "$output" >"$WORK/p2.log" 2>&1 ||
        die "second image-archive of projects/ failed: $(tail -5 "$WORK/p2.log")"
    end="$(now)"
    SECOND_RUN_SECONDS="$(seconds_between "$start" "$end")"
    kill "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
    RELAY_PID=""
    SECOND_RUN_BYTES="$(awk '{ print $2 }' "$WORK/relay.bytes")"
    SECOND_RUN_SUMMARY="$(grep -E 'archived, .* skipped' "$WORK/p2.log" | tail -1 || true)"
    SECOND_RUN_LOG="$(<"$WORK/p2.log")"
}

# --- report ---------------------------------------------------------------------------------
row() { # LABEL DESCRIPTION (for the current LINK)
    local key="$1@$LINK" times rss
    times="${TIMES[$key]:-}"
    rss="${PEAK_RSS[$key]:-}"
    if [[ -z "$times" ]]; then
        out "$(printf '(%s) %-44s %s' "$1" "$2" "not measured")"
        return
    fi
    out "$(printf '(%s) %-44s %8ss %8ss %12s %10s' "$1" "$2" "$(min_of "$times")" "$(median_of "$times")" \
        "$(mb "${SIZES[$key]}")" "${rss:+$(kb_to_mb "$(max_of "$rss")") MB}")"
    local wire=""
    [[ -z "${WIRE_BYTES[$key]:-}" ]] || wire=", wire ${WIRE_MODE[$key]}: $(mb "${WIRE_BYTES[$key]}") on the wire"
    out "    runs: $times${wire}"
}

median() { median_of "${TIMES[$1@$LINK]:-}"; }

target_line() { # NAME VALUE OP LIMIT
    out "$(printf '  %-44s %8s  target %s %s  %s' "$1" "$2" "$3" "$4" "$(verdict "$2" "$3" "$4")")"
}

link_name() { if [[ "$LINK" == loopback ]]; then echo loopback; else echo "$LINK Mbit/s"; fi; }

# floor_of LABEL: engine's first byte + bytes on the wire / link rate (seconds), or "".
floor_of() {
    local first bytes="${WIRE_BYTES[$1@$LINK]:-}"
    first="$(median_of "$FIRST_BYTE")"
    [[ -n "$first" && -n "$bytes" && "$LINK" != loopback ]] || return 0
    awk -v f="$first" -v b="$bytes" -v m="$LINK" 'BEGIN { printf "%.2f", f + b * 8 / (m * 1e6) }'
}

report_link() {
    out "=== link: $(link_name) ==="
    out "$(printf '%-48s %9s %9s %12s %10s' "archive ($RUNS rounds, tools alternating)" "min" "median" "output" "peak RSS")"
    row a "ssh 'docker save IMG | gzip' > file"
    [[ "$LINK" != loopback ]] || row b "ssh 'docker save IMG' > file"
    row c "bunker image-archive (wire auto)"
    [[ "$WIRE" != true ]] || row n "bunker image-archive --wire-compression none"
    [[ "$LINK" != loopback ]] || row z "bunker image-archive --compression zstd"
    local a c n floor
    a="$(median a)"
    c="$(median c)"
    n="$(median n)"
    if [[ -n "$c" ]]; then
        out "ratios (medians):"
        case "$LINK" in
        loopback)
            target_line "c/a time (>= 3x faster)" "$(ratio "$c" "$a")" "<=" 0.33
            target_line "c/b time (within 1.3x of raw docker save)" "$(ratio "$c" "$(median b)")" "<=" 1.3
            target_line "c/a output size (no larger than gzip -6)" "$(ratio "${SIZES[c@$LINK]}" "${SIZES[a@$LINK]}")" "<=" 1.0
            target_line "bunker peak RSS (MB)" "$(kb_to_mb "$(max_of "${PEAK_RSS[c@$LINK]}")")" "<" 100
            ;;
        100)
            target_line "c/a time (>= 1.25x faster)" "$(ratio "$c" "$a")" "<=" 0.8
            ;;
        *)
            out "  c/a time: $(ratio "$c" "$a")"
            ;;
        esac
        floor="$(floor_of c)"
        if [[ -n "$floor" ]]; then
            out "  floor of (c): engine's first byte $(median_of "$FIRST_BYTE") s + $(mb "${WIRE_BYTES[c@$LINK]}") at $LINK Mbit/s = ${floor} s"
            target_line "c/floor time (within 1.15x)" "$(ratio "$c" "$floor")" "<=" 1.15
        fi
        if [[ "$LINK" == 1000 && -n "${TIMES[c@loopback]:-}" ]]; then
            local expected
            expected="$(awk -v l="$(median_of "${TIMES[c@loopback]}")" -v f="${floor:-0}" 'BEGIN { printf "%.2f", (l > f) ? l : f }')"
            target_line "c / max(c at loopback, floor) (no slower)" "$(ratio "$c" "$expected")" "<=" 1.15
        fi
        [[ -z "$n" ]] || out "  c/n time (wire auto vs the raw API stream): $(ratio "$c" "$n")"
        out "  (c) bunker CPU, user + system: $(median_of "${CPU[c@$LINK]}") s (runs: ${CPU[c@$LINK]} on $(nproc) CPUs)"
    fi
    if [[ "$LINK" == loopback && -n "$FIRST_BYTE" ]]; then
        out "  engine's first byte after $(median_of "$FIRST_BYTE") s (runs: $FIRST_BYTE; nothing flows before it)"
    fi
    out "$(printf '%-48s %9s %9s %12s %10s' "restore ($RUNS rounds, image removed before each)" "min" "median" "input" "peak RSS")"
    row d "cat file.tar.gz | ssh docker load"
    row e "bunker image-restore"
    local d e
    d="$(median d)"
    e="$(median e)"
    if [[ -n "$e" ]]; then
        target_line "e/d time (at least as fast)" "$(ratio "$e" "$d")" "<=" 1.0
        target_line "bunker peak RSS (MB)" "$(kb_to_mb "$(max_of "${PEAK_RSS[e@$LINK]}")")" "<" 100
    fi
    out ""
}

report() {
    local link
    for link in ${LINKS//,/ }; do
        LINK="$link"
        report_link
    done
    out "second image-archive run on projects/ with nothing changed:"
    if [[ -n "$SECOND_RUN_SECONDS" ]]; then
        target_line "wall time (s)" "$SECOND_RUN_SECONDS" "<" 2
        target_line "bytes from the remote (KB)" "$(awk -v b="$SECOND_RUN_BYTES" 'BEGIN { printf "%.1f", b / 1000 }')" "<" 1000
        [[ -z "$SECOND_RUN_SUMMARY" ]] || out "  bunker said: $SECOND_RUN_SUMMARY"
    else
        out "  not measured (--no-second-run, or bunker image-archive not available)"
    fi
    out ""
    out "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [[ -n "$SECOND_RUN_LOG" ]]; then
        out ""
        out "output of the second image-archive run on projects/:"
        out "$SECOND_RUN_LOG"
    fi
}

main() {
    ensure_bench_image
    if [[ "$PREPARE_ONLY" == true ]]; then
        note "$IMAGE is ready ($(mb "$(docker image inspect --format '{{.Size}}' "$IMAGE")"))"
        return
    fi
    IMAGE_ID="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
    PROJECTS="$(bench_project_dir)"
    print_header
    [[ "$BUNKER_ARCHIVE" == true ]] || note "bench.sh: bunker image-archive not available yet: measuring (a) and (b) only"
    [[ "$BUNKER_RESTORE" == true ]] || note "bench.sh: bunker image-restore not available yet: measuring (d) only"
    local round link
    # Loopback first: it measures the engine's first byte, which the other links' floors use.
    local ordered="loopback"
    for link in ${LINKS//,/ }; do [[ "$link" == loopback ]] || ordered+=" $link"; done
    [[ ",$LINKS," == *,loopback,* ]] || note "bench.sh: measuring the engine's first byte on loopback too (for the floors)"
    for link in $ordered; do
        LINK="$link"
        [[ "$LINK" == loopback ]] || start_throttle "$LINK"
        for ((round = 1; round <= RUNS; round++)); do
            note "link $(link_name): archive round $round/$RUNS"
            if [[ "$LINK" == loopback && ",$LINKS," != *,loopback,* ]]; then
                archive_first_byte_only
                break
            fi
            archive_round "$round"
        done
        [[ "$LINK" == loopback && ",$LINKS," != *,loopback,* ]] && continue
        for ((round = 1; round <= RUNS; round++)); do
            note "link $(link_name): restore round $round/$RUNS"
            restore_round "$round"
        done
        # The figures are recorded; the files are not needed any more (disk is shared).
        rm -rf "$WORK/a-$LINK.tar.gz" "$WORK/c-out-$LINK"
    done
    LINK=loopback
    [[ "$BUNKER_ARCHIVE" == true && "$SECOND_RUN" == true ]] && second_run_on_projects
    out ""
    report
    if [[ -n "$RESULTS_FILE" ]]; then
        mkdir -p "$(dirname "$RESULTS_FILE")"
        cp "$REPORT" "$RESULTS_FILE"
        note "results written to $RESULTS_FILE"
    fi
}

# The engine's wait before its first byte, without the rest of a loopback round.
archive_first_byte_only() {
    local start
    start="$(now)"
    remote "docker save '$IMAGE'" | {
        dd bs=512 count=1 iflag=fullblock status=none
        now >"$WORK/b.first"
        cat >/dev/null
    }
    FIRST_BYTE+="$(seconds_between "$start" "$(<"$WORK/b.first")") "
}

# One line, so that bash never reads past it (edits to a running script stay harmless).
main; exit
