#!/usr/bin/env bash
# usage: ensure-tools.sh
# Installs, through Debian's packages, what the real-backend tests need and this machine lacks:
# PostgreSQL (server binaries), kcat, a Java 17 runtime and Maven. Only as root (CI machines);
# otherwise it prints what is missing and exits 0 (the tests then say exactly what to install).
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

if [ ${#missing[@]} -eq 0 ]; then
    echo "ensure-tools: postgresql, kcat, java and maven are present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure-tools: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 0
fi
echo "ensure-tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "ensure-tools: installed ${missing[*]}"
