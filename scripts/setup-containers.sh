#!/usr/bin/env bash
# Makes this Debian machine build and run OCI images with podman + runc, for
# the SageMaker container's test and benchmark (deploy/sagemaker). Idempotent:
# a machine that ran it once takes about a second.
#
#   eval "$(scripts/setup-containers.sh [CONTAINERS_CONF_PATH])"
#
# Why each setting (found on these machines; see deploy/sagemaker/README.md):
# crun refuses their hybrid cgroups, so runc; runc may not raise rlimits here,
# so default_ulimits = []; no image registry is reachable, so the base image
# debian:bookworm-slim is made locally with debuerreotype (the tool behind the
# official Debian images) from Debian's mirror, and the same Containerfile
# builds unchanged where a registry exists.
#
# 1. installs podman, runc, debuerreotype, skopeo, docker-registry... if missing
# 2. writes CONTAINERS_CONF (default ~/.config/fruits/containers.conf) and a
#    registries.conf beside it (127.0.0.1:5000 as an insecure/plain-HTTP registry)
# 3. makes docker.io/library/debian:bookworm-slim locally if `podman image exists`
#    says no: from the cached rootfs tarball ~/.cache/fruits/ if present, else
#    built with debuerreotype (the tool behind the official image) from deb.debian.org
# 4. prints the env exports on stdout (everything else goes to stderr)
#
# Env knobs: FRUITS_CACHE (default ~/.cache/fruits), FRUITS_SUITE (bookworm),
# FRUITS_MIRROR (http://deb.debian.org/debian), FRUITS_REBUILD_BASE=1 (ignore the
# cached tarball and the existing image).
set -Eeuo pipefail

conf="${1:-$HOME/.config/fruits/containers.conf}"
confdir="$(dirname "$conf")"
regconf="$confdir/registries.conf"
cache="${FRUITS_CACHE:-$HOME/.cache/fruits}"
suite="${FRUITS_SUITE:-bookworm}"
mirror="${FRUITS_MIRROR:-http://deb.debian.org/debian}"
image="docker.io/library/debian:${suite}-slim"
tarball="$cache/debian-${suite}-slim.rootfs.tar"

t0=$(date +%s.%N)
log() { printf 'setup: [%6.1fs] %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$*" >&2; }

# --- 1. packages --------------------------------------------------------------
# runc is named explicitly so apt satisfies podman's "crun | runc" with runc:
# crun refuses this machine's hybrid cgroup v1/v2 layout.
# iptables: netavark shells out to it for every bridge network (no package
# depends on it; without it: "Error: netavark: No such file or directory").
pkgs=(podman runc conmon netavark aardvark-dns iptables catatonit uidmap slirp4netns fuse-overlayfs
      debootstrap debuerreotype wget skopeo docker-registry)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -q "${missing[@]}" >&2
  log "packages installed"
else
  log "packages present"
fi

# --- 2. config files -------------------------------------------------------------
mkdir -p "$confdir"
write_if_changed() { # path; content on stdin
  local tmp; tmp="$(mktemp "$1.XXXX")"; cat > "$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv -f "$tmp" "$1"; chmod 0644 "$1"; log "wrote $1"; fi
}
write_if_changed "$conf" <<'EOF'
# podman settings for this machine (written by scripts/setup-containers.sh).
[containers]
# This sandbox lacks CAP_SYS_RESOURCE: as root podman would set RLIMIT_NOFILE /
# RLIMIT_NPROC to values above the hard limits it inherited, and runc fails with
# "error setting rlimit type 7: operation not permitted". Empty = inherit.
default_ulimits = []

[engine]
# crun refuses the hybrid cgroup layout; pin runc even if crun gets installed.
runtime = "runc"
# no systemd as PID 1 here: cgroupfs cgroups and a file event log.
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
# netavark (+ iptables), not CNI: podman ships a CNI conflist whose plugins are
# not installed; pinning avoids the autodetection and its warning on fresh storage.
network_backend = "netavark"
EOF
write_if_changed "$regconf" <<'EOF'
# Written by scripts/setup-containers.sh. Nothing is searched for unqualified names
# (debian:bookworm-slim resolves through the shortnames.conf alias to
# docker.io/library/debian, which exists locally).
unqualified-search-registries = []
short-name-mode = "permissive"

# the throwaway local registry (deploy/sagemaker/registry.sh): plain HTTP
[[registry]]
location = "127.0.0.1:5000"
insecure = true

[[registry]]
location = "localhost:5000"
insecure = true
EOF
export CONTAINERS_CONF="$conf" CONTAINERS_REGISTRIES_CONF="$regconf"

# --- 3. base image ------------------------------------------------------------------
work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT
build_rootfs_tarball() {
  work="$(mktemp -d /var/tmp/fruits-rootfs.XXXXXX)"
  local r="$work/rootfs"
  export TZ=UTC LC_ALL=C
  log "debuerreotype-init $suite from $mirror (debootstrap minbase, ~1-1.5 min)"
  debuerreotype-init --non-debian "$r" "$suite" "$mirror" > "$work/init.log" 2>&1 \
    || { tail -30 "$work/init.log" >&2; return 1; }
  debuerreotype-minimizing-config "$r"     # dpkg/apt settings of the official images
  rm -f "$r/etc/apt/sources.list"          # official bookworm image: deb822 only
  local sec="${mirror%/debian}/debian-security"
  cat > "$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $sec
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  chmod 0644 "$r/etc/apt/sources.list.d/debian.sources"
  log "apt-get update + full-upgrade inside the rootfs (point release + security)"
  debuerreotype-apt-get "$r" update -qq >&2
  debuerreotype-apt-get "$r" full-upgrade -yqq > "$work/upgrade.log" 2>&1 \
    || { tail -30 "$work/upgrade.log" >&2; return 1; }
  log "slimify (drop docs/man/locales, keep copyright files)"
  debuerreotype-slimify "$r"
  mkdir -p "$cache"
  # debuerreotype-tar runs fixup (empty machine-id, drop logs, clamp mtimes) and
  # excludes apt lists/caches and /dev
  debuerreotype-tar --exclude ./etc/machine-id "$r" "$tarball.tmp"
  mv -f "$tarball.tmp" "$tarball"
  log "cached $tarball ($(du -h "$tarball" | cut -f1))"
}

if [ -z "${FRUITS_REBUILD_BASE:-}" ] && podman image exists "$image"; then
  log "$image present"
else
  if [ -n "${FRUITS_REBUILD_BASE:-}" ] || [ ! -s "$tarball" ]; then
    build_rootfs_tarball
  else
    log "using cached $tarball"
  fi
  podman import -q --change 'CMD ["bash"]' \
    --message "debuerreotype $suite slim rootfs, made locally by scripts/setup-containers.sh" \
    "$tarball" "$image" >&2
  log "imported $image ($(podman image inspect "$image" --format '{{.Size}}') bytes)"
fi

# sanity: the runtime starts a container (fails fast if the rlimit/runtime fix is missing)
podman run --rm --pull=never "$image" true
log "podman run OK (runc)"

cat <<EOF
export CONTAINERS_CONF='$conf'
export CONTAINERS_REGISTRIES_CONF='$regconf'
EOF
