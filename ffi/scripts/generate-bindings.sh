#!/usr/bin/env bash
# Generates Tandem's Kotlin, Swift and Python bindings in one go.
#
#   ffi/scripts/generate-bindings.sh [OUT_DIR] [LANGUAGE…]
#
# Builds the library (debug; PROFILE=release for an optimized one), then
# runs the workspace's own uniffi-bindgen (same UniFFI version as the
# library) on it, for each language (default: python kotlin swift), into
# OUT_DIR/<language> (default OUT_DIR: target/bindings). Python gets the
# package `tandem` as pip installs it: OUT_DIR/python/tandem/ holds the
# hand-written ffi/python/tandem/__init__.py (the exit hook), the generated
# module and the library, so `PYTHONPATH=OUT_DIR/python python3` can
# `import tandem`; Kotlin finds the library through JNA
# (`-Djna.library.path`), Swift links it (see the README).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/target/bindings}
if [ $# -gt 0 ]; then shift; fi
languages=("$@")
if [ ${#languages[@]} -eq 0 ]; then languages=(python kotlin swift); fi
profile=${PROFILE:-debug}
target=${CARGO_TARGET_DIR:-$root/target}

cd "$root"
if [ "$profile" = release ]; then
    cargo build --release -p tandem-ffi --lib
else
    cargo build -p tandem-ffi --lib
fi
case "$(uname -s)" in
    Darwin) lib="$target/$profile/libtandem_ffi.dylib" ;;
    *) lib="$target/$profile/libtandem_ffi.so" ;;
esac

mkdir -p "$out"
for language in "${languages[@]}"; do
    rm -rf "${out:?}/$language"
    dir="$out/$language"
    if [ "$language" = python ]; then dir="$out/python/tandem"; fi
    cargo run -q -p tandem-ffi --bin uniffi-bindgen -- \
        generate "$lib" --language "$language" --no-format --out-dir "$dir"
    if [ "$language" = python ]; then
        cp "$lib" "$root/ffi/python/tandem/__init__.py" "$dir/"
    fi
    echo "generate-bindings: $language in $out/$language" >&2
done
