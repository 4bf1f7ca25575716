#!/usr/bin/env bash
# Install the Debian packages that the lab and the tests use, when missing.
# Safe to run repeatedly; does nothing when everything is present.
set -euo pipefail

need=()
command -v ip >/dev/null       || need+=(iproute2)
command -v ping >/dev/null     || need+=(iputils-ping)
command -v ethtool >/dev/null  || need+=(ethtool)
command -v tcpdump >/dev/null  || need+=(tcpdump)
command -v curl >/dev/null     || need+=(curl)
command -v python3 >/dev/null  || need+=(python3)
command -v sysctl >/dev/null   || need+=(procps)
# The L7 lab's real servers and clients (testbed/examples/l7.toml).
command -v dnsmasq >/dev/null  || need+=(dnsmasq-base)
command -v dig >/dev/null      || need+=(dnsutils)
command -v openssl >/dev/null  || need+=(openssl)
command -v setsid >/dev/null   || need+=(util-linux)
command -v ssh >/dev/null      || need+=(openssh-client)
# Operations: a real Prometheus (and promtool) scraping a lab warden.
command -v prometheus >/dev/null || need+=(prometheus)

if [ "${#need[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: need root to install: ${need[*]}" >&2
        exit 1
    fi
    echo "install-deps: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
