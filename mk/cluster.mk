# Local single-node Kubernetes for the end-to-end tests (see e2e/cluster/README.md).
# Included by the top-level Makefile (-include mk/*.mk). These targets need root.

E2E_CLUSTER := e2e/cluster
E2E_IMAGES := e2e/images

.PHONY: k8s-binaries cluster-up cluster-down apiserver-up apiserver-down images cluster-smoke

k8s-binaries: ## Build Kubernetes v1.33 from Go modules, once (cached in $CORRAL_CACHE)
	$(E2E_CLUSTER)/deps.sh
	$(E2E_CLUSTER)/k8s-binaries.sh

cluster-up: ## Start the local single-node cluster (idempotent); kubeconfig e2e/.state/kubeconfig
	$(E2E_CLUSTER)/up.sh

cluster-down: ## Stop everything the local cluster started and remove e2e/.state
	$(E2E_CLUSTER)/down.sh

apiserver-up: ## Light mode: etcd + kube-apiserver only (seconds once built)
	$(E2E_CLUSTER)/up.sh --apiserver-only

apiserver-down: ## Stop the light mode (same as cluster-down)
	$(E2E_CLUSTER)/down.sh

images: ## Build sandbox-base, pause and our binaries' images; import them into the cluster
	$(E2E_IMAGES)/build.sh all

cluster-smoke: ## Smoke-test the running local cluster (pods, logs, exec, Services, forwards)
	$(E2E_CLUSTER)/smoke.sh
