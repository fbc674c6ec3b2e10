#!/bin/sh
# Build step of the pipeline: renders the api page and the worker script into $3.
set -eu
version="$1"
greeting="$2"
out="$3"
mkdir -p "$out/www"
printf '<!doctype html>\n<title>pipeline %s</title>\n<p>%s (version %s)</p>\n' \
    "$version" "$greeting" "$version" >"$out/www/index.html"
printf '%s\n' "$version" >"$out/www/version.txt"
sed "s/@VERSION@/$version/" worker.sh.in >"$out/worker.sh"
chmod 0755 "$out/worker.sh"
