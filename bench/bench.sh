#!/usr/bin/env bash
# make bench: dlb, nginx and HAProxy on 127.0.0.1 in front of the same demo
# backend containers, plus wrk straight to one backend container (the ceiling).
# Writes benchmarks.md, benchmarks.png and benchmarks-runs.tsv (see docs/).
#
# Knobs (environment):
#   BENCH_REPLICAS=3      backend containers (1-50)
#   BENCH_ROUNDS=3        rounds; in each, every target runs once per concurrency
#   BENCH_DURATION=10     seconds per wrk run
#   BENCH_CONNS="64 256"  wrk connection counts, each run with -t2
#   BENCH_QUICK=1         smoke test: 1 round of 3 s (unless the two above are set),
#                         written to the run's folder under test-artifacts/, not docs/
#   BENCH_OUT=DIR         where the page, chart and runs go (default docs/, or the
#                         run's folder when quick)
#   BENCH_PORT_BASE=18400 first loopback port to try for the proxies
#   BENCH_CONVERGENCE=1   also measure convergence (0 skips it): a pool scaled
#                         from 1 to BENCH_CONV_REPLICAS backends under light load
#   BENCH_CONV_REPLICAS=50  (10 when quick; 2-200)
#   BENCH_TLS_CONNS=64    connection counts of the TLS rows: dlb and nginx over HTTPS
#                         (wrk, HTTP/1.1) and HTTP/2 over TLS (h2load -m10), with
#                         the same self-signed certificate; "" skips them
#
# Needs Docker, Go, and (installed from Debian when missing, as root) wrk,
# nginx, haproxy, curl, jq, openssl and h2load (nghttp2-client). Sends traffic only to 127.0.0.1 and to the
# containers it starts; every run and every wait has a deadline; an EXIT trap
# removes its containers, its network and the processes it started, on
# failure and on Ctrl-C too. Logs and configs stay in test-artifacts/bench/RUN/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
	ROUNDS=${BENCH_ROUNDS:-1} DURATION=${BENCH_DURATION:-3} WARMUP=1
else
	ROUNDS=${BENCH_ROUNDS:-3} DURATION=${BENCH_DURATION:-10} WARMUP=3
fi
REPLICAS=${BENCH_REPLICAS:-3}
CONVERGENCE=${BENCH_CONVERGENCE:-1}
if [[ $QUICK == 1 ]]; then CONV_REPLICAS=${BENCH_CONV_REPLICAS:-10}; else CONV_REPLICAS=${BENCH_CONV_REPLICAS:-50}; fi
CONVERGENCE_DIR="" # where bench_convergence left its figures
CONV_ADMIN=""      # the convergence dlb's admin URL
CONV_WANT=0        # how many ready replicas conv_ready waits for
DLB_VERSION=dev    # git describe of the tree measured
CONNS=${BENCH_CONNS:-64 256}
TLS_CONNS=${BENCH_TLS_CONNS-64}
H2_STREAMS=10 # h2load -m: concurrent streams per HTTP/2 connection
PORT_BASE=${BENCH_PORT_BASE:-18400}
THREADS=2 # wrk threads
WORKERS=2 # nginx worker_processes, HAProxy nbthread, dlb GOMAXPROCS

RUN_ID="$(date -u +%Y%m%d-%H%M%S)-$$"
WORK="$ROOT/test-artifacts/bench/$RUN_ID"
OUT=${BENCH_OUT:-}
[[ -n $OUT ]] || if [[ $QUICK == 1 ]]; then OUT=$WORK; else OUT=$ROOT/docs; fi
NET="dlb-bench-$RUN_ID"      # the bench's own bridge network
IMAGE="dlb-demo:bench-$RUN_ID" # the backend image, removed on exit
LABEL="dlb-bench.run=$RUN_ID" # on everything it creates in Docker, for cleanup

TARGETS=()       # what the rounds measure, in order
TLS_TARGETS=()   # what the rounds measure over TLS: TARGET-https (wrk) and TARGET-h2 (h2load)
CERT=""          # the self-signed certificate (and $CERT_KEY) both TLS proxies serve
CERT_KEY=""
SKIPPED=()       # TARGET=REASON for the report
BACKENDS=()      # the backend containers' addresses on $NET
STARTED=()       # PIDs of the processes this script started
declare -A URL   # target -> URL wrk loads
declare -A PROC  # target -> PID of the proxy (none for direct)
NET_CREATED=0
IMAGE_BUILT=0
WRK_PID=""
NEXT_PORT=$PORT_BASE

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# dk runs a docker command with a deadline, so a stuck engine cannot hang the bench.
dk() { timeout 300 docker "$@"; }

# in_range VALUE MIN MAX: VALUE is a whole number from MIN to MAX.
in_range() { [[ $1 =~ ^[0-9]{1,6}$ ]] && ((10#$1 >= $2 && 10#$1 <= $3)); }

check_knobs() {
	local name value min max
	while read -r name value min max; do
		in_range "$value" "$min" "$max" || die "$name=$value: want a whole number from $min to $max"
	done <<-EOF
		BENCH_REPLICAS $REPLICAS 1 50
		BENCH_ROUNDS $ROUNDS 1 20
		BENCH_DURATION $DURATION 1 600
		BENCH_PORT_BASE $PORT_BASE 1024 64000
		BENCH_CONV_REPLICAS $CONV_REPLICAS 2 200
	EOF
	[[ $CONVERGENCE == [01] ]] || die "BENCH_CONVERGENCE=$CONVERGENCE: want 1 (measure convergence) or 0 (skip it)"
	[[ -n ${CONNS// /} ]] || die "BENCH_CONNS is empty: want connection counts such as \"64 256\""
	local c list=() tls=()
	for c in $CONNS; do
		in_range "$c" "$THREADS" 10000 ||
			die "BENCH_CONNS=\"$CONNS\": \"$c\" is not a connection count from $THREADS (wrk's -t) to 10000"
		list+=($((10#$c)))
	done
	for c in $TLS_CONNS; do
		in_range "$c" "$THREADS" 10000 && ((10#$c % THREADS == 0)) ||
			die "BENCH_TLS_CONNS=\"$TLS_CONNS\": \"$c\" is not a connection count from $THREADS to 10000, a multiple of $THREADS (h2load's -t)"
		tls+=($((10#$c)))
	done
	# Base 10 from here on: bash would read 08 as a bad octal number.
	CONNS=${list[*]} TLS_CONNS=${tls[*]}
	REPLICAS=$((10#$REPLICAS)) CONV_REPLICAS=$((10#$CONV_REPLICAS)) ROUNDS=$((10#$ROUNDS)) DURATION=$((10#$DURATION)) PORT_BASE=$((10#$PORT_BASE))
	NEXT_PORT=$PORT_BASE
}

# install_tools installs from Debian whatever the bench needs and lacks:
# one apt-get update, then one apt-get install.
install_tools() {
	local missing=() tool
	for tool in wrk nginx haproxy curl jq openssl; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	[[ -z $TLS_CONNS ]] || command -v h2load >/dev/null || missing+=(nghttp2-client)
	command -v ps >/dev/null || missing+=(procps)
	command -v ss >/dev/null || missing+=(iproute2)
	command -v docker >/dev/null || die "docker is not installed: the bench runs its backends as containers"
	command -v go >/dev/null || die "go is not installed: the bench builds the backends, dlb and its report with it"
	((${#missing[@]} == 0)) && return 0
	((EUID == 0)) || die "missing ${missing[*]}: install them (sudo apt-get install -y ${missing[*]}) or run the bench as root"
	command -v apt-get >/dev/null || die "missing ${missing[*]}, and there is no apt-get to install them with"
	log "installing from Debian: ${missing[*]}"
	# The lock timeout waits for another apt run on the machine instead of failing at once.
	timeout 900 apt-get -o DPkg::Lock::Timeout=300 update -qq ||
		die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 \
		install -y -qq --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 ||
		die "apt-get install ${missing[*]} failed (see $WORK/apt.log)"
}

# build: the binaries, the report tool, and the backend image under a tag of
# this run's own, so that the bench never retags the dlb:dev or dlb-demo:dev
# images that other work on the same Docker Engine may be using (dlb itself
# runs on the host, from bin/dlb).
build() {
	local bins=(bin/demo)
	# Before the run writes its pages into docs/, which would make it "dirty".
	DLB_VERSION=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
	if [[ -f cmd/dlb/main.go ]]; then
		bins+=(bin/dlb)
		TARGETS+=(dlb)
		[[ -z $TLS_CONNS ]] || TLS_TARGETS=(dlb-https nginx-https dlb-h2 nginx-h2)
	else
		log "dlb: SKIPPED: cmd/dlb/main.go does not exist yet; measuring nginx, HAProxy and direct only"
		SKIPPED+=("dlb=cmd/dlb does not exist yet")
	fi
	TARGETS+=(nginx haproxy direct)
	log "building ${bins[*]}, bench/report and the $IMAGE image"
	{
		make --no-print-directory "${bins[@]}" &&
			(cd bench && go build -o "$WORK/report" ./report) &&
			dk build -q --label "$LABEL" -t "$IMAGE" -f examples/demo/Dockerfile .
	} >"$WORK/build.log" 2>&1 || die "the build failed (see $WORK/build.log)"
	IMAGE_BUILT=1
}

# wait_for SECONDS WHAT PID CMD...: run CMD until it succeeds; fail when the
# deadline passes or when PID (unless "-") has exited.
wait_for() {
	local secs=$1 what=$2 pid=$3
	shift 3
	local end=$((SECONDS + secs))
	until "$@"; do
		if [[ $pid != - ]] && ! kill -0 "$pid" 2>/dev/null; then
			die "$what: the process exited early (its log is in $WORK)"
		fi
		((SECONDS < end)) || die "timed out after ${secs}s waiting for $what (logs are in $WORK)"
		sleep 0.2
	done
}

# assert_allowed URL: the bench loads only loopback and its own containers.
assert_allowed() {
	local host=${1#http://}
	host=${host#https://}
	host=${host%%[:/]*}
	[[ $host == 127.0.0.1 ]] && return 0
	local b
	for b in "${BACKENDS[@]}"; do [[ $host == "$b" ]] && return 0; done
	die "refusing to load $1: not 127.0.0.1 nor a container this bench started"
}

# fetch URL: one bounded request, body on stdout; never through a proxy.
fetch() { curl -fsS --noproxy '*' --max-time 2 ${CERT:+--cacert "$CERT"} "$1"; }
http_ok() { fetch "$1" >/dev/null 2>&1; }

start_backends() {
	log "starting $REPLICAS backend containers ($IMAGE) on network $NET"
	dk network create --driver bridge --label "$LABEL" "$NET" >/dev/null
	NET_CREATED=1
	local i name ip
	for ((i = 1; i <= REPLICAS; i++)); do
		name="$NET-app-$i"
		# dlb.service puts the replicas in one pool (without it, each
		# container outside Compose is a service of its own).
		dk run -d --pull never --name "$name" --network "$NET" --label "$LABEL" \
			--label dlb.enable=true --label dlb.port=80 --label dlb.service=bench \
			--label dlb.balance=round_robin "$IMAGE" >/dev/null
		ip=$(dk inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$name")
		[[ $ip =~ ^[0-9]+(\.[0-9]+){3}$ ]] || die "container $name has no address on $NET (got \"$ip\")"
		BACKENDS+=("$ip")
	done
	for ip in "${BACKENDS[@]}"; do
		wait_for 30 "backend $ip to answer" - http_ok "http://$ip:80/healthz"
	done
}

# make_cert: a self-signed ECDSA P-256 certificate for 127.0.0.1, which
# both TLS proxies serve.
make_cert() {
	mkdir -p "$WORK/tls"
	CERT=$WORK/tls/cert.pem CERT_KEY=$WORK/tls/key.pem
	timeout 30 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$CERT_KEY" -out "$CERT" >"$WORK/tls/openssl.log" 2>&1 ||
		die "openssl could not make the bench's certificate (see $WORK/tls/openssl.log)"
}

# alloc_port VAR: the next free loopback port from $NEXT_PORT on.
alloc_port() {
	local tries=0
	while [[ -n $(ss -Htln "sport = :$NEXT_PORT") ]]; do
		((++tries < 500)) || die "no free port from $PORT_BASE on: set BENCH_PORT_BASE"
		NEXT_PORT=$((NEXT_PORT + 1))
	done
	printf -v "$1" '%s' "$NEXT_PORT"
	NEXT_PORT=$((NEXT_PORT + 1))
}

# start_proc TARGET LOG CMD...: start CMD in the background and remember it.
start_proc() {
	local target=$1 logf=$2
	shift 2
	"$@" >"$logf" 2>&1 &
	PROC[$target]=$!
	STARTED+=("$!")
}

start_nginx() {
	local port tport dir=$WORK/nginx ip
	alloc_port port
	[[ -z $CERT ]] || alloc_port tport
	mkdir -p "$dir"
	{
		echo "# Written by bench/bench.sh for one run."
		echo "worker_processes $WORKERS;"
		echo "pid $dir/nginx.pid;"
		echo "error_log $dir/error.log warn;"
		echo "events { worker_connections 4096; }"
		echo "http {"
		echo "    access_log off;"
		echo "    # nginx closes a client connection after 1000 requests by default; the others do not."
		echo "    keepalive_requests 1000000;"
		echo "    upstream backends {"
		for ip in "${BACKENDS[@]}"; do echo "        server $ip:80;"; done
		echo "        # Idle connections kept per worker: as many as dlb keeps per replica"
		echo "        # (1024). With fewer, a run with more requests in"
		echo "        # flight than that (h2load -c64 -m10: 640) has nginx connect anew for many of"
		echo "        # them, and its CPU per request is then mostly connect()'s."
		echo "        keepalive 1024;"
		echo "        keepalive_requests 1000000;"
		echo "    }"
		echo "    server {"
		echo "        listen 127.0.0.1:$port;"
		if [[ -n $CERT ]]; then
			echo "        listen 127.0.0.1:$tport ssl http2;"
			echo "        ssl_certificate $CERT;"
			echo "        ssl_certificate_key $CERT_KEY;"
		fi
		echo "        location / {"
		echo "            proxy_pass http://backends;"
		echo "            proxy_http_version 1.1;"
		echo "            proxy_set_header Connection \"\";"
		echo "            # The request each backend gets from dlb: the client's Host, and"
		echo "            # X-Forwarded-For, -Host and -Proto (three more fields it parses)."
		echo "            proxy_set_header Host \$http_host;"
		echo "            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
		echo "            proxy_set_header X-Forwarded-Host \$http_host;"
		echo "            proxy_set_header X-Forwarded-Proto \$scheme;"
		echo "        }"
		echo "    }"
		echo "}"
	} >"$dir/nginx.conf"
	timeout 30 nginx -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1 ||
		die "nginx rejected its config (see $dir/check.log)"
	start_proc nginx "$dir/stdout.log" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" -g "daemon off;"
	URL[nginx]="http://127.0.0.1:$port/"
	wait_for 30 "nginx on 127.0.0.1:$port" "${PROC[nginx]}" http_ok "${URL[nginx]}"
	[[ -z $CERT ]] || tls_urls nginx "$tport"
}

start_haproxy() {
	local port dir=$WORK/haproxy ip i=0
	alloc_port port
	mkdir -p "$dir"
	{
		echo "# Written by bench/bench.sh for one run."
		echo "global"
		echo "    nbthread $WORKERS"
		echo "    maxconn 4096 # 2 fds each: within the usual 20000-fd hard limit"
		echo "defaults"
		echo "    mode http"
		echo "    timeout connect 5s"
		echo "    timeout client 30s"
		echo "    timeout server 30s"
		echo "    timeout http-keep-alive 30s"
		echo "frontend bench"
		echo "    bind 127.0.0.1:$port"
		echo "    default_backend backends"
		echo "backend backends"
		echo "    balance roundrobin"
		echo "    http-reuse always"
		echo "    # X-Forwarded-For, -Host and -Proto, as dlb and nginx send them."
		echo "    option forwardfor"
		echo "    http-request set-header X-Forwarded-Host %[req.hdr(host)]"
		echo "    http-request set-header X-Forwarded-Proto http"
		for ip in "${BACKENDS[@]}"; do
			i=$((i + 1))
			echo "    server app$i $ip:80"
		done
	} >"$dir/haproxy.cfg"
	timeout 30 haproxy -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1 ||
		die "haproxy rejected its config (see $dir/check.log)"
	# -db: stay in the foreground, one process (with its threads) to measure.
	start_proc haproxy "$dir/haproxy.log" haproxy -db -f "$dir/haproxy.cfg"
	URL[haproxy]="http://127.0.0.1:$port/"
	wait_for 30 "haproxy on 127.0.0.1:$port" "${PROC[haproxy]}" http_ok "${URL[haproxy]}"
}

# dlb_ready ADMIN_URL: dlb's admin API lists all $REPLICAS backends as ready.
# The last answer stays in dlb/pools.json, for when it never does.
dlb_ready() {
	local n
	fetch "$1/api/pools" >"$WORK/dlb/pools.json" 2>&1 || return 1
	n=$(jq '[.[].replicas[]? | select(.state == "ready")] | length' "$WORK/dlb/pools.json" 2>/dev/null) || return 1
	[[ $n == "$REPLICAS" ]]
}

start_dlb() {
	local port tport aport dir=$WORK/dlb
	alloc_port port
	alloc_port aport
	mkdir -p "$dir"
	local cmd=(env "GOMAXPROCS=$WORKERS" "$ROOT/bin/dlb" --listen "127.0.0.1:$port" --admin "127.0.0.1:$aport"
		--network "$NET" --log-level warn)
	if [[ -n $CERT ]]; then
		alloc_port tport
		cmd+=(--listen-tls "127.0.0.1:$tport" --tls-cert "$CERT" --tls-key "$CERT_KEY")
	fi
	printf '%s\n' "${cmd[*]}" >"$dir/command.txt"
	start_proc dlb "$dir/dlb.log" "${cmd[@]}"
	URL[dlb]="http://127.0.0.1:$port/"
	wait_for 30 "dlb's /healthz on 127.0.0.1:$aport" "${PROC[dlb]}" http_ok "http://127.0.0.1:$aport/healthz"
	wait_for 60 "dlb to list $REPLICAS ready replicas in /api/pools (its last answer: $dir/pools.json)" \
		"${PROC[dlb]}" dlb_ready "http://127.0.0.1:$aport"
	local pools
	pools=$(jq -r '[.[] | select((.replicas // []) | length > 0) | "\(.name) (\(.policy))"] | join(", ")' "$dir/pools.json")
	[[ $pools == "bench (round_robin)" ]] ||
		die "dlb's pools are \"$pools\", want the one pool \"bench (round_robin)\" (see $dir/pools.json)"
	[[ -z $CERT ]] || tls_urls dlb "$tport"
}

# tls_urls PROXY PORT: the proxy's TLS rows, PROXY-https (wrk, HTTP/1.1)
# and PROXY-h2 (h2load), on its TLS port; it must speak HTTP/2 there.
tls_urls() {
	local v
	URL[$1-https]="https://127.0.0.1:$2/" URL[$1-h2]="https://127.0.0.1:$2/"
	PROC[$1-https]=${PROC[$1]} PROC[$1-h2]=${PROC[$1]}
	wait_for 30 "$1 on https://127.0.0.1:$2" "${PROC[$1]}" http_ok "${URL[$1-https]}"
	v=$(curl -sS --noproxy '*' --max-time 2 --cacert "$CERT" --http2 -o /dev/null -w '%{http_version}' "${URL[$1-h2]}") ||
		die "$1: HTTP/2 over TLS failed"
	[[ $v == 2 ]] || die "$1 answered HTTP/$v over TLS to a client offering h2, want HTTP/2"
}

# fields TARGET: the names of the header fields a backend gets through TARGET
# (the demo's /echo-headers), one line.
fields() {
	fetch "${URL[$1]}echo-headers" | sed -n 's/^\([A-Za-z-]*\): .*/\1/p' | sort | tr '\n' ' '
}

# check_fields TARGET: a backend gets the same header fields through TARGET
# as through dlb (when dlb is measured): each proxy sends the same request.
check_fields() {
	[[ -n ${URL[dlb]:-} ]] || return 0
	local want got
	want=$(fields dlb) || die "dlb: GET /echo-headers failed"
	got=$(fields "$1") || die "$1: GET /echo-headers failed"
	[[ $got == "$want" ]] ||
		die "the backends get the fields \"$got\" through $1 and \"$want\" through dlb: its settings are not equivalent"
}

# check_spread TARGET: the proxy reaches every backend (round robin).
# 4 requests per replica, so that even a proxy whose workers each keep
# their own round-robin position shows all of them.
check_spread() {
	local target=$1 i seen
	seen=$(for ((i = 0; i < 4 * REPLICAS; i++)); do fetch "${URL[$target]}" || exit 1; done | sort -u | wc -l) ||
		die "$target: a request failed while checking that it reaches every backend"
	((seen == REPLICAS)) || die "$target reached $seen of the $REPLICAS backends: its settings are not equivalent"
}

# tree_pids PID: PID and all its descendants.
tree_pids() {
	local child
	echo "$1"
	for child in $(ps -o pid= --ppid "$1" || true); do tree_pids "$child"; done
}

# cpu_ticks PID: utime + stime, in clock ticks, of PID and its descendants
# (nginx's master and workers; HAProxy's and dlb's threads are in their one process).
cpu_ticks() {
	local total=0 pid stat f
	for pid in $(tree_pids "$1"); do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		stat=${stat##*) } # the command name may hold spaces; fields go on after ") "
		read -ra f <<<"$stat"
		total=$((total + f[11] + f[12])) # fields 14 and 15 of proc(5)
	done
	echo "$total"
}

# stop_tree PID: TERM the process and its descendants, KILL what is left after 5 s.
stop_tree() {
	local pids p i alive
	kill -0 "$1" 2>/dev/null || return 0
	mapfile -t pids < <(tree_pids "$1")
	kill -TERM "${pids[@]}" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	((alive)) && kill -KILL "${pids[@]}" 2>/dev/null
	wait "$1" 2>/dev/null || true # its status is the signal's, not a failure
	return 0
}

# run_wrk URL CONNS SECONDS LOG: one bounded wrk run; sets R_REQUESTS,
# R_DURATION_US, R_P50, R_P99 (microseconds) and R_ERRORS.
run_wrk() {
	local url=$1 conns=$2 secs=$3 logf=$4 rc=0 line kv
	assert_allowed "$url"
	# In the background with `wait`, so that Ctrl-C reaches the trap at once.
	timeout -k 5 $((secs + 30)) wrk -t"$THREADS" -c"$conns" -d"${secs}s" --timeout 5s \
		-s "$ROOT/bench/wrk-report.lua" "$url" >"$logf" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || rc=$?
	WRK_PID=""
	((rc == 0)) || die "wrk against $url exited with $rc (see $logf)"
	line=$(grep -m1 '^BENCH_RESULT ' "$logf") || die "wrk printed no result line (see $logf)"
	R_ERRORS=0
	for kv in ${line#BENCH_RESULT }; do
		case ${kv%%=*} in
		requests) R_REQUESTS=${kv#*=} ;;
		duration_us) R_DURATION_US=${kv#*=} ;;
		p50_us) R_P50=${kv#*=} ;;
		p99_us) R_P99=${kv#*=} ;;
		*) R_ERRORS=$((R_ERRORS + ${kv#*=})) ;;
		esac
	done
	((R_REQUESTS > 0)) || die "wrk completed no request against $url (see $logf)"
}

# run_h2load URL CONNS SECONDS LOG: one bounded h2load run of $H2_STREAMS
# streams per connection; sets what run_wrk sets, the percentiles NA
# (h2load reports none).
run_h2load() {
	local url=$1 conns=$2 secs=$3 logf=$4 rc=0 line n
	assert_allowed "$url"
	timeout -k 5 $((secs + 30)) h2load -t"$THREADS" -c"$conns" -m"$H2_STREAMS" -D"$secs" "$url" >"$logf" 2>&1 &
	WRK_PID=$!
	wait "$WRK_PID" || rc=$?
	WRK_PID=""
	((rc == 0)) || die "h2load against $url exited with $rc (see $logf)"
	# "finished in 10.00s, 1234.50 req/s, ..." and
	# "requests: T total, S started, D done, OK succeeded, F failed, E errored, X timeout"
	line=$(grep -m1 '^finished in ' "$logf") || die "h2load printed no result (see $logf)"
	R_DURATION_US=$(awk '{ sub(/s,$/, "", $3); printf "%d", $3 * 1e6 }' <<<"$line")
	line=$(grep -m1 '^requests: ' "$logf") || die "h2load printed no request counts (see $logf)"
	read -ra n <<<"${line//,/}"
	R_REQUESTS=${n[7]} R_ERRORS=$((n[9] + n[11] + n[13])) R_P50=NA R_P99=NA
	[[ ${n[8]} == succeeded && ${n[14]} == timeout ]] || die "h2load's request line is not as expected: $line"
	((R_REQUESTS > 0)) || die "h2load completed no request against $url (see $logf)"
}

# load TARGET CONNS SECONDS LOG: h2load for the HTTP/2 rows, wrk for the others.
load() {
	if [[ $1 == *-h2 ]]; then
		run_h2load "${URL[$1]}" "$2" "$3" "$4"
	else
		run_wrk "${URL[$1]}" "$2" "$3" "$4"
	fi
}

# measure ROUND CONNS TARGET: one recorded run, appended to runs.tsv.
measure() {
	local round=$1 conns=$2 target=$3 pid=${PROC[$3]:-} before=0 after=0 rps cpu
	[[ -z $pid ]] || before=$(cpu_ticks "$pid")
	load "$target" "$conns" "$DURATION" "$WORK/wrk-r$round-c$conns-$target.log"
	[[ -z $pid ]] || after=$(cpu_ticks "$pid")
	[[ -z $pid ]] || kill -0 "$pid" 2>/dev/null || die "$target died during the run (its log is in $WORK/$target)"
	rps=$(awk -v n="$R_REQUESTS" -v us="$R_DURATION_US" 'BEGIN { printf "%.1f", n * 1e6 / us }')
	if [[ -n $pid ]]; then
		cpu=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$R_REQUESTS" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
	else
		cpu=NA
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$conns" "$target" "$rps" "$R_P50" "$R_P99" \
		"$R_REQUESTS" "$R_ERRORS" "$cpu" >>"$WORK/runs.tsv"
	log "$(printf 'round %d/%d, %4d conns, %-11s %9s req/s  p50 %6s ms  p99 %7s ms  cpu %6s us/req  errors %d' \
		"$round" "$ROUNDS" "$conns" "$target" "$rps" "$(awk -v v="$R_P50" 'BEGIN{print v == "NA" ? v : v/1e3}')" \
		"$(awk -v v="$R_P99" 'BEGIN{print v == "NA" ? v : v/1e3}')" "$cpu" "$R_ERRORS")"
}

# conv_count STATE|served: how many replicas of the convergence pool dlb's
# admin API lists as ready, or as having served a request; its last answer
# stays in convergence/pools.json.
conv_count() {
	local f=$WORK/convergence/pools.json sel
	fetch "$CONV_ADMIN/api/pools" >"$f" 2>&1 || return 1
	case $1 in
	served) sel='.requests > 0' ;;
	*) sel=".state == \"$1\"" ;;
	esac
	jq "[.[] | select(.name == \"conv\") | .replicas[]? | select($sel)] | length" "$f" 2>/dev/null
}
conv_ready() { [[ $(conv_count ready) == "$CONV_WANT" ]]; }
conv_served() { [[ $(conv_count served) == "$CONV_REPLICAS" ]]; }

# bench_convergence: how fast dlb follows a scale from 1 to $CONV_REPLICAS
# backends while a light steady load goes through it. A fresh dlb (JSON
# log at info level, which times each replica from its Docker event) fronts
# a pool of its own (host conv.bench); one backend is there before it starts,
# the others are started at once, 8 docker runs at a time. Leaves in
# $WORK/convergence what bench/report/convergence.go reads.
bench_convergence() {
	local dir=$WORK/convergence port aport host=conv.bench t0 wall line kv requests=0 errors=0
	local run=(timeout 300 docker run -d --pull never --network "$NET" --label "$LABEL" --label dlb.enable=true
		--label dlb.port=80 --label dlb.service=conv --label "dlb.host=$host")
	mkdir -p "$dir"
	# The proxies measured above are done: stopped, so that the dlb among
	# them does not inspect and probe the new containers too.
	local t
	for t in "${!PROC[@]}"; do stop_tree "${PROC[$t]}"; done
	log "convergence: scaling a pool from 1 to $CONV_REPLICAS backends behind a fresh dlb"
	"${run[@]}" --name "$NET-conv-1" "$IMAGE" >/dev/null || die "starting the first convergence backend failed"
	alloc_port port
	alloc_port aport
	CONV_ADMIN="http://127.0.0.1:$aport"
	start_proc conv "$dir/dlb.log" env "GOMAXPROCS=$WORKERS" "$ROOT/bin/dlb" --listen "127.0.0.1:$port" \
		--admin "127.0.0.1:$aport" --network "$NET" --log-level info --log-format json
	wait_for 30 "the convergence dlb's /healthz" "${PROC[conv]}" http_ok "$CONV_ADMIN/healthz"
	CONV_WANT=1
	wait_for 60 "dlb to list the first convergence backend as ready (see $dir/pools.json)" "${PROC[conv]}" conv_ready

	assert_allowed "http://127.0.0.1:$port/"
	# 16 connections, each pausing 4 ms between requests: at most 4,000
	# req/s, so that the load does not starve the engine that starts the
	# containers. wrk stops at its duration at the latest; it is interrupted
	# (and reports) once every new replica has served.
	WRK_REPORT_LUA="$ROOT/bench/wrk-report.lua" timeout -k 5 400 wrk -t1 -c16 -d300s --timeout 5s \
		-H "Host: $host" -s "$ROOT/bench/wrk-paced.lua" "http://127.0.0.1:$port/" -- 4 >"$dir/wrk.log" 2>&1 &
	WRK_PID=$!
	t0=$(date +%s%N)
	seq 2 "$CONV_REPLICAS" | xargs -P 8 -I{} "${run[@]}" --name "$NET-conv-{}" "$IMAGE" >/dev/null ||
		die "starting the convergence backends failed"
	CONV_WANT=$CONV_REPLICAS
	wait_for 300 "dlb to list $CONV_REPLICAS ready convergence backends (see $dir/pools.json)" "${PROC[conv]}" conv_ready
	wall=$(($(date +%s%N) - t0))
	wait_for 60 "each convergence backend to serve a request through dlb (see $dir/pools.json)" "${PROC[conv]}" conv_served
	kill -INT "$WRK_PID" 2>/dev/null
	wait "$WRK_PID" || true
	WRK_PID=""
	line=$(grep -m1 '^BENCH_RESULT ' "$dir/wrk.log") || die "wrk printed no result line (see $dir/wrk.log)"
	for kv in ${line#BENCH_RESULT }; do
		case ${kv%%=*} in
		requests) requests=${kv#*=} ;;
		duration_us | p50_us | p99_us) ;;
		*) errors=$((errors + ${kv#*=})) ;;
		esac
	done

	fetch "$CONV_ADMIN/metrics" >"$dir/metrics.txt" || die "could not read the convergence dlb's /metrics"
	sed -nE 's/^dlb_event_to_first_request_seconds_bucket\{(.*,)?le="([^"]+)"(,.*)?\} ([0-9.e+]+)$/\2\t\4/p' \
		<(grep 'service="conv"' "$dir/metrics.txt") >"$dir/first-buckets.tsv"
	[[ -s $dir/first-buckets.tsv ]] || die "dlb's /metrics has no dlb_event_to_first_request_seconds for conv (see $dir/metrics.txt)"
	local m
	for m in "replica starting:known" "replica ready:ready"; do
		jq -r --arg msg "${m%%:*}" 'select(.message == $msg and .service == "conv" and .since_event_ms != null) | .since_event_ms' \
			"$dir/dlb.log" >"$dir/${m##*:}-ms.txt" 2>/dev/null || die "could not read dlb's JSON log $dir/dlb.log"
	done
	printf 'from\t1\nto\t%d\nwall_s\t%s\nrequests\t%d\nerrors\t%d\nload\t%s\n' "$CONV_REPLICAS" \
		"$(awk -v ns="$wall" 'BEGIN { printf "%.2f", ns / 1e9 }')" "$requests" "$errors" \
		"wrk -t1 -c16, each connection pausing 4 ms between requests" >"$dir/meta.tsv"
	log "convergence: $CONV_REPLICAS ready after $(cut -f2 <<<"$(grep ^wall_s "$dir/meta.tsv")") s;" \
		"event to ready, median $(sort -n "$dir/ready-ms.txt" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }') ms;" \
		"$requests requests, $errors failed"
	stop_tree "${PROC[conv]}"
	CONVERGENCE_DIR=$dir
}

machine_line() {
	local cpu_model mem dlb_ver nginx_ver haproxy_ver wrk_ver
	cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	mem=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
	nginx_ver=$(nginx -v 2>&1 | sed -n 's/.*nginx\///p')
	haproxy_ver=$(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }')
	wrk_ver=$({ wrk -v 2>&1 || true; } | awk 'NR == 1 { sub(/^debian\//, "", $2); print $2 }')
	if [[ -x bin/dlb && " ${TARGETS[*]} " == *" dlb "* ]]; then
		dlb_ver="dlb $DLB_VERSION"
	else
		dlb_ver="dlb not built yet"
	fi
	printf '%s CPUs (%s), %s GiB RAM, Linux %s; Docker Engine %s; %s; nginx %s; HAProxy %s; wrk %s; %s' \
		"$(nproc)" "${cpu_model:-unknown CPU}" "$mem" "$(uname -r)" \
		"$(dk version -f '{{.Server.Version}}' 2>/dev/null || echo '?')" "$(go env GOVERSION)" \
		"${nginx_ver:-?}" "${haproxy_ver:-?}" "${wrk_ver:-?}" "$dlb_ver"
}

# attach TITLE FILE: add FILE to the page's settings (in the caller's args),
# with this machine's paths made relative to the repository.
attach() {
	local copy="$WORK/attach-${1//[^A-Za-z0-9.]/_}"
	sed -e "s#$WORK#test-artifacts/bench/RUN#g" -e "s#$ROOT/##g" "$2" >"$copy"
	args+=(-attach "$1=$copy")
}

write_report() {
	local args=() s note="" cmd
	mkdir -p "$OUT"
	cp "$WORK/runs.tsv" "$OUT/benchmarks-runs.tsv"
	for s in "${SKIPPED[@]}"; do args+=(-skip "$s"); done
	[[ -z $CONVERGENCE_DIR ]] || args+=(-convergence "$CONVERGENCE_DIR")
	[[ ! -f $WORK/dlb/command.txt ]] || attach "dlb command line" "$WORK/dlb/command.txt"
	attach nginx.conf "$WORK/nginx/nginx.conf"
	attach haproxy.cfg "$WORK/haproxy/haproxy.cfg"
	cmd="BENCH_REPLICAS=$REPLICAS BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_CONNS='$CONNS' BENCH_TLS_CONNS='$TLS_CONNS'"
	cmd+=" BENCH_CONVERGENCE=$CONVERGENCE BENCH_CONV_REPLICAS=$CONV_REPLICAS make bench"
	if [[ $QUICK == 1 ]]; then
		cmd="BENCH_QUICK=1 $cmd"
		note="Quick smoke run (BENCH_QUICK=1): too short to quote"
	fi
	local targets
	targets=$(IFS=,; echo "${TARGETS[*]},${TLS_TARGETS[*]}")
	"$WORK/report" -runs "$OUT/benchmarks-runs.tsv" -md "$OUT/benchmarks.md" -png "$OUT/benchmarks.png" -targets "${targets%,}" -h2-streams "$H2_STREAMS" \
		-machine "$(machine_line)" -command "$cmd" -load "$LOAD_BEFORE" -note "$note" \
		-replicas "$REPLICAS" -duration "$DURATION" -threads "$THREADS" -workers "$WORKERS" "${args[@]}" ||
		die "bench/report failed"
	log "wrote $OUT/benchmarks.md, $OUT/benchmarks.png and $OUT/benchmarks-runs.tsv"
}

cleanup() {
	local rc=$? pid ids
	trap - EXIT INT TERM
	set +e
	[[ -n $WRK_PID ]] && kill -TERM "$WRK_PID" 2>/dev/null && wait "$WRK_PID" 2>/dev/null
	for pid in "${STARTED[@]}"; do stop_tree "$pid"; done
	if ((NET_CREATED)); then
		ids=$(timeout 60 docker ps -aq --filter "label=$LABEL")
		# A few at a time: removing dozens at once is when Docker 20.10 is
		# likeliest to keep a stale endpoint on the network (moby/moby#43286).
		[[ -z $ids ]] || xargs -n 8 timeout 120 docker rm -f <<<"$ids" >/dev/null
		timeout 60 docker network rm "$NET" >/dev/null 2>"$WORK/network-rm.log" ||
			log "could not remove network $NET: $(cat "$WORK/network-rm.log")." \
				"If it says \"has active endpoints\" with no container left, the Docker Engine kept a stale" \
				"endpoint (moby/moby#43286): restart dockerd, then docker network rm $NET"
	fi
	((IMAGE_BUILT)) && timeout 60 docker rmi "$IMAGE" >/dev/null
	((rc == 0)) || log "FAILED (exit $rc); logs and configs are in $WORK"
	exit "$rc"
}

main() {
	check_knobs
	mkdir -p "$WORK"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	install_tools
	dk info >/dev/null 2>&1 || die "the Docker Engine does not answer (is dockerd running, and may this user use it?)"
	CLK_TCK=$(getconf CLK_TCK)
	LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
	build
	start_backends
	((${#TLS_TARGETS[@]} == 0)) || make_cert
	start_nginx
	start_haproxy
	[[ " ${TARGETS[*]} " != *" dlb "* ]] || start_dlb
	URL[direct]="http://${BACKENDS[0]}:80/"

	local t
	for t in "${TARGETS[@]}"; do
		[[ $t == direct ]] || check_spread "$t"
	done
	for t in "${TARGETS[@]}"; do
		[[ $t == direct || $t == dlb ]] || check_fields "$t"
	done
	local n_conns
	read -ra n_conns <<<"$CONNS"
	log "measuring ${TARGETS[*]}: $ROUNDS round(s) x ${#n_conns[@]} concurrency level(s) x ${DURATION}s," \
		"about $((ROUNDS * ${#n_conns[@]} * ${#TARGETS[@]} * DURATION + ${#TARGETS[@]} * WARMUP))s"
	for t in "${TARGETS[@]}"; do
		run_wrk "${URL[$t]}" "${n_conns[0]}" "$WARMUP" "$WORK/wrk-warmup-$t.log"
	done
	for t in "${TLS_TARGETS[@]}"; do
		load "$t" "${TLS_CONNS%% *}" "$WARMUP" "$WORK/wrk-warmup-$t.log"
	done

	printf 'round\tconns\ttarget\trps\tp50_us\tp99_us\trequests\terrors\tcpu_us_req\n' >"$WORK/runs.tsv"
	local round c k
	for ((round = 1; round <= ROUNDS; round++)); do
		for c in $CONNS; do
			# Rotate the order each round, so that no target always goes first.
			for ((k = 0; k < ${#TARGETS[@]}; k++)); do
				measure "$round" "$c" "${TARGETS[(k + round - 1) % ${#TARGETS[@]}]}"
			done
		done
		for c in $TLS_CONNS; do
			for ((k = 0; k < ${#TLS_TARGETS[@]}; k++)); do
				measure "$round" "$c" "${TLS_TARGETS[(k + round - 1) % ${#TLS_TARGETS[@]}]}"
			done
		done
	done
	[[ $CONVERGENCE != 1 || " ${TARGETS[*]} " != *" dlb "* ]] || bench_convergence
	write_report
}

main "$@"
