#!/usr/bin/env bash
# Side-by-side benchmark of registry work without Docker: bunker vs skopeo.
#
# Ten images in the sandbox registry share a base layer (BASE_MB of
# incompressible data) and each adds a small layer of its own. Measured:
#   1. pull all ten: `bunker registry pull` (one run, docker-load-able .tar.gz)
#      vs `skopeo copy docker://… docker-archive:…` once per image;
#   2. registry → registry: `bunker sync` vs `skopeo sync`, then the same
#      again with nothing changed.
# Also prints bunker's downloaded bytes next to the unique bytes of the ten
# images (the target: every blob fetched once).
#
# Usage: scripts/bench-registry.sh   (needs `scripts/sandbox.sh up`; builds bunker --release)
#        BASE_MB=64 BUNKER_PROFILE=dev scripts/bench-registry.sh
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
# writes are not charged to the next.
seconds() { sync; python3 -c 'import sys,time; print(f"{time.time():.3f}")'; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "== 1. pull ten images into docker-load-able archives"
# Like skopeo's docker-archive: a plain docker-save tar per image.
start=$(seconds)
"$BUNKER" registry pull "${IMAGES[@]}" --archive-dir "$WORK/bunker-archive" --compression none --json > "$WORK/pull.json"
end=$(seconds); BUNKER_PULL=$(elapsed "$start" "$end")
# bunker's default output: gzip archives (here level 1).
start=$(seconds)
"$BUNKER" registry pull "${IMAGES[@]}" --archive-dir "$WORK/bunker-gzip" --compression-level 1 > /dev/null
end=$(seconds); BUNKER_PULL_GZIP=$(elapsed "$start" "$end")
DOWNLOADED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["downloaded_bytes"])' "$WORK/pull.json")
mkdir -p "$WORK/skopeo-archive"
start=$(seconds)
for n in $(seq 0 $((COUNT - 1))); do
  skopeo copy --quiet --src-tls-verify=false "docker://${IMAGES[$n]}" "docker-archive:$WORK/skopeo-archive/img$n.tar:img$n:1"
done
end=$(seconds); SKOPEO_PULL=$(elapsed "$start" "$end")

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
BUNKER_SYNC=$(elapsed "$start" "$end")
start=$(seconds); "$BUNKER" sync --config "$WORK/sync.yaml" --archive-dir "$WORK/sync-cache" > /dev/null; end=$(seconds)
BUNKER_RESYNC=$(elapsed "$start" "$end")
start=$(seconds)
skopeo sync --src yaml --dest docker --dest-tls-verify=false "$WORK/skopeo-sync.yaml" "$SANDBOX_REGISTRY/$RUN-skopeo" > /dev/null 2>&1
end=$(seconds); SKOPEO_SYNC=$(elapsed "$start" "$end")
start=$(seconds)
skopeo sync --src yaml --dest docker --dest-tls-verify=false "$WORK/skopeo-sync.yaml" "$SANDBOX_REGISTRY/$RUN-skopeo" > /dev/null 2>&1
end=$(seconds); SKOPEO_RESYNC=$(elapsed "$start" "$end")

printf '\n%-44s %10s %10s\n' "operation ($COUNT images, ${BASE_MB} MiB shared base)" bunker skopeo
printf '%-44s %9ss %9ss\n' "pull to docker archives (.tar)" "$BUNKER_PULL" "$SKOPEO_PULL"
printf '%-44s %9ss %10s\n' "pull to gzip archives (.tar.gz, level 1)" "$BUNKER_PULL_GZIP" "-"
printf '%-44s %9ss %9ss\n' "sync registry -> registry" "$BUNKER_SYNC" "$SKOPEO_SYNC"
printf '%-44s %9ss %9ss\n' "re-sync, nothing changed" "$BUNKER_RESYNC" "$SKOPEO_RESYNC"
printf 'bunker bytes fetched: %s; unique bytes of the %s images: %s\n' "$DOWNLOADED" "$COUNT" "$UNIQUE"
