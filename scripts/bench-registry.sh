#!/usr/bin/env bash
# Side-by-side benchmark of registry work without Docker: bunker vs skopeo.
#
# Ten images in the sandbox registry share a base layer (BASE_MB of
# incompressible data) and each adds a small layer of its own. Measured:
#   1. pull all ten, ROUNDS times after one unmeasured warm-up pull each (the
#      two tools take turns going first, each round into fresh directories, so
#      bunker's blob cache starts empty):
#      `bunker registry pull` (one run, plain docker-save tars, like skopeo's)
#      vs `skopeo copy docker://… docker-archive:…` once per image (skopeo's
#      defaults). Every archive of the first round is then `docker load`ed
#      into the sandbox engine and must yield the pushed image ID; every
#      round's bunker archive directory must pass `bunker archive verify`.
#      Then one bunker pull to gzip archives (level 1), for reference;
#   2. registry → registry: `bunker sync` vs `skopeo sync`, then the same
#      again with nothing changed.
# Also prints bunker's downloaded bytes next to the unique bytes of the ten
# images (the target: every blob fetched once), and the 1-minute load average
# at the end of each measurement (the machine may be shared).
#
# Usage: scripts/bench-registry.sh   (needs `scripts/sandbox.sh up`; builds bunker --release)
#        BASE_MB=64 ROUNDS=3 RESULTS=bench-results/registry.txt BUNKER_PROFILE=dev scripts/bench-registry.sh
# RESULTS: a file the figures are appended to (default: none, printed only).
set -euo pipefail
cd "$(dirname "$0")/.."
export BUNKER_SANDBOX_DIR="${BUNKER_SANDBOX_DIR:-$PWD/.sandbox}"
if [[ ! -f "$BUNKER_SANDBOX_DIR/env.sh" ]]; then
  echo "sandbox not running: run scripts/sandbox.sh up" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$BUNKER_SANDBOX_DIR/env.sh"
BASE_MB="${BASE_MB:-64}"
ROUNDS="${ROUNDS:-3}"
COUNT=10
# BUNKER_PROFILE=dev skips the long release build (dependencies are optimised
# in the dev profile too, so the I/O-bound numbers barely differ).
if [[ "${BUNKER_PROFILE:-release}" == dev ]]; then
  cargo build --quiet
  BUNKER="$PWD/target/debug/bunker"
else
  cargo build --release --quiet
  BUNKER="$PWD/target/release/bunker"
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
RUN="bench$(date +%s)"

echo "== preparing $COUNT images ($BASE_MB MiB shared base layer) in $SANDBOX_REGISTRY/$RUN"
python3 - "$WORK" "$BASE_MB" "$COUNT" <<'PY'
import hashlib, io, json, os, sys, tarfile
work, base_mb, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def layer(files):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name); info.size = len(data); info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
base = layer([("base.bin", os.urandom(base_mb << 20))])
for n in range(count):
    own = layer([(f"app{n}.bin", os.urandom(256 << 10))])
    layers = [base, own]
    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "base"}, {"created_by": f"app {n}"}]}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    with tarfile.open(f"{work}/img{n}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
        add("manifest.json", json.dumps([{"Config": f"{config_hex}.json", "RepoTags": [f"img{n}:1"],
            "Layers": [d[7:] + ".tar" for d in diff_ids]}]).encode())
        add(f"{config_hex}.json", config)
        for l, d in zip(layers, diff_ids):
            add(d[7:] + ".tar", l)
PY
IMAGES=()
for n in $(seq 0 $((COUNT - 1))); do
  skopeo copy --quiet --dest-tls-verify=false "docker-archive:$WORK/img$n.tar" "docker://$SANDBOX_REGISTRY/$RUN/img$n:1"
  IMAGES+=("$SANDBOX_REGISTRY/$RUN/img$n:1")
  rm "$WORK/img$n.tar"
done
UNIQUE=$(for image in "${IMAGES[@]}"; do skopeo inspect --raw --tls-verify=false "docker://$image"; echo; done |
  python3 -c 'import json,sys
seen={}
for line in sys.stdin:
    line=line.strip()
    if not line: continue
    m=json.loads(line)
    for d in [m["config"]]+m["layers"]: seen[d["digest"]]=d["size"]
print(sum(seen.values()))')

# Every measurement starts with the page cache flushed, so one tool's pending
# writes are not charged to the next; it ends once its own writes are on disk.
seconds() { sync; python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
load() { cut -d' ' -f1 /proc/loadavg; }
export DOCKER_HOST="$SANDBOX_DOCKER_HOST"

bunker_pull() { # DIR
  "$BUNKER" registry pull "${IMAGES[@]}" --archive-dir "$1" --compression none --json > "$1.json"
}
skopeo_pull() { # DIR
  mkdir -p "$1"
  for n in $(seq 0 $((COUNT - 1))); do
    skopeo copy --quiet --src-tls-verify=false "docker://${IMAGES[$n]}" "docker-archive:$1/img$n.tar:${IMAGES[$n]}"
  done
}
# docker load of one archive must report the image ID the registry holds.
load_check() { # ARCHIVE INDEX
  local expected loaded
  expected=$(skopeo inspect --raw --tls-verify=false "docker://${IMAGES[$2]}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')
  loaded=$(docker load --input "$1" | sed -n 's/^Loaded image ID: //p; s/^Loaded image: //p' | tail -1)
  if [[ "$(docker image inspect --format '{{.Id}}' "${IMAGES[$2]}")" != "$expected" ]]; then
    echo "FAILED: $1 did not load as ${IMAGES[$2]} ($expected); docker said: $loaded" >&2
    exit 1
  fi
  docker image rm --force "${IMAGES[$2]}" > /dev/null
}

echo "== 1. pull ten images into docker-load-able archives, $ROUNDS rounds"
# One unmeasured pull by each tool first, so that neither pays alone for
# bringing the registry's blob files and its own binary into the page cache.
bunker_pull "$WORK/warmup-bunker"; skopeo_pull "$WORK/warmup-skopeo"
rm -rf "$WORK/warmup-bunker" "$WORK/warmup-skopeo" "$WORK/warmup-bunker.json"
BUNKER_TIMES=(); SKOPEO_TIMES=(); ROUND_LINES=()
for round in $(seq 1 "$ROUNDS"); do
  order=(bunker skopeo); (( round % 2 == 0 )) && order=(skopeo bunker)
  line="round $round:"
  for tool in "${order[@]}"; do
    dir="$WORK/round$round-$tool"
    start=$(seconds); "${tool}_pull" "$dir"; end=$(seconds)
    took=$(elapsed "$start" "$end")
    line+=" $tool ${took}s (load $(load))"
    if [[ $tool == bunker ]]; then BUNKER_TIMES+=("$took"); else SKOPEO_TIMES+=("$took"); fi
  done
  ROUND_LINES+=("$line"); echo "$line"
  "$BUNKER" archive verify --archive-dir "$WORK/round$round-bunker" > /dev/null
  if (( round == 1 )); then
    DOWNLOADED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["downloaded_bytes"])' "$WORK/round1-bunker.json")
    mapfile -t BUNKER_TARS < <(python3 -c 'import json,sys
for image in sorted(json.load(open(sys.argv[1]))["images"], key=lambda i: i["reference"]):
    print(image["images"][0]["output"])' "$WORK/round1-bunker.json")
    for n in $(seq 0 $((COUNT - 1))); do
      load_check "${BUNKER_TARS[$n]}" "$n"
      load_check "$WORK/round1-skopeo/img$n.tar" "$n"
    done
    echo "   all $((2 * COUNT)) archives of round 1 docker-load as the pushed image IDs"
  fi
  rm -rf "$WORK/round$round-bunker" "$WORK/round$round-skopeo"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f\n", (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
BUNKER_PULL=$(median "${BUNKER_TIMES[@]}"); SKOPEO_PULL=$(median "${SKOPEO_TIMES[@]}")
# bunker's default output: gzip archives (here level 1).
start=$(seconds)
"$BUNKER" registry pull "${IMAGES[@]}" --archive-dir "$WORK/bunker-gzip" --compression-level 1 > /dev/null
end=$(seconds); BUNKER_PULL_GZIP=$(elapsed "$start" "$end"); GZIP_LOAD=$(load)
rm -rf "$WORK/bunker-gzip"

echo "== 2. registry -> registry sync, then an unchanged re-sync"
cat > "$WORK/sync.yaml" <<YAML
repositories:
$(for n in $(seq 0 $((COUNT - 1))); do printf '  - source: %s/%s/img%s\n    destination: %s/%s-bunker/img%s\n' "$SANDBOX_REGISTRY" "$RUN" "$n" "$SANDBOX_REGISTRY" "$RUN" "$n"; done)
YAML
cat > "$WORK/skopeo-sync.yaml" <<YAML
$SANDBOX_REGISTRY:
  tls-verify: false
  images:
$(for n in $(seq 0 $((COUNT - 1))); do printf '    %s/img%s: ["1"]\n' "$RUN" "$n"; done)
YAML
start=$(seconds); "$BUNKER" sync --config "$WORK/sync.yaml" --archive-dir "$WORK/sync-cache" > /dev/null; end=$(seconds)
BUNKER_SYNC=$(elapsed "$start" "$end"); SYNC_LOADS="$(load)"
start=$(seconds); "$BUNKER" sync --config "$WORK/sync.yaml" --archive-dir "$WORK/sync-cache" > /dev/null; end=$(seconds)
BUNKER_RESYNC=$(elapsed "$start" "$end"); SYNC_LOADS+=" $(load)"
start=$(seconds)
skopeo sync --src yaml --dest docker --dest-tls-verify=false "$WORK/skopeo-sync.yaml" "$SANDBOX_REGISTRY/$RUN-skopeo" > /dev/null 2>&1
end=$(seconds); SKOPEO_SYNC=$(elapsed "$start" "$end"); SYNC_LOADS+=" $(load)"
start=$(seconds)
skopeo sync --src yaml --dest docker --dest-tls-verify=false "$WORK/skopeo-sync.yaml" "$SANDBOX_REGISTRY/$RUN-skopeo" > /dev/null 2>&1
end=$(seconds); SKOPEO_RESYNC=$(elapsed "$start" "$end"); SYNC_LOADS+=" $(load)"

{
printf '\n%-44s %10s %10s\n' "operation ($COUNT images, ${BASE_MB} MiB shared base)" bunker skopeo
printf '%-44s %9ss %9ss\n' "pull to docker archives (.tar), median of $ROUNDS" "$BUNKER_PULL" "$SKOPEO_PULL"
printf '%-44s %9ss %10s\n' "pull to gzip archives (.tar.gz, level 1)" "$BUNKER_PULL_GZIP" "-"
printf '%-44s %9ss %9ss\n' "sync registry -> registry" "$BUNKER_SYNC" "$SKOPEO_SYNC"
printf '%-44s %9ss %9ss\n' "re-sync, nothing changed" "$BUNKER_RESYNC" "$SKOPEO_RESYNC"
printf 'pull rounds (1-minute load average after each):\n'
printf '  %s\n' "${ROUND_LINES[@]}"
printf 'skopeo/bunker pull time: %s (median)\n' "$(python3 -c "print(f'{$SKOPEO_PULL / $BUNKER_PULL:.2f}')")"
printf 'load after the gzip pull %s; after the syncs (bunker, re-sync, skopeo, re-sync): %s\n' "$GZIP_LOAD" "$SYNC_LOADS"
printf 'bunker bytes fetched: %s; unique bytes of the %s images: %s\n' "$DOWNLOADED" "$COUNT" "$UNIQUE"
printf '%s, %s cores, bunker %s (%s)\n' "$(date -u +%FT%TZ)" "$(nproc)" "$(git rev-parse --short HEAD)" "${BUNKER_PROFILE:-release}"
} | tee "$WORK/results.txt"
if [[ -n "${RESULTS:-}" ]]; then
  mkdir -p "$(dirname "$RESULTS")"
  cat "$WORK/results.txt" >> "$RESULTS"
fi
