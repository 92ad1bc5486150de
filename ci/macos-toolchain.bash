# ci/macos-toolchain.bash: sourced by ci/macos-check and ci/macos-build (not run on its own).
#
# rustup can't download the Apple targets' rust-std or rust-src here (only the Debian, crates,
# PyPI and npm registries can be reached), so the Apple targets are built with -Zbuild-std
# by Debian's rustc-web. It is the only compiler on offer whose exact library source is also
# packaged (rust-web-src, same source package). The packages are downloaded and unpacked into
# a private root under the cache, not installed: rustc-web conflicts with rustup in dpkg, and
# this leaves the system alone.
#
# Provides: debrust_ensure, which sets DEBRUST_VERSION (Debian version), DEBRUST_DIR,
# DEBRUST_RUSTC and DEBRUST_CLIPPY_DRIVER (wrappers that find the private shared libraries),
# and CACHE, msg, die.
#
# The cache (reused across clones and runs; nothing in it is needed to build on Linux):
#   $CACHE/debrust-<debian version>/          one complete toolchain, made atomically
#       .complete                             "layout N", then the packages (written last)
#       bin/rustc, bin/clippy-driver          wrappers
#       root/usr/...                          the unpacked packages
# CACHE defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/mcp-runner-ci; MCP_RUNNER_CACHE overrides.
# shellcheck shell=bash

CACHE=${MCP_RUNNER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-runner-ci}
: "${ME:=macos}"

# Bumped when what goes into a toolchain directory changes: older ones are then made again.
readonly DEBRUST_LAYOUT=2

msg() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { msg "error: $*"; exit 2; }

# Versions of a package that apt can download, one a line, byte-sorted for comm.
_debrust_versions() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' '{ gsub(/[ \t]/, "", $2); if ($2 != "") print $2 }' \
        | LC_ALL=C sort -u
}

# The newest version (dpkg order) offered for every package of the set. rustc-web and
# rust-web-src must match exactly (a compiler with another version's library source fails
# with "intrinsic safety mismatch"), and clippy-driver links that rustc's librustc_driver.
_debrust_pick_version() {
    local common best='' v
    common=$(LC_ALL=C comm -12 <(_debrust_versions rustc-web) <(_debrust_versions rust-web-src) \
             | LC_ALL=C comm -12 - <(_debrust_versions libstd-rust-web-dev) \
             | LC_ALL=C comm -12 - <(_debrust_versions rust-web-clippy))
    for v in $common; do
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    printf '%s' "$best"
}

# The first dependency of PKG=VERSION whose name matches the regex (e.g. libllvm[0-9]+).
_debrust_dep() {
    apt-cache show "$1=$2" 2>/dev/null | sed -n 's/^Depends: //p' | head -n 1 | tr ',' '\n' \
        | sed 's/^ *//; s/[ |].*//' | grep -E -m 1 -x "$3" || true
}

# The whole package set for rustc-web VERSION, as NAME=VERSION words.
_debrust_packages() {
    local v=$1 libstd llvm llvm_v
    libstd=$(_debrust_dep libstd-rust-web-dev "$v" 'libstd-rust-web-[0-9.]+')
    [[ -n $libstd ]] || { msg "libstd-rust-web-dev $v names no libstd-rust-web-<version> dependency"; return 1; }
    # libLLVM is a separate package (not from the rustc source), and its dependency is unversioned:
    # take the version apt would install.
    llvm=$(_debrust_dep "$libstd" "$v" 'libllvm[0-9]+')
    [[ -n $llvm ]] || { msg "$libstd $v names no libllvm<N> dependency"; return 1; }
    llvm_v=$(apt-cache policy "$llvm" 2>/dev/null | awk '/Candidate:/ { print $2; exit }')
    [[ -n $llvm_v && $llvm_v != "(none)" ]] || { msg "apt offers no version of $llvm"; return 1; }
    # llvm-<N> (same version as libLLVM) only for its llvm-objcopy: rustc strips Apple binaries
    # (the release profile's strip = "debuginfo") with `rust-objcopy`, which rustup ships and
    # Debian's rustc-web does not (its rust-web-llvm pulls in all of LLVM's tools for it).
    printf '%s ' "rustc-web=$v" "$libstd=$v" "libstd-rust-web-dev=$v" "rust-web-src=$v" \
        "rust-web-clippy=$v" "$llvm=$llvm_v" "llvm-${llvm#libllvm}=$llvm_v"
    echo
}

_debrust_complete() { [[ -f $1/.complete && $(head -n 1 "$1/.complete") == "layout $DEBRUST_LAYOUT" ]]; }

# The newest complete toolchain already in the cache (for offline runs), or nothing.
_debrust_newest_cached() {
    local d v best=''
    for d in "$CACHE"/debrust-*; do
        _debrust_complete "$d" || continue
        v=${d##*/debrust-}
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    printf '%s' "$best"
}

# Download and unpack PACKAGES... into $CACHE/debrust-VERSION. It is built in a .partial
# directory and renamed into place only when complete (.complete written last), so an
# interrupted run leaves nothing that looks usable; the next run deletes the leftovers.
# Runs under `if` (where set -e is off), hence the explicit checks.
_debrust_install() {
    local v=$1; shift
    local final=$CACHE/debrust-$v work debs deb multiarch objcopy hostbin upstream tool
    work=$(mktemp -d "$CACHE/.debrust-$v.partial.XXXXXX") || return 1
    chmod 755 "$work" || return 1
    # The .debs go to a temporary directory that apt's unprivileged _apt user can reach (the
    # cache under a 0700 home is not; apt then downloads as root, with a warning).
    debs=$(mktemp -d) || return 1
    { getent passwd _apt >/dev/null && chown _apt "$debs"; } 2>/dev/null || true
    msg "downloading: $*"
    if ! (cd "$debs" && apt-get download -q "$@" >&2); then
        msg "apt-get download failed"
        rm -rf "$work" "$debs"
        return 1
    fi
    for deb in "$debs"/*.deb; do
        case ${deb##*/} in
            # From all of LLVM's tools, only llvm-objcopy (200 kB, links libLLVM).
            llvm-[0-9]*) dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/root" --wildcards './usr/lib/llvm-*/bin/llvm-objcopy' ;;
            *) dpkg-deb -x "$deb" "$work/root" ;;
        esac || { rm -rf "$debs"; die "unpacking $deb failed"; }
    done
    rm -rf "$debs"
    # Only library/ of the Rust source is used by -Zbuild-std: drop the compiler's and the tools'
    # source and the docs (365 of 860 MB).
    rm -rf "$work"/root/usr/src/rustc-*/{src,compiler} "$work/root/usr/share/doc"

    [[ -f $work/root/usr/lib/rustlib/src/rust/library/Cargo.lock ]] \
        || die "rust-web-src $v has no usr/lib/rustlib/src/rust/library/Cargo.lock: the packaging changed"
    multiarch=$(dirname "$(echo "$work"/root/usr/lib/*/librustc_driver-*.so)")
    [[ -d $multiarch ]] || die "rustc-web $v: no librustc_driver-*.so under usr/lib/<multiarch>/"
    multiarch=${multiarch#"$work/root/"}
    # Where rustc looks for rust-objcopy: its sysroot's lib/rustlib/<host>/bin (as rust-web-llvm does).
    objcopy=$(echo "$work"/root/usr/lib/llvm-*/bin/llvm-objcopy)
    [[ -x $objcopy ]] || die "llvm-<N> $v has no usr/lib/llvm-<N>/bin/llvm-objcopy: the packaging changed"
    hostbin=$(echo "$work"/root/usr/lib/rustlib/*-linux-gnu)/bin
    mkdir -p "$hostbin" && ln -s "../../../${objcopy#"$work/root/usr/lib/"}" "$hostbin/rust-objcopy" || return 1

    mkdir "$work/bin" || return 1
    for tool in rustc clippy-driver; do
        # Relative to the wrapper, so that the cache can be moved. exec keeps the real binary's
        # path in /proc/self/exe, from which rustc finds its sysroot (root/usr).
        cat > "$work/bin/$tool" <<EOF || return 1
#!/bin/sh
# Debian's $tool, unpacked but not installed: it needs librustc_driver and libLLVM from the
# private root (made by ci/macos-toolchain.bash).
root=\$(cd "\$(dirname "\$0")/../root" && pwd)
LD_LIBRARY_PATH="\$root/$multiarch\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$root/usr/bin/$tool" "\$@"
EOF
        chmod 755 "$work/bin/$tool" || return 1
    done
    upstream=${v%%+*}; upstream=${upstream%%-*}
    [[ -d $work/root/usr/src/rustc-$upstream/library ]] \
        || die "rust-web-src $v has no usr/src/rustc-$upstream/library: the packaging changed"
    "$work/bin/rustc" --version | grep -q "^rustc $upstream " \
        || die "the unpacked rustc-web $v does not run or is not rustc $upstream: $("$work/bin/rustc" --version 2>&1)"
    "$work/bin/clippy-driver" --version >/dev/null || die "the unpacked rust-web-clippy $v does not run"

    # (rustc runs it with the wrappers' LD_LIBRARY_PATH, which has libLLVM.)
    LD_LIBRARY_PATH=$work/root/$multiarch "$hostbin/rust-objcopy" --version >/dev/null \
        || die "the unpacked llvm-objcopy does not run"
    printf '%s\n' "layout $DEBRUST_LAYOUT" "$@" > "$work/.complete" || return 1
    rm -rf "$final"    # a leftover without .complete (this code never renames one into place)
    mv -T "$work" "$final"
}

# Make sure a complete toolchain is in the cache and set DEBRUST_*.
debrust_ensure() {
    local v pkgs=() cached updated=0 want_rust
    if ! command -v apt-cache >/dev/null || ! command -v dpkg-deb >/dev/null; then
        die "apt-cache and dpkg-deb are needed (Debian 12 or a derivative with its packages)"
    fi
    mkdir -p "$CACHE"
    # One setup at a time across clones sharing the cache.
    exec {DEBRUST_LOCK}>"$CACHE/.debrust.lock"
    flock "$DEBRUST_LOCK"
    rm -rf "$CACHE"/.debrust-*.partial.*    # left by interrupted runs (we hold the lock)

    while :; do
        v=$(_debrust_pick_version)
        if [[ -n $v ]] && _debrust_complete "$CACHE/debrust-$v"; then break; fi
        if [[ -n $v ]] && read -ra pkgs < <(_debrust_packages "$v") && ((${#pkgs[@]})) \
            && _debrust_install "$v" "${pkgs[@]}"; then
            break
        fi
        # apt knows nothing, or its lists are stale (bookworm-security drops superseded versions):
        # refresh them once.
        if ((updated == 0)); then
            if ((EUID == 0)); then
                if [[ -n $v ]]; then
                    msg "apt-get update (rustc-web $v could not be had)"
                else
                    msg "apt-get update (apt's lists offer no matching rustc-web and rust-web-src)"
                fi
                apt-get update -q >&2 || msg "apt-get update failed"
                updated=1
                continue
            fi
            msg "not root: cannot run apt-get update"
        fi
        cached=$(_debrust_newest_cached)
        [[ -n $cached ]] || die "cannot download Debian's rustc-web toolchain, and none is cached in $CACHE.
  apt must offer the same version of rustc-web, rust-web-src, libstd-rust-web-dev and rust-web-clippy
  (Debian 12: the bookworm-security suite). Check 'apt-cache policy rustc-web rust-web-src', run
  'apt-get update' as root, and make sure Debian's archive can be reached."
        msg "warning: using the cached rustc-web $cached (apt offers ${v:-none} and it could not be downloaded)"
        v=$cached
        break
    done
    flock -u "$DEBRUST_LOCK"

    # Versions older than the workspace's rust-version (bookworm main has 1.85) fail later with a
    # less clear message.
    want_rust=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "${ROOT:?}/Cargo.toml" | head -n 1)
    if [[ -n $want_rust ]] && dpkg --compare-versions "${v%%+*}" lt "$want_rust"; then
        die "Debian offers rustc-web $v, but the workspace needs Rust >= $want_rust: add Debian's
  bookworm-security suite to apt's sources, then 'apt-get update'"
    fi

    # shellcheck disable=SC2034 # used by the scripts that source this file
    DEBRUST_VERSION=$v
    DEBRUST_DIR=$CACHE/debrust-$v
    DEBRUST_RUSTC=$DEBRUST_DIR/bin/rustc
    # shellcheck disable=SC2034
    DEBRUST_CLIPPY_DRIVER=$DEBRUST_DIR/bin/clippy-driver
    msg "toolchain: Debian rustc-web $v ($("$DEBRUST_RUSTC" --version)), in $DEBRUST_DIR"
}
