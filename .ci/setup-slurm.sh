#!/usr/bin/env bash
# Install a single-node SLURM stack (slurm-wlm + munge) for the `slurm`-marked tests. Idempotent; needs root
# (or passwordless sudo) and a Debian/Ubuntu apt. The test (tests/test_sweep.py::test_slurm_executor) writes its
# own slurm.conf and munge key under a temporary directory and starts munged, slurmctld and slurmd on loopback,
# so nothing here configures or starts a daemon.
set -euo pipefail

need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ ${#need[@]} -eq 0 ]; then
    echo "setup-slurm: slurm-wlm and munge already installed ($(slurmctld -V 2>/dev/null || echo '?'))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "setup-slurm: need root (or passwordless sudo) to install ${need[*]}" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-slurm: apt-get not found; install ${need[*]} with your package manager" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps it small; the daemons are started by the test, never by the package scripts
$SUDO apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
echo "setup-slurm: installed ${need[*]} ($(slurmctld -V))"
