#!/usr/bin/env bash
# Validates every file under deploy/ with the real tool that reads it (docs/operations.md, "Deployment
# files"). Prints one line per check and exits 1 if any check failed.
#
# A tool that is not installed is a skip with the package to install — except in CI (CI=true), where
# .ci/run installs them all and a missing one is a failure, so a green CI means every check really ran.
#
#   scripts/validate-deploy.sh            # from anywhere; paths are relative to the repository
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
skipped=0
ok() {
    echo "ok    $1"
    passed=$((passed + 1))
}
bad() {
    echo "FAIL  $1"
    [[ -n "${2:-}" ]] && sed 's/^/      /' <<<"$2"
    failed=$((failed + 1))
}
skip() {
    echo "skip  $1"
    skipped=$((skipped + 1))
}
# need TOOL PACKAGE CHECK — false (and a skip, or a failure in CI) when TOOL is missing.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [[ "${CI:-}" == true ]]; then
        bad "$3: $1 not installed (apt-get install $2)"
    else
        skip "$3: $1 not installed: apt-get install $2"
    fi
    return 1
}
# check NAME COMMAND… — runs COMMAND; ok on exit 0, else FAIL with its output.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}

# --- load balancers -------------------------------------------------------------------------------
if need haproxy haproxy "haproxy.cfg"; then
    check "haproxy -c deploy/haproxy/haproxy.cfg" haproxy -c -q -f deploy/haproxy/haproxy.cfg
fi

if need nginx "nginx libnginx-mod-stream" "nginx.conf"; then
    # nginx resolves upstream names when it loads the file, and the compose service names
    # (messaging-server-1…) exist only inside Docker's network. Where a private mount namespace is
    # allowed, the real file is tested with those names in a private /etc/hosts; elsewhere a copy with
    # the names replaced by 127.0.0.1 is tested, and the line says so.
    conf="$ROOT/deploy/nginx/nginx.conf"
    names=$(grep -oE '^[[:space:]]*server[[:space:]]+[A-Za-z][A-Za-z0-9.-]*:' "$conf" |
        awk '{ sub(":", "", $2); print $2 }' | sort -u | tr '\n' ' ')
    printf '127.0.0.1 localhost %s\n::1 localhost\n' "$names" >"$TMP/hosts"
    nginx_test="nginx -t -q -e /dev/stderr -c '$conf'"
    if unshare -m true 2>/dev/null; then
        check "nginx -t deploy/nginx/nginx.conf (upstream names in a private /etc/hosts)" \
            unshare -m sh -c "mount --bind '$TMP/hosts' /etc/hosts && $nginx_test"
    else
        sed -E 's/(server[[:space:]]+)[A-Za-z][A-Za-z0-9.-]*:/\1127.0.0.1:/' "$conf" >"$TMP/nginx.conf"
        check "nginx -t deploy/nginx/nginx.conf (no mount namespace here: names replaced by 127.0.0.1)" \
            nginx -t -q -e /dev/stderr -c "$TMP/nginx.conf"
    fi
fi

# --- monitoring -----------------------------------------------------------------------------------
if need promtool prometheus "prometheus"; then
    check "promtool check config deploy/prometheus/prometheus.yml" \
        promtool check config deploy/prometheus/prometheus.yml
    check "promtool check rules deploy/prometheus/alerts.yml" promtool check rules deploy/prometheus/alerts.yml
    check "promtool test rules deploy/prometheus/alerts.test.yml" \
        promtool test rules deploy/prometheus/alerts.test.yml
fi
check "grafana dashboard is JSON with the guide's panels" node -e '
    const d = JSON.parse(require("fs").readFileSync("deploy/grafana/messaging-dashboard.json", "utf8"));
    const titles = d.dashboard.panels.map((p) => p.title);
    for (const t of ["Message Throughput", "Error Rate", "Active Connections", "CPU Usage"])
      if (!titles.includes(t)) throw new Error("missing panel " + t);'

# --- containers and orchestration -----------------------------------------------------------------
if need docker-compose docker-compose "docker-compose.yml"; then
    check "docker-compose config -q deploy/docker-compose.yml" \
        env JWT_SECRET=validate-deploy-placeholder-secret-0123456789 \
        docker-compose -f deploy/docker-compose.yml config -q
fi
check "kubernetes manifests deploy/k8s (kubernetes-models schemas, references)" \
    node --import tsx scripts/validate-k8s.ts deploy/k8s
if need yamllint yamllint "yaml"; then
    check "yamllint -s -d relaxed deploy/" yamllint -s -d relaxed deploy/
fi

# --- the host -------------------------------------------------------------------------------------
if need shellcheck shellcheck "shell scripts"; then
    check "shellcheck -S warning deploy/scripts/*.sh scripts/*.sh" \
        shellcheck -S warning deploy/scripts/*.sh scripts/*.sh
fi

if need systemd-analyze systemd "systemd unit"; then
    unit=deploy/systemd/messaging-system.service
    out=$(systemd-analyze verify --man=no "$unit" 2>&1)
    # The unit runs the installed /usr/bin/messaging_server; where the .deb is not installed that one
    # complaint is expected (test/deploy/deb.test.ts verifies the installed unit with nothing filtered).
    out=$(grep -v 'Command /usr/bin/messaging_server is not executable: No such file' <<<"$out")
    if [[ -z "$out" ]]; then ok "systemd-analyze verify $unit"; else bad "systemd-analyze verify $unit" "$out"; fi
fi

if need iptables-restore iptables "firewall"; then
    if out=$(iptables-restore --test <deploy/firewall/rules.v4 2>&1); then
        ok "iptables-restore --test deploy/firewall/rules.v4"
    elif grep -qiE 'permission denied|not permitted|could not fetch rule set|can.t initialize' <<<"$out"; then
        skip "iptables-restore --test deploy/firewall/rules.v4: this sandbox forbids netfilter ($out)"
    else
        bad "iptables-restore --test deploy/firewall/rules.v4" "$out"
    fi
fi

check "sysctl keys of deploy/sysctl/99-messaging.conf exist in this kernel" bash -c '
    status=0
    while IFS="=" read -r key value; do
        key=$(echo "$key" | tr -d "[:space:]"); value=$(echo "$value" | xargs)
        [[ -z "$key" || "$key" == \#* ]] && continue
        [[ -e /proc/sys/${key//.//} ]] || { echo "unknown key $key"; status=1; }
        [[ "$value" =~ ^[0-9]+([[:space:]]+[0-9]+)*$ ]] || { echo "$key: not a number: $value"; status=1; }
    done <deploy/sysctl/99-messaging.conf
    exit $status'

check "limits.d syntax of deploy/limits/messaging.conf" awk '
    /^[[:space:]]*(#|$)/ { next }
    NF != 4 || $2 !~ /^(soft|hard|-)$/ ||
    $3 !~ /^(core|data|fsize|memlock|nofile|rss|stack|cpu|nproc|as|maxlogins|maxsyslogins|priority|locks|sigpending|msgqueue|nice|rtprio)$/ ||
    $4 !~ /^([0-9]+|unlimited|infinity|-1)$/ { print FILENAME ":" NR ": bad line: " $0; bad = 1 }
    END { exit bad }' deploy/limits/messaging.conf

pg_bin=$(find /usr/lib/postgresql -path '*/bin/postgres' 2>/dev/null | sort -V | tail -n 1)
if [[ -z "$pg_bin" ]]; then
    if [[ "${CI:-}" == true ]]; then bad "postgresql tuning: postgres not installed (apt-get install postgresql)"; else
        skip "postgresql tuning: postgres not installed: apt-get install postgresql"
    fi
else
    # `postgres -C` parses the file as the server would and fails on unknown names or bad values.
    # PostgreSQL refuses to run as root, hence runuser.
    mkdir -p "$TMP/pgdata"
    cp deploy/postgresql/messaging.conf "$TMP/messaging.conf"
    chmod 755 "$TMP"
    chmod 644 "$TMP/messaging.conf"
    pg_cmd=("$pg_bin" -D "$TMP/pgdata" --config-file="$TMP/messaging.conf" -C max_wal_size)
    if [[ $(id -u) == 0 ]]; then
        chown postgres "$TMP/pgdata"
        pg_cmd=(runuser -u postgres -- "${pg_cmd[@]}")
    fi
    check "postgres -C with deploy/postgresql/messaging.conf ($("$pg_bin" --version))" "${pg_cmd[@]}"
fi

# --- the application's own files ------------------------------------------------------------------
check "messaging_server --validate-config deploy/config/config.ini" \
    env JWT_SECRET=validate-deploy-placeholder-secret-0123456789 DB_PASSWORD=placeholder \
    node bin/messaging_server.js --config deploy/config/config.ini --validate-config

echo "validate-deploy: $passed ok, $failed failing, $skipped skipped"
((failed == 0))
