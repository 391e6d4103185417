# Local single-node Kubernetes for the end-to-end tests (see e2e/cluster/README.md).
# Included by the top-level Makefile (-include mk/*.mk). All targets need root.

E2E_CLUSTER := e2e/cluster
E2E_IMAGES := e2e/images

.PHONY: k8s-binaries cluster-up cluster-down apiserver-up apiserver-down images

## Build (once, cached in $$CORRAL_CACHE) the Kubernetes binaries from Go modules
k8s-binaries:
	$(E2E_CLUSTER)/deps.sh
	$(E2E_CLUSTER)/k8s-binaries.sh

## Start the full single-node cluster (idempotent); kubeconfig: e2e/.state/kubeconfig
cluster-up:
	$(E2E_CLUSTER)/up.sh

## Stop everything the cluster started and remove e2e/.state
cluster-down:
	$(E2E_CLUSTER)/down.sh

## Light mode: etcd + kube-apiserver only (a few seconds once the binaries are built)
apiserver-up:
	$(E2E_CLUSTER)/up.sh --apiserver-only

apiserver-down:
	$(E2E_CLUSTER)/down.sh

## Build the images (sandbox-base, pause, one per Corral binary in target/) and import them
images:
	$(E2E_IMAGES)/build.sh all
