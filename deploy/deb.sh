#!/usr/bin/env bash
# Builds the lazaret Debian package with dpkg-deb from a built binary:
#   deploy/deb.sh BINARY VERSION OUTDIR
# VERSION is `git describe` output; the package version is made from it
# (v1.2.3 -> 1.2.3, 531dad8-dirty -> 0~git531dad8+dirty).
set -euo pipefail
bin=$1 version=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

case $version in
  v[0-9]*.[0-9]*) debver=${version#v} ;;
  [0-9]*.[0-9]*) debver=$version ;;
  *) debver=0~git$version ;;
esac
debver=${debver//-/+}
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
umask 022
install -D -m 0755 "$bin" "$stage/usr/bin/lazaret"
install -D -m 0644 "$here/debian/lazaret.service" "$stage/lib/systemd/system/lazaret.service"
install -D -m 0644 "$here/debian/lazaret-mount@.service" "$stage/lib/systemd/system/lazaret-mount@.service"
install -D -m 0644 "$here/debian/lazaret.toml" "$stage/etc/lazaret/lazaret.toml"
install -d -m 0755 "$stage/var/lib/lazaret" # 0750 and owner lazaret: postinst
doc=$stage/usr/share/doc/lazaret
install -d -m 0755 "$doc"
gzip -9n < "$top/README.md" > "$doc/README.md.gz"
install -m 0644 "$here/debian/copyright" "$doc/copyright"
install -D -m 0644 "$here/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/lazaret"
printf 'lazaret (%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- Lazaret developers <lazaret@lazaret.example.org>  %s\n' \
  "$debver" "$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}")" |
  gzip -9n > "$doc/changelog.gz"
chmod 0644 "$doc"/*

install -d -m 0755 "$stage/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$debver/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/debian/control.in" > "$stage/DEBIAN/control"
echo /etc/lazaret/lazaret.toml > "$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "$here/debian/$s" "$stage/DEBIAN/$s"; done
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"

mkdir -p "$out"
deb=$out/lazaret_${debver}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
