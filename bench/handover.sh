#!/usr/bin/env bash
# bench/handover.sh: failed requests while dlb itself is restarted, recreated
# or upgraded through the hand-over of its sockets, RUNS times each (default 5),
# with examples/handover's stack (dlb in the host's network, 3 demo replicas on a
# bridge network) and 8 keep-alive clients (bench/upgradeload, Go's HTTP client;
# a client that fails waits 10 ms before its next request).
#
#   bash bench/handover.sh [RUNS]
#
# The three operations, each under the same load:
#   restart   compose restart dlb
#   recreate  compose up -d --force-recreate dlb   (what an upgrade with plain Compose does)
#   handover  compose up -d --no-recreate --scale dlb=2 dlb with a new image, wait
#             until /api/self names the new container serving, docker stop + rm
#             the old one   (what dlb rollout does to dlb)
# It prints one line per run and a summary. dlb listens on 127.0.0.1 only;
# traffic goes to it alone. Builds its own image tags (two dlb versions and the
# demo), removes everything it made on exit. Needs Docker, Go, curl and jq.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${1:-5}
ID="dlbho$$"
WORK=$(mktemp -d)
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port) ADMIN=$(free_port)
export DLB_LISTEN="127.0.0.1:$PORT" DLB_ADMIN="127.0.0.1:$ADMIN" DLB_PROJECT="$ID" DLB_IMAGE="dlb:$ID-a"
dc() { timeout 180 "${COMPOSE[@]}" -p "$ID" -f "$WORK/docker-compose.yaml" "$@"; }
LOADPID=
cleanup() {
	[ -n "$LOADPID" ] && kill "$LOADPID" 2>/dev/null || true
	dc down -v --remove-orphans -t 1 >/dev/null 2>&1 || true
	docker rmi "dlb:$ID-a" "dlb:$ID-b" "dlb-demo:$ID" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/a" "$WORK/b" "$WORK/bin"
for v in a b; do
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=bench-$v" -o "$WORK/$v/bin/dlb" ./cmd/dlb
	docker build -q -t "dlb:$ID-$v" -f Dockerfile "$WORK/$v" >/dev/null 2>&1
done
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/demo" ./examples/demo
docker build -q -t "dlb-demo:$ID" -f examples/demo/Dockerfile "$WORK" >/dev/null 2>&1
(cd bench && go build -o "$WORK/upgradeload" ./upgradeload)
sed "s|image: dlb-demo:dev|image: dlb-demo:$ID|" examples/handover/docker-compose.yaml >"$WORK/docker-compose.yaml"

dc up -d --no-build --scale app=3 >/dev/null 2>&1
URL="http://127.0.0.1:$PORT/"
ready() { # until 3 replicas answer, at most 30 s
	for _ in $(seq 1 300); do
		n=$(for _ in $(seq 1 12); do curl -s --max-time 1 "$URL"; echo; done | sort -u | grep -c . || true)
		[ "$n" = 3 ] && return 0
		sleep 0.1
	done
	echo "dlb did not reach 3 replicas in 30 s" >&2; dc logs --no-color dlb >&2; return 1
}
self() { curl -s --max-time 2 "http://127.0.0.1:$ADMIN/api/self"; }

handover() { # dlb rollout's steps on dlb, to the other image
	local old new img
	old=$(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$ID" --filter label=com.docker.compose.service=dlb)
	img="dlb:$ID-b"; [ "$DLB_IMAGE" = "$img" ] && img="dlb:$ID-a"
	DLB_IMAGE=$img dc up -d --no-build --no-recreate --scale dlb=2 dlb >/dev/null 2>&1
	new=$(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$ID" --filter label=com.docker.compose.service=dlb | grep -v "$old")
	for _ in $(seq 1 600); do
		[ "$(self | jq -r 'select(.serving) | .id')" = "$new" ] && break
		sleep 0.05
	done
	[ "$(self | jq -r .id)" = "$new" ] || { echo "the new dlb did not take over" >&2; docker logs "$new" >&2; return 1; }
	docker stop "$old" >/dev/null
	docker rm "$old" >/dev/null
	export DLB_IMAGE=$img
}

declare -A fails
for op in restart recreate handover; do
	for run in $(seq 1 "$RUNS"); do
		ready
		"$WORK/upgradeload" -url "$URL" -c 8 -max 2m >"$WORK/load.out" &
		LOADPID=$!
		sleep 2 # steady load before the operation
		start=$(date +%s.%N)
		case $op in
		restart) dc restart dlb >/dev/null 2>&1 ;;
		recreate) dc up -d --no-build --force-recreate dlb >/dev/null 2>&1 ;;
		handover) handover ;;
		esac
		took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { print e - s }')
		ready
		sleep 2 # steady load after
		kill -TERM "$LOADPID"; wait "$LOADPID" || true; LOADPID=
		line=$(cat "$WORK/load.out")
		printf '%-9s run %d: %s op_s=%.1f\n' "$op" "$run" "$line" "$took"
		f=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$line")
		fails[$op]="${fails[$op]:-} $f"
	done
done
echo
for op in restart recreate handover; do
	echo "$op: failed per run:${fails[$op]}"
done
