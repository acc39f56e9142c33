#!/usr/bin/env bash
# Install the real/synthetic speech used by tests/data/test_audio.py (idempotent; needs root or sudo).
#   asterisk-core-sounds-en-wav: real recorded digits 0-9, /usr/share/asterisk/sounds/en_US_f_Allison/digits/*.wav
#     (one speaker, 8 kHz mono 16-bit, CC-BY-SA-3.0)
#   espeak-ng: synthetic TTS digits generated at test time (labelled synthetic in the tests)
# The tests skip, with a reason, when either is absent; nothing is installed by the tests themselves.
set -euo pipefail

need=()
[ -f /usr/share/asterisk/sounds/en_US_f_Allison/digits/0.wav ] || need+=(asterisk-core-sounds-en-wav)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
if [ ${#need[@]} -eq 0 ]; then
    echo "setup-audio: already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
echo "setup-audio: installed ${need[*]}"
