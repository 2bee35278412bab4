#!/usr/bin/env bash
# health_check.sh — is this host's messaging server up? For cron, monitoring agents and humans.
# Exit 0 when every check passes, 1 otherwise; one line per check.
#
# Checks (adapted from the guide's):
#   service   systemctl is-active (skipped where systemd is not running, e.g. in a container)
#   port      the messaging port accepts TCP connections (bash /dev/tcp; no netcat needed)
#   health    GET /health answers 200 — the liveness of docs/operations.md
#   ready     GET /ready answers 200 — reported, not a failure, with READY_REQUIRED=0
#   database  only when [message_bus] storage = postgres: pg_isready against [database]
#
# Settings (environment): MESSAGING_CONFIG (default /etc/messaging/config.ini), MESSAGING_SERVICE
# (messaging-system), MESSAGING_HOST (localhost), MESSAGING_PORT and MESSAGING_METRICS_PORT (default
# from the config, else 8080 and 9090), READY_REQUIRED (1), DB_HOST, DB_PORT.
set -uo pipefail

ini_get() {
    [[ -r "$3" ]] || return 0
    awk -v want_section="$1" -v want_key="$2" '
        /^[[:space:]]*[;#]/ { next }
        /^[[:space:]]*\[/ {
            s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*$/, "", s); section = s; next
        }
        section == want_section && index($0, "=") > 0 {
            k = substr($0, 1, index($0, "=") - 1); v = substr($0, index($0, "=") + 1)
            gsub(/^[[:space:]]+|[[:space:]]+$/, "", k); gsub(/^[[:space:]]+|[[:space:]]+$/, "", v)
            if (k == want_key) value = v
        }
        END { if (value != "") print value }
    ' "$3"
}

CONFIG_FILE=${MESSAGING_CONFIG:-/etc/messaging/config.ini}
SERVICE=${MESSAGING_SERVICE:-messaging-system}
HOST=${MESSAGING_HOST:-localhost}
PORT=${MESSAGING_PORT:-$(ini_get network listen_port "$CONFIG_FILE")}
PORT=${PORT:-8080}
ADMIN_PORT=${MESSAGING_METRICS_PORT:-$(ini_get monitoring metrics_port "$CONFIG_FILE")}
ADMIN_PORT=${ADMIN_PORT:-9090}
READY_REQUIRED=${READY_REQUIRED:-1}
STORAGE=${MESSAGING_STORAGE:-$(ini_get message_bus storage "$CONFIG_FILE")}

failed=0
pass() { echo "ok      $1"; }
fail() {
    echo "FAILED  $1"
    failed=1
}
skip() { echo "skipped $1"; }

# http_status URL — the HTTP status code, or 000 when nothing answered.
http_status() {
    if command -v curl >/dev/null; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" || true
    else
        node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(3000) })
            .then((r) => console.log(r.status), () => console.log("000"))' "$1"
    fi
}

if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    if systemctl is-active --quiet "$SERVICE"; then pass "service $SERVICE is active"; else fail "service $SERVICE is not running"; fi
else
    skip "service: systemd is not running here"
fi

if timeout 3 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null; then
    pass "port $PORT accepts connections"
else
    fail "port $PORT is not accessible"
fi

status=$(http_status "http://$HOST:$ADMIN_PORT/health")
if [[ "$status" == 200 ]]; then pass "GET /health: 200"; else fail "GET /health on port $ADMIN_PORT: $status"; fi

status=$(http_status "http://$HOST:$ADMIN_PORT/ready")
if [[ "$status" == 200 ]]; then
    pass "GET /ready: 200"
elif [[ "$READY_REQUIRED" == 1 ]]; then
    fail "GET /ready: $status (starting or draining)"
else
    skip "GET /ready: $status (starting or draining; READY_REQUIRED=0)"
fi

if [[ "$STORAGE" == postgres ]]; then
    db_host=${DB_HOST:-$(ini_get database host "$CONFIG_FILE")}
    db_port=${DB_PORT:-$(ini_get database port "$CONFIG_FILE")}
    if pg_isready -q -h "${db_host:-localhost}" -p "${db_port:-5432}"; then
        pass "database ${db_host:-localhost}:${db_port:-5432} accepts connections"
    else
        fail "database ${db_host:-localhost}:${db_port:-5432} is not accessible"
    fi
else
    skip "database: storage is ${STORAGE:-file}, not postgres"
fi

if ((failed)); then
    echo "Some health checks failed"
    exit 1
fi
echo "All health checks passed"
exit 0
