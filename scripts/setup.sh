#!/usr/bin/env bash
# Installs the Debian 12 packages tpmtrust and its test suite use: the TPM stack (swtpm,
# tpm2-tools, tpm2-openssl), softhsm2 (PKCS#11), python3-pykmip (a real KMIP server for the KMIP key server tests), PostgreSQL binaries, chromium (UI tests) and
# certtool (gnutls-bin, used by swtpm's local EK CA), zsh (completion tests) and curl (the DPS client made of tpm2-tools and curl). Idempotent; skips apt when all are present.
# Not root: prints the exact command to run instead and exits 1.
set -euo pipefail

PACKAGES=(swtpm swtpm-tools tpm2-tools tpm2-openssl libtss2-tcti-swtpm0 softhsm2 python3-pykmip postgresql chromium gnutls-bin zsh curl)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all Debian packages present (${PACKAGES[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: install them as root with:" >&2
  echo "  apt-get update && apt-get install -y ${PACKAGES[*]}" >&2
  exit 1
fi

# Tests start their own throwaway PostgreSQL clusters; stop the package from creating a system
# cluster (postgresql-common reads createcluster.d; see pg_createcluster(1)).
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/tpmtrust-no-main-cluster.conf

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y "${PACKAGES[@]}"
