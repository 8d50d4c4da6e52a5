# Shared by the project's scripts: `source scripts/lib.sh`.

# Installs the Debian packages named, as root or through sudo, or says how when neither works.
apt_install() {
    (($#)) || return 0
    local sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "missing: $*; install with \`apt-get install $*\` as root, then rerun" >&2
            exit 1
        fi
    fi
    echo "installing $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Puts rustup's cargo on PATH when the shell has not.
find_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
}
