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

# The container, as far as it can be checked without a container runtime: the build context
# leaves target/ out, the image runs the lean build as 65532, its data volume is the
# container config's data_dir (created and owned for that user), and its HEALTHCHECK probes
# the port that config listens on.
grep -qx 'target/' .dockerignore \
  || { echo "packaging: .dockerignore must leave target/ out of the build context" >&2; exit 1; }
grep -q '^USER 65532:65532$' packaging/Dockerfile \
  || { echo "packaging: the image must run as 65532" >&2; exit 1; }
data_dir=$(sed -n 's/^  data_dir: //p' packaging/container.yaml)
grep -q "^VOLUME \[\"$data_dir\"\]" packaging/Dockerfile \
  || { echo "packaging: the image's VOLUME must be container.yaml's data_dir ($data_dir)" >&2; exit 1; }
grep -q -- "--chown=65532:65532 /out$data_dir $data_dir" packaging/Dockerfile \
  || { echo "packaging: the image must create $data_dir owned by 65532" >&2; exit 1; }
port=$(sed -n 's/^  metrics_listen: .*:\([0-9]*\)$/\1/p' packaging/container.yaml)
grep -q "http://127.0.0.1:$port/healthz" packaging/Dockerfile \
  || { echo "packaging: the HEALTHCHECK must probe container.yaml's metrics_listen port ($port)" >&2; exit 1; }
case "$data_dir" in /etc/okta-collector*) echo "packaging: data_dir must not be in the (read-only) config folder" >&2; exit 1;; esac
# container.yaml parses as a config (validate stops at the first Okta request, which cannot
# be made here: its config line must be OK).
cp packaging/container.yaml "$tmp/container.yaml"
sed -i "s|/var/lib/okta-collector|$tmp/data|; s|/etc/okta-collector/|$tmp/|" "$tmp/container.yaml"
printf 'token' >"$tmp/okta-api-token" && chmod 600 "$tmp/okta-api-token"
chmod 600 "$tmp/container.yaml"
out=$("$bin" validate --config "$tmp/container.yaml" 2>&1 || true)
grep -q '^\[ OK \] config' <<<"$out" \
  || { echo "packaging: container.yaml does not parse: $out" >&2; exit 1; }
echo "packaging: the container's files, user, volume and health check agree"

# The template unit: one instance per org. It verifies as an instance, and every path in it
# is the instance's own.
sed "s|/usr/bin/okta-collector |$bin |" "packaging/okta-collector@.service" >"$tmp/okta-collector@.service"
cp "$tmp/okta-collector@.service" "$tmp/okta-collector@acme.service"
systemd-analyze verify "$tmp/okta-collector@acme.service"
for line in 'ExecStart=.* --config /etc/okta-collector/%i/config.yaml' 'StateDirectory=okta-collector/%i' \
            'LoadCredential=okta-api-token:/etc/okta-collector/%i/okta-api-token' \
            'LoadCredential=devo-key:/etc/okta-collector/%i/certs/domain.key' 'DynamicUser=yes'; do
  grep -Eq "^$line\$" "packaging/okta-collector@.service" \
    || { echo "packaging: okta-collector@.service lacks $line" >&2; exit 1; }
done
grep -q ' ./usr/lib/systemd/system/okta-collector@.service$' <<<"$listing" \
  || { echo "packaging: okta-collector@.service missing from the .deb" >&2; exit 1; }
echo "packaging: the template unit okta-collector@.service verifies as okta-collector@acme"
