#!/bin/bash
# Measurements for docs/write-path.md (issue 13, "before"). Run from the
# repository root as: /work/wt/heavy docs/write-path-measure.sh
# Needs curl and strace; works in /tmp/lzperf; uses 127.47.0.0/16.
set -x
mkdir -p /tmp/lzperf/n1 && go build -o /tmp/lzperf/lazaret ./cmd/lazaret || exit 1
cd /tmp/lzperf
L=./lazaret
printf '[http]\nlisten = "127.47.0.1:9127"\npprof = true\n[health]\nmin_free_disk = "0"\n' > n1/lazaret.toml
$L serve --config n1/lazaret.toml --data n1/data --socket /tmp/lzperf/n1/s > n1/log 2>&1 &
sleep 3
PROF=()
prof() { # prof URL PREFIX SECONDS: CPU, block and mutex profiles in the background
  curl -s -o $2-cpu.pb "$1/debug/pprof/profile?seconds=$3" & PROF+=($!)
  curl -s -o $2-block.pb "$1/debug/pprof/block?seconds=$3" & PROF+=($!)
  curl -s -o $2-mutex.pb "$1/debug/pprof/mutex?seconds=$3" & PROF+=($!)
  sleep 0.3
}
# --- single node, profiled
U=http://127.47.0.1:9127
prof $U single 7
$L bench --socket /tmp/lzperf/n1/s --count 1000 --concurrency 8 --metrics $U/metrics put > single-prof.txt 2>&1
wait "${PROF[@]}"; PROF=()
# --- single node under strace (fresh data dir, messages kept so no deletes are counted)
kill $(pgrep -f "lazaret serve --config n1/lazaret.toml"); sleep 2
mkdir -p n1s; sed 's/9127/9128/' n1/lazaret.toml > n1s/lazaret.toml
strace -f -c -e trace=fsync,fdatasync,msync,sync_file_range -o strace-single.txt $L serve --config n1s/lazaret.toml --data n1s/data --socket /tmp/lzperf/n1s/s > n1s/log 2>&1 &
sleep 3
$L bench --socket /tmp/lzperf/n1s/s --count 1000 --concurrency 8 --keep n1s/ids --metrics http://127.47.0.1:9128/metrics put > single-strace.txt 2>&1
kill $(pgrep -f "lazaret serve --config n1s/lazaret.toml"); sleep 3
du -sb n1s/data; ls -la n1s/data > n1s-files.txt
# --- 5-node 3+2 dev cluster
rm -rf dev
$L dev --nodes 5 --policy 3+2 --first-ip 127.47.1.1 --dir /tmp/lzperf/dev > dev1.log 2>&1 &
DEV=$!
for i in $(seq 60); do grep -q "cluster running" dev1.log && break; sleep 1; done
kill -INT $DEV; wait $DEV
for k in 1 2 3 4 5; do grep -q '^\[http\]' dev/node$k/lazaret.toml && sed -i 's/^\[http\]/[http]\npprof = true/' dev/node$k/lazaret.toml || printf '\n[http]\npprof = true\n' >> dev/node$k/lazaret.toml; done
$L dev --nodes 5 --policy 3+2 --first-ip 127.47.1.1 --dir /tmp/lzperf/dev > dev2.log 2>&1 &
DEV=$!
for i in $(seq 60); do grep -q "cluster running" dev2.log && break; sleep 1; done
sleep 5
M=$(for k in 1 2 3 4 5; do printf 'http://127.47.1.%d:9127/metrics,' $k; done); M=${M%,}
S=/tmp/lzperf/dev/node1/lazaret.sock
prof http://127.47.1.1:9127 cluster-n1 15
prof http://127.47.1.2:9127 cluster-n2 15
$L bench --socket $S --count 1000 --concurrency 8 --metrics $M put > cluster-prof.txt 2>&1
wait "${PROF[@]}"; PROF=()
PIDS=$(for k in 1 2 3 4 5; do printf -- '-p %s ' $(cat dev/node$k/pid); done)
strace -f -c -e trace=fsync,fdatasync,msync,sync_file_range -o strace-cluster.txt $PIDS &
ST=$!
sleep 2
$L bench --socket $S --count 1000 --concurrency 8 --keep dev-ids --metrics $M put > cluster-strace.txt 2>&1
kill -INT $ST; wait $ST
for k in 1 2 3 4 5; do du -sb dev/node$k/data; done > cluster-du.txt
kill -INT $DEV; wait $DEV
echo done
