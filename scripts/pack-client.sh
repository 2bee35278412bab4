#!/usr/bin/env bash
# Packs the client SDK as its own npm package (@messaging-system/client): src/client and the src/protocol
# it depends on, compiled to JavaScript with type declarations, no dependencies. The server package is
# plain `npm pack` at the repository root.
#
#   scripts/pack-client.sh [OUT_DIR]     # default dist/; prints the path of the .tgz
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT

# The SDK must stay importable on its own: nothing outside src/client and src/protocol.
if grep -rnE "from '\.\./\.\./|from '\.\./(core|server|storage|config|admin|observability|cli|security|tasks|worker)/" \
    src/client src/protocol; then
    echo "pack-client: the SDK imports server code (above); it must import only src/protocol" >&2
    exit 1
fi
npx tsc -p packages/client/tsconfig.json --outDir "$STAGE/dist"
VERSION=$(node -p 'require("./package.json").version')
node -e '
    const fs = require("fs");
    const pkg = JSON.parse(fs.readFileSync("packages/client/package.json", "utf8"));
    pkg.version = process.argv[1];
    fs.writeFileSync(process.argv[2], JSON.stringify(pkg, null, 2) + "\n");
' "$VERSION" "$STAGE/package.json"
cp packages/client/README.md "$STAGE/README.md"
(cd "$STAGE" && npm pack --silent --pack-destination "$OUT_DIR") | tail -n 1 | sed "s|^|$OUT_DIR/|"
