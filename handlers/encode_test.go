package handlers

import (
	"encoding/json"
	"testing"

	configv1 "github.com/openshift/api/config/v1"
	hyperv1 "github.com/openshift/hypershift/api/hypershift/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestToObjectKeepsOnlySetFields: the upstream types encode unset struct
// fields as zero values (templates.login.name "", status.replicas 0);
// toObject leaves them out but keeps what was set, zero or not.
func TestToObjectKeepsOnlySetFields(t *testing.T) {
	zero := int32(0)
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"oauth with no providers", &configv1.OAuth{
			TypeMeta:   metav1.TypeMeta{APIVersion: "config.openshift.io/v1", Kind: "OAuth"},
			ObjectMeta: metav1.ObjectMeta{Name: "cluster"},
			Spec:       configv1.OAuthSpec{IdentityProviders: []configv1.IdentityProvider{}},
		}, `{"apiVersion":"config.openshift.io/v1","kind":"OAuth","metadata":{"name":"cluster"},"spec":{"identityProviders":[]}}`},
		{"inline provider config", &configv1.IdentityProvider{
			Name: "gh",
			IdentityProviderConfig: configv1.IdentityProviderConfig{
				Type:   configv1.IdentityProviderTypeGitHub,
				GitHub: &configv1.GitHubIdentityProvider{ClientID: "id", Organizations: []string{"o"}},
			},
		}, `{"github":{"clientID":"id","organizations":["o"]},"name":"gh","type":"GitHub"}`},
		{"node pool scaled to zero", &hyperv1.NodePool{
			Spec: hyperv1.NodePoolSpec{ClusterName: "c", Replicas: &zero, Platform: hyperv1.NodePoolPlatform{Type: hyperv1.NonePlatform}},
		}, `{"spec":{"clusterName":"c","platform":{"type":"None"},"replicas":0}}`},
		{"empty map values and bytes", &corev1.ConfigMap{
			Data:       map[string]string{"empty": ""},
			BinaryData: map[string][]byte{"b": []byte("hi")},
		}, `{"binaryData":{"b":"aGk="},"data":{"empty":""}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := toObject(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
