#!/usr/bin/env bash
# Start a PulseAudio server with a virtual microphone, for the real-audio tests (pytest -m audio).
#
#   radgaze_speaker   module-null-sink: whatever is played into it (paplay/pacat --device=radgaze_speaker)
#   radgaze_mic       module-remap-source of radgaze_speaker.monitor: the virtual microphone, default source
#   radgaze_room      module-null-sink, the default sink: what programs play without naming a sink (a replay,
#                     the demo) goes there, so the microphone hears only what a test plays into radgaze_speaker
#                     (PULSE_SINK=radgaze_speaker sends a program's output to the microphone)
#
# PortAudio (sounddevice) reaches it through ALSA's "pulse" / "default" devices, which come from the
# libasound2-plugins package (ALSA -> PulseAudio bridge). Debian/Ubuntu packages needed:
#   pulseaudio pulseaudio-utils libasound2-plugins libportaudio2
#
# Works as root (CI containers) and as a normal user: the daemon runs per user (--system=false), with no
# idle exit. Idempotent: an already running server gets the missing modules only.
#   .ci/pulse-mic.sh          start (or complete) the server; prints the server's socket ("Server String: …")
#   .ci/pulse-mic.sh stop     stop the daemon this user runs (and the silence stream started here)
#
# Clients find a per-user server through $XDG_CONFIG_HOME/pulse (or $XDG_RUNTIME_DIR): a process that moves
# XDG_CONFIG_HOME (the Qt tests do, for their settings) no longer sees it, and running this script again from
# there would start a second server. So export PULSE_SERVER=<the printed socket> to every client (.ci/run and
# tests/conftest.py do); the script honours it too.
set -euo pipefail

SINK=radgaze_speaker
MIC=radgaze_mic
ROOM=radgaze_room
KEEPALIVE_PID="${XDG_RUNTIME_DIR:-/tmp}/radgaze-pulse-keepalive-$(id -u).pid"
KEEPALIVE_CLIENT=radgaze-silence

if [[ "${1:-start}" == "stop" ]]; then
    if [[ -f "$KEEPALIVE_PID" ]]; then kill "$(cat "$KEEPALIVE_PID")" 2>/dev/null || true; rm -f "$KEEPALIVE_PID"; fi
    pulseaudio --kill 2>/dev/null || true
    exit 0
fi

for tool in pulseaudio pactl; do
    command -v "$tool" >/dev/null || {
        echo "pulse-mic: $tool not found; apt-get install pulseaudio pulseaudio-utils libasound2-plugins" >&2
        exit 1
    }
done

if ! pactl info >/dev/null 2>&1; then
    # -n: no default.pa (no hardware probing in containers); the unix socket protocol is all clients need.
    # --high-priority: the sound server keeps its timing when the tests (or other work) load every core.
    pulseaudio -D -n --system=false --exit-idle-time=-1 --disallow-exit --high-priority=yes \
        --load="module-native-protocol-unix" 2>&1 | grep -v "not intended to be run as root" >&2 || true
    for _ in $(seq 50); do
        pactl info >/dev/null 2>&1 && break
        sleep 0.1
    done
fi
pactl info >/dev/null || { echo "pulse-mic: PulseAudio did not start" >&2; exit 1; }

if ! pactl list short sinks | grep -q "^[0-9]*[[:space:]]$SINK[[:space:]]"; then
    pactl load-module module-null-sink sink_name=$SINK \
        sink_properties=device.description=radgaze_speaker >/dev/null
fi
if ! pactl list short sinks | grep -q "^[0-9]*[[:space:]]$ROOM[[:space:]]"; then
    pactl load-module module-null-sink sink_name=$ROOM sink_properties=device.description=radgaze_room >/dev/null
fi
if ! pactl list short sources | grep -q "^[0-9]*[[:space:]]$MIC[[:space:]]"; then
    pactl load-module module-remap-source master=$SINK.monitor source_name=$MIC \
        source_properties=device.description=radgaze_virtual_mic >/dev/null
fi
pactl set-default-sink $ROOM
pactl set-default-source $MIC

# A null sink with no stream playing renders nothing, so its monitor (our microphone) delivers no samples
# until something plays: a recorder would miss the start of the speech and see no silence before it. A real
# microphone streams all the time, so keep the sink running with an endless stream of silence.
# Without it the null sink renders ahead in large bursts and the monitor's reported latency swings by
# hundreds of ms (measured: capture stamps 0.36 s early). The check asks this server, not a pid file: a pid
# file cannot tell which server its stream plays into.
keepalive_inputs() {  # "<sink-input> <sink name>" of each keepalive stream on this server
    local sinks
    sinks=$(pactl list short sinks | awk '{print $1 "=" $2}')
    pactl list sink-inputs | awk -v client="$KEEPALIVE_CLIENT" -v sinks="$sinks" '
        BEGIN { n = split(sinks, s, "\n"); for (i = 1; i <= n; i++) { split(s[i], kv, "="); name[kv[1]] = kv[2] } }
        /^Sink Input #/ { input = substr($3, 2) }
        /^[[:space:]]*Sink: / { sink = $2 }
        $0 ~ "application.name = \"" client "\"" { print input, name[sink] }'
}
# A program playing into the default sink may have pulled the stream along when the default changed.
keepalive_inputs | while read -r input sink; do
    [[ "$sink" == "$SINK" ]] || pactl move-sink-input "$input" "$SINK"
done
if [[ -z "$(keepalive_inputs)" ]]; then
    nohup pacat --playback --device=$SINK --raw --format=s16le --rate=16000 --channels=1 \
        --latency-msec=20 --client-name=$KEEPALIVE_CLIENT </dev/zero >/dev/null 2>&1 &
    echo $! >"$KEEPALIVE_PID"
    for _ in $(seq 50); do
        [[ -n "$(keepalive_inputs)" ]] && break
        sleep 0.1
    done
fi
pactl info | grep -E "^(Server String|Default Sink|Default Source)"
