#!/usr/bin/env bash
# Builds the statically linked colony binary and the FROM-scratch image.
#
#   deploy/build-image.sh [TAG]        # TAG defaults to colony:<package version>
#
# Environment:
#   CARGO_TARGET_DIR   where the static build goes (default /work/target-static, or
#                      target-static next to the repository when /work does not exist);
#                      kept apart from the normal target dir because RUSTFLAGS differ.
#   SKIP_CARGO=1       reuse the binary already in $CARGO_TARGET_DIR (no cargo run).
#   COLONY_BIN=PATH    put this (static) colony binary in the image instead (no cargo run),
#                      e.g. one built from a clean checkout of a release tag.
#
# glibc is linked statically (-C target-feature=+crt-static): no musl target is needed.
# The binary resolves no host names (every address in its config is ip:port), so glibc's
# NSS limitation of static binaries does not apply.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
  if [[ -d /work ]]; then CARGO_TARGET_DIR=/work/target-static; else CARGO_TARGET_DIR="$repo/target-static"; fi
fi
export CARGO_TARGET_DIR
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/node/Cargo.toml" | head -1)
if [[ -z "$version" ]]; then
  version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
fi
tag=${1:-colony:${version:-dev}}

bin=${COLONY_BIN:-"$CARGO_TARGET_DIR/$target/release/colony"}
if [[ "${SKIP_CARGO:-0}" != 1 && -z "${COLONY_BIN:-}" ]]; then
  echo "==> cargo build (static glibc) into $CARGO_TARGET_DIR" >&2
  (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p colony --target "$target")
fi
[[ -x "$bin" ]] || { echo "build-image: $bin missing" >&2; exit 1; }
# ldd says "statically linked" (static-pie) or "not a dynamic executable" for static ones.
if ldd "$bin" 2>&1 | grep -q '=>'; then
  echo "build-image: $bin is dynamically linked:" >&2; ldd "$bin" >&2; exit 1
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/data"
echo "==> colony-probe (static, rustc)" >&2
rustc --edition 2021 -O -C strip=symbols -C target-feature=+crt-static --target "$target" \
  "$repo/deploy/probe/colony-probe.rs" -o "$ctx/rootfs/colony-probe"
# The release profile keeps debug info (~100 MB); the image does not need it.
if command -v strip >/dev/null; then
  strip --strip-debug -o "$ctx/rootfs/colony" "$bin" && chmod 0755 "$ctx/rootfs/colony"
else
  install -m 0755 "$bin" "$ctx/rootfs/colony"
fi
printf 'root:x:0:0:root:/:/sbin/nologin\ncolony:x:10001:10001:colony:/data:/sbin/nologin\n' > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\ncolony:x:10001:\n' > "$ctx/rootfs/etc/group"
chmod 0700 "$ctx/data"
chmod 1777 "$ctx/rootfs/tmp"
# /data's owner (10001) is set by the Dockerfile (COPY --chown).
cp "$repo/deploy/Dockerfile" "$ctx/Dockerfile"

echo "==> docker build -t $tag" >&2
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build -q -f "$ctx/Dockerfile" -t "$tag" "$ctx" >/dev/null
docker image inspect -f '{{.Id}} {{.Size}}' "$tag" | awk -v t="$tag" '{printf "built %s (%s, %.1f MB)\n", t, $1, $2/1e6}'
