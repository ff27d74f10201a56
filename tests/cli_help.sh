#!/usr/bin/env bash
# --help of every subcommand lists each flag with its default (generated from the flag
# tables), every train flag is documented in README.md, and --version is CMake's version,
# which CHANGELOG.md describes.
# usage: cli_help.sh PARCNN SOURCE_DIR
set -u
parcnn=$1 src=$2
. "$(dirname "$0")/lib.sh"

for cmd in train eval predict models check-data; do
    help=$("$parcnn" $cmd --help) || { bad "$cmd --help exits 0"; continue; }
    # each flag's entry (its line and the indented lines below it) ends with its default
    missing=$(printf '%s\n' "$help" | awk '
        function check() { if (flag != "" && text !~ /\((default: [^)]*|required)\)$/) print flag }
        /^  --/ { check(); flag = $1; text = $0; next }
        /^[^ ]/ || /^$/ { check(); flag = ""; next }
        { sub(/^ +/, " "); text = text $0 }
        END { check() }')
    n=$(printf '%s\n' "$help" | grep -c '^  --')
    if [ -z "$missing" ] && [ "$n" -ge 3 ]; then ok "$cmd --help: $n flags, each with its default"
    else bad "$cmd --help: no default for: $missing"; fi
done

undocumented=""
for flag in $("$parcnn" train --help | grep -o '^  --[a-z0-9-]*'); do
    grep -q -- "\`$flag" "$src/README.md" || undocumented="$undocumented $flag"
done
if [ -z "$undocumented" ]; then ok "every train flag is in README.md"
else bad "train flags missing from README.md:$undocumented"; fi

want=$(sed -n 's/^project(parcnn VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
got=$("$parcnn" --version)
if [ -n "$want" ] && [ "$got" = "parcnn $want" ]; then ok "--version: $got"
else bad "--version: '$got', CMakeLists.txt says '$want'"; fi

grep -q "^## $want\$" "$src/CHANGELOG.md" && ok "CHANGELOG.md has a section for $want" \
    || bad "CHANGELOG.md: no '## $want' section"

"$parcnn" train --epochs 2>/dev/null; rc=$?
[ $rc = 2 ] && ok "a flag without its value: exit 2" || bad "a flag without its value: exit $rc"

finish
