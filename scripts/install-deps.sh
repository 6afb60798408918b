#!/usr/bin/env bash
# Installs the system packages the tests need, if they are missing. Idempotent; needs root
# (or sudo) only when something is missing.
set -euo pipefail

packages=(iproute2 procps)
# OCF resource agents (ocf:heartbeat:*) and xmllint, for the ocf resource type and its tests.
packages+=(resource-agents libxml2-utils)
# nftables: the chaos harness (tests/chaos/run) cuts links between namespaces with it.
packages+=(nftables)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
