#!/usr/bin/env bash
# Builds the Debian package the guide installs with `apt-get install messaging-system`:
#
#   scripts/build-deb.sh [OUT_DIR]        # default dist/; prints the path of the .deb
#
# Contents:
#   /opt/messaging-system/                 package.json, bin/, src/, node_modules/ (npm ci --omit=dev),
#                                          scripts/ (backup.sh, recovery.sh, health_check.sh), docs/
#   /usr/bin/messaging_server, /usr/bin/messaging, /usr/bin/messaging_worker   wrappers
#   /etc/messaging/config.ini              conffile: deploy/config/config.ini
#   /etc/default/messaging-system          conffile: secrets for the service (JWT_SECRET, DB_PASSWORD)
#   /etc/security/limits.d/messaging.conf  conffile: deploy/limits/messaging.conf
#   /lib/systemd/system/messaging-system.service
#   /usr/share/doc/messaging-system/examples/   the rest of deploy/ (sysctl, haproxy, nginx, prometheus,
#                                          grafana, filebeat, postgresql, firewall)
# postinst creates the `messaging` system user, /var/lib/messaging and /var/log/messaging; the service is
# not started: configure first (as the guide's "Single Server Deployment" does), then
#   systemctl enable --now messaging-system
# Architecture-specific: node_modules holds esbuild's native binary (tsx runs the TypeScript sources).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${1:-$ROOT/dist}
command -v dpkg-deb >/dev/null || {
    echo "build-deb: dpkg-deb not found (apt-get install dpkg)" >&2
    exit 1
}

NAME=messaging-system
VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE" # becomes the mode of / in the package's file list
APP="$STAGE/opt/$NAME"

install -d "$APP" "$STAGE/usr/bin" "$STAGE/etc/messaging" "$STAGE/etc/default" \
    "$STAGE/etc/security/limits.d" "$STAGE/lib/systemd/system" "$STAGE/DEBIAN" \
    "$STAGE/usr/share/doc/$NAME/examples"

# The application: sources run through tsx, so no build step; production dependencies only.
cp package.json package-lock.json .npmrc "$APP/"
cp -r bin src "$APP/"
(cd "$APP" && npm ci --omit=dev --no-audit --no-fund --prefer-offline --loglevel=error >&2)
rm -f "$APP/.npmrc"
install -d "$APP/scripts" "$APP/docs"
install -m 0755 deploy/scripts/*.sh "$APP/scripts/"
cp docs/*.md "$APP/docs/" 2>/dev/null || true

# Wrappers: the guide's command names. messaging_worker only when this tree has it.
for cmd in messaging_server messaging messaging_worker; do
    if [[ ! -f "bin/$cmd.js" ]]; then
        echo "build-deb: note: bin/$cmd.js is not in this tree; /usr/bin/$cmd not packaged" >&2
        continue
    fi
    printf '#!/bin/sh\nexec /usr/bin/node /opt/%s/bin/%s.js "$@"\n' "$NAME" "$cmd" >"$STAGE/usr/bin/$cmd"
    chmod 0755 "$STAGE/usr/bin/$cmd"
done

install -m 0644 deploy/config/config.ini "$STAGE/etc/messaging/config.ini"
install -m 0644 deploy/limits/messaging.conf "$STAGE/etc/security/limits.d/messaging.conf"
install -m 0644 deploy/systemd/messaging-system.service "$STAGE/lib/systemd/system/"
install -m 0600 /dev/stdin "$STAGE/etc/default/messaging-system" <<'EOF'
# Environment of the messaging-system service (systemd EnvironmentFile; readable by root only).
# The config file refers to these as ${JWT_SECRET} and ${DB_PASSWORD}.
# JWT_SECRET: at least 32 random bytes, e.g. `openssl rand -hex 32`. Required while enable_auth = true.
#JWT_SECRET=
#DB_PASSWORD=
#API_KEY=
# Heap limit for V8 (MB); leave room for buffers below the machine's memory.
#NODE_OPTIONS=--max-old-space-size=3072
EOF
for dir in sysctl haproxy nginx prometheus grafana filebeat postgresql firewall; do
    cp -r "deploy/$dir" "$STAGE/usr/share/doc/$NAME/examples/"
done

cat >"$STAGE/DEBIAN/control" <<EOF
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: messaging-system maintainers <maintainers@messaging-system.invalid>
Depends: nodejs (>= 20), adduser | passwd
Recommends: curl
Suggests: postgresql-client
Section: net
Priority: optional
Homepage: https://github.com/yourorg/messaging_system
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Description: message broker and task-queue server (Node.js)
 messaging_server: topic pub/sub with wildcards and queue groups, request/reply,
 durable queues with dead letters, replayable streams; health and Prometheus
 metrics on port 9090. The messaging command-line client is included.
EOF
cat >"$STAGE/DEBIAN/conffiles" <<EOF
/etc/messaging/config.ini
/etc/default/messaging-system
/etc/security/limits.d/messaging.conf
EOF

cat >"$STAGE/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd messaging >/dev/null; then
        if command -v adduser >/dev/null; then
            adduser --system --group --home /var/lib/messaging --no-create-home \
                --shell /usr/sbin/nologin --quiet messaging
        else
            useradd --system --user-group --home-dir /var/lib/messaging --no-create-home \
                --shell /usr/sbin/nologin messaging
        fi
    fi
    for dir in /var/lib/messaging /var/lib/messaging/queue /var/log/messaging; do
        if [ ! -d "$dir" ]; then
            install -d -m 0750 -o messaging -g messaging "$dir"
        fi
    done
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null || true
    fi
    if [ -z "$2" ]; then
        echo "messaging-system: set JWT_SECRET in /etc/default/messaging-system, review"
        echo "  /etc/messaging/config.ini, then: systemctl enable --now messaging-system"
    elif [ -d /run/systemd/system ] && systemctl is-active --quiet messaging-system; then
        systemctl restart messaging-system || true
    fi
fi
exit 0
EOF
cat >"$STAGE/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop messaging-system >/dev/null 2>&1 || true
    systemctl disable messaging-system >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$STAGE/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
    rm -rf /var/log/messaging
    # Queued messages are data, not configuration: purge keeps them.
    if [ -d /var/lib/messaging ]; then
        echo "messaging-system: /var/lib/messaging (message store) kept; remove it by hand if unwanted"
    fi
fi
exit 0
EOF
chmod 0755 "$STAGE/DEBIAN/postinst" "$STAGE/DEBIAN/prerm" "$STAGE/DEBIAN/postrm"

mkdir -p "$OUT_DIR"
DEB="$OUT_DIR/${NAME}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
