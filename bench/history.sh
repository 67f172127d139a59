# bench/history.sh: the long-history part of `bench/run --history`. It is
# sourced by bench/run and uses its helpers (start, stop, load, log, $UE,
# $TOOL, $DATA, ...). Results go to $WORK/history for the report.
#
#   1. One wallet with 1M transactions, appended straight to a SQLite event
#      store (benchtool fill): serve's restart to ready on it, against an
#      empty store; p50/p99 of a page of its transactions at its start,
#      middle and end; credit throughput and latency on it against a fresh
#      wallet.
#   2. 1M wallets with one credit each: serve's RSS when ready, after every
#      wallet was read once, and after its writer credited every wallet once.
#   3. A full rebuild of the Redis read model from each of the two stores
#      (benchtool rebuild, into a private redis-server), in records/s.

H=$WORK/history
mkdir -p "$H"
if [ $quick = 1 ]; then h_events=100000 h_wallets=100000; else h_events=1000000 h_wallets=1000000; fi
echo "$h_events" >"$H/events"
echo "$h_wallets" >"$H/wallets"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# rebuild NAME DB: times a full rebuild of the Redis read model from DB
# into a private redis-server; JSON to $H/rebuild-NAME.json.
rebuild() {
	local name=$1 db=$2 rport
	if ! command -v redis-server >/dev/null; then
		log "  rebuild $name: not measured, redis-server is not on the PATH"
		return
	fi
	rport=$("$TOOL" freeport)
	mkdir -p "$DATA/hist-redis"
	start hist-redis redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$DATA/hist-redis"
	local rpid=$LAST_PID
	sleep 0.5
	timeout 1800 "$TOOL" rebuild -redis "redis://127.0.0.1:$rport" -cpuprofile "$H/rebuild-$name.pprof" "$db" >"$H/rebuild-$name.json"
	log "  rebuild of the Redis read model from $name: $(cat "$H/rebuild-$name.json")"
	stop "$rpid"
}

# restart NAME DATADIR: starts serve on DATADIR on a fixed free port and
# records the milliseconds to /readyz in $H/restart-NAME.ms; sets URL,
# SERVE_PID and PORT.
restart() {
	local name=$1 data=$2
	PORT=$("$TOOL" freeport)
	local t0
	t0=$(now_ms)
	local pport
	pport=$("$TOOL" freeport)
	start "hist-$name" "$UE" serve --http "127.0.0.1:$PORT" --nats-port -1 --data "$data" --pprof "127.0.0.1:$pport"
	SERVE_PID=$LAST_PID
	URL=http://127.0.0.1:$PORT PPROF=http://127.0.0.1:$pport/debug/pprof/
	"$TOOL" wait -timeout 300s "$URL/readyz"
	echo $(($(now_ms) - t0)) >"$H/restart-$name.ms"
	log "  serve on $name ready in $(cat "$H/restart-$name.ms") ms"
}

# hload FILE ARGS...: a load run whose JSON goes to $H/FILE.json.
hload() {
	local file=$1; shift
	timeout 300 "$UE" load -s --quiet --json --loop --timeout 10s "$@" >"$H/$file.json" 2>>"$LOGS/load-history.log"
	log "  $file: $(summary "$H/$file.json")"
}

log "history: $h_events credits to one wallet, straight into a store"
mkdir -p "$DATA/hist-long"
timeout 1800 "$TOOL" fill -events "$h_events" -wallets 1 -ids "$H/long.ids" "$DATA/hist-long/wallet.db" >"$H/fill-long.json"
long=$(head -1 "$H/long.ids")
log "  $(cat "$H/fill-long.json")"

restart empty "$DATA/hist-empty"
stop "$SERVE_PID"
restart long "$DATA/hist-long"
t0=$(now_ms)
"$TOOL" wait "$URL/wallet/$long/balance"
echo $(($(now_ms) - t0)) >"$H/first-balance.ms"

mid=$((h_events / 2)) end=$((h_events - 50))
for c in 1 64; do
	hload "page-first-$c" --workers $c --duration "$duration" "$URL/wallet/$long/transactions?limit=50&after=0"
	hload "page-middle-$c" --workers $c --duration "$duration" "$URL/wallet/$long/transactions?limit=50&after=$mid"
	hload "page-end-$c" --workers $c --duration "$duration" "$URL/wallet/$long/transactions?limit=50&after=$end"
done
fresh=$("$UE" ksuid)
"$UE" load -s --quiet -n 1 -d '{"amount": 1}' "$URL/wallet/$fresh/credit" >/dev/null
# Fresh and long wallet alternate which goes first (ABBA), over as many
# rounds as the main cells: single runs on a shared machine differ by 2x.
for round in $(seq "$((rounds > 4 ? rounds : 4))"); do
	for c in 1 64; do
		pair=(fresh long)
		((round % 2 == 0)) && pair=(long fresh)
		for w in "${pair[@]}"; do
			id=$fresh
			[ "$w" = long ] && id=$long
			hload "credit-$w-$c.r$round" --workers $c --duration "$duration" -d '{"amount": 1}' "$URL/wallet/$id/credit"
		done
	done
done
stop "$SERVE_PID"
rebuild long "$DATA/hist-long/wallet.db"
rm -rf "$DATA/hist-long" "$DATA/hist-empty"

log "history: $h_wallets wallets with one credit each"
mkdir -p "$DATA/hist-many"
timeout 1800 "$TOOL" fill -events 1 -wallets "$h_wallets" -ids "$H/many.ids" "$DATA/hist-many/wallet.db" >"$H/fill-many.json"
log "  $(cat "$H/fill-many.json")"
restart many "$DATA/hist-many"
sleep 1
"$TOOL" rss "$SERVE_PID" >"$H/rss-ready.bytes"
"$TOOL" memstats "$PPROF" >"$H/heap-ready.json"
timeout 900 "$TOOL" touch -ids "$H/many.ids" -workers 64 "$URL" >"$H/touch.json"
log "  read every wallet once: $(cat "$H/touch.json")"
sleep 1
"$TOOL" rss "$SERVE_PID" >"$H/rss-loaded.bytes"
"$TOOL" memstats "$PPROF" >"$H/heap-loaded.json"
log "  RSS $(cat "$H/rss-ready.bytes") bytes when ready, $(cat "$H/rss-loaded.bytes") with every wallet read"
timeout 1800 "$TOOL" touch -credit -ids "$H/many.ids" -workers 64 "$URL" >"$H/credit.json"
log "  credit every wallet once: $(cat "$H/credit.json")"
sleep 1
"$TOOL" rss "$SERVE_PID" >"$H/rss-credited.bytes"
"$TOOL" memstats "$PPROF" >"$H/heap-credited.json"
log "  RSS $(cat "$H/rss-credited.bytes") bytes after its writer credited every wallet"
stop "$SERVE_PID"
rebuild many "$DATA/hist-many/wallet.db"
rm -rf "$DATA/hist-many"
