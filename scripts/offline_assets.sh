#!/usr/bin/env bash
# Fetch, once at set-up time, the JavaScript the book's pages would otherwise load
# from a CDN at page-view time, so `_build/html` renders with no network (a USB
# stick in a classroom without internet). Packages come from npm's registry with
# `npm pack` (the tarball only, no dependency tree) and are unpacked into
# _offline/, which `_config.yml` adds to `html_static_path`:
#   _offline/mathjax/  MathJax 3 (the CommonHTML output and the extensions it loads)
#   _offline/widgets/  require.js + @jupyter-widgets/html-manager (static widget state)
# Idempotent: does nothing when _offline/.stamp is newer than this script.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=_offline
STAMP=$DEST/.stamp
if [ -f "$STAMP" ] && [ "$STAMP" -nt "$0" ]; then exit 0; fi
command -v npm >/dev/null || { echo "offline_assets: npm is needed (apt-get install npm)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
( cd "$TMP" && npm pack --silent mathjax@3.2.2 @jupyter-widgets/html-manager@1.0.6 requirejs@2.3.7 >/dev/null )
for tgz in "$TMP"/*.tgz; do d="${tgz%.tgz}"; mkdir -p "$d"; tar xzf "$tgz" -C "$d"; done
rm -rf "$DEST"
mkdir -p "$DEST/mathjax/output" "$DEST/widgets"
MJ="$TMP/mathjax-3.2.2/package/es5"
cp "$MJ/tex-mml-chtml.js" "$DEST/mathjax/"
cp -r "$MJ/input" "$MJ/a11y" "$MJ/sre" "$MJ/ui" "$MJ/adaptors" "$DEST/mathjax/"
cp -r "$MJ/output/chtml" "$MJ/output/chtml.js" "$DEST/mathjax/output/"
HM="$TMP/jupyter-widgets-html-manager-1.0.6/package/dist"
find "$HM" -maxdepth 1 -type f ! -name '*.map' ! -name 'embed.js' ! -name 'libembed-amd.js' \
    -exec cp {} "$DEST/widgets/" \;
cp "$TMP/requirejs-2.3.7/package/require.js" "$DEST/widgets/"
touch "$STAMP"
echo "offline_assets: $(du -sh "$DEST" | cut -f1) of MathJax and widget scripts in $DEST/"
