#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Install every Debian 12 package sluice needs to build, test and demo.
# Usage: scripts/install-deps.sh [--print-packages]
# Idempotent: when everything is already installed apt is not touched at all.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-format
  # the manual pages (scdoc turns docs/man/*.scd into roff: cmake/ManPages.cmake)
  scdoc
  # libraries the C++ code links against
  libpaho-mqttpp-dev libpaho-mqtt-dev librdkafka-dev libsqlite3-dev
  libspdlog-dev libfmt-dev doctest-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libsystemd-dev libcpp-httplib-dev libssl-dev zlib1g-dev librabbitmq-dev
  # the Kinesis upstream's HTTPS client (CURLOPT_AWS_SIGV4 signs its requests)
  libcurl4-openssl-dev
  # runtime / test tooling: brokers, CLI clients, Kafka via Maven + Java
  sqlite3 mosquitto mosquitto-clients kcat maven default-jre-headless
  # the RabbitMQ upstream's tests run a private broker (scripts/rabbitmq.sh), never the system one
  rabbitmq-server
  ca-certificates procps iproute2
  # network fault tests: packet loss and partitions inside a test namespace (chaos label)
  nftables
  # benchmark chart (bench/run.sh)
  gnuplot-nox
  # systemd-analyze and systemd-sysusers check the unit file (tests/systemd/verify_unit.sh)
  systemd
  # the Debian package: lintian checks it, debootstrap makes the root it is installed into
  # (scripts/package-test.sh), systemd-nspawn boots that root with systemd as PID 1
  # (scripts/systemd-test.sh)
  lintian debootstrap systemd-container
)

# scripts/cross-arm64.sh installs the arm64 variants of the libraries listed here.
if [[ "${1:-}" == --print-packages ]]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi

# Fuzzing (tests/fuzz/run.sh): clang with its libFuzzer and sanitizer runtimes. Host tools only;
# listed after --print-packages so that the cross build does not look for arm64 variants.
packages+=(clang libclang-rt-14-dev)
# openssl(1) makes the test certificates of the MQTT upstream's TLS broker
# (tests/integration/cloud_broker.sh); a host tool too.
packages+=(openssl)
# promtool checks and unit-tests the alerting rules in monitoring/ and jq reads the dashboard
# there (tests/monitoring/check.sh). Debian ships promtool only inside the Prometheus server's
# package, whose service is kept from starting below.
packages+=(prometheus jq)
# The Kinesis upstream's test server, kinesalite, comes from npm (scripts/kinesis.sh); curl(1)
# tells when it answers. Debian's npm needs Debian's nodejs; a nodejs built elsewhere (NodeSource)
# brings its own npm and conflicts with Debian's, so npm is asked for only when none is there.
packages+=(nodejs curl)
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

# Only list packages that are not fully installed ("ii"), so re-runs are fast
# and do not need the network.
missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != ii* ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages already installed"
else
  echo "install-deps: installing: ${missing[*]}"
  sudo=()
  if ((EUID != 0)); then
    # -n: never prompt, this must work without stdin.
    sudo=(sudo -n)
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The packages' maintainer scripts start their services through invoke-rc.d (without systemd:
  # prometheus's would serve on 9090 from then on, mosquitto's on 1883, rabbitmq-server's on
  # 5672) and deb-systemd-invoke.
  # Both ask policy-rc.d(8) first; exit status 101 forbids every action. Put one in place for this
  # installation only, unless the machine has its own (containers often do).
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\n# scripts/install-deps.sh: no service starts while it installs.\nexit 101\n' |
      "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
    trap '"${sudo[@]}" rm -f "$policy"' EXIT
  fi
  "${sudo[@]}" apt-get update
  # Keep existing config files without asking if a package is upgraded.
  "${sudo[@]}" apt-get install -y --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null
  if ((own_policy)); then
    "${sudo[@]}" rm -f "$policy"
    trap - EXIT
  fi
fi

# Debian's mosquitto, rabbitmq-server and prometheus packages enable their services (system
# brokers on 1883 and 5672, a Prometheus server on 9090), which systemd starts at the next boot
# even though policy-rc.d kept them from starting now. Tests and demos run their own brokers
# (scripts/mosquitto.sh, scripts/rabbitmq.sh) and need only promtool, so turn all three off to
# keep the ports free and avoid confusion. Only possible when systemd is PID 1 (not in most
# containers); failure here is harmless because our tests use other ports anyway.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  for service in mosquitto.service rabbitmq-server.service prometheus.service; do
    if systemctl is-enabled --quiet "$service" 2>/dev/null ||
      systemctl is-active --quiet "$service" 2>/dev/null; then
      echo "install-deps: stopping and disabling system $service"
      if ((EUID == 0)); then
        systemctl disable --now "$service" || true
      else
        sudo -n systemctl disable --now "$service" || true
      fi
    fi
  done
fi
