# Shared by the Python benchmarks that compare against Mooncake Store
# (scripts/bench-python.sh, scripts/bench-sglang.sh); sourced, not run.
#
# Mooncake's transfer engine refuses to start without a non-loopback
# interface, so each benchmark re-executes itself in a private network
# namespace (`unshare --net`) that gets a veth pair with 198.18.0.1/24
# existing only inside it. This file owns: Mooncake's shared libraries
# (apt), the namespace's links, the PID list every started process joins
# (stopped on exit), waiting for a port, and the two clusters both
# benchmarks start: `mmc meta` + 2 x `mmc local` (1 GB each) and
# `mooncake_master` with its embedded HTTP metadata server.

# Installs libibverbs1, librdmacm1 and libnuma1 when any is missing.
bench_mooncake_libs() {
  if ! ldconfig -p | grep -q libibverbs.so.1 || ! ldconfig -p | grep -q librdmacm.so.1 || ! ldconfig -p | grep -q libnuma.so.1; then
    echo "== installing libibverbs1 librdmacm1 libnuma1 (Mooncake's shared libraries)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libibverbs1 librdmacm1 libnuma1 >/dev/null
  fi
}

# Inside the namespace: loopback and the veth pair up; every process
# started afterwards goes into PIDS and is stopped on exit.
bench_netns_up() {
  ip link set lo up
  ip link add mcbench0 type veth peer name mcbench1
  ip addr add 198.18.0.1/24 dev mcbench0
  ip link set mcbench0 up
  ip link set mcbench1 up
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}

bench_wait_port() {
  for _ in $(seq 1 400); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# bench_start_clusters MMC MOONCAKE_MASTER OUT: MemCache on 127.0.0.1:5000
# (logs OUT/mmc-*.log), Mooncake's master on 50051 with metadata on 8080.
bench_start_clusters() {
  local mmc=$1 master=$2 out=$3
  printf '[meta]\nlog_level = "warn"\n[local]\nlog_level = "warn"\n' >"$out/mmc.toml"
  echo "== MemCache: mmc meta + 2 x mmc local (1GB segments)"
  "$mmc" meta --config "$out/mmc.toml" --listen 127.0.0.1:5000 --http "" >"$out/mmc-meta.log" 2>&1 &
  PIDS+=($!)
  bench_wait_port 5000
  for i in 1 2; do
    "$mmc" local --config "$out/mmc.toml" --meta 127.0.0.1:5000 --dram-size 1GB >"$out/mmc-local-$i.log" 2>&1 &
    PIDS+=($!)
  done
  echo "== Mooncake: mooncake_master (HTTP metadata server embedded)"
  "$master" --rpc_port=50051 --enable_http_metadata_server=true \
    --http_metadata_server_host=127.0.0.1 --http_metadata_server_port=8080 --metrics_port=9003 \
    >"$out/mooncake-master.log" 2>&1 &
  PIDS+=($!)
  bench_wait_port 50051
  bench_wait_port 8080
  sleep 1
}
