#!/usr/bin/env bash
# recovery.sh — restore a messaging server from an archive made by backup.sh, start it, and check that
# it is healthy.
#
#   recovery.sh /backup/messaging/messaging_20250102_030405.tar.gz
#
# Steps: check the archive (checksums of every file) before touching anything; stop the service; put the
# current config and file store aside (…pre-restore-<date>, deleted only with KEEP_PREVIOUS=0); restore
# config, file store and (storage = postgres) the database; start; wait for GET /health to answer 200.
# Exit 0 only when the restored server is healthy. On start-up the server replays the restored journal
# (truncating a torn last record, see backup.sh), so every message in the backup is there again:
# queued, unacknowledged and dead-lettered messages and stream records, with consumer positions.
#
# Settings (environment):
#   MESSAGING_CONFIG_DIR  config directory to restore into   (default /etc/messaging)
#   MESSAGING_DATA_DIR    file store to restore into         (default: data_dir recorded in the archive)
#   RESTORE_CONFIG        1 restores the config files too, 0 keeps the current ones (default 1)
#   KEEP_PREVIOUS         1 keeps the replaced config/store aside, 0 deletes them (default 1)
#   MESSAGING_STOP_CMD    how to stop the server  (default: systemctl stop messaging-system; '' skips)
#   MESSAGING_START_CMD   how to start it         (default: systemctl start messaging-system; '' skips)
#   MESSAGING_HEALTH_URL  liveness URL to wait for (default http://localhost:9090/health; '' skips)
#   HEALTH_TIMEOUT_S      how long to wait for it  (default 120)
#   DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD   PostgreSQL, when the archive holds database.dump
set -euo pipefail

log() { printf '%s recovery: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

BACKUP_FILE=${1:-}
[[ -n "$BACKUP_FILE" ]] || die "usage: recovery.sh BACKUP_FILE.tar.gz"
[[ -r "$BACKUP_FILE" ]] || die "cannot read $BACKUP_FILE"

CONFIG_DIR=${MESSAGING_CONFIG_DIR:-/etc/messaging}
RESTORE_CONFIG=${RESTORE_CONFIG:-1}
KEEP_PREVIOUS=${KEEP_PREVIOUS:-1}
STOP_CMD=${MESSAGING_STOP_CMD-systemctl stop messaging-system}
START_CMD=${MESSAGING_START_CMD-systemctl start messaging-system}
HEALTH_URL=${MESSAGING_HEALTH_URL-http://localhost:9090/health}
HEALTH_TIMEOUT_S=${HEALTH_TIMEOUT_S:-120}
STAMP=$(date -u +%Y%m%d_%H%M%S)

RESTORE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/messaging-restore.XXXXXX")
trap 'rm -rf "$RESTORE_DIR"' EXIT

# 1. Extract and verify, before anything is stopped or replaced.
tar -xzf "$BACKUP_FILE" -C "$RESTORE_DIR" || die "$BACKUP_FILE is not a readable .tar.gz"
shopt -s nullglob
tops=("$RESTORE_DIR"/*/)
shopt -u nullglob
((${#tops[@]} == 1)) || die "$BACKUP_FILE does not look like a backup.sh archive"
SRC=${tops[0]%/}
[[ -f "$SRC/MANIFEST" && -f "$SRC/SHA256SUMS" ]] || die "$BACKUP_FILE has no MANIFEST/SHA256SUMS"
(cd "$SRC" && sha256sum --quiet --strict -c SHA256SUMS) || die "checksum mismatch: the archive is damaged"
manifest() { sed -n "s/^$1=//p" "$SRC/MANIFEST"; }
DATA_DIR=${MESSAGING_DATA_DIR:-$(manifest data_dir)}
log "archive OK: made $(manifest created_at) on $(manifest host), storage $(manifest storage)"

# 2. Stop the server: it must not write to the store while it is replaced.
if [[ -n "$STOP_CMD" ]]; then
    log "stopping: $STOP_CMD"
    eval "$STOP_CMD"
fi

# put_aside PATH — moves PATH out of the way (or deletes it with KEEP_PREVIOUS=0).
put_aside() {
    [[ -e "$1" ]] || return 0
    if [[ "$KEEP_PREVIOUS" == 1 ]]; then
        mv "$1" "$1.pre-restore-$STAMP"
        log "kept the previous $1 as $1.pre-restore-$STAMP"
    else
        rm -rf "$1"
    fi
}

# 3. Config.
if [[ "$RESTORE_CONFIG" == 1 && -d "$SRC/config" ]]; then
    put_aside "$CONFIG_DIR"
    mkdir -p "$(dirname "$CONFIG_DIR")"
    cp -a "$SRC/config" "$CONFIG_DIR"
    log "restored config into $CONFIG_DIR"
fi

# 4. File store: the restored files get the owner of the directory they replace (the service user).
if [[ -d "$SRC/queue" ]]; then
    [[ -n "$DATA_DIR" ]] || die "no data directory: set MESSAGING_DATA_DIR"
    owner=""
    if [[ -e "$DATA_DIR" ]]; then owner=$(stat -c %u:%g "$DATA_DIR"); fi
    put_aside "$DATA_DIR"
    mkdir -p "$(dirname "$DATA_DIR")"
    cp -a "$SRC/queue" "$DATA_DIR"
    if [[ -n "$owner" && $(id -u) == 0 ]]; then chown -R "$owner" "$DATA_DIR"; fi
    log "restored the file store into $DATA_DIR ($(find "$DATA_DIR" -name '*.seg' | wc -l) segment(s))"
fi

# 5. Database (storage = postgres).
if [[ -f "$SRC/database.dump" ]]; then
    command -v pg_restore >/dev/null || die "the archive holds a database dump but pg_restore is missing"
    PGPASSWORD=${DB_PASSWORD:-${PGPASSWORD:-}} pg_restore --clean --if-exists --no-owner \
        -h "${DB_HOST:-localhost}" -p "${DB_PORT:-5432}" -U "${DB_USER:-messaging}" \
        -d "${DB_NAME:-messaging}" "$SRC/database.dump"
    log "restored database ${DB_NAME:-messaging}"
fi

# 6. Start and verify.
if [[ -n "$START_CMD" ]]; then
    log "starting: $START_CMD"
    eval "$START_CMD"
fi
if [[ -n "$HEALTH_URL" ]]; then
    deadline=$((SECONDS + HEALTH_TIMEOUT_S))
    until curl -fsS -o /dev/null --max-time 3 "$HEALTH_URL" 2>/dev/null; do
        ((SECONDS < deadline)) || die "not healthy after ${HEALTH_TIMEOUT_S}s: $HEALTH_URL"
        sleep 0.2
    done
    log "healthy: $HEALTH_URL"
fi
log "recovery complete"
