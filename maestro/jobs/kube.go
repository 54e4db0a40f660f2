package jobs

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClientConfig loads the Kubernetes client configuration the way kubectl
// does: $KUBECONFIG (or ~/.kube/config) when there is one, else the pod's
// service account (in-cluster). namespace is the kubeconfig context's
// namespace, or the pod's own in-cluster: the default of JOB_NAMESPACE.
func ClientConfig() (cfg *rest.Config, namespace string, err error) {
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{})
	cfg, err = loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client configuration (KUBECONFIG or in-cluster): %w", err)
	}
	namespace, _, err = loader.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes namespace from KUBECONFIG or in-cluster: %w", err)
	}
	return cfg, namespace, nil
}
