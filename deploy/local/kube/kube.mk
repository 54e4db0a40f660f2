# Test control plane (etcd, kube-apiserver, kube-controller-manager with the
# namespace and garbage-collector controllers; no scheduler, no kubelet) for
# the Job delivery path, Maestro's real agent and server-side dry runs of the
# deployment manifests. Included by the top-level Makefile; tests find it
# through `eval "$$(deploy/local/kube/kube.sh env)"` (KUBECONFIG). The first
# kube-build compiles kube-apiserver and kube-controller-manager (~10-15 min
# on 2 cores); later ones reuse the cached binaries.
# Relative to this file, so the fragment works whatever includes it.
KUBE_SH := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/kube.sh

.PHONY: kube-build kube-start kube-stop

kube-build: ## Build (or reuse) kube-apiserver and kube-controller-manager and install etcd when missing.
	$(KUBE_SH) build

kube-start: ## Start etcd, kube-apiserver on 127.0.0.1:16443 and kube-controller-manager, and wait until ready.
	$(KUBE_SH) start

kube-stop: ## Stop the test control plane.
	$(KUBE_SH) stop
