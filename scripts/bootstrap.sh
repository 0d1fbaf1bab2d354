#!/usr/bin/env bash
# Installs what mpp's demo and tests need on a fresh Debian 12 machine, and nothing twice:
# Debian packages only when their program is missing, the venv only when pyproject changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server-core)
command -v mariadb-install-db >/dev/null 2>&1 || need_pkgs+=(mariadb-server-core)
command -v mariadb >/dev/null 2>&1 || need_pkgs+=(mariadb-client)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_pkgs+=(haproxy)
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || need_pkgs+=(etcd-server)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)  # the dashboard's browser test
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)  # certificates for the etcd TLS test
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || need_pkgs+=(iptables)  # partitions in the fault matrix
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
# mysqlclient, the probe's driver, is built from source against libmariadb (pip has no wheel):
# its headers and pkg-config file, pkg-config itself, a C compiler and Python's headers
dpkg -s libmariadb-dev >/dev/null 2>&1 || need_pkgs+=(libmariadb-dev)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
python3 -c 'import os, sysconfig; os.stat(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
  >/dev/null 2>&1 || need_pkgs+=(python3-dev)
for extra in ${MPP_EXTRA_PACKAGES:-}; do
  dpkg -s "$extra" >/dev/null 2>&1 || need_pkgs+=("$extra")
done

if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need_pkgs[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need_pkgs[@]}" | sort -u) >/dev/null
fi

stamp=.venv/.mpp-installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: creating the venv (.venv) with mpp and its test tools"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi
