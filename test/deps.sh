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
[ ${#need[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  if [ ${#need[@]} -gt 0 ]; then
    echo "deps.sh: missing packages ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "deps.sh: not root; the tests that need ${optional[*]} will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure itself; the tests run private instances.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" "${optional[@]}" >/dev/null
