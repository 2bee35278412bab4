#!/usr/bin/env bash
# backup.sh — online backup of a messaging server: its configuration, its embedded file store and, when
# [message_bus] storage = postgres, a pg_dump of its database. The server keeps running.
#
#   backup.sh                          # writes $BACKUP_DIR/messaging_<UTC date>.tar.gz, prints its path
#   BACKUP_S3_URI=s3://bucket/messaging/ backup.sh   # …and uploads it with `aws s3 cp`
#
# Restore with recovery.sh. Schedule it (cron, systemd timer) as often as your recovery point objective
# requires: everything written after the last backup is lost if the disk is (docs/operations.md).
#
# Why copying a live store is safe: the file store is a journal of append-only segment files
# (NNNNNNNNNN.seg) written in name order; only the newest segment grows, and older ones are never
# modified, only deleted once nothing in them is live (their live records are first re-appended to the
# newest segment). So the copy is made in passes, oldest segment first: each pass copies every segment
# that is new or has grown since it was copied, and drops those the server deleted; it stops after a
# pass that changes nothing. The result is what the disk would hold had the server crashed at that
# moment — every segment whole except, at most, a torn last record of the newest one — and the server's
# recovery handles exactly that case: it checks every record's CRC-32C and truncates a torn tail.
# `sync` first flushes what fsync = batch | none left in the page cache, so the copy is of the disk.
#
# Settings (environment):
#   MESSAGING_CONFIG      config file            (default /etc/messaging/config.ini)
#   MESSAGING_CONFIG_DIR  directory backed up    (default: the config file's directory)
#   MESSAGING_DATA_DIR    the file store         (default: MESSAGING_PERSISTENCE_PATH, else
#                                                 [message_bus] persistence_path of the config file)
#   BACKUP_DIR            where archives go      (default /backup/messaging)
#   RETENTION_DAYS        archives older are deleted (default 30; 0 keeps all)
#   BACKUP_S3_URI         upload the archive there with `aws s3 cp` (default: no upload)
#   DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD   PostgreSQL, as for the server (storage = postgres only)
set -euo pipefail
umask 077

log() { printf '%s backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# ini_get SECTION KEY FILE — the value of KEY in [SECTION], as the server's INI reader sees simple keys.
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
CONFIG_DIR=${MESSAGING_CONFIG_DIR:-$(dirname "$CONFIG_FILE")}
BACKUP_DIR=${BACKUP_DIR:-/backup/messaging}
RETENTION_DAYS=${RETENTION_DAYS:-30}

STORAGE=${MESSAGING_STORAGE:-$(ini_get message_bus storage "$CONFIG_FILE")}
if [[ -z "$STORAGE" ]]; then
    case "$(ini_get message_bus enable_persistence "$CONFIG_FILE")" in
    false | no | off | 0) STORAGE='memory' ;;
    *) STORAGE='file' ;;
    esac
fi
DATA_DIR=${MESSAGING_DATA_DIR:-${MESSAGING_PERSISTENCE_PATH:-$(ini_get message_bus persistence_path "$CONFIG_FILE")}}
DATA_DIR=${DATA_DIR:-/var/lib/messaging/queue}

DATE=$(date -u +%Y%m%d_%H%M%S)
mkdir -p "$BACKUP_DIR"
WORK=$(mktemp -d "$BACKUP_DIR/.messaging_$DATE.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/$DATE"
mkdir -p "$STAGE"

# copy_store SRC DST — the pass-wise copy described at the top.
copy_store() {
    local src=$1 dst=$2 pass name size changed
    local -A copied=()
    mkdir -p "$dst"
    for ((pass = 1; pass <= 20; pass++)); do
        changed=0
        sync
        while IFS= read -r name; do
            size=$(stat -c %s "$src/$name" 2>/dev/null) || continue # deleted meanwhile
            [[ "${copied[$name]:-}" == "$size" ]] && continue
            if cp -p "$src/$name" "$dst/$name.part" 2>/dev/null; then
                mv -f "$dst/$name.part" "$dst/$name"
                copied[$name]=$(stat -c %s "$dst/$name")
                changed=1
            else
                rm -f "$dst/$name.part" # vanished mid-copy: reclaimed, its live records are newer
            fi
        done < <(find "$src" -maxdepth 1 -type f ! -name LOCK ! -name '*.part' -printf '%f\n' | LC_ALL=C sort)
        for name in "${!copied[@]}"; do
            if [[ ! -e "$src/$name" ]]; then
                rm -f "$dst/$name"
                unset 'copied[$name]'
                changed=1
            fi
        done
        if ((changed == 0)); then
            log "file store copied in $pass pass(es): ${#copied[@]} file(s)"
            return 0
        fi
    done
    # Still changing after 20 passes (a very busy store): what we have is still crash-consistent except
    # possibly for records appended during the last pass, which recovery drops as a torn tail.
    log "warning: the store kept changing during the copy; the newest segment may end in a torn record"
}

if [[ -d "$CONFIG_DIR" ]]; then
    cp -a "$CONFIG_DIR" "$STAGE/config"
    log "config: $CONFIG_DIR"
else
    log "warning: no config directory at $CONFIG_DIR"
fi

case "$STORAGE" in
file)
    [[ -d "$DATA_DIR" ]] || die "no file store at $DATA_DIR (set MESSAGING_DATA_DIR)"
    copy_store "$DATA_DIR" "$STAGE/queue"
    ;;
postgres)
    command -v pg_dump >/dev/null || die "storage = postgres but pg_dump is not installed"
    DB_HOST=${DB_HOST:-$(ini_get database host "$CONFIG_FILE")}
    DB_PORT=${DB_PORT:-$(ini_get database port "$CONFIG_FILE")}
    DB_NAME=${DB_NAME:-$(ini_get database database "$CONFIG_FILE")}
    DB_USER=${DB_USER:-$(ini_get database username "$CONFIG_FILE")}
    # Custom format: compressed, and pg_restore can restore it selectively and in parallel.
    PGPASSWORD=${DB_PASSWORD:-${PGPASSWORD:-}} pg_dump --format=custom --no-owner \
        -h "${DB_HOST:-localhost}" -p "${DB_PORT:-5432}" -U "${DB_USER:-messaging}" \
        -f "$STAGE/database.dump" "${DB_NAME:-messaging}"
    log "database: ${DB_NAME:-messaging} on ${DB_HOST:-localhost}"
    ;;
memory)
    log "storage = memory: nothing durable to back up besides the config"
    ;;
*) die "unknown storage engine '$STORAGE'" ;;
esac

# The manifest lets recovery.sh check the archive before it touches anything.
{
    echo "created_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host=$(hostname)"
    echo "storage=$STORAGE"
    echo "data_dir=$DATA_DIR"
    echo "config_dir=$CONFIG_DIR"
} >"$STAGE/MANIFEST"
(cd "$STAGE" && find . -type f ! -name MANIFEST -print0 | LC_ALL=C sort -z |
    xargs -0 -r sha256sum >"$WORK/SHA256SUMS")
mv "$WORK/SHA256SUMS" "$STAGE/SHA256SUMS"

ARCHIVE="$BACKUP_DIR/messaging_$DATE.tar.gz"
tar -czf "$ARCHIVE.part" -C "$WORK" "$DATE"
mv -f "$ARCHIVE.part" "$ARCHIVE"
log "wrote $ARCHIVE ($(stat -c %s "$ARCHIVE") bytes)"

if [[ "$RETENTION_DAYS" -gt 0 ]]; then
    find "$BACKUP_DIR" -maxdepth 1 -name 'messaging_*.tar.gz' -mtime +"$RETENTION_DAYS" -print -delete |
        sed 's/^/removed old backup: /' >&2
fi

if [[ -n "${BACKUP_S3_URI:-}" ]]; then
    command -v aws >/dev/null || die "BACKUP_S3_URI is set but the aws CLI is not installed"
    aws s3 cp "$ARCHIVE" "$BACKUP_S3_URI"
    log "uploaded to $BACKUP_S3_URI"
fi

echo "$ARCHIVE"
