#!/usr/bin/env bash
# Checks the packaging that can be checked on a build machine: the systemd unit
# (systemd-analyze verify, against the binary just built) and the Debian package (cargo deb,
# then its file list). Run from the repository root; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="$PWD/target/debug/okta-collector"
[ -x "$bin" ] || cargo build --bin okta-collector
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/bin/okta-collector |$bin |" packaging/okta-collector.service >"$tmp/okta-collector.service"
systemd-analyze verify "$tmp/okta-collector.service"
echo "packaging: systemd unit verifies"

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb --quiet --output "$tmp/okta-collector.deb" >/dev/null
listing=$(dpkg-deb -c "$tmp/okta-collector.deb")
for f in ./usr/bin/okta-collector ./etc/okta-collector/config.yaml \
         ./usr/lib/systemd/system/okta-collector.service ./usr/share/doc/okta-collector/config.example.yaml; do
  grep -q " $f\$" <<<"$listing" || { echo "packaging: $f missing from the .deb" >&2; exit 1; }
done
echo "packaging: cargo deb builds $(dpkg-deb -f "$tmp/okta-collector.deb" Package) $(dpkg-deb -f "$tmp/okta-collector.deb" Version)"
