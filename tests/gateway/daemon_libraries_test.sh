#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The daemon's shared libraries: libcurl is loaded only when a Kinesis upstream needs it
# (common/curl_library.h). Linked, it and its dependency tree (GnuTLS, Kerberos, LDAP, libssh2,
# p11-kit) cost every sluice about 3.6 MiB of RSS; this fails when a link brings them back.
# Usage: daemon_libraries_test.sh SLUICE_BINARY
set -euo pipefail
bin=${1:?usage: daemon_libraries_test.sh SLUICE_BINARY}
libs=$(ldd "$bin")
# ldd read the binary: its own log's library is there.
grep -q 'libsqlite3\.so' <<<"$libs" || { echo "FAIL: ldd lists no libsqlite3 for $bin:"; echo "$libs"; exit 1; }
if grep -E 'libcurl|libgnutls|libkrb5|libldap|libssh2' <<<"$libs"; then
  echo "FAIL: $bin is linked with the libraries above (libcurl is to be loaded at run time)"
  exit 1
fi
echo "ok: $bin links no libcurl, nor what libcurl brings"
