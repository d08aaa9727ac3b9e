#!/bin/sh
# Builds the native library (libtandem_ffi) and generates Tandem's Python, Swift and Kotlin
# bindings into one folder, in UniFFI library mode, with the workspace's own uniffi-bindgen.
#
#   ffi/generate-bindings.sh [OUT_DIR]        # default OUT_DIR: ./bindings
#   ffi/generate-bindings.sh --release [OUT_DIR]
#
# OUT_DIR then holds tandem.py (Python), tandem.swift + tandemFFI.h + tandemFFI.modulemap
# (Swift), uniffi/tandem/tandem.kt (Kotlin), and the native library, which tandem.py loads
# from its own folder. Honours CARGO_TARGET_DIR.
set -eu

profile=debug
if [ "${1:-}" = "--release" ]; then
    profile=release
    shift
fi
out="${1:-bindings}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
flag=""
[ "$profile" = release ] && flag="--release"
# The library (cdylib) and the bindgen binary, built together.
cargo build $flag -p tandem-ffi

target="$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')"
case "$(uname -s)" in
    Darwin) lib="libtandem_ffi.dylib" ;;
    MINGW* | MSYS* | CYGWIN*) lib="tandem_ffi.dll" ;;
    *) lib="libtandem_ffi.so" ;;
esac
library="$target/$profile/$lib"

"$target/$profile/uniffi-bindgen" generate --library "$library" \
    --language python --language swift --language kotlin \
    --no-format --metadata-no-deps --out-dir "$out"
cp "$library" "$out/"
echo "bindings and $lib are in $out"
