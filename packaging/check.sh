#!/usr/bin/env bash
# Checks the packaging that can be checked on a build machine: the systemd unit
# (systemd-analyze verify, against the binary just built) and the Debian package (cargo deb,
# then its file list). Run from the repository root; .ci/run runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/okta-collector"
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
# The config holds no secret and the unit's (dynamic) user must read it; the unit hands the
# secrets over as credentials, never in the environment.
grep -q -- "-rw-r--r-- .* ./etc/okta-collector/config.yaml$" <<<"$listing" \
  || { echo "packaging: the .deb's config.yaml must be 0644 (the unit's user reads it)" >&2; exit 1; }
if grep -Eq '^[[:space:]]*(api_token|token):' packaging/config.yaml; then
  echo "packaging: config.yaml must not hold a token (use the credentials)" >&2; exit 1
fi
if grep -Eq '^(EnvironmentFile|Environment)=' packaging/okta-collector.service; then
  echo "packaging: the unit must not pass secrets in the environment" >&2; exit 1
fi
grep -q '^LoadCredential=okta-api-token:' packaging/okta-collector.service \
  || { echo "packaging: the unit must load the token as a credential" >&2; exit 1; }
# The package ships the lean build: no simulator, no `sim` or `demo` command.
dpkg-deb -x "$tmp/okta-collector.deb" "$tmp/root"
help=$("$tmp/root/usr/bin/okta-collector" --help)
if grep -Eq '^  (sim|demo) ' <<<"$help"; then
  echo "packaging: the .deb's binary carries the simulator (build it with --no-default-features)" >&2; exit 1
fi
grep -q -- '--no-default-features' packaging/Dockerfile \
  || { echo "packaging: the Dockerfile must ship the lean build (--no-default-features)" >&2; exit 1; }
echo "packaging: the .deb's binary is the lean build ($(stat -c %s "$tmp/root/usr/bin/okta-collector") bytes, no sim or demo command)"
echo "packaging: cargo deb builds $(dpkg-deb -f "$tmp/okta-collector.deb" Package) $(dpkg-deb -f "$tmp/okta-collector.deb" Version)"
