#!/usr/bin/env bash
# Installs the Debian packages the project uses, where this machine allows it:
#   libfluidsynth3 (the synthesizer behind pyfluidsynth), fluid-soundfont-gm (FluidR3_GM),
#   redis-server (the worker-pool backend and its tests).
# Fast when everything is already there; warns (and carries on) when it cannot install.
set -u
packages=(libfluidsynth3 fluid-soundfont-gm redis-server)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"
else
    echo "warning: cannot install ${missing[*]} (not root, no sudo); install them by hand" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "warning: no apt-get here; install the equivalents of ${missing[*]} by hand" >&2
    exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
