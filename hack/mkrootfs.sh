#!/usr/bin/env bash
# Build a small test root filesystem from Debian's busybox-static into DIR.
#
#   hack/mkrootfs.sh DIR
#
# DIR gets a static busybox at /bin/busybox, a symlink for every applet in
# /bin (with /sbin, /usr/bin and /usr/sbin as symlinks to /bin), the usual
# empty mount points, and /etc/passwd + /etc/group with root, nobody and
# the test user kilntest (1000:1000, also in group extra 2000).
# Idempotent: running it again on the same DIR refreshes the same content.
set -euo pipefail

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1

find_busybox() {
    # The Debian busybox-static package installs /bin/busybox (a static
    # binary). Only accept a statically linked one: a dynamic busybox
    # would not run inside a rootfs without libraries.
    local b
    for b in /bin/busybox /usr/bin/busybox; do
        if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then
            echo "$b"
            return 0
        fi
    done
    return 1
}

tmp=""
cleanup() { if [ -n "$tmp" ]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT

if ! bb=$(find_busybox); then
    # Not installed (or only the dynamic busybox is): fetch the package
    # from apt and unpack it without installing.
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download busybox-static >/dev/null)
    dpkg -x "$tmp"/busybox-static_*.deb "$tmp/x"
    bb="$tmp/x/bin/busybox"
    [ -x "$bb" ] || { echo "$0: no busybox in busybox-static package" >&2; exit 1; }
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

mkdir -p "$dir/bin" "$dir/usr"
for d in proc sys dev tmp etc root home run var mnt; do
    mkdir -p "$dir/$d"
done
mkdir -p "$dir/home/kilntest" "$dir/var/tmp"
chmod 1777 "$dir/tmp" "$dir/var/tmp"
chmod 700 "$dir/root"
chown 1000:1000 "$dir/home/kilntest"

install -m 0755 "$bb" "$dir/bin/busybox.new"
mv -f "$dir/bin/busybox.new" "$dir/bin/busybox"

# sbin, usr/bin, usr/sbin all point at bin so every applet is found
# whatever path busybox --list would have put it under.
for l in sbin usr/bin usr/sbin; do
    if [ ! -L "$dir/$l" ]; then
        rm -rf "${dir:?}/$l"
        ln -s "$( [ "$l" = sbin ] && echo bin || echo ../bin )" "$dir/$l"
    fi
done

"$dir/bin/busybox" --list | while read -r applet; do
    [ "$applet" = busybox ] && continue
    ln -sfn busybox "$dir/bin/$applet"
done

cat > "$dir/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
kilntest:x:1000:1000:kiln test user:/home/kilntest:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PW
cat > "$dir/etc/group" <<'GR'
root:x:0:
kilntest:x:1000:
extra:x:2000:kilntest
nogroup:x:65534:
GR
: > "$dir/etc/hosts"
printf 'nameserver 127.0.0.1\n' > "$dir/etc/resolv.conf"
echo kiln > "$dir/etc/hostname"
