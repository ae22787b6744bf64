#!/usr/bin/env bash
# Start or stop a throwaway Docker engine (used by .ci/run and developers), and build the
# local test images with no registry.
#   .ci/docker.sh start DIR   → prints the DOCKER_HOST of the engine
#   .ci/docker.sh stop DIR
set -euo pipefail
cmd=$1 dir=$2
case $cmd in
  start)
    if ! command -v dockerd >/dev/null || ! command -v busybox >/dev/null; then
      apt-get install -y -qq docker.io busybox-static >/dev/null
    fi
    mkdir -p "$dir"
    sock="$dir/docker.sock"
    # a daemon killed earlier (a test does that) leaves pid files and sockets, maybe zombies
    for pidfile in "$dir/docker.pid" "$dir/exec/containerd/containerd.pid"; do
      [ -f "$pidfile" ] || continue
      state=$(awk '{print $3}' "/proc/$(cat "$pidfile")/stat" 2>/dev/null || echo gone)
      if [ "$state" = gone ] || [ "$state" = Z ]; then
        rm -f "$pidfile" "$(dirname "$pidfile")"/*.sock
      fi
    done
    # no bridge and no iptables: the machines here cannot create them; task containers run
    # with --network none (or host for profiles with network)
    dockerd --bridge=none --iptables=false --ip6tables=false \
      --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/docker.pid" \
      -H "unix://$sock" >"$dir/log" 2>&1 &
    export DOCKER_HOST="unix://$sock"
    for _ in $(seq 1 100); do
      docker version >/dev/null 2>&1 && break
      sleep 0.1
    done
    docker version >/dev/null || { cat "$dir/log" >&2; exit 1; }
    # calor-test/busybox: a busybox-static rootfs, imported (no registry is reachable)
    rootfs="$dir/rootfs"
    mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/etc"
    cp "$(command -v busybox)" "$rootfs/bin/busybox"
    for applet in $("$rootfs/bin/busybox" --list); do
      [ "$applet" = busybox ] || ln -sf busybox "$rootfs/bin/$applet"
    done
    echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
    echo "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh" >>"$rootfs/etc/passwd"
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["echo", "image default command"]' - calor-test/busybox:latest >/dev/null
    # the hosted documentation's ENTRYPOINT example: DOCKER_CMD becomes the entrypoint's
    # arguments
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' -c 'ENTRYPOINT ["echo", "Hello"]' - calor-test/entrypoint:latest >/dev/null
    # an image with no shell at all: one program (busybox answers to the name it is run by)
    noshell="$dir/noshell"
    mkdir -p "$noshell/bin"
    cp "$(command -v busybox)" "$noshell/bin/echo"
    tar -C "$noshell" -c . | docker import -c 'ENV PATH=/bin' - calor-test/noshell:latest >/dev/null
    # the same busybox under another tag, with the /etc/issue that the official sample3 reads:
    # DOCKER_TAG must choose it
    printf 'Calor Test Linux 1.0 \\n \\l\n' >"$rootfs/etc/issue"
    tar -C "$rootfs" -c . | docker import -c 'ENV PATH=/bin' - calor-test/busybox:issue >/dev/null
    rm "$rootfs/etc/issue"
    echo "$DOCKER_HOST"
    ;;
  stop)
    if [ -f "$dir/docker.pid" ]; then
      pid=$(cat "$dir/docker.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    # dockerd leaves its network namespace mounted; unmount what it left under the dir
    { grep -o " $dir/[^ ]*" /proc/mounts || true; } | sort -r | while read -r mnt; do
      umount -l "$mnt" || true
    done
    ;;
esac
