#!/usr/bin/env bash
# Generates Tandem's Kotlin, Swift and Python bindings in one go.
#
#   ffi/scripts/generate-bindings.sh [OUT_DIR] [LANGUAGE…]
#
# Builds the library (debug; PROFILE=release for an optimized one), then
# runs the workspace's own uniffi-bindgen (same UniFFI version as the
# library) on it, for each language (default: python kotlin swift), into
# OUT_DIR/<language> (default OUT_DIR: target/bindings). The library is
# copied beside the Python module, so `PYTHONPATH=OUT_DIR/python python3`
# can `import tandem`; Kotlin finds it through JNA (`-Djna.library.path`),
# Swift links it (see the README).
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
    cargo run -q -p tandem-ffi --bin uniffi-bindgen -- \
        generate "$lib" --language "$language" --no-format --out-dir "$out/$language"
    if [ "$language" = python ]; then cp "$lib" "$out/python/"; fi
    echo "generate-bindings: $language in $out/$language" >&2
done
