#!/usr/bin/env bash
# Generate the cluster's PKI with openssl into $STATE/pki (once per state dir):
# one CA, serving certs for kube-apiserver and kubelet, client certs for every
# component and for the admin, and the service-account signing key.
# ECDSA P-256 everywhere: fast to generate and accepted by every component.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -f $CERT_DIR/.done ]] && exit 0
mkdir -p "$CERT_DIR"
cd "$CERT_DIR"
umask 077

newkey() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null; }

log "generating certificates in $CERT_DIR"
newkey ca
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=corral-e2e-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt 2>/dev/null

# sign NAME SUBJECT EXTKEYUSAGE [SAN]
sign() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  newkey "$name"
  openssl req -new -key "$name.key" -subj "$subj" -out "$name.csr" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

api_san="DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
api_san+=",DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME"
api_san+=",IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SVC_IP"
sign apiserver "/CN=kube-apiserver" serverAuth "$api_san"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
sign kubelet "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP"
sign kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
sign admin "/O=system:masters/CN=corral-admin" clientAuth
sign controller-manager "/CN=system:kube-controller-manager" clientAuth
sign scheduler "/CN=system:kube-scheduler" clientAuth
sign kube-proxy "/CN=system:kube-proxy" clientAuth
newkey sa
openssl ec -in sa.key -pubout -out sa.pub 2>/dev/null
rm -f ca.srl
touch .done
