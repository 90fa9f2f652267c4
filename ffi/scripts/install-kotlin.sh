#!/usr/bin/env bash
# Installs what the Kotlin bindings' test and example need, if missing:
# the Kotlin compiler (the npm package kotlin-compiler, pinned, which also
# ships kotlinx-coroutines for the async calls) into a folder of its own,
# and JNA (Debian's libjna-java). Idempotent: a second run installs
# nothing. Prints, on stdout, the folder with the compiler:
#
#   KOTLIN_HOME=$(ffi/scripts/install-kotlin.sh)
#   $KOTLIN_HOME/bin/kotlinc …   (the JNA jar: /usr/share/java/jna.jar)
#
# The folder is $TANDEM_KOTLIN_DIR, else ~/.cache/tandem/kotlin-compiler-<version>
# (outside the repository, so fresh clones on one machine share it).
set -euo pipefail

version=2.4.20
dir=${TANDEM_KOTLIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tandem/kotlin-compiler-$version}
home="$dir/node_modules/kotlin-compiler"
jna=/usr/share/java/jna.jar

say() { echo "install-kotlin: $*" >&2; }

if [ -x "$home/bin/kotlinc" ] && [ -f "$home/lib/kotlinx-coroutines-core-jvm.jar" ]; then
    say "kotlinc $version already in $home"
else
    if ! command -v npm >/dev/null; then
        say "npm is missing: it installs the Kotlin compiler (npm package kotlin-compiler)"
        exit 1
    fi
    say "installing the Kotlin compiler $version (npm package kotlin-compiler) into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "kotlin-compiler@$version" >&2
    chmod +x "$home"/bin/* 2>/dev/null || true
    if [ ! -x "$home/bin/kotlinc" ]; then
        say "npm finished but $home/bin/kotlinc is not there"
        exit 1
    fi
fi

if [ -f "$jna" ]; then
    say "JNA already at $jna"
else
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "JNA is missing ($jna): install Debian's libjna-java (apt-get install libjna-java) as root"
        exit 1
    fi
    say "installing JNA (Debian's libjna-java)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends libjna-java >/dev/null 2>&1; then
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends libjna-java >&2
    fi
    if [ ! -f "$jna" ]; then
        say "libjna-java is installed but $jna is not there"
        exit 1
    fi
fi

if ! command -v java >/dev/null; then
    say "java is missing: the Kotlin compiler and the tests need a JDK (17 or newer)"
    exit 1
fi

echo "$home"
