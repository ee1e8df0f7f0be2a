#!/usr/bin/env bash
# Installs the Debian packages Lazaret's build and tests need, once.
set -euo pipefail
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/timestamp.proto ] || need+=(libprotobuf-dev)
# The index tests (test/pg_*_test.go) run a throwaway PostgreSQL 15 (with pg_trgm).
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
# The SMTP tests (test/smtp_*_test.go) run real Postfix, swaks and HAProxy;
# without them (and not root) those tests skip, naming what is missing.
optional=()
command -v postfix >/dev/null || [ -x /usr/sbin/postfix ] || optional+=(postfix)
command -v swaks >/dev/null || optional+=(swaks)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || optional+=(haproxy)
# The network fault tests (test/netns_*_test.go) run nodes in network
# namespaces with ip (iproute2); without root they skip.
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || optional+=(iproute2)
# The FUSE view tests (fuse/, test/fuse_*_test.go) mount for real: fusermount3
# (fuse3), and run the tools the issue names (rsync, file; find and grep are base).
command -v fusermount3 >/dev/null || [ -x /bin/fusermount3 ] || optional+=(fuse3)
command -v rsync >/dev/null || optional+=(rsync)
command -v file >/dev/null || optional+=(file)
# The S3 tests (test/s3_*_test.go) run real clients: rclone, Debian's aws
# cli (/usr/bin/aws) and curl.
command -v rclone >/dev/null || optional+=(rclone)
[ -x /usr/bin/aws ] || optional+=(awscli)
command -v curl >/dev/null || optional+=(curl)
# cmd/lazaret's /metrics test runs `promtool check metrics` (package prometheus).
command -v promtool >/dev/null || optional+=(prometheus)
# test/deb_test.go checks `make deb`'s package with lintian and its units with
# systemd-analyze (package systemd).
command -v lintian >/dev/null || optional+=(lintian)
command -v systemd-analyze >/dev/null || optional+=(systemd)
# The Exim test (test/smtp_exim_test.go) runs Debian's exim4-daemon-heavy. It
# conflicts with postfix (both are the mail-transport-agent), so it is not
# installed: its package is unpacked into $EXIM_ROOT (apt-get download +
# dpkg -x), beside the libraries it links and the Debian-exim user its
# binary is built to run as. The test runs it with its own configuration.
EXIM_ROOT=/opt/lazaret-test/exim4
exim=0
[ -x $EXIM_ROOT/usr/sbin/exim4 ] && getent passwd Debian-exim >/dev/null || exim=1
[ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && [ $exim = 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "deps.sh: missing packages ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "deps.sh: not root; the tests that need ${optional[*]} (or Exim) will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; the tests run private instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" "${optional[@]}" >/dev/null
if [ $exim = 1 ]; then
  libs=$(apt-cache depends exim4-daemon-heavy | awk '$1 == "Depends:" && $2 ~ /^lib/ {print $2}')
  apt-get install -y -qq --no-install-recommends $libs >/dev/null
  getent passwd Debian-exim >/dev/null ||
    useradd --system --user-group --home-dir /var/spool/exim4 --no-create-home --shell /usr/sbin/nologin Debian-exim
  tmp=$(mktemp -d)
  (cd "$tmp" && chown _apt "$tmp" 2>/dev/null; apt-get download -qq exim4-daemon-heavy >/dev/null)
  rm -rf $EXIM_ROOT && mkdir -p $EXIM_ROOT && dpkg-deb -x "$tmp"/exim4-daemon-heavy_*.deb $EXIM_ROOT
  rm -rf "$tmp"
fi
