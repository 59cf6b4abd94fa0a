# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Test certificates for the private servers of tests and demos (scripts/kinesis.sh,
# scripts/rabbitmq.sh, tests/integration/cloud_broker.sh): made on the first start in a server's
# directory, so that nothing secret is committed, and kept across restarts, so that clients keep
# their settings while a test stops, kills and starts the server.
#
# Sourced after scripts/lib/broker.sh (for die). Defines:
#   make_test_certificates TLS [IP]
#       makes, once, in the directory TLS:
#         ca.pem, ca.key              the CA that signed the server and client certificates
#         other-ca.pem, other-ca.key  a CA that signed nothing (a wrong CA file for a client)
#         server.pem, server.key      SAN IP:127.0.0.1, DNS:localhost (and IP:IP), serverAuth
#         client.pem, client.key      clientAuth
#       with EC keys (fast to make). openssl's output goes to TLS.log.

make_test_certificates() {
  local tls=$1 san=IP:127.0.0.1,DNS:localhost
  if [[ -n "${2:-}" && "$2" != 127.0.0.1 ]]; then san+=",IP:$2"; fi
  [[ -s "$tls/client.pem" ]] && return 0
  command -v openssl >/dev/null || die "openssl not found (run scripts/install-deps.sh)"
  # Made in a temporary directory renamed at the end, so an interrupted run never looks complete.
  rm -rf "$tls.tmp"
  mkdir -p "$tls.tmp"
  # Every step ends the subshell on failure: on the left of || it does not heed set -e.
  (
    cd "$tls.tmp" || exit 1
    umask 077
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    local ca_ext=(-addext "basicConstraints=critical,CA:TRUE"
      -addext "keyUsage=critical,keyCertSign,cRLSign")
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 3650 \
      -subj "/CN=sluice test CA" "${ca_ext[@]}" || exit 1
    openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 3650 \
      -subj "/CN=sluice other CA" "${ca_ext[@]}" || exit 1
    printf '%s\n' "subjectAltName=$san" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
      >server.ext || exit 1
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >client.ext || exit 1
    local who
    for who in server client; do
      openssl req "${ec[@]}" -keyout "$who.key" -out "$who.csr" -subj "/CN=sluice-test-$who" ||
        exit 1
      openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$who.pem" -days 3650 -extfile "$who.ext" || exit 1
    done
    rm -f ./*.csr ./*.ext ca.srl
    # Servers and clients read the keys as the user that made them; the certificates are public.
    chmod 644 ./*.pem
  ) >"$tls.log" 2>&1 || die "cannot make the test certificates in $tls (see $tls.log)"
  rm -rf "$tls"
  mv "$tls.tmp" "$tls"
}
