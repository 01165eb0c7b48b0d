#!/usr/bin/env bash
# kafka.sh — fetch real Apache Kafka (pinned in scripts/kafka/pom.xml) from Maven Central and run
# a single-node KRaft broker (broker+controller, node.id=1) on the loopback interface, for tests.
# Needs only java (17+) and mvn; the broker runs as plain `java -cp "<libs>/*" kafka.Kafka`.
#
#   scripts/kafka.sh fetch               # jars → <repo>/.deps/kafka/libs (idempotent, stamped)
#   scripts/kafka.sh start               # background broker; prints KAFKA_BROKERS=127.0.0.1:PORT
#   scripts/kafka.sh stop                # stop it (and delete its data dir if start made a temp one)
#   scripts/kafka.sh status              # exit 0 and print KAFKA_BROKERS=… if running
#   scripts/kafka.sh run -- CMD [ARGS…]  # fetch, start, run CMD with KAFKA_BROKERS exported,
#                                        # stop on exit; exits with CMD's exit code
#   scripts/kafka.sh tool CLASS [ARGS…]  # run a Kafka CLI class on the same class path, e.g.
#                                        #   tool org.apache.kafka.tools.TopicCommand \
#                                        #     --bootstrap-server 127.0.0.1:19092 --list
#
# Environment:
#   KAFKA_PORT           PLAINTEXT port (default 19092); the controller listens on KAFKA_PORT+1
#   KAFKA_DATA           data dir (config, log.dirs, logs/server.log); default: a new temp dir,
#                        deleted by `stop`. A given KAFKA_DATA is kept and reused across starts.
#   KAFKA_HEAP_OPTS      JVM heap flags (default -Xmx512m)
#   KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   KAFKA_MVN_REPO       optional Maven local repository for the fetch (default: Maven's own)
#
# The broker logs at WARN (plus its "Kafka Server started" line) to $KAFKA_DATA/logs/server.log;
# the JVM's own stdout/stderr go to $KAFKA_DATA/broker.out. Everything this script prints is on
# stderr except the KAFKA_BROKERS=… line.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pom="$repo/scripts/kafka/pom.xml"
deps="$repo/.deps/kafka"
libs="$deps/libs"
libs_stamp="$deps/libs.stamp"
run_dir="$deps/run"

port="${KAFKA_PORT:-19092}"
ctrl_port=$((port + 1))
pid_file="$run_dir/broker-$port.pid"
state_file="$run_dir/broker-$port.state" # data dir, and whether stop should delete it
heap_opts="${KAFKA_HEAP_OPTS:--Xmx512m}"
start_timeout="${KAFKA_START_TIMEOUT:-90}"

# Bump when the post-processing of the fetched jars below changes.
fetch_recipe=2

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"; }

# run_mvn ARGS...: run Maven quietly; show its output only when it fails.
run_mvn() {
	local out rc=0
	local -a a=(-q -B)
	if [[ -n "${KAFKA_MVN_REPO:-}" ]]; then a+=("-Dmaven.repo.local=$KAFKA_MVN_REPO"); fi
	out="$(mvn "${a[@]}" "$@" 2>&1)" || rc=$?
	if ((rc != 0)); then printf '%s\n' "$out" >&2; fi
	return "$rc"
}

cmd_fetch() {
	need java "install a JDK 17+, e.g. apt-get install openjdk-17-jre-headless"
	local want lock
	want="pom-sha256=$(sha256sum "$pom" | cut -d' ' -f1) recipe=$fetch_recipe"
	libs_current() {
		[[ -f "$libs_stamp" && "$(cat "$libs_stamp")" == "$want" ]] &&
			compgen -G "$libs/kafka_2.13-*.jar" >/dev/null
	}
	libs_current && return 0
	need mvn "install Maven, e.g. apt-get install maven"
	mkdir -p "$deps"
	# One fetch at a time (parallel test runs); the lock goes when this process exits.
	exec {lock}>"$deps/.fetch.lock"
	flock "$lock"
	if libs_current; then
		exec {lock}>&-
		return 0
	fi
	log "fetching Kafka jars with Maven (scripts/kafka/pom.xml) → $libs"
	local tmp
	tmp="$(mktemp -d "$deps/.libs.XXXXXX")"
	if ! run_mvn -f "$pom" dependency:copy-dependencies \
		-DoutputDirectory="$tmp" -DincludeScope=runtime; then
		rm -rf "$tmp"
		die "mvn dependency:copy-dependencies failed"
	fi
	# Kafka 4.x logs through SLF4J 1.7 (slf4j-api-1.7.x wins dependency mediation), which cannot
	# see log4j-slf4j2-impl (an SLF4J 2 provider): the broker would fall back to the NOP logger and
	# write no log at all. Swap in the SLF4J 1.x binding of the same Log4j version, as Kafka's own
	# distribution does. A no-op once the pom asks for log4j-slf4j-impl itself.
	if compgen -G "$tmp/slf4j-api-1.*.jar" >/dev/null && compgen -G "$tmp/log4j-slf4j2-impl-*.jar" >/dev/null &&
		! compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null; then
		local core log4j_version
		core="$(compgen -G "$tmp/log4j-core-*.jar" | head -n1)" || true
		[[ -n "$core" ]] || { rm -rf "$tmp"; die "no log4j-core jar among the fetched jars"; }
		log4j_version="$(basename "$core" .jar)"
		log4j_version="${log4j_version#log4j-core-}"
		log "replacing log4j-slf4j2-impl by log4j-slf4j-impl:$log4j_version (Kafka uses SLF4J 1.7)"
		if ! run_mvn -f "$pom" dependency:copy \
			-Dartifact="org.apache.logging.log4j:log4j-slf4j-impl:$log4j_version" \
			-DoutputDirectory="$tmp"; then
			rm -rf "$tmp"
			die "mvn dependency:copy log4j-slf4j-impl:$log4j_version failed"
		fi
		rm -f "$tmp"/log4j-slf4j2-impl-*.jar
	fi
	compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "no kafka_2.13 jar was fetched"; }
	rm -rf "$libs" "$libs_stamp"
	mv "$tmp" "$libs"
	printf '%s\n' "$want" >"$libs_stamp"
	log "fetched $(find "$libs" -name '*.jar' | wc -l) jars"
	exec {lock}>&-
}

# tools_log4j: print the path of a Log4j 2 config for CLI tools (WARN and above to stderr).
tools_log4j() {
	local cfg="$deps/log4j2-tools.xml"
	if [[ ! -f "$cfg" ]]; then
		mkdir -p "$deps"
		cat >"$cfg" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.sh: Kafka CLI tools log WARN and above to stderr. -->
<Configuration status="warn">
  <Appenders>
    <Console name="stderr" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="warn">
      <AppenderRef ref="stderr"/>
    </Root>
  </Loggers>
</Configuration>
EOF
	fi
	printf '%s\n' "$cfg"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# broker_pid: print the pid of our running broker on this port, or fail.
broker_pid() {
	[[ -f "$pid_file" ]] || return 1
	local pid
	pid="$(cat "$pid_file")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: it must still be a Kafka JVM.
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
	printf '%s\n' "$pid"
}

write_config() { # DATA_DIR
	local data="$1"
	mkdir -p "$data/kraft-logs" "$data/logs"
	cat >"$data/server.properties" <<EOF
# Generated by scripts/kafka.sh — single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$ctrl_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctrl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$data/kraft-logs
num.partitions=4
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
	cat >"$data/log4j2.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.sh: WARN and above to a file, plus the broker's started line. -->
<Configuration status="warn">
  <Appenders>
    <File name="file" fileName="$data/logs/server.log">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Logger name="kafka.server.KafkaRaftServer" level="info"/>
    <Root level="warn">
      <AppenderRef ref="file"/>
    </Root>
  </Loggers>
</Configuration>
EOF
}

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what
# `kafka-storage random-uuid` prints), never starting with '-' (it would parse as an option).
cluster_id() {
	local id
	while :; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
		[[ "$id" != -* ]] && break
	done
	printf '%s\n' "$id"
}

cmd_start() {
	if pid="$(broker_pid)"; then
		log "already running (pid $pid)"
		printf 'KAFKA_BROKERS=127.0.0.1:%s\n' "$port"
		return 0
	fi
	cmd_fetch
	for p in "$port" "$ctrl_port"; do
		port_open "$p" && die "127.0.0.1:$p is already in use (set KAFKA_PORT to use another pair of ports)"
	done
	local data temp_data=0
	if [[ -n "${KAFKA_DATA:-}" ]]; then
		data="$KAFKA_DATA"
		mkdir -p "$data"
	else
		data="$(mktemp -d "${TMPDIR:-/tmp}/statepipe-kafka.XXXXXX")"
		temp_data=1
	fi
	data="$(cd "$data" && pwd)"
	mkdir -p "$run_dir"
	printf 'data=%s\ntemp=%s\n' "$data" "$temp_data" >"$state_file"
	write_config "$data"

	if [[ ! -f "$data/kraft-logs/meta.properties" ]]; then
		java -Dlog4j2.configurationFile="$(tools_log4j)" -cp "$libs/*" \
			kafka.tools.StorageTool format -t "$(cluster_id)" -c "$data/server.properties" >&2 ||
			die "formatting storage in $data/kraft-logs failed"
	fi

	# Readiness is read from the log: start it afresh, keeping the previous run's log.
	if [[ -f "$data/logs/server.log" ]]; then mv -f "$data/logs/server.log" "$data/logs/server.log.1"; fi
	log "starting broker on 127.0.0.1:$port (controller :$ctrl_port), data $data"
	# shellcheck disable=SC2086 # heap_opts is a list of JVM flags
	nohup java $heap_opts -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		-Dlog4j2.configurationFile="$data/log4j2.xml" -Dkafka.logs.dir="$data/logs" \
		-cp "$libs/*" kafka.Kafka "$data/server.properties" \
		</dev/null >"$data/broker.out" 2>&1 &
	local pid=$!
	printf '%s\n' "$pid" >"$pid_file"

	local deadline=$((SECONDS + start_timeout))
	until port_open "$port" && grep -q 'Kafka Server started' "$data/logs/server.log" 2>/dev/null; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "broker exited during start-up; last lines of its logs:"
			tail -n 20 "$data/logs/server.log" "$data/broker.out" >&2 2>/dev/null || true
			cmd_stop
			die "Kafka failed to start"
		fi
		if ((SECONDS >= deadline)); then
			log "broker not ready after ${start_timeout}s; last lines of its logs:"
			tail -n 20 "$data/logs/server.log" "$data/broker.out" >&2 2>/dev/null || true
			cmd_stop
			die "Kafka did not start in time"
		fi
		sleep 0.2
	done
	log "broker ready (pid $pid)"
	printf 'KAFKA_BROKERS=127.0.0.1:%s\n' "$port"
}

cmd_stop() {
	local pid data="" temp=0
	if [[ -f "$state_file" ]]; then
		data="$(sed -n 's/^data=//p' "$state_file")"
		temp="$(sed -n 's/^temp=//p' "$state_file")"
	fi
	if pid="$(broker_pid)"; then
		log "stopping broker (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 30))
		while kill -0 "$pid" 2>/dev/null; do
			if ((SECONDS >= deadline)); then
				log "broker did not exit within 30s; killing it"
				kill -KILL "$pid" 2>/dev/null || true
			fi
			sleep 0.1
		done
	else
		log "no broker running on port $port"
	fi
	rm -f "$pid_file"
	if [[ "$temp" == 1 && -n "$data" && -d "$data" ]]; then
		rm -rf "$data"
	fi
	rm -f "$state_file"
}

cmd_status() {
	if pid="$(broker_pid)"; then
		log "running (pid $pid)"
		printf 'KAFKA_BROKERS=127.0.0.1:%s\n' "$port"
	else
		log "not running on port $port"
		return 1
	fi
}

cmd_tool() {
	[[ $# -ge 1 ]] || die "usage: $0 tool CLASS [ARGS...]"
	cmd_fetch
	local class="$1"
	shift
	exec java -Xmx256m -Dlog4j2.configurationFile="$(tools_log4j)" -cp "$libs/*" "$class" "$@"
}

cmd_run() {
	[[ "${1:-}" == "--" ]] && shift
	[[ $# -ge 1 ]] || die "usage: $0 run -- CMD [ARGS...]"
	cmd_fetch
	local line
	# A broker that was already running is used as is and left running.
	if ! broker_pid >/dev/null; then
		trap 'cmd_stop' EXIT
		trap 'exit 130' INT
		trap 'exit 143' TERM
	fi
	line="$(cmd_start)"
	export KAFKA_BROKERS="${line#KAFKA_BROKERS=}"
	log "running: $* (KAFKA_BROKERS=$KAFKA_BROKERS)"
	local rc=0
	"$@" || rc=$?
	exit "$rc"
}

case "${1:-}" in
fetch) cmd_fetch ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
run) shift; cmd_run "$@" ;;
tool) shift; cmd_tool "$@" ;;
-h | --help | help | "") usage ;;
*) log "unknown subcommand: $1"; usage ;;
esac
