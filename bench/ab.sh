#!/usr/bin/env bash
# bench/ab.sh: dlb and nginx in front of the same 3 demo
# backend containers, in alternating rounds, with what make bench does not
# show: context switches and syscalls per request. For performance work;
# make bench is the suite of record.
#
#   bash bench/ab.sh [ROUNDS] [SECONDS] [CONNS]     (defaults 4 5 64)
#   AB_PPROF=1 also takes a CPU profile of the fast path (test-artifacts/ab/ID/fast.pprof),
#   of AB_PPROF_SECS seconds (default 6).
#   AB_IOMODELS="goroutine epoll nbio gnet" adds issue #13's I/O-model prototypes
#   (bench/iomodel: dlb's parser, router and pool behind each I/O model) as
#   targets io-goroutine, io-epoll....
#   AB_BASE=path/to/dlb adds that binary's fast path as target base (an A/B of
#   a change: build the old commit into it first).
#   AB_FLAGS="--max-inflight 4096" gives the fast target (this tree's bin/dlb) those
#   flags too (an A/B of a setting, against AB_BASE built from the same tree).
#   AB_NGINX_KEEPALIVE=64 gives nginx's upstream that many idle connections per worker
#   (default 1024, as dlb keeps per replica; fewer than the requests in flight makes
#   nginx connect anew for the rest).
#   AB_PORT=28290 moves its loopback ports (from 27290), so that two runs do not collide.
#   AB_PERF=1 also records each target with perf (test-artifacts/ab/ID/TARGET-perf.txt).
#   AB_TLS=1 measures HTTPS instead (HTTP/1.1 over TLS): dlb's --listen-tls and
#   nginx's ssl listener, with the same self-signed ECDSA P-256 certificate.
#   AB_H2=1 measures HTTP/2 over TLS (implies AB_TLS=1): h2load -t2 -cCONNS -m10
#   in place of wrk, nginx's listener with http2; p99 is then 0 (h2load has none).
#   The order of the targets rotates from round to round.
#
# Per round and target: req/s, p99, CPU µs per request (utime+stime of the
# process tree), context switches per request (voluntary + involuntary,
# all threads), the backend containers' CPU µs per request (their
# cgroups), packets to and from the backends per request (the bridge's
# counters), minor page faults per request and the load generator's CPU µs
# per request; medians at the end. Then one strace -c -f run per target
# (syscalls per request; strace slows the run, the counts per request hold).
# Needs Docker, Go, wrk, nginx, strace. Traffic goes to 127.0.0.1 and to the
# containers it starts only; everything it starts is removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${1:-4} SECS=${2:-5} CONNS=${3:-64}
P0=${AB_PORT:-27290} # the first of the loopback ports it listens on (AB_PORT: another, for a second run at once)
ID="${AB_NAME:-ab}-$$" # AB_NAME: a prefix of your own for what it creates in Docker
WORK=$ROOT/test-artifacts/ab/$ID
mkdir -p "$WORK"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	docker ps -aq --filter "label=dlb-ab=$ID" | xargs -r docker rm -f >/dev/null 2>&1 || true
	docker network rm "$ID" >/dev/null 2>&1 || true
	docker rmi "dlb-demo:$ID" >/dev/null 2>&1 || true
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o bin/dlb ./cmd/dlb
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o bin/demo ./examples/demo
docker build -q -t "dlb-demo:$ID" -f examples/demo/Dockerfile . >/dev/null
IOMODELS=(${AB_IOMODELS:-})
if ((${#IOMODELS[@]})); then
	(cd bench/iomodel && CGO_ENABLED=0 go build -tags dlbiomodel -o "$ROOT/bin/iomodel" .)
fi
H2=${AB_H2:-0}
TLS=${AB_TLS:-0} SCHEME=http
[[ $H2 == 1 ]] && TLS=1
[[ $H2 == 0 ]] || command -v h2load >/dev/null || { echo "AB_H2=1 needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }
if [[ $TLS == 1 ]]; then
	SCHEME=https
	timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$WORK/key.pem" -out "$WORK/cert.pem" >"$WORK/openssl.log" 2>&1
fi
docker network create --label "dlb-ab=$ID" "$ID" >/dev/null
BRIDGE=br-$(docker network inspect -f '{{.Id}}' "$ID" | cut -c1-12) # the backends' side of every proxy's traffic
IPS=() CIDS=()
for i in 1 2 3; do
	CIDS+=("$(docker run -d --name "$ID-$i" --network "$ID" --label "dlb-ab=$ID" --label dlb.enable=true \
		--label dlb.port=80 --label dlb.service=ab "dlb-demo:$ID")")
	IPS+=("$(docker inspect -f "{{(index .NetworkSettings.Networks \"$ID\").IPAddress}}" "$ID-$i")")
done

declare -A PORT PID
start_dlb() { # NAME PORT [BINARY [FLAGS...]]: over TLS, its HTTPS port is PORT+2
	local tls=()
	if [[ $TLS == 1 ]]; then tls=(--listen-tls "127.0.0.1:$(($2 + 2))" --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"); fi
	GOMAXPROCS=2 "${3:-bin/dlb}" --listen "127.0.0.1:$2" --admin "127.0.0.1:$(($2 + 1))" --network "$ID" \
		--log-level warn --pprof "${tls[@]}" "${@:4}" >"$WORK/$1.log" 2>&1 &
	PID[$1]=$! PORT[$1]=$2
	if [[ $TLS == 1 ]]; then PORT[$1]=$(($2 + 2)); fi
	PIDS+=("$!")
}
TARGETS=(fast)
start_dlb fast $((P0)) bin/dlb ${AB_FLAGS:-}
if [[ -n ${AB_BASE:-} ]]; then
	start_dlb base $((P0 + 6)) "$AB_BASE"
	TARGETS+=(base)
fi
port=$((P0 + 10))
replicas=$(printf '%s:80,' "${IPS[@]}")
for m in "${IOMODELS[@]}"; do
	GOMAXPROCS=2 bin/iomodel --model "$m" --listen "127.0.0.1:$port" --replicas "${replicas%,}" \
		--pprof "127.0.0.1:$((port + 1))" >"$WORK/io-$m.log" 2>&1 &
	PID[io-$m]=$! PORT[io-$m]=$port
	PIDS+=("$!")
	TARGETS+=("io-$m")
	port=$((port + 2))
done
TARGETS+=(nginx)
{
	echo "worker_processes 2; pid $WORK/nginx.pid; error_log $WORK/nginx.err warn;"
	echo "events { worker_connections 4096; }"
	echo "http { access_log off; keepalive_requests 1000000; upstream b {"
	for ip in "${IPS[@]}"; do echo "server $ip:80;"; done
	echo "keepalive ${AB_NGINX_KEEPALIVE:-1024}; keepalive_requests 1000000; }"
	ssl=""
	[[ $TLS == 1 ]] && ssl=" ssl$([[ $H2 == 1 ]] && echo " http2"); ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem"
	echo "server { listen 127.0.0.1:$((P0 + 4))$ssl; location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$http_host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Host \$http_host; proxy_set_header X-Forwarded-Proto \$scheme; } } }"
} >"$WORK/nginx.conf"
nginx -p "$WORK/" -c "$WORK/nginx.conf" -g "daemon off;" >"$WORK/nginx.out" 2>&1 &
PID[nginx]=$! PORT[nginx]=$((P0 + 4))
PIDS+=("$!")
for t in "${TARGETS[@]}"; do
	for i in $(seq 100); do
		[[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$SCHEME://127.0.0.1:${PORT[$t]}/") == 200 ]] && break
		sleep 0.2
	done
done

# run_load SECONDS URL: one bounded load, wrk or (AB_H2=1) h2load; prints
# "REQUESTS REQ/S P99_MS" and leaves the load generator's CPU seconds in
# $WORK/client.cpu (it shares the machine: what it spends on a target's
# responses, the target cannot).
run_load() {
	local out
	if [[ $H2 == 1 ]]; then
		out=$(/usr/bin/time -f '%U %S' -o "$WORK/client.time" timeout -k 5 $(($1 + 30)) h2load -t2 -c"$CONNS" -m10 -D"$1" "$2")
		awk '{print $1 + $2}' "$WORK/client.time" >"$WORK/client.cpu"
		awk '/^finished in/ {gsub(/,/, ""); rps = $4} /^requests:/ {gsub(/,/, ""); n = $8} END {print n, rps, 0}' <<<"$out"
		return
	fi
	out=$(/usr/bin/time -f '%U %S' -o "$WORK/client.time" wrk -t2 -c"$CONNS" -d"$1s" --latency "$2")
	awk '{print $1 + $2}' "$WORK/client.time" >"$WORK/client.cpu"
	awk '/requests in/ {n = $1} /Requests\/sec/ {rps = $2}
		$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; p99 = v}
		END {print n, rps, p99}' <<<"$out"
}
tree() { echo "$1"; for c in $(ps -o pid= --ppid "$1"); do tree "$c"; done; }
# procstat PID INDEX...: the sum over PID's process tree of those fields of
# /proc/PID/stat, counted from the one after the command's name (7: minor
# faults, 11: utime, 12: stime, in ticks).
procstat() {
	local s=0 p f i
	for p in $(tree "$1"); do
		f=($(sed 's/.*) //' "/proc/$p/stat"))
		for i in "${@:2}"; do s=$((s + f[i])); done
	done
	echo $s
}
ticks() { procstat "$1" 11 12; }
faults() { procstat "$1" 7; } # minor page faults
uticks() { procstat "$1" 11; }
ctxsw() {
	local s=0 p v
	for p in $(tree "$1"); do
		for v in $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {print $2}'); do s=$((s + v)); done
	done
	echo $s
}
# backend_ns: CPU time of the 3 backend containers, in ns, from their cgroups
# (v1 cpuacct or v2 cpu.stat); 0 where neither can be read. The backends take
# most of the machine's CPU, and what a proxy sends them changes their share.
backend_ns() {
	local s=0 c f v
	for c in "${CIDS[@]}"; do
		for f in "/sys/fs/cgroup/cpuacct/docker/$c/cpuacct.usage" "/sys/fs/cgroup/system.slice/docker-$c.scope/cpu.stat" "/sys/fs/cgroup/docker/$c/cpu.stat"; do
			[[ -r $f ]] || continue
			if [[ $f == *cpu.stat ]]; then v=$(awk '$1 == "usage_usec" {print $2 * 1000}' "$f"); else v=$(<"$f"); fi
			s=$((s + v))
			break
		done
	done
	echo "$s"
}
# packets: TCP segments the proxy sent to the backends and they sent back (the
# bridge's counters; 0 0 where it cannot be read). A proxy that sends an ACK of
# its own per response pays a packet's trip through the stack for it.
packets() { local d=/sys/class/net/$BRIDGE/statistics; echo "$(cat $d/tx_packets 2>/dev/null || echo 0) $(cat $d/rx_packets 2>/dev/null || echo 0)"; }
HZ=$(getconf CLK_TCK)
printf 'round\ttarget\treq/s\tp99_ms\tcpu_us_per_req\tctxsw_per_req\tuser_us_per_req\tbackends_us_per_req\tpkts_to_backends_per_req\tpkts_from_backends_per_req\tfaults_per_req\tclient_us_per_req\n' | tee "$WORK/runs.tsv"
NT=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
	for k in $(seq 0 $((NT - 1))); do
		t=${TARGETS[$(((k + r - 1) % NT))]}
		t0=$(ticks "${PID[$t]}") c0=$(ctxsw "${PID[$t]}") u0=$(uticks "${PID[$t]}") b0=$(backend_ns)
		read -r tx0 rx0 < <(packets)
		f0=$(faults "${PID[$t]}")
		read -r n rps p99 < <(run_load "$SECS" "$SCHEME://127.0.0.1:${PORT[$t]}/")
		t1=$(ticks "${PID[$t]}") c1=$(ctxsw "${PID[$t]}") u1=$(uticks "${PID[$t]}") b1=$(backend_ns)
		read -r tx1 rx1 < <(packets)
		f1=$(faults "${PID[$t]}") cl=$(<"$WORK/client.cpu")
		awk -v r="$r" -v t="$t" -v rps="$rps" -v p99="$p99" -v dt=$((t1 - t0)) -v dc=$((c1 - c0)) -v du=$((u1 - u0)) -v db=$((b1 - b0)) -v n="$n" -v hz="$HZ" \
			-v dtx=$((tx1 - tx0)) -v drx=$((rx1 - rx0)) -v df=$((f1 - f0)) -v cl="$cl" \
			'BEGIN { printf "%d\t%s\t%s\t%s\t%.1f\t%.2f\t%.1f\t%.1f\t%.2f\t%.2f\t%.3f\t%.1f\n", r, t, rps, p99, dt * 1e6 / hz / n, dc / n, du * 1e6 / hz / n, db / 1e3 / n, dtx / n, drx / n, df / n, cl * 1e6 / n }' | tee -a "$WORK/runs.tsv"
	done
done
echo "medians:"
for t in "${TARGETS[@]}"; do
	awk -F'\t' -v t="$t" '$2 == t { rps[++n] = $3; cpu[n] = $5; cs[n] = $6; p99[n] = $4; usr[n] = $7; be[n] = $8 }
		function med(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
		END { printf "%s\treq/s %.0f\tp99 %.2f ms\tcpu %.1f us/req (user %.1f)\tctxsw %.2f/req\tbackends %.1f us/req\n", t, med(rps, n), med(p99, n), med(cpu, n), med(usr, n), med(cs, n), med(be, n) }' "$WORK/runs.tsv"
done | tee "$WORK/medians.txt"
echo "medians of the per-round ratios to nginx (the same round: the trustworthy figures on a shared machine):"
for t in "${TARGETS[@]}"; do
	[[ $t == nginx ]] && continue
	awk -F'\t' -v t="$t" 'NR > 1 { rps[$1, $2] = $3; cpu[$1, $2] = $5; cs[$1, $2] = $6; be[$1, $2] = $8; if ($1 > R) R = $1 }
		function med(a, n,   i, j, x) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
		END { for (r = 1; r <= R; r++) if (rps[r, "nginx"] > 0 && cpu[r, "nginx"] > 0) { n++; a[n] = rps[r, t] / rps[r, "nginx"]; b[n] = cpu[r, t] / cpu[r, "nginx"]; c[n] = (cs[r, "nginx"] > 0) ? cs[r, t] / cs[r, "nginx"] : 0; d[n] = (be[r, "nginx"] > 0) ? be[r, t] / be[r, "nginx"] : 0 }
			printf "%s\treq/s %.2fx\tcpu/req %.2fx\tctxsw/req %.2fx\tbackends cpu/req %.2fx\t(%d rounds)\n", t, med(a, n), med(b, n), med(c, n), med(d, n), n }' "$WORK/runs.tsv"
done | tee "$WORK/ratios.txt"
if [[ ${AB_PPROF:-0} == 1 ]]; then
	for t in "${TARGETS[@]}"; do
		case $t in fast) bin=bin/dlb ;; base) bin=$AB_BASE ;; io-*) bin=bin/iomodel ;; *) continue ;; esac
		run_load $((${AB_PPROF_SECS:-6} + 2)) "$SCHEME://127.0.0.1:${PORT[$t]}/" >/dev/null &
		admin=$((PORT[$t] + 1))
		if [[ $TLS == 1 ]]; then admin=$((PORT[$t] - 1)); fi
		curl -s -o "$WORK/$t.pprof" "http://127.0.0.1:$admin/debug/pprof/profile?seconds=${AB_PPROF_SECS:-6}"
		wait "$!"
		go tool pprof -top -cum -nodecount=60 "$bin" "$WORK/$t.pprof" >"$WORK/$t-pprof.txt" 2>&1 || true
	done
fi
if [[ ${AB_PERF:-0} == 1 ]] && command -v perf >/dev/null; then
	# perf's view (kernel and user, 1999 Hz): where each proxy's CPU goes.
	for t in "${TARGETS[@]}"; do
		pids=$(tree "${PID[$t]}" | paste -sd,)
		run_load 7 "$SCHEME://127.0.0.1:${PORT[$t]}/" >/dev/null &
		sleep 1
		perf record -q -F 1999 -g -p "$pids" -o "$WORK/$t.perf" -- sleep 5 >/dev/null 2>&1 || true
		wait "$!"
		perf report -q -i "$WORK/$t.perf" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | head -60 >"$WORK/$t-perf.txt" || true
	done
fi
if command -v strace >/dev/null; then
	for t in "${TARGETS[@]}"; do
		pids=$(tree "${PID[$t]}" | sed 's/^/-p /' | tr '\n' ' ')
		timeout 20 strace -f -c -o "$WORK/strace-$t.txt" $pids &
		sp=$!
		sleep 1
		read -r n _ < <(run_load 3 "$SCHEME://127.0.0.1:${PORT[$t]}/")
		kill -INT "$sp" 2>/dev/null
		wait "$sp" 2>/dev/null || true
		echo "== $t: syscalls per request under strace ($n requests)"
		awk -v n="$n" '$1 ~ /^[0-9.]+$/ && NF >= 5 { c = $4; e = (NF == 6) ? $5 : 0; name = $NF; if (c / n >= 0.01) printf "  %-14s %6.2f/req  (errors %.2f/req)\n", name, c / n, e / n }' "$WORK/strace-$t.txt"
	done | tee "$WORK/strace.txt"
fi
echo "results in $WORK"
