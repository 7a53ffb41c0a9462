#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ (parse, parse_print, model_invariants,
# differential) when a nightly toolchain is present, installing cargo-fuzz if
# it is missing. Without a nightly toolchain it says so and exits 0: the
# corpora are still replayed by `cargo test --test fuzz_corpus` on stable.
#
# Usage: ci/fuzz-build.sh [--run SECONDS]   (--run also fuzzes each target briefly)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz-build: SKIPPED: no nightly toolchain (cargo-fuzz needs one); install it with 'rustup toolchain install nightly'"
    exit 0
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-build: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd fuzz
cargo +nightly fuzz build
echo "fuzz-build: built fuzz targets: $(cargo +nightly fuzz list | tr '\n' ' ')"

if [[ "${1:-}" == "--run" ]]; then
    secs="${2:-30}"
    for target in $(cargo +nightly fuzz list); do
        echo "fuzz-build: fuzzing $target for ${secs}s"
        # Work on a scratch copy so that a short run does not grow the
        # checked-in corpus; findings still land in fuzz/artifacts/.
        scratch="$(mktemp -d)"
        cp corpus/"$target"/* "$scratch"/
        cargo +nightly fuzz run "$target" "$scratch" -- -max_total_time="$secs" -max_len=4096
        rm -rf "$scratch"
    done
fi
